/**
 * A reader for the YAML subset Cobbler's settings files are written in
 * (settings.yaml and settings.d/*.settings, as Cobbler ships and rewrites
 * them): block mappings and block sequences by indentation, flow sequences
 * and mappings of scalars (`[ 'root@localhost' ]`, `{}`), plain, single- and
 * double-quoted scalars, `#` comments. YAML 1.2 core-schema scalars:
 * true/false, null/~, integers, floats.
 *
 * Not a general YAML parser (no anchors, tags, multi-line scalars, multiple
 * documents): a construct outside the subset is a YamlError naming the line,
 * so the importer can say which setting it could not read instead of
 * guessing. forge needs only a handful of Cobbler's settings; a full YAML
 * dependency for them was not worth adding.
 */

export type YamlValue = string | number | boolean | null | YamlValue[] | { [k: string]: YamlValue };

export class YamlError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

interface Line {
  no: number;
  indent: number;
  text: string;
}

/** A quote opens a quoted scalar only at the start of one (`it's` is plain). */
function quoteStarts(s: string, i: number): boolean {
  return i === 0 || /[\s[{,:-]/.test(s[i - 1] ?? '');
}

/** Strip a trailing comment that is outside quotes. */
function stripComment(s: string): string {
  let q: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q !== undefined) {
      if (c === q) q = undefined;
      else if (c === '\\' && q === '"') i++;
    } else if ((c === '"' || c === "'") && quoteStarts(s, i)) q = c;
    else if (c === '#' && (i === 0 || /\s/.test(s[i - 1] ?? ''))) return s.slice(0, i);
  }
  return s;
}

function scalar(raw: string, no: number): YamlValue {
  const s = raw.trim();
  if (s === '' || s === '~' || s === 'null' || s === 'Null' || s === 'NULL') return null;
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) throw new YamlError(no, `unterminated double-quoted scalar ${s}`);
    try {
      return JSON.parse(s) as string;
    } catch {
      throw new YamlError(no, `double-quoted scalar outside the supported escapes: ${s}`);
    }
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new YamlError(no, `unterminated single-quoted scalar ${s}`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[&*!|>]/.test(s)) throw new YamlError(no, `anchors, aliases, tags and block scalars are not supported: ${s}`);
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^[-+]?\d+$/.test(s)) return Number(s);
  if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(s)) return Number(s);
  return s;
}

/** Split a flow collection body on top-level commas. */
function splitFlow(body: string, no: number): string[] {
  const out: string[] = [];
  let cur = '';
  let q: string | undefined;
  for (const c of body) {
    if (q !== undefined) {
      cur += c;
      if (c === q) q = undefined;
    } else if (c === '"' || c === "'") {
      q = c;
      cur += c;
    } else if (c === '[' || c === '{') throw new YamlError(no, 'nested flow collections are not supported');
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (q !== undefined) throw new YamlError(no, 'unterminated quote in a flow collection');
  if (cur.trim() !== '' || out.length > 0) out.push(cur);
  return out.filter((x, i, a) => !(i === a.length - 1 && x.trim() === ''));
}

function inlineValue(raw: string, no: number): YamlValue {
  const s = raw.trim();
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) throw new YamlError(no, `unterminated flow sequence ${s}`);
    return splitFlow(s.slice(1, -1), no).map((x) => scalar(x, no));
  }
  if (s.startsWith('{')) {
    if (!s.endsWith('}')) throw new YamlError(no, `unterminated flow mapping ${s}`);
    const m: Record<string, YamlValue> = {};
    for (const pair of splitFlow(s.slice(1, -1), no)) {
      const i = pair.indexOf(':');
      if (i < 0) throw new YamlError(no, `flow mapping entry without ":": ${pair.trim()}`);
      m[String(scalar(pair.slice(0, i), no))] = scalar(pair.slice(i + 1), no);
    }
    return m;
  }
  return scalar(s, no);
}

/** Position of the `key:` separator (a colon followed by space or end), outside quotes. */
function keySep(s: string): number {
  let q: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q !== undefined) {
      if (c === q) q = undefined;
    } else if ((c === '"' || c === "'") && quoteStarts(s, i)) q = c;
    else if (c === ':' && (i + 1 === s.length || s[i + 1] === ' ' || s[i + 1] === '\t')) return i;
  }
  return -1;
}

export function parseYaml(text: string): YamlValue {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const no = i + 1;
    if (raw.includes('\t') && /^\s*\t/.test(raw)) throw new YamlError(no, 'tabs are not allowed for indentation');
    const s = stripComment(raw);
    if (s.trim() === '') return;
    if (s.trim() === '---' && lines.length === 0) return;
    if (s.trim() === '---' || s.trim() === '...') throw new YamlError(no, 'several documents are not supported');
    lines.push({ no, indent: s.length - s.trimStart().length, text: s.trim() });
  });
  let pos = 0;

  function block(indent: number): YamlValue {
    const first = lines[pos];
    if (first === undefined) return null;
    if (first.text === '-' || first.text.startsWith('- ')) {
      const seq: YamlValue[] = [];
      while (pos < lines.length && lines[pos]!.indent === indent && (lines[pos]!.text === '-' || lines[pos]!.text.startsWith('- '))) {
        const l = lines[pos]!;
        const rest = l.text.slice(1).trim();
        pos++;
        if (rest === '') seq.push(pos < lines.length && lines[pos]!.indent > indent ? block(lines[pos]!.indent) : null);
        else if (keySep(rest) >= 0 && !/^["'[{]/.test(rest)) {
          // "- key: value" starts a mapping inside the sequence item
          lines.splice(pos, 0, { no: l.no, indent: indent + 2, text: rest });
          seq.push(block(indent + 2));
        } else seq.push(inlineValue(rest, l.no));
      }
      return seq;
    }
    const map: Record<string, YamlValue> = {};
    while (pos < lines.length && lines[pos]!.indent === indent) {
      const l = lines[pos]!;
      if (l.text.startsWith('- ')) throw new YamlError(l.no, 'a sequence item where a mapping key was expected');
      const i = keySep(l.text);
      if (i < 0) throw new YamlError(l.no, `expected "key: value", got ${l.text}`);
      const key = String(scalar(l.text.slice(0, i), l.no));
      const rest = l.text.slice(i + 1).trim();
      pos++;
      if (rest !== '') map[key] = inlineValue(rest, l.no);
      else if (pos < lines.length && lines[pos]!.indent > indent) map[key] = block(lines[pos]!.indent);
      else if (pos < lines.length && lines[pos]!.indent === indent && lines[pos]!.text.startsWith('- ')) map[key] = block(indent);
      else map[key] = null;
    }
    if (pos < lines.length && lines[pos]!.indent > indent) throw new YamlError(lines[pos]!.no, 'unexpected indentation');
    return map;
  }

  if (lines.length === 0) return {};
  const v = block(lines[0]!.indent);
  if (pos < lines.length) throw new YamlError(lines[pos]!.no, 'unexpected dedent below the top level');
  return v;
}
