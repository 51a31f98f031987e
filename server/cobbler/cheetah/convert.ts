/**
 * Cheetah (Cobbler's template language) -> nunjucks (forge's renderer, with
 * trimBlocks: a block tag's line produces no line of its own, as a Cheetah
 * directive line does). Pure.
 *
 * Converted: `$var`, `${expr}`, `$obj.attr`, `$d["k"]`, `$f(...)`, `\$` and
 * `\#` escapes; `#if/#else if/#elif/#else/#end if`, `#unless`, `#for/#end
 * for` (also `for k, v in d.items()`), `#continue` and `#break` (nunjucks has
 * neither: the rest of the loop body is guarded by a flag), `#set` (also
 * `#set global`, `+=`, tuple targets), `#silent`, `#echo`, `#raw/#end raw`,
 * `#include`, `$SNIPPET('name')` (-> `{% include "snippets/name" %}`),
 * `$getVar('x', default)`, `##` and `#* *#` comments, `#slurp`, `#import re`
 * (patterns become nunjucks regex literals), and the Python idioms of
 * cheetah/expr.ts. Literal `{{`, `{%`, `{#` in the text are escaped.
 *
 * Cobbler variables forge has an equivalent for are rewritten (VAR_MAP):
 * Cobbler flattens kernel_options(_post) to strings, forge keeps dicts, so
 * `$kernel_options_post` becomes `kernel_options_post | kopts`; Cobbler's
 * yum_repo_stanza is the repo lines forge's `repos` variable makes.
 *
 * What has no equivalent is left in the output as a nunjucks comment holding
 * the original line, and listed (line, reason): never dropped silently.
 */
import { Unconvertible, compiledPattern, convertCondition, convertExpr } from './expr.js';
import type { ExprEnv } from './expr.js';

export interface Leftover {
  line: number;
  reason: string;
  source: string;
}

export interface ConvertResult {
  text: string;
  leftovers: Leftover[];
  /** Conversions worth knowing about (a variable mapped, an idiom replaced), by line. */
  notes: { line: number; message: string }[];
}

/** Cobbler variables with a forge equivalent. */
export const VAR_MAP: Record<string, string> = {
  kernel_options: '(kernel_options | kopts)',
  kernel_options_post: '(kernel_options_post | kopts)',
  default_password_crypted: 'root_password_hash',
  install_source_directory: '(tree | urlpath)',
  template_files: '(template_files | default({}))',
  // Variables Cobbler always defines (item fields and settings.yaml defaults)
  // that forge has no field for: Cobbler's default unless autoinstall_meta sets one.
  redhat_management_key: '(redhat_management_key | default(""))',
  redhat_management_server: '(redhat_management_server | default(""))',
  mgmt_classes: '(mgmt_classes | default([]))',
  mgmt_parameters: '(mgmt_parameters | default({}))',
  run_install_triggers: '(run_install_triggers | default(true))',
  anamon_enabled: '(anamon_enabled | default(false))',
  puppet_auto_setup: '(puppet_auto_setup | default(false))',
  puppet_server: '(puppet_server | default(""))',
  puppet_version: '(puppet_version | default(2))',
  sign_puppet_certs_automatically: '(sign_puppet_certs_automatically | default(false))',
  repo_data: '(repo_data | default([]))',
  // Cobbler's $name_servers_search etc. are lists in both.
};

/** Statement forms of Cobbler-only variables: whole lines forge can generate. */
const STANZAS: Record<string, string> = {
  yum_repo_stanza:
    '{% for r in repos | default("") | splitlist %}\n{% set kv = r.split("=") %}\nrepo --name={{ kv[0] | trim | ksarg }} --baseurl={{ kv.slice(1).join("=") | trim | ksarg }}\n{% endfor %}\n',
  yum_config_stanza:
    '{% for r in repos | default("") | splitlist %}\n{% set kv = r.split("=") %}\ncat > /etc/yum.repos.d/{{ kv[0] | trim }}.repo << \'EOF\'\n[{{ kv[0] | trim }}]\nname={{ kv[0] | trim }}\nbaseurl={{ kv.slice(1).join("=") | trim }}\nenabled=1\ngpgcheck=0\nEOF\n{% endfor %}\n',
};

