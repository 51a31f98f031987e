/**
 * Cheetah placeholder and directive expressions (Python syntax, with `$`
 * before names) -> nunjucks expressions. Pure.
 *
 * Parsed into a small AST, then printed with explicit parentheses, so
 * Python's precedence survives nunjucks' own. Python idioms Cobbler's
 * templates use get their nunjucks equivalent:
 *   getVar('x', d) -> (x if x is defined else d)      varExists('x') -> (x is defined)
 *   len(x) / str(x) / int(x) -> x | length / string / int
 *   s.lower() / upper() / strip() / replace(a, b) -> filters
 *   s.startswith / endswith / find -> startsWith / endsWith / indexOf
 *   d.keys() -> d | sortkeys (natural order)         d.get(k, v) -> d[k] | default(v)
 *   " ".join(l) -> l | join(" ")                     "%s x %s" % (a, b) -> concatenation
 *   re.compile("P") bound by #set, then p.match(s) -> r/^(?:P)/.test(s)
 *   True / False / None -> true / false / none       (a, b) -> [a, b]
 * Anything else Python can do that nunjucks cannot is an Unconvertible with
 * the reason, never a guess.
 */

import { lex } from '../../core/lexer.js';

export class Unconvertible extends Error {}

type Node =
  | { t: 'name'; v: string }
  | { t: 'num'; v: string }
  | { t: 'str'; v: string }
  | { t: 'const'; v: 'true' | 'false' | 'none' }
  | { t: 'list'; items: Node[] }
  | { t: 'dict'; items: [Node, Node][] }
  | { t: 'attr'; obj: Node; name: string }
  | { t: 'index'; obj: Node; index: Node; slice?: [Node | undefined, Node | undefined] }
  | { t: 'call'; fn: Node; args: Node[] }
  | { t: 'un'; op: string; x: Node }
  | { t: 'bin'; op: string; a: Node; b: Node }
  | { t: 'cond'; c: Node; a: Node; b: Node };

interface Tok {
  k: 'name' | 'num' | 'str' | 'op' | 'end';
  v: string;
}

const OPS = ['**', '//', '==', '!=', '<=', '>=', '+=', '-=', '(', ')', '[', ']', '{', '}', ',', ':', '.', '+', '-', '*', '/', '%', '<', '>', '='];

export function tokenize(src: string): Tok[] {
  const out: Tok[] = lex(src, {
    ops: OPS,
    name: /^[A-Za-z_]\w*/,
    ignore: '$', // $name and name are the same in an expression
    // Python keeps the backslash of an unknown escape ("\." is backslash-dot).
    unescape: (e, quote) => (e === 'n' ? '\n' : e === 't' ? '\t' : e === '\\' || e === quote ? e : `\\${e}`),
    error: (what, _at, c) => new Unconvertible(what === 'unterminated string' ? `unterminated string in ${src}` : `unexpected character ${JSON.stringify(c)} in expression ${src}`),
  }).map((l): Tok => ({ k: l.k, v: l.v }));
  out.push({ k: 'end', v: '' });
  return out;
}

