/**
 * The match language of discovery rules: a small, closed expression language
 * with its own tokenizer and recursive-descent parser. Nothing is evaluated
 * as code (no eval, no Function, no template engine); an expression can only
 * read the facts named in FACTS, compare them and combine the results.
 *
 *   expr    := or
 *   or      := and ( '||' and )*
 *   and     := unary ( '&&' unary )*
 *   unary   := '!' unary | compare
 *   compare := operand ( ( '==' | '!=' | '<' | '<=' | '>' | '>=' | '~' | '!~' ) operand )?
 *   operand := NUMBER | STRING | FACT | 'true' | 'false' | '(' expr ')'
 *
 * `~` is a glob match (`*` any run, `?` one character, case-insensitive) of a
 * string fact against a string literal. Types are checked when the rule is
 * added, so a rule that could never match for a type reason is refused with
 * the position of the mistake. Bounded: at most MAX_LENGTH characters and
 * MAX_DEPTH levels of nesting.
 */
import { ForgeError } from '../errors.js';
import { lex } from '../core/lexer.js';

export type FactType = 'number' | 'string' | 'bool';

/** What a rule can see of a discovered machine (server/discovery/facts.ts fills them). */
export const FACTS: Record<string, { type: FactType; doc: string }> = {
  ram_mib: { type: 'number', doc: 'memory in MiB' },
  cpus: { type: 'number', doc: 'logical CPUs' },
  cpu_model: { type: 'string', doc: 'CPU model name' },
  arch: { type: 'string', doc: 'architecture (x86_64, aarch64)' },
  vendor: { type: 'string', doc: 'DMI system manufacturer' },
  product: { type: 'string', doc: 'DMI product name' },
  serial: { type: 'string', doc: 'DMI serial number' },
  uuid: { type: 'string', doc: 'DMI system UUID' },
  firmware: { type: 'string', doc: 'boot firmware: bios or uefi' },
  mac: { type: 'string', doc: 'MAC address it booted from' },
  'disks.count': { type: 'number', doc: 'number of disks' },
  'disks.total_gib': { type: 'number', doc: 'sum of disk sizes, GiB' },
  'disks.largest_gib': { type: 'number', doc: 'largest disk, GiB' },
  'disks.rotational': { type: 'number', doc: 'number of rotational disks' },
  'nics.count': { type: 'number', doc: 'number of network interfaces' },
  'nics.up': { type: 'number', doc: 'interfaces with link' },
};

export type Facts = Record<string, number | string | boolean>;

export const MAX_LENGTH = 1024;
export const MAX_DEPTH = 32;

type Tok =
  | { k: 'num'; v: number; at: number }
  | { k: 'str'; v: string; at: number }
  | { k: 'id'; v: string; at: number }
  | { k: 'op'; v: string; at: number }
  | { k: 'end'; at: number };

export type Expr =
  | { t: 'lit'; v: number | string | boolean }
  | { t: 'fact'; name: string }
  | { t: 'not'; e: Expr }
  | { t: 'and' | 'or'; l: Expr; r: Expr }
  | { t: 'cmp'; op: string; l: Expr; r: Expr };

function err(src: string, at: number, msg: string): ForgeError {
  return new ForgeError('INVALID_FIELD', `match: ${msg} at column ${at + 1}: ${src.slice(Math.max(0, at - 10), at)}⟨here⟩${src.slice(at, at + 10)}`, {
    field: 'match',
  });
}

const OPS = ['&&', '||', '==', '!=', '<=', '>=', '!~', '<', '>', '~', '!', '(', ')'];

function tokenize(src: string): Tok[] {
  const out: Tok[] = lex(src, {
    ops: OPS,
    name: /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/,
    unescape: (c) => c,
    error: (what, at, c) => err(src, at, what === 'unterminated string' ? what : `unexpected character "${c}"`),
  }).map((l): Tok => (l.k === 'num' ? { k: 'num', v: Number(l.v), at: l.at } : { k: l.k === 'name' ? 'id' : l.k, v: l.v, at: l.at }));
  out.push({ k: 'end', at: src.length });
  return out;
}

function typeOf(e: Expr): FactType {
  switch (e.t) {
    case 'lit':
      return typeof e.v === 'number' ? 'number' : typeof e.v === 'string' ? 'string' : 'bool';
    case 'fact':
      return FACTS[e.name]!.type;
    default:
      return 'bool';
  }
}

