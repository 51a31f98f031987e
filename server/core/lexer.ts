/**
 * The scanner shape both small expression languages share (discovery rules,
 * server/rules/expr.ts; Cheetah expressions, server/cobbler/cheetah/expr.ts):
 * whitespace skipped, numbers, quoted strings with backslash escapes, names,
 * and operators matched longest first. Each language says what its names,
 * operators and escapes are and how an error reads. Pure.
 */

export interface Lexeme {
  k: 'num' | 'str' | 'name' | 'op';
  /** The text (a string's decoded value). */
  v: string;
  /** Offset of the lexeme's first character in the source. */
  at: number;
}

export interface LexSpec {
  /** Operators, longest first where one is a prefix of another (`<=` before `<`). */
  ops: readonly string[];
  /** A name at the start of the text (anchored: /^.../). */
  name: RegExp;
  /** Characters skipped like whitespace (Cheetah's `$` before a name). */
  ignore?: string;
  /** The value of a backslash escape: the character after the backslash, inside a string quoted with `quote`. */
  unescape(c: string, quote: string): string;
  error(what: 'unterminated string' | 'unexpected character', at: number, c: string): Error;
}

const NUMBER = /^[0-9]+(\.[0-9]+)?/;

export function lex(src: string, spec: LexSpec): Lexeme[] {
  const out: Lexeme[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c) || (spec.ignore?.includes(c) ?? false)) {
      i++;
      continue;
    }
    if (/[0-9]/.test(c)) {
      const m = NUMBER.exec(src.slice(i))!;
      out.push({ k: 'num', v: m[0], at: i });
      i += m[0].length;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let v = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) {
          v += spec.unescape(src[j + 1]!, c);
          j += 2;
        } else v += src[j++];
      }
      if (j >= src.length) throw spec.error('unterminated string', i, c);
      out.push({ k: 'str', v, at: i });
      i = j + 1;
      continue;
    }
    const name = spec.name.exec(src.slice(i));
    if (name !== null) {
      out.push({ k: 'name', v: name[0], at: i });
      i += name[0].length;
      continue;
    }
    const op = spec.ops.find((o) => src.startsWith(o, i));
    if (op === undefined) throw spec.error('unexpected character', i, c);
    out.push({ k: 'op', v: op, at: i });
    i += op.length;
  }
  return out;
}