export class Parser {
  private p = 0;
  constructor(private readonly toks: Tok[]) {}
  peek(o = 0): Tok {
    return this.toks[Math.min(this.p + o, this.toks.length - 1)]!;
  }
  next(): Tok {
    return this.toks[this.p++] ?? { k: 'end', v: '' };
  }
  is(v: string): boolean {
    const t = this.peek();
    return (t.k === 'op' || t.k === 'name') && t.v === v;
  }
  eat(v: string): void {
    if (!this.is(v)) throw new Unconvertible(`expected ${v}, got ${this.peek().v || 'end of expression'}`);
    this.p++;
  }
  atEnd(): boolean {
    return this.peek().k === 'end';
  }
  /** expression list: `a, b` is a tuple (as in `x in a, b` it is not) */
  tuple(): Node {
    const first = this.expr();
    if (!this.is(',')) return first;
    const items = [first];
    while (this.is(',')) {
      this.p++;
      if (this.atEnd() || this.is(')') || this.is(']')) break;
      items.push(this.expr());
    }
    return { t: 'list', items };
  }
  expr(): Node {
    const a = this.or();
    if (this.is('if')) {
      this.p++;
      const c = this.or();
      this.eat('else');
      const b = this.expr();
      return { t: 'cond', c, a, b };
    }
    return a;
  }
  private or(): Node {
    let a = this.and();
    while (this.is('or')) {
      this.p++;
      a = { t: 'bin', op: 'or', a, b: this.and() };
    }
    return a;
  }
  private and(): Node {
    let a = this.not();
    while (this.is('and')) {
      this.p++;
      a = { t: 'bin', op: 'and', a, b: this.not() };
    }
    return a;
  }
  private not(): Node {
    if (this.is('not')) {
      this.p++;
      return { t: 'un', op: 'not', x: this.not() };
    }
    return this.cmp();
  }
  private cmp(): Node {
    let a = this.sum();
    for (;;) {
      const t = this.peek();
      if (t.k === 'op' && ['==', '!=', '<', '>', '<=', '>='].includes(t.v)) {
        this.p++;
        a = { t: 'bin', op: t.v, a, b: this.sum() };
      } else if (this.is('in')) {
        this.p++;
        a = { t: 'bin', op: 'in', a, b: this.sum() };
      } else if (this.is('not') && this.peek(1).v === 'in') {
        this.p += 2;
        a = { t: 'un', op: 'not', x: { t: 'bin', op: 'in', a, b: this.sum() } };
      } else if (this.is('is')) {
        this.p++;
        let neg = false;
        if (this.is('not')) {
          this.p++;
          neg = true;
        }
        const b = this.sum();
        a = { t: 'bin', op: neg ? '!=' : '==', a, b };
      } else return a;
    }
  }
  private sum(): Node {
    let a = this.term();
    while (this.is('+') || this.is('-')) {
      const op = this.next().v;
      a = { t: 'bin', op, a, b: this.term() };
    }
    return a;
  }
  private term(): Node {
    let a = this.unary();
    while (this.is('*') || this.is('/') || this.is('//') || this.is('%')) {
      const op = this.next().v;
      a = { t: 'bin', op, a, b: this.unary() };
    }
    return a;
  }
  private unary(): Node {
    if (this.is('-')) {
      this.p++;
      return { t: 'un', op: '-', x: this.unary() };
    }
    if (this.is('+')) {
      this.p++;
      return this.unary();
    }
    return this.postfix(this.atom());
  }
  postfix(n0: Node): Node {
    let n = n0;
    for (;;) {
      if (this.is('.')) {
        this.p++;
        const t = this.next();
        if (t.k !== 'name') throw new Unconvertible(`expected a name after "."`);
        n = { t: 'attr', obj: n, name: t.v };
      } else if (this.is('(')) {
        this.p++;
        const args: Node[] = [];
        while (!this.is(')')) {
          if (this.peek().k === 'name' && this.peek(1).v === '=' ) throw new Unconvertible('keyword arguments have no nunjucks equivalent here');
          args.push(this.expr());
          if (!this.is(')')) this.eat(',');
        }
        this.p++;
        n = { t: 'call', fn: n, args };
      } else if (this.is('[')) {
        this.p++;
        let lo: Node | undefined;
        if (!this.is(':')) lo = this.expr();
        if (this.is(':')) {
          this.p++;
          const hi = this.is(']') ? undefined : this.expr();
          this.eat(']');
          n = { t: 'index', obj: n, index: lo ?? { t: 'num', v: '0' }, slice: [lo, hi] };
        } else {
          this.eat(']');
          n = { t: 'index', obj: n, index: lo! };
        }
      } else return n;
    }
  }
  private atom(): Node {
    const t = this.next();
    if (t.k === 'num') return { t: 'num', v: t.v };
    if (t.k === 'str') {
      let v = t.v;
      while (this.peek().k === 'str') v += this.next().v; // implicit concatenation
      return { t: 'str', v };
    }
    if (t.k === 'name') {
      if (t.v === 'True') return { t: 'const', v: 'true' };
      if (t.v === 'False') return { t: 'const', v: 'false' };
      if (t.v === 'None') return { t: 'const', v: 'none' };
      if (['and', 'or', 'not', 'in', 'is', 'if', 'else', 'lambda'].includes(t.v)) throw new Unconvertible(`unexpected ${t.v}`);
      return { t: 'name', v: t.v };
    }
    if (t.v === '(') {
      if (this.is(')')) {
        this.p++;
        return { t: 'list', items: [] };
      }
      const e = this.tuple();
      this.eat(')');
      return e;
    }
    if (t.v === '[') {
      const items: Node[] = [];
      while (!this.is(']')) {
        items.push(this.expr());
        if (this.is('for')) throw new Unconvertible('list comprehensions have no nunjucks equivalent');
        if (!this.is(']')) this.eat(',');
      }
      this.p++;
      return { t: 'list', items };
    }
    if (t.v === '{') {
      const items: [Node, Node][] = [];
      while (!this.is('}')) {
        const k = this.expr();
        this.eat(':');
        items.push([k, this.expr()]);
        if (!this.is('}')) this.eat(',');
      }
      this.p++;
      return { t: 'dict', items };
    }
    throw new Unconvertible(`unexpected ${t.v || 'end of expression'}`);
  }
}