/** Cobbler URLs a converted template may still name that forge does not serve. */
const COBBLER_ONLY_URLS: [RegExp, string][] = [
  [/\/cblr\/svc\/op\/script\//, 'forge does not serve Cobbler scripts (/cblr/svc/op/script); put the script into the template or a snippet'],
  [/\/cblr\/svc\/op\/template\//, 'forge does not serve per-object config files (/cblr/svc/op/template)'],
  [/\/cblr\/links\//, "forge has no /cblr/links tree mirror; use $tree (forge import serves trees under /tree/DISTRO)"],
  [/\/cblr\/repo_mirror\/|\/cobbler\/repo_mirror\//, 'forge does not mirror repos (/cblr/repo_mirror)'],
  [/\/cobbler\/svc\/|\/cblr\/svc\/op\/(?!autoinstall|ks|nopxe|trig)/, 'a Cobbler service URL forge does not serve'],
];

type Node =
  | { k: 'out'; s: string }
  | { k: 'comment'; s: string }
  | { k: 'if'; branches: { cond: string | undefined; body: Node[] }[]; line: number }
  | { k: 'for'; head: string; body: Node[]; line: number }
  | { k: 'jump'; what: 'continue' | 'break'; line: number };

type Block = { k: 'if'; node: Extract<Node, { k: 'if' }> } | { k: 'for'; node: Extract<Node, { k: 'for' }> } | { k: 'root'; body: Node[] };

const DIRECTIVE = /^(\s*)#(else if|elif|else|end if|end for|end unless|end raw|end while|end def|end block|end try|if|unless|for|set|silent|echo|include|raw|import|from|continue|break|slurp|stop|return|def|block|extends|implements|attr|compiler-settings|while|try|except|finally|filter|errorCatcher|cache|capture|call|pass|assert|del|global|encoding|indent|breakpoint)\b(.*)$/;

function commentText(s: string): string {
  return s.replace(/#\}/g, '# }').replace(/\{#/g, '{ #');
}

function cleanDirectiveArg(s: string): string {
  let x = s;
  const cm = x.indexOf('##');
  if (cm >= 0) x = x.slice(0, cm);
  x = x.trim();
  if (x.endsWith('#')) x = x.slice(0, -1).trim();
  if (x.endsWith(':')) x = x.slice(0, -1).trim();
  return x;
}

export function convertCheetah(src: string): ConvertResult {
  const leftovers: Leftover[] = [];
  const notes: { line: number; message: string }[] = [];
  let lineNo = 0;
  const regexes = new Map<string, string>();
  const env: ExprEnv = {
    regexes,
    varMap: VAR_MAP,
    note: (m) => {
      if (!notes.some((n) => n.line === lineNo && n.message === m)) notes.push({ line: lineNo, message: m });
    },
  };
  const root: Block = { k: 'root', body: [] };
  const stack: Block[] = [root];
  const body = (): Node[] => {
    const b = stack[stack.length - 1]!;
    if (b.k === 'root') return b.body;
    if (b.k === 'for') return b.node.body;
    return b.node.branches[b.node.branches.length - 1]!.body;
  };
  const push = (n: Node): void => {
    body().push(n);
  };
  const leftover = (reason: string, source: string): void => {
    leftovers.push({ line: lineNo, reason, source });
    push({ k: 'comment', s: `{# CHEETAH line ${lineNo}: ${commentText(reason)}: ${commentText(source.trim())} #}` });
  };
  const expr = (s: string): string => convertExpr(s, env);
  const cond = (s: string): string => convertCondition(s, env);

  const lines = src.split('\n');
  const endsWithNewline = src.endsWith('\n');
  if (endsWithNewline) lines.pop();
  let inRaw = false;
  let inBlockComment = false;
  for (let idx = 0; idx < lines.length; idx++) {
    lineNo = idx + 1;
    const line = lines[idx]!;
    const nl = idx < lines.length - 1 || endsWithNewline ? '\n' : '';
    if (inBlockComment) {
      const e = line.indexOf('*#');
      if (e < 0) {
        push({ k: 'comment', s: `{# ${commentText(line)} #}` });
        continue;
      }
      push({ k: 'comment', s: `{# ${commentText(line.slice(0, e))} #}` });
      inBlockComment = false;
      const rest = line.slice(e + 2);
      if (rest.trim() !== '') push({ k: 'out', s: textLine(rest, nl) });
      continue;
    }
    if (inRaw) {
      if (/^\s*#end raw\b/.test(line)) {
        push({ k: 'out', s: '{% endraw %}\n' });
        inRaw = false;
      } else push({ k: 'out', s: line + nl });
      continue;
    }
    if (/^\s*##/.test(line)) {
      push({ k: 'comment', s: `{# ${commentText(line.replace(/^\s*##\s?/, ''))} #}` });
      continue;
    }
    if (/^\s*#\*/.test(line)) {
      const after = line.replace(/^\s*#\*/, '');
      const e = after.indexOf('*#');
      if (e >= 0) {
        push({ k: 'comment', s: `{# ${commentText(after.slice(0, e))} #}` });
        const rest = after.slice(e + 2);
        if (rest.trim() !== '') push({ k: 'out', s: textLine(rest, nl) });
      } else {
        push({ k: 'comment', s: `{# ${commentText(after)} #}` });
        inBlockComment = true;
      }
      continue;
    }
    const d = DIRECTIVE.exec(line);
    if (d === null) {
      // A line of text with placeholders. $yum_repo_stanza and friends alone on a line are whole stanzas.
      const stanza = /^\s*\$\{?(\w+)\}?\s*$/.exec(line);
      if (stanza !== null && STANZAS[stanza[1]!] !== undefined) {
        notes.push({ line: lineNo, message: `$${stanza[1]!} -> the same lines from forge's repos variable` });
        push({ k: 'out', s: STANZAS[stanza[1]!]! });
        continue;
      }
      try {
        push({ k: 'out', s: textLine(line, nl) });
        for (const [re, why] of COBBLER_ONLY_URLS) {
          if (re.test(line)) {
            notes.push({ line: lineNo, message: `warning: ${why}` });
            break;
          }
        }
      } catch (e) {
        if (!(e instanceof Unconvertible)) throw e;
        leftover(e.message, line);
      }
      continue;
    }
    const kw = d[2]!;
    const arg = cleanDirectiveArg(d[3] ?? '');
    try {
      switch (kw) {
        case 'if':
        case 'unless': {
          if (/\bthen\b/.test(arg)) throw new Unconvertible('the one-line #if ... then ... else form');
          const c = cond(arg);
          const node: Extract<Node, { k: 'if' }> = { k: 'if', branches: [{ cond: kw === 'unless' ? `not (${c})` : c, body: [] }], line: lineNo };
          push(node);
          stack.push({ k: 'if', node });
          break;
        }
        case 'else if':
        case 'elif':
        case 'else': {
          const top = stack[stack.length - 1]!;
          if (top.k !== 'if') throw new Unconvertible(`#${kw} without an open #if`);
          top.node.branches.push({ cond: kw === 'else' ? undefined : cond(arg.replace(/^if\b/, '').trim()), body: [] });
          if (kw === 'else' && arg !== '') throw new Unconvertible('text after #else');
          break;
        }
        case 'end if':
        case 'end unless': {
          const top = stack[stack.length - 1]!;
          if (top.k !== 'if') throw new Unconvertible(`#${kw} without an open #if`);
          stack.pop();
          break;
        }
        case 'for': {
          const m = /^(.+?)\s+in\s+(.+)$/.exec(arg);
          if (m === null) throw new Unconvertible('#for needs "VARS in EXPR"');
          const vars = m[1]!.replace(/[$()[\]\s]/g, '').split(',').filter((v) => v !== '');
          if (vars.length === 0 || vars.length > 2 || !vars.every((v) => /^\w+$/.test(v))) throw new Unconvertible('#for with more than two loop variables');
          let it = m[2]!.trim();
          let head: string;
          const items = /^(.*)\.items\(\)$/.exec(it);
          if (items !== null && vars.length === 2) head = `${vars[0]}, ${vars[1]} in ${expr(items[1]!)}`;
          else if (vars.length === 2) throw new Unconvertible('#for with two variables over something other than .items()');
          else {
            const keys = /^(.*)\.keys\(\)$/.exec(it);
            if (keys !== null) {
              // dict order, as Cobbler iterates (Python 3.7+ keeps insertion order)
              head = `${vars[0]}, _cheetah_v in ${expr(keys[1]!)}`;
            } else {
              it = expr(it);
              head = `${vars[0]} in ${it}`;
            }
          }
          const node: Extract<Node, { k: 'for' }> = { k: 'for', head, body: [], line: lineNo };
          push(node);
          stack.push({ k: 'for', node });
          break;
        }
        case 'end for': {
          const top = stack[stack.length - 1]!;
          if (top.k !== 'for') throw new Unconvertible('#end for without an open #for');
          stack.pop();
          break;
        }
        case 'continue':
        case 'break': {
          if (!stack.some((b) => b.k === 'for')) throw new Unconvertible(`#${kw} outside a #for`);
          push({ k: 'jump', what: kw, line: lineNo });
          break;
        }
        case 'set':
        case 'global': {
          let a = arg.replace(/^global\s+/, '');
          if (kw === 'global') a = arg;
          const m = /^(.+?)\s*(\+=|-=|=)\s*(.+)$/.exec(a);
          if (m === null || m[1]!.includes('==')) throw new Unconvertible('#set needs "NAME = EXPR"');
          const target = m[1]!.replace(/\$/g, '').trim();
          const rhs = m[3]!;
          const pat = compiledPattern(rhs);
          const tv = target.replace(/[[\]()\s]/g, '');
          if (pat !== undefined && /^\w+$/.test(tv)) {
            regexes.set(tv, pat);
            push({ k: 'comment', s: `{# ${tv} = re.compile(${commentText(JSON.stringify(pat))}): its uses are nunjucks regex literals #}` });
            break;
          }
          const value = expr(rhs);
          const names = tv.split(',');
          if (!names.every((n) => /^\w+$/.test(n))) throw new Unconvertible(`#set target ${target} is not a variable`);
          if (names.length === 1) {
            const v = m[2] === '=' ? value : `(${names[0]} ${m[2]![0]} ${value})`;
            push({ k: 'out', s: `{% set ${names[0]} = ${v} %}\n` });
          } else {
            if (m[2] !== '=') throw new Unconvertible('augmented assignment to several names');
            push({ k: 'out', s: `{% set _cheetah_t = ${value} %}\n${names.map((n, i) => `{% set ${n} = _cheetah_t[${i}] %}\n`).join('')}` });
          }
          break;
        }
        case 'silent':
          push({ k: 'out', s: `{% set _cheetah_silent = ${expr(arg)} %}\n` });
          break;
        case 'echo':
          push({ k: 'out', s: `{{ ${expr(arg)} }}` });
          break;
        case 'raw':
          if (arg !== '') throw new Unconvertible('text after #raw');
          push({ k: 'out', s: '{% raw %}\n' });
          inRaw = true;
          break;
        case 'include': {
          const m = /^(raw\s+)?(["'])(.+)\2$/.exec(arg);
          if (m === null) throw new Unconvertible('#include of a computed name (only a quoted file name converts)');
          if (m[1] !== undefined) throw new Unconvertible('#include raw: nunjucks includes are always templates');
          push({ k: 'out', s: `{% include ${JSON.stringify(m[3]!)} %}\n` });
          break;
        }
        case 'import':
        case 'from':
          if (/^re$/.test(arg)) {
            push({ k: 'comment', s: '{# #import re: patterns become nunjucks regex literals #}' });
            break;
          }
          throw new Unconvertible(`#${kw} ${arg}: Python modules are not available in nunjucks`);
        case 'slurp':
          break;
        case 'pass':
          break;
        default:
          throw new Unconvertible(`#${kw} has no nunjucks equivalent`);
      }
    } catch (e) {
      if (!(e instanceof Unconvertible)) throw e;
      leftover(e.message, line);
      // Keep the block structure: the unconverted condition or loop fails the
      // render, naming the line, instead of silently taking one branch.
      const stop = `fail(${JSON.stringify(`unconverted Cheetah at line ${lineNo}: ${e.message}`)})`;
      if (kw === 'if' || kw === 'unless') {
        const node: Extract<Node, { k: 'if' }> = { k: 'if', branches: [{ cond: stop, body: [] }], line: lineNo };
        push(node);
        stack.push({ k: 'if', node });
      } else if ((kw === 'else if' || kw === 'elif') && stack[stack.length - 1]!.k === 'if') {
        const top = stack[stack.length - 1] as Extract<Block, { k: 'if' }>;
        top.node.branches.push({ cond: stop, body: [] });
      } else if (kw === 'for') {
        const node: Extract<Node, { k: 'for' }> = { k: 'for', head: `_cheetah_x in ${stop}`, body: [], line: lineNo };
        push(node);
        stack.push({ k: 'for', node });
      }
    }
  }
  if (inRaw) {
    leftovers.push({ line: lineNo, reason: '#raw is not closed by #end raw', source: '' });
    push({ k: 'out', s: '{% endraw %}\n' });
  }
  while (stack.length > 1) {
    const b = stack.pop()!;
    const l = b.k === 'root' ? 0 : b.node.line;
    leftovers.push({ line: l, reason: `#${b.k} opened here is never closed (closed at the end of the file)`, source: '' });
  }
  let loops = 0;
  const out = emitSeq(root.body, undefined, () => ++loops);
  return { text: out, leftovers, notes };

  /** Text with placeholders; `nl` is the line's newline ('' on a last line without one). */
  function textLine(line: string, nl: string): string {
    let out = '';
    let lit = '';
    const flush = (): void => {
      // Nunjucks reads {{ {% {# and the closers #} %} anywhere in the text: escape them as expressions.
      out += lit.replace(/\{(?=[{%#])|[#%](?=\})/g, (m) => `{{ ${JSON.stringify(m)} }}`);
      lit = '';
    };
    const tag = (t: string): void => {
      if (lit.endsWith('{')) {
        lit = lit.slice(0, -1);
        flush();
        out += '{{ "{" }}';
      } else flush();
      out += t;
    };
    let i = 0;
    let newline = nl;
    while (i < line.length) {
      const c = line[i]!;
      if (c === '\\' && (line[i + 1] === '$' || line[i + 1] === '#')) {
        lit += line[i + 1];
        i += 2;
        continue;
      }
      if (c === '#' && line.startsWith('##', i)) {
        notes.push({ line: lineNo, message: `comment dropped from the output as Cheetah does: ${line.slice(i + 2).trim()}` });
        tag(`{# ${commentText(line.slice(i + 2).trim())} #}`);
        i = line.length;
        break;
      }
      if (c === '#' && /^#slurp\s*$/.test(line.slice(i))) {
        newline = '';
        i = line.length;
        break;
      }
      if (c === '#' && /^#echo\s/.test(line.slice(i))) {
        tag(`{{ ${expr(cleanDirectiveArg(line.slice(i + 5)))} }}`);
        i = line.length;
        break;
      }
      if (c === '#' && DIRECTIVE.test(line.slice(i)) && /^#(if|for|set|end|else|include|raw)\b/.test(line.slice(i))) {
        throw new Unconvertible('a directive in the middle of a line (Cheetah #...# inline form)');
      }
      if (c === '$') {
        const ph = placeholder(line, i);
        if (ph !== undefined) {
          const snip = /^\$\{?SNIPPET\(\s*(["'])([^"']+)\1\s*\)\}?$/.exec(ph.text);
          if (snip !== null) {
            // trimBlocks eats the newline after a block tag: give it one more so the line's own stays.
            const atEnd = line.slice(ph.end).trim() === '';
            tag(`{% include ${JSON.stringify(`snippets/${snip[2]!}`)} %}${atEnd && nl !== '' ? '\n' : ''}`);
            i = ph.end;
            continue;
          }
          if (/\bSNIPPET\(/.test(ph.text)) throw new Unconvertible('$SNIPPET with a computed name');
          tag(`{{ ${expr(ph.expr)} }}`);
          i = ph.end;
          continue;
        }
      }
      lit += c;
      i++;
    }
    flush();
    return out + newline;
  }
}

const CLOSER: Record<string, string> = { '{': '}', '(': ')', '[': ']' };

/** Index of the bracket closing the one at line[j], skipping quoted strings. */
function closing(line: string, j: number): number {
  const open = line[j]!;
  const close = CLOSER[open]!;
  let depth = 0;
  let q: string | undefined;
  for (let k = j; k < line.length; k++) {
    const c = line[k]!;
    if (q !== undefined) {
      if (c === '\\') k++;
      else if (c === q) q = undefined;
    } else if (c === '"' || c === "'") q = c;
    else if (c === open) depth++;
    else if (c === close && --depth === 0) return k;
  }
  throw new Unconvertible(`unbalanced ${open} in placeholder`);
}

/** A placeholder starting at `$` (line[i]): its source text and expression, or undefined for a literal `$`. */
function placeholder(line: string, i: number): { text: string; expr: string; end: number } | undefined {
  const next = line[i + 1];
  if (next === '{' || next === '(' || next === '[') {
    const k = closing(line, i + 1);
    const inner = line.slice(i + 2, k);
    // Shell's $(command) is not a Cheetah placeholder unless it starts like an expression.
    if (next === '(' && !/^\s*[A-Za-z_$]/.test(inner)) return undefined;
    return { text: line.slice(i, k + 1), expr: inner, end: k + 1 };
  }
  if (next === undefined || !/[A-Za-z_]/.test(next)) return undefined;
  let j = i + 1;
  const ident = (): void => {
    while (j < line.length && /\w/.test(line[j]!)) j++;
  };
  ident();
  for (;;) {
    const c = line[j];
    if (c === '.' && /[A-Za-z_]/.test(line[j + 1] ?? '')) {
      j++;
      ident();
    } else if (c === '(' || c === '[') j = closing(line, j) + 1;
    else break;
  }
  const text = line.slice(i, j);
  return { text, expr: text.slice(1), end: j };
}

function hasJump(n: Node): boolean {
  if (n.k === 'jump') return true;
  if (n.k === 'if') return n.branches.some((b) => b.body.some(hasJump));
  return false; // a nested #for owns its own jumps
}

function hasBreak(nodes: Node[]): boolean {
  return nodes.some((n) => (n.k === 'jump' && n.what === 'break') || (n.k === 'if' && n.branches.some((b) => hasBreak(b.body))));
}

/** Emit a statement list; inside loop `id`, whatever follows a possible #continue/#break is guarded. */
function emitSeq(nodes: Node[], id: number | undefined, nextId: () => number): string {
  let out = '';
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i]!;
    out += emitNode(n, id, nextId);
    if (id !== undefined && hasJump(n) && i < nodes.length - 1) {
      out += `{% if not _cheetah_skip${id} %}\n${emitSeq(nodes.slice(i + 1), id, nextId)}{% endif %}\n`;
      return out;
    }
  }
  return out;
}

function emitNode(n: Node, id: number | undefined, nextId: () => number): string {
  switch (n.k) {
    case 'out':
    case 'comment':
      return n.s;
    case 'jump':
      return `{% set _cheetah_skip${id!} = true %}\n${n.what === 'break' ? `{% set _cheetah_break${id!} = true %}\n` : ''}`;
    case 'if':
      return (
        n.branches
          .map((b, i) => `${i === 0 ? `{% if ${b.cond!} %}` : b.cond === undefined ? '{% else %}' : `{% elif ${b.cond} %}`}\n${emitSeq(b.body, id, nextId)}`)
          .join('') + '{% endif %}\n'
      );
    case 'for': {
      const me = nextId();
      const jumps = n.body.some(hasJump);
      const brk = hasBreak(n.body);
      let s = brk ? `{% set _cheetah_break${me} = false %}\n` : '';
      s += `{% for ${n.head} %}\n`;
      if (jumps) s += `{% set _cheetah_skip${me} = false %}\n`;
      if (brk) s += `{% if not _cheetah_break${me} %}\n`;
      s += emitSeq(n.body, jumps ? me : undefined, nextId);
      if (brk) s += '{% endif %}\n';
      return s + '{% endfor %}\n';
    }
  }
}
