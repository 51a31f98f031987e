/**
 * A small XML reader for the structural checks of rendered files (AutoYaST
 * profiles): elements, attributes and text, with comments, CDATA, processing
 * instructions and a DOCTYPE skipped. It reports the first well-formedness
 * error it meets (unclosed or mismatched tags, bad attributes, text outside
 * the root); it does not expand entities beyond the five predefined ones
 * and numeric references. The tests also run xmllint on the same files.
 */
export interface XmlElement {
  /** Local name (prefix removed) and the namespace prefix ('' for none). */
  name: string;
  prefix: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** Concatenated text content directly inside this element. */
  text: string;
  line: number;
}

const ENT: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(Number(e.slice(1)));
    return ENT[e] ?? m;
  });
}

export class XmlError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export function parseXml(text: string): XmlElement {
  let i = 0;
  const lineAt = (pos: number): number => text.slice(0, pos).split('\n').length;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt === -1 ? text.slice(i) : text.slice(i, lt);
    if (chunk !== '') {
      const top = stack[stack.length - 1];
      if (top !== undefined) top.text += decode(chunk);
      else if (chunk.trim() !== '') throw new XmlError('text outside the root element', lineAt(i));
    }
    if (lt === -1) break;
    const skip = (open: string, close: string): boolean => {
      if (!text.startsWith(open, lt)) return false;
      const end = text.indexOf(close, lt + open.length);
      if (end === -1) throw new XmlError(`unterminated ${open}`, lineAt(lt));
      if (open === '<![CDATA[') {
        const top = stack[stack.length - 1];
        if (top === undefined) throw new XmlError('CDATA outside the root element', lineAt(lt));
        top.text += text.slice(lt + open.length, end);
      }
      i = end + close.length;
      return true;
    };
    if (skip('<!--', '-->') || skip('<![CDATA[', ']]>') || skip('<?', '?>') || skip('<!DOCTYPE', '>')) continue;
    const gt = text.indexOf('>', lt);
    if (gt === -1) throw new XmlError('unterminated tag', lineAt(lt));
    const tag = text.slice(lt + 1, gt);
    const line = lineAt(lt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const top = stack.pop();
      if (top === undefined) throw new XmlError(`closing </${name}> with nothing open`, line);
      const full = top.prefix === '' ? top.name : `${top.prefix}:${top.name}`;
      if (full !== name) throw new XmlError(`</${name}> closes <${full}> (line ${top.line})`, line);
      i = gt + 1;
      continue;
    }
    const selfClose = tag.endsWith('/');
    const body = selfClose ? tag.slice(0, -1) : tag;
    const m = /^([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)/.exec(body);
    if (m === null) throw new XmlError(`bad tag <${tag.slice(0, 30)}>`, line);
    const qname = m[1]!;
    const colon = qname.indexOf(':');
    const el: XmlElement = {
      name: colon === -1 ? qname : qname.slice(colon + 1),
      prefix: colon === -1 ? '' : qname.slice(0, colon),
      attrs: {},
      children: [],
      text: '',
      line,
    };
    let rest = body.slice(qname.length);
    const attrRe = /^\s+([A-Za-z_][\w.:-]*)\s*=\s*("([^"]*)"|'([^']*)')/;
    for (;;) {
      const a = attrRe.exec(rest);
      if (a === null) break;
      if (el.attrs[a[1]!] !== undefined) throw new XmlError(`attribute ${a[1]} twice on <${qname}>`, line);
      el.attrs[a[1]!] = decode(a[3] ?? a[4] ?? '');
      rest = rest.slice(a[0].length);
    }
    if (rest.trim() !== '') throw new XmlError(`bad attributes on <${qname}>: ${rest.trim().slice(0, 30)}`, line);
    const parent = stack[stack.length - 1];
    if (parent !== undefined) parent.children.push(el);
    else if (root !== undefined) throw new XmlError('a second root element', line);
    else root = el;
    if (!selfClose) stack.push(el);
    i = gt + 1;
  }
  const open = stack.pop();
  if (open !== undefined) throw new XmlError(`<${open.name}> is never closed`, open.line);
  if (root === undefined) throw new XmlError('no root element', 1);
  return root;
}

export const child = (el: XmlElement, name: string): XmlElement | undefined => el.children.find((c) => c.name === name);
export const childrenNamed = (el: XmlElement, name: string): XmlElement[] => el.children.filter((c) => c.name === name);