/** What the printer needs to know about the template around the expression. */
export interface ExprEnv {
  /** Variables bound to re.compile("P") by #set: name -> pattern. */
  regexes: Map<string, string>;
  /** Cobbler variables with a forge equivalent: name -> nunjucks expression. */
  varMap: Record<string, string>;
  /** Notes for the conversion report (variable mapped, idiom replaced). */
  note(msg: string): void;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function regexLiteral(p: string, anchored: boolean): string {
  const body = anchored ? `^(?:${p})` : p;
  return `r/${body.replace(/\//g, '\\/')}/`;
}

export function emit(n: Node, env: ExprEnv): string {
  switch (n.t) {
    case 'name': {
      const m = env.varMap[n.v];
      if (m !== undefined) {
        env.note(`$${n.v} -> ${m}`);
        return m;
      }
      return n.v;
    }
    case 'num':
      return n.v;
    case 'str':
      return q(n.v);
    case 'const':
      return n.v;
    case 'list':
      return `[${n.items.map((x) => emit(x, env)).join(', ')}]`;
    case 'dict':
      return `{${n.items.map(([k, v]) => `${emit(k, env)}: ${emit(v, env)}`).join(', ')}}`;
    case 'attr':
      return `${emit(n.obj, env)}.${n.name}`;
    case 'index':
      if (n.slice !== undefined) {
        const lo = n.slice[0] === undefined ? '0' : emit(n.slice[0], env);
        return n.slice[1] === undefined ? `${emit(n.obj, env)}.slice(${lo})` : `${emit(n.obj, env)}.slice(${lo}, ${emit(n.slice[1], env)})`;
      }
      return `${emit(n.obj, env)}[${emit(n.index, env)}]`;
    case 'un':
      return n.op === 'not' ? `(not ${emit(n.x, env)})` : `(-${emit(n.x, env)})`;
    case 'cond':
      return `(${emit(n.a, env)} if ${emit(n.c, env)} else ${emit(n.b, env)})`;
    case 'bin':
      if (n.op === '%' && n.a.t === 'str') return format(n.a.v, n.b, env);
      if (n.op === '==' && n.b.t === 'const' && n.b.v === 'none') return `(${emit(n.a, env)} is null)`;
      if (n.op === '!=' && n.b.t === 'const' && n.b.v === 'none') return `(not (${emit(n.a, env)} is null))`;
      if (n.op === 'in' && n.b.t === 'list') return `(${emit(n.a, env)} in ${emit(n.b, env)})`;
      return `(${emit(n.a, env)} ${n.op} ${emit(n.b, env)})`;
    case 'call':
      return call(n, env);
  }
}

function format(fmt: string, arg: Node, env: ExprEnv): string {
  const args = arg.t === 'list' ? arg.items : [arg];
  const parts: string[] = [];
  let lit = '';
  let k = 0;
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i];
    if (c !== '%') {
      lit += c;
      continue;
    }
    const d = fmt[i + 1];
    i++;
    if (d === '%') {
      lit += '%';
      continue;
    }
    if (d !== 's' && d !== 'd' && d !== 'i') throw new Unconvertible(`string formatting %${d ?? ''} has no nunjucks equivalent (only %s and %d)`);
    const a = args[k++];
    if (a === undefined) throw new Unconvertible('fewer values than % placeholders');
    if (lit !== '') parts.push(q(lit));
    lit = '';
    parts.push(d === 's' ? emit(a, env) : `(${emit(a, env)} | int)`);
  }
  if (k !== args.length) throw new Unconvertible('more values than % placeholders');
  if (lit !== '') parts.push(q(lit));
  return parts.length === 0 ? '""' : `(${parts.join(' ~ ')})`;
}

const FILTER_METHODS: Record<string, string> = { lower: 'lower', upper: 'upper', strip: 'trim', title: 'title', capitalize: 'capitalize' };
const JS_METHODS: Record<string, string> = { startswith: 'startsWith', endswith: 'endsWith', find: 'indexOf', split: 'split', append: 'push', rstrip: 'trimEnd', lstrip: 'trimStart' };

