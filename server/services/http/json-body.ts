/**
 * The JSON request body reader of the API (what every POST/PUT/PATCH pays).
 *
 * express.json (body-parser 2) costs about 7 % of an API add's CPU (issue 19 profile): type-is
 * and content-type parse the header, raw-body decodes each chunk through iconv-lite, on-finished
 * and http-errors run per request. Almost every request forge gets is the plain case: a
 * Content-Length body, no Content-Encoding, `Content-Type: application/json` (charset utf-8 or
 * none). That case is read here with a handful of listeners, decoded once and parsed with the same
 * rules body-parser applies (strict: the first non-blank character is `{` or `[`; an empty body is
 * `{}`; a UTF-8 byte order mark is dropped, as iconv-lite's decoder does), and its failures carry
 * the same `status`, `type` and `message` as body-parser's, so services/http/app.ts answers them
 * byte for byte as before (test/unit/http-json-body.test.ts runs both readers over the same
 * requests). Everything else (chunked or compressed bodies, other charsets or media types, a
 * declared length over the limit, a stream already read) goes to express.json itself.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';

/** An error shaped like body-parser's (http-errors): what app.ts's error handler reads. */
export class BodyError extends Error {
  readonly status: number;
  readonly statusCode: number;
  readonly expose = true;
  readonly type: string;
  /** The byte limit a 413 was against (app.ts names it in the answer). */
  readonly limit?: number;
  constructor(status: number, type: string, message: string, limit?: number) {
    super(message);
    this.status = status;
    this.statusCode = status;
    this.type = type;
    if (limit !== undefined) this.limit = limit;
  }
}

/** The media types read here (lowercased, exactly as sent); any other spelling goes to express.json. */
const PLAIN_TYPES = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

/** A declared length forge reads itself: digits only, within the limit (over it: express.json's 413, after it drains the body). */
function plainLength(req: IncomingMessage, limit: number): number | undefined {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined || h['content-encoding'] !== undefined) return undefined;
  const type = h['content-type'];
  if (type === undefined || !PLAIN_TYPES.has(type.toLowerCase())) return undefined;
  const cl = h['content-length'];
  if (cl === undefined || !/^[0-9]{1,15}$/.test(cl)) return undefined;
  const n = Number(cl);
  return n <= limit ? n : undefined;
}

/** body-parser's first non-whitespace character (RFC 8259 section 2: ws is space, tab, LF, CR). */
const FIRST_NON_WS = /^[\x20\x09\x0a\x0d]*([^\x20\x09\x0a\x0d]|$)/;

/**
 * Parse a decoded body as body-parser's strict JSON parser does, with its error messages: a
 * top-level value that is not an object or array fails with the message JSON.parse gives for
 * that character at that place (the rest of the body masked, then put back).
 */
export function parseJsonBody(body: string): unknown {
  if (body.length === 0) return {};
  const c0 = body[0];
  if (c0 !== '{' && c0 !== '[') {
    const first = FIRST_NON_WS.exec(body)?.[1] || undefined;
    if (first !== '{' && first !== '[') throw strictError(body, first);
  }
  try {
    return JSON.parse(body) as unknown;
  } catch (e) {
    throw new BodyError(400, 'entity.parse.failed', (e as Error).message);
  }
}

function strictError(body: string, first: string | undefined): BodyError {
  const index = first === undefined ? -1 : body.indexOf(first);
  const partial = index === -1 ? '' : body.substring(0, index) + '#'.repeat(body.length - index);
  let message = 'strict violation';
  try {
    JSON.parse(partial);
  } catch (e) {
    message = (e as Error).message.replace(/#+/g, (p) => body.substring(index, index + p.length));
  }
  return new BodyError(400, 'entity.parse.failed', message);
}

/** The bytes as text: UTF-8 (invalid sequences become U+FFFD), a leading byte order mark dropped. */
function decode(buf: Buffer): string {
  const s = buf.toString('utf8');
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

/**
 * A JSON body parser with `limit`: the plain case read here, everything else by `fallback`
 * (express.json with the same limit and types). Sets req.body as body-parser does (undefined
 * when there is no body to parse).
 */
export function fastJsonBody(limit: number, fallback: RequestHandler): RequestHandler {
  return (req, res, next) => {
    const length = plainLength(req, limit);
    // A stream someone already read, or one that ended: body-parser's own checks (on-finished).
    if (length === undefined || !req.readable || req.readableDidRead || req.socket === null || !req.socket.readable) {
      fallback(req, res, next);
      return;
    }
    if (!Reflect.has(req, 'body')) req.body = undefined;
    const chunks: Buffer[] = [];
    let received = 0;
    let done = false;
    const finish = (err: BodyError | undefined): void => {
      if (done) return;
      done = true;
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onAbort);
      req.removeListener('aborted', onAbort);
      if (err !== undefined) {
        req.resume();
        next(err);
        return;
      }
      try {
        req.body = parseJsonBody(decode(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received)));
      } catch (e) {
        next(e);
        return;
      }
      next();
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      // Node's parser delivers at most Content-Length bytes; a bound anyway.
      if (received > limit) finish(new BodyError(413, 'entity.too.large', 'request entity too large', limit));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(received === length ? undefined : new BodyError(400, 'request.size.invalid', 'request size did not match content length'));
    const onAbort = (): void => finish(new BodyError(400, 'request.aborted', 'request aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('aborted', onAbort);
  };
}