/** Parse and type-check; throws INVALID_FIELD (field `match`) with the column. */
export function parseMatch(src: string): Expr {
  if (src.length > MAX_LENGTH) throw new ForgeError('INVALID_FIELD', `match: at most ${MAX_LENGTH} characters`, { field: 'match' });
  if (src.trim() === '') throw new ForgeError('INVALID_FIELD', 'match: empty expression', { field: 'match' });
  const toks = tokenize(src);
  let p = 0;
  let depth = 0;
  const peek = (): Tok => toks[p]!;
  const isOp = (v: string): boolean => {
    const t = peek();
    return t.k === 'op' && t.v === v;
  };
  const enter = (at: number): void => {
    if (++depth > MAX_DEPTH) throw err(src, at, `nested deeper than ${MAX_DEPTH}`);
  };

  const operand = (): Expr => {
    const t = peek();
    enter(t.at);
    try {
      if (t.k === 'num') {
        p++;
        return { t: 'lit', v: t.v };
      }
      if (t.k === 'str') {
        p++;
        return { t: 'lit', v: t.v };
      }
      if (t.k === 'id') {
        p++;
        if (t.v === 'true' || t.v === 'false') return { t: 'lit', v: t.v === 'true' };
        if (!Object.hasOwn(FACTS, t.v)) throw err(src, t.at, `unknown fact "${t.v}" (known: ${Object.keys(FACTS).join(', ')})`);
        return { t: 'fact', name: t.v };
      }
      if (t.k === 'op' && t.v === '(') {
        p++;
        const e = or();
        if (!isOp(')')) throw err(src, peek().at, 'expected ")"');
        p++;
        return e;
      }
      throw err(src, t.at, t.k === 'end' ? 'expression ends too early' : `unexpected "${t.v}"`);
    } finally {
      depth--;
    }
  };

  const compare = (): Expr => {
    const l = operand();
    const t = peek();
    if (t.k === 'op' && ['==', '!=', '<', '<=', '>', '>=', '~', '!~'].includes(t.v)) {
      p++;
      const r = operand();
      const lt = typeOf(l);
      const rt = typeOf(r);
      if (t.v === '~' || t.v === '!~') {
        if (lt !== 'string' || r.t !== 'lit' || rt !== 'string') throw err(src, t.at, `${t.v} matches a string fact against a "glob" string`);
      } else if (['<', '<=', '>', '>='].includes(t.v)) {
        if (lt !== 'number' || rt !== 'number') throw err(src, t.at, `${t.v} compares numbers (${lt} ${t.v} ${rt})`);
      } else if (lt !== rt) {
        throw err(src, t.at, `${t.v} compares values of one type (${lt} ${t.v} ${rt})`);
      }
      return { t: 'cmp', op: t.v, l, r };
    }
    return l;
  };

  const unary = (): Expr => {
    if (isOp('!')) {
      const at = peek().at;
      p++;
      enter(at);
      try {
        const e = unary();
        if (typeOf(e) !== 'bool') throw err(src, at, '! needs a condition');
        return { t: 'not', e };
      } finally {
        depth--;
      }
    }
    return compare();
  };

  const chain = (op: '&&' | '||', next: () => Expr): Expr => {
    let l = next();
    while (isOp(op)) {
      const at = peek().at;
      p++;
      const r = next();
      if (typeOf(l) !== 'bool' || typeOf(r) !== 'bool') throw err(src, at, `${op} joins conditions, not bare values`);
      l = { t: op === '&&' ? 'and' : 'or', l, r };
    }
    return l;
  };
  const and = (): Expr => chain('&&', unary);
  const or = (): Expr => chain('||', and);

  const e = or();
  if (peek().k !== 'end') throw err(src, peek().at, `unexpected "${(peek() as { v: unknown }).v}"`);
  if (typeOf(e) !== 'bool') throw new ForgeError('INVALID_FIELD', 'match: the expression must be a condition (e.g. ram_mib>=4096)', { field: 'match' });
  return e;
}

/** `*` and `?` glob, case-insensitive, anchored. */
export function globMatch(glob: string, s: string): boolean {
  // Iterative wildcard match (no RegExp built from user text, no backtracking blow-up).
  const g = glob.toLowerCase();
  const t = s.toLowerCase();
  let gi = 0;
  let ti = 0;
  let star = -1;
  let mark = 0;
  while (ti < t.length) {
    if (gi < g.length && (g[gi] === '?' || g[gi] === t[ti])) {
      gi++;
      ti++;
    } else if (gi < g.length && g[gi] === '*') {
      star = gi++;
      mark = ti;
    } else if (star >= 0) {
      gi = star + 1;
      ti = ++mark;
    } else return false;
  }
  while (gi < g.length && g[gi] === '*') gi++;
  return gi === g.length;
}

function value(e: Expr, facts: Facts): number | string | boolean | undefined {
  switch (e.t) {
    case 'lit':
      return e.v;
    case 'fact':
      return facts[e.name];
    default:
      return evaluate(e, facts);
  }
}

/** Evaluate against facts. A missing fact makes its comparison false (and `!=` true). */
export function evaluate(e: Expr, facts: Facts): boolean {
  switch (e.t) {
    case 'lit':
      return e.v === true;
    case 'fact':
      return facts[e.name] === true;
    case 'not':
      return !evaluate(e.e, facts);
    case 'and':
      return evaluate(e.l, facts) && evaluate(e.r, facts);
    case 'or':
      return evaluate(e.l, facts) || evaluate(e.r, facts);
    case 'cmp': {
      const l = value(e.l, facts);
      const r = value(e.r, facts);
      if (l === undefined || r === undefined) return e.op === '!=' || e.op === '!~';
      switch (e.op) {
        case '==':
          return l === r;
        case '!=':
          return l !== r;
        case '<':
          return (l as number) < (r as number);
        case '<=':
          return (l as number) <= (r as number);
        case '>':
          return (l as number) > (r as number);
        case '>=':
          return (l as number) >= (r as number);
        case '~':
          return globMatch(String(r), String(l));
        case '!~':
          return !globMatch(String(r), String(l));
      }
      return false;
    }
  }
}

/**
 * Expand a hostname template: `web-{serial}` -> `web-abc123`. Only fact names
 * in braces; values are lower-cased and reduced to host name characters.
 */
export function expandTemplate(tpl: string, facts: Facts, field = 'hostname'): string {
  const out = tpl.replace(/\{([A-Za-z_][A-Za-z0-9_.]*)\}/g, (_m, name: string) => {
    if (!Object.hasOwn(FACTS, name)) throw new ForgeError('INVALID_FIELD', `${field}: unknown fact {${name}} in "${tpl}"`, { field });
    const v = facts[name];
    return String(v ?? '')
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '');
  });
  if (/[{}]/.test(out)) throw new ForgeError('INVALID_FIELD', `${field}: unbalanced braces in "${tpl}"`, { field });
  return out;
}
