/**
 * XML-RPC codec (http://xmlrpc.com/spec.md): methodCall in, methodResponse
 * or fault out. Pure: no I/O, no policy.
 *
 * Written here rather than taken from npm: the `xmlrpc` package has had no
 * release since 2016 and brings its own HTTP server and a streaming SAX
 * parser; forge needs only the decoding of one bounded request body and the
 * encoding of plain values. The parser accepts the XML that XML-RPC clients
 * send (Python's xmlrpc.client, Ruby, Go, Java): elements, character data,
 * the five predefined entities and numeric character references, comments,
 * CDATA and the XML declaration. It refuses DOCTYPE (so no entity expansion,
 * no external entities), and bounds nesting depth and element count, because
 * the endpoint is anonymous.
 *
 * Values: <int>/<i4>/<i8> -> number, <boolean> -> boolean, <double> ->
 * number, <string> or bare text -> string, <dateTime.iso8601> -> XmlRpcDate,
 * <base64> -> Buffer, <array> -> array, <struct> -> object, <nil/> -> null
 * (the common extension; Python sends it with allow_none=True).
 */

export type XmlRpcValue =
  | string
  | number
  | boolean
  | null
  | Buffer
  | XmlRpcDate
  | XmlRpcValue[]
  | { [k: string]: XmlRpcValue };

export class XmlRpcDate {
  constructor(readonly iso: string) {}
}

/** A request the codec cannot decode: answered as a fault, never a crash. */
export class XmlRpcDecodeError extends Error {}

export interface MethodCall {
  method: string;
  params: XmlRpcValue[];
}

export const LIMITS = { depth: 64, elements: 200_000 };

interface Node {
  name: string;
  children: Node[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    const v = ENTITIES[e];
    if (v === undefined) throw new XmlRpcDecodeError(`unknown entity ${m}`);
    return v;
  });
}

/** A small non-validating XML parser for XML-RPC bodies. */
export function parseXml(xml: string): Node {
  let i = 0;
  const root: Node = { name: '#root', children: [], text: '' };
  const stack: Node[] = [root];
  let count = 0;
  const n = xml.length;
  while (i < n) {
    const lt = xml.indexOf('<', i);
    const top = stack[stack.length - 1]!;
    if (lt < 0) {
      if (xml.slice(i).trim() !== '' && stack.length > 1) throw new XmlRpcDecodeError('unexpected end of document');
      top.text += decodeEntities(xml.slice(i));
      break;
    }
    if (lt > i) top.text += decodeEntities(xml.slice(i, lt));
    if (xml.startsWith('<?', lt)) {
      const e = xml.indexOf('?>', lt);
      if (e < 0) throw new XmlRpcDecodeError('unterminated processing instruction');
      i = e + 2;
    } else if (xml.startsWith('<!--', lt)) {
      const e = xml.indexOf('-->', lt);
      if (e < 0) throw new XmlRpcDecodeError('unterminated comment');
      i = e + 3;
    } else if (xml.startsWith('<![CDATA[', lt)) {
      const e = xml.indexOf(']]>', lt);
      if (e < 0) throw new XmlRpcDecodeError('unterminated CDATA');
      top.text += xml.slice(lt + 9, e);
      i = e + 3;
    } else if (xml.startsWith('<!', lt)) {
      throw new XmlRpcDecodeError('DOCTYPE and entity declarations are not accepted');
    } else if (xml.startsWith('</', lt)) {
      const e = xml.indexOf('>', lt);
      if (e < 0) throw new XmlRpcDecodeError('unterminated end tag');
      const name = xml.slice(lt + 2, e).trim();
      if (stack.length < 2 || top.name !== name) throw new XmlRpcDecodeError(`end tag </${name}> does not match <${top.name}>`);
      stack.pop();
      i = e + 1;
    } else {
      const e = xml.indexOf('>', lt);
      if (e < 0) throw new XmlRpcDecodeError('unterminated start tag');
      let body = xml.slice(lt + 1, e);
      const selfClose = body.endsWith('/');
      if (selfClose) body = body.slice(0, -1);
      const m = /^([A-Za-z_][\w.:-]*)(\s[^]*)?$/.exec(body.trim());
      if (m === null) throw new XmlRpcDecodeError(`bad start tag <${body.slice(0, 40)}>`);
      if (++count > LIMITS.elements) throw new XmlRpcDecodeError(`more than ${LIMITS.elements} elements`);
      const node: Node = { name: m[1]!, children: [], text: '' };
      top.children.push(node);
      if (!selfClose) {
        stack.push(node);
        if (stack.length > LIMITS.depth) throw new XmlRpcDecodeError(`nesting deeper than ${LIMITS.depth} elements`);
      }
      i = e + 1;
    }
  }
  if (stack.length > 1) throw new XmlRpcDecodeError(`element <${stack[stack.length - 1]!.name}> is not closed`);
  if (root.children.length !== 1) throw new XmlRpcDecodeError('the document must have exactly one root element');
  return root.children[0]!;
}

function only(node: Node, name: string): Node {
  const c = node.children.filter((x) => x.name === name);
  if (c.length !== 1) throw new XmlRpcDecodeError(`<${node.name}> needs exactly one <${name}>`);
  return c[0]!;
}

const INT_RE = /^[-+]?\d+$/;