function call(n: Extract<Node, { t: 'call' }>, env: ExprEnv): string {
  const args = n.args;
  const a = (i: number): string => {
    const x = args[i];
    if (x === undefined) throw new Unconvertible('missing argument');
    return emit(x, env);
  };
  if (n.fn.t === 'name') {
    const f = n.fn.v;
    if (f === 'getVar') {
      const name = args[0];
      if (name?.t !== 'str' || !/^\w+$/.test(name.v)) throw new Unconvertible('getVar with a computed name has no nunjucks equivalent');
      const v = emit({ t: 'name', v: name.v }, env);
      return args.length > 1 ? `(${v} if ${v} is defined else ${a(1)})` : v;
    }
    if (f === 'varExists' || f === 'hasVar') {
      const name = args[0];
      if (name?.t !== 'str' || !/^\w+$/.test(name.v)) throw new Unconvertible(`${f} with a computed name has no nunjucks equivalent`);
      return `(${name.v} is defined)`;
    }
    if (f === 'len') return `(${a(0)} | length)`;
    if (f === 'str') return `(${a(0)} | string)`;
    if (f === 'int') return `(${a(0)} | int)`;
    if (f === 'float') return `(${a(0)} | float)`;
    if (f === 'range') return args.length === 1 ? `range(0, ${a(0)})` : `range(${args.map((_, i) => a(i)).join(', ')})`;
    if (f === 'SNIPPET') throw new Unconvertible('$SNIPPET inside an expression (only as a placeholder of its own)');
    throw new Unconvertible(`function ${f}() has no nunjucks equivalent`);
  }
  if (n.fn.t === 'attr') {
    const obj = n.fn.obj;
    const m = n.fn.name;
    if (obj.t === 'name' && obj.v === 're' && (m === 'match' || m === 'search') && args.length === 2 && args[0]!.t === 'str') {
      env.note(`re.${m}() -> regex literal .test()`);
      return `${regexLiteral((args[0] as { v: string }).v, m === 'match')}.test(${a(1)})`;
    }
    if (obj.t === 'name' && obj.v === 're') {
      throw new Unconvertible(`re.${m}() outside "#set $p = $re.compile(...)" has no nunjucks equivalent`);
    }
    if (obj.t === 'name' && env.regexes.has(obj.v) && (m === 'match' || m === 'search')) {
      env.note(`${obj.v}.${m}() -> regex literal .test()`);
      return `${regexLiteral(env.regexes.get(obj.v)!, m === 'match')}.test(${a(0)})`;
    }
    if (obj.t === 'str' && m === 'join') return `(${a(0)} | join(${q(obj.v)}))`;
    const o = emit(obj, env);
    const filt = FILTER_METHODS[m];
    if (filt !== undefined && args.length === 0) return `(${o} | ${filt})`;
    if (m === 'replace' && args.length === 2) return `(${o} | replace(${a(0)}, ${a(1)}))`;
    if (m === 'keys' && args.length === 0) {
      env.note(`${o}.keys() -> ${o} | sortkeys (natural order: eth2 before eth10)`);
      return `(${o} | sortkeys)`;
    }
    if (m === 'get' && (args.length === 1 || args.length === 2)) return `(${o}[${a(0)}] | default(${args.length === 2 ? a(1) : 'none'}))`;
    if (m === 'has_key' && args.length === 1) return `(${a(0)} in ${o})`;
    const js = JS_METHODS[m];
    if (js !== undefined) return `${o}.${js}(${args.map((_, i) => a(i)).join(', ')})`;
    throw new Unconvertible(`method .${m}() has no nunjucks equivalent`);
  }
  throw new Unconvertible('a call of a computed function has no nunjucks equivalent');
}

/** Convert one whole expression. */
export function convertExpr(src: string, env: ExprEnv): string {
  const p = new Parser(tokenize(src));
  const n = p.tuple();
  if (!p.atEnd()) throw new Unconvertible(`unexpected ${p.peek().v} in ${src}`);
  return emit(n, env);
}

/**
 * Python truthiness, for conditions: an empty list or dict is false in
 * Python and true in JavaScript (so in nunjucks). Applied to the operands of
 * and/or/not in an #if, never to values (where `a and b` returns an operand).
 */
function truth(x: string): string {
  return `((${x} | length) > 0 if (not (${x} is none) and (${x} is iterable or ${x} is mapping)) else ${x})`;
}

function emitBool(n: Node, env: ExprEnv): string {
  if (n.t === 'bin' && (n.op === 'and' || n.op === 'or')) return `(${emitBool(n.a, env)} ${n.op} ${emitBool(n.b, env)})`;
  if (n.t === 'un' && n.op === 'not') return `(not ${emitBool(n.x, env)})`;
  if (n.t === 'name' || n.t === 'attr' || n.t === 'index' || n.t === 'call' || n.t === 'cond') return truth(emit(n, env));
  return emit(n, env);
}

/** Convert an #if / #elif / #unless condition, with Python's truthiness. */
export function convertCondition(src: string, env: ExprEnv): string {
  const p = new Parser(tokenize(src));
  const n = p.expr();
  if (!p.atEnd()) throw new Unconvertible(`unexpected ${p.peek().v} in ${src}`);
  return emitBool(n, env);
}

/** re.compile("P") as the whole right-hand side: the pattern, else undefined. */
export function compiledPattern(src: string): string | undefined {
  const m = /^\s*\$?re\.compile\(\s*(["'])((?:\\.|(?!\1).)*)\1\s*\)\s*$/.exec(src);
  if (m === null) return undefined;
  return m[2]!.replace(/\\\\/g, '\\');
}