function decodeValue(v: Node): XmlRpcValue {
  if (v.children.length === 0) return v.text; // bare text is a string
  if (v.children.length !== 1) throw new XmlRpcDecodeError('<value> holds more than one type');
  const t = v.children[0]!;
  const text = t.text;
  switch (t.name) {
    case 'string':
      return text;
    case 'int':
    case 'i4':
    case 'i8': {
      const s = text.trim();
      if (!INT_RE.test(s)) throw new XmlRpcDecodeError(`<${t.name}> ${s.slice(0, 40)} is not an integer`);
      const x = Number(s);
      if (!Number.isSafeInteger(x)) throw new XmlRpcDecodeError(`<${t.name}> ${s} is out of range`);
      return x;
    }
    case 'boolean': {
      const s = text.trim();
      if (s !== '0' && s !== '1') throw new XmlRpcDecodeError(`<boolean> must be 0 or 1, not ${s.slice(0, 20)}`);
      return s === '1';
    }
    case 'double': {
      const x = Number(text.trim());
      if (text.trim() === '' || Number.isNaN(x)) throw new XmlRpcDecodeError(`<double> ${text.slice(0, 40)} is not a number`);
      return x;
    }
    case 'dateTime.iso8601':
      return new XmlRpcDate(text.trim());
    case 'base64':
      return Buffer.from(text.replace(/\s+/g, ''), 'base64');
    case 'nil':
      return null;
    case 'array': {
      const data = only(t, 'data');
      return data.children.map((c) => {
        if (c.name !== 'value') throw new XmlRpcDecodeError(`<data> holds <${c.name}>`);
        return decodeValue(c);
      });
    }
    case 'struct': {
      const out: Record<string, XmlRpcValue> = {};
      for (const m of t.children) {
        if (m.name !== 'member') throw new XmlRpcDecodeError(`<struct> holds <${m.name}>`);
        const key = only(m, 'name').text;
        if (key === '__proto__') throw new XmlRpcDecodeError('member name __proto__ is not accepted');
        out[key] = decodeValue(only(m, 'value'));
      }
      return out;
    }
    default:
      throw new XmlRpcDecodeError(`unknown value type <${t.name}>`);
  }
}

export function decodeCall(xml: string): MethodCall {
  const root = parseXml(xml);
  if (root.name !== 'methodCall') throw new XmlRpcDecodeError(`root element is <${root.name}>, not <methodCall>`);
  const method = only(root, 'methodName').text.trim();
  if (!/^[A-Za-z0-9_.:/]+$/.test(method)) throw new XmlRpcDecodeError('methodName is empty or has characters outside A-Za-z0-9_.:/');
  const ps = root.children.filter((c) => c.name === 'params');
  if (ps.length > 1) throw new XmlRpcDecodeError('more than one <params>');
  const params = ps.length === 0 ? [] : ps[0]!.children.map((p) => {
    if (p.name !== 'param') throw new XmlRpcDecodeError(`<params> holds <${p.name}>`);
    return decodeValue(only(p, 'value'));
  });
  return { method, params };
}

// ------------------------------------------------------------------ encoding

function esc(s: string): string {
  return s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

/** XML 1.0 cannot carry most C0 controls even as references: refuse rather than send a document clients reject. */
const BAD_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

function encodeValue(v: XmlRpcValue, out: string[], depth: number): void {
  if (depth > LIMITS.depth) throw new RangeError('value nests too deeply to encode');
  if (v === null) out.push('<value><nil/></value>');
  else if (typeof v === 'string') {
    if (BAD_XML_CHAR.test(v)) throw new RangeError('a string holds a control character XML cannot carry');
    out.push(`<value><string>${esc(v)}</string></value>`);
  } else if (typeof v === 'boolean') out.push(`<value><boolean>${v ? 1 : 0}</boolean></value>`);
  else if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= -2147483648 && v <= 2147483647) out.push(`<value><int>${v}</int></value>`);
    else if (Number.isFinite(v)) out.push(`<value><double>${String(v)}</double></value>`);
    else throw new RangeError('XML-RPC has no NaN or infinity');
  } else if (Buffer.isBuffer(v)) out.push(`<value><base64>${v.toString('base64')}</base64></value>`);
  else if (v instanceof XmlRpcDate) out.push(`<value><dateTime.iso8601>${esc(v.iso)}</dateTime.iso8601></value>`);
  else if (Array.isArray(v)) {
    out.push('<value><array><data>');
    for (const x of v) encodeValue(x, out, depth + 1);
    out.push('</data></array></value>');
  } else {
    out.push('<value><struct>');
    for (const [k, x] of Object.entries(v)) {
      if (BAD_XML_CHAR.test(k)) throw new RangeError('a member name holds a control character XML cannot carry');
      out.push(`<member><name>${esc(k)}</name>`);
      encodeValue(x, out, depth + 1);
      out.push('</member>');
    }
    out.push('</struct></value>');
  }
}

export function encodeResponse(v: XmlRpcValue): string {
  const out: string[] = ["<?xml version='1.0'?>\n<methodResponse><params><param>"];
  encodeValue(v, out, 0);
  out.push('</param></params></methodResponse>\n');
  return out.join('');
}

export function encodeFault(code: number, message: string): string {
  const out: string[] = ["<?xml version='1.0'?>\n<methodResponse><fault>"];
  encodeValue({ faultCode: code, faultString: message.replace(BAD_XML_CHAR, '?') }, out, 0);
  out.push('</fault></methodResponse>\n');
  return out.join('');
}
