/**
 * Bounded resources on the HTTP side: which routes take a body and how big,
 * how deep a JSON document may nest, and the socket timeouts. Policy as
 * values (one table), applied by `jsonBody` after authentication, so an
 * anonymous client never gets a byte of its body buffered or parsed.
 */
import express from 'express';
import type { Request, RequestHandler, Response } from 'express';
import type { Server } from 'node:http';
import { ForgeError, LONG_ANSWER_HEADER } from '../../errors.js';
import { fastJsonBody } from './json-body.js';
import { keepAliveUntilReceived, type KeepAliveStats } from './keepalive.js';
import type { Logger } from '../../log.js';

/** Default limit for an authenticated write (one object, an event, a rename). */
export const BODY_LIMIT_DEFAULT = 1024 * 1024;
/** Bulk create and import-data of a whole site (100k systems fit). */
export const BODY_LIMIT_BULK = 256 * 1024 * 1024;

/** Routes (under /api/v1) whose bodies may be large: bulk create and import. */
const BULK_ROUTES: readonly RegExp[] = [/^\/(distros|profiles|systems)\/bulk$/, /^\/import$/];

export function bodyLimitFor(path: string): number {
  return BULK_ROUTES.some((re) => re.test(path)) ? BODY_LIMIT_BULK : BODY_LIMIT_DEFAULT;
}

/**
 * Deepest nesting accepted in a JSON body. forge objects nest three levels
 * (system -> interfaces -> eth0 -> field); events' `detail` a few more. The
 * store serialises with JSON.stringify, which is recursive: 20,000 levels
 * overflow the stack, so depth is refused here with a 400.
 */
export const JSON_MAX_DEPTH = 32;

/** Depth of a parsed JSON value, iteratively (no recursion to overflow); stops past `max`. */
export function jsonDepth(value: unknown, max = JSON_MAX_DEPTH): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    const depth = d + 1;
    if (depth > deepest) deepest = depth;
    if (deepest > max) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth]);
  }
  return deepest;
}

const parsers = new Map<number, RequestHandler>();
function parserFor(limit: number): RequestHandler {
  let p = parsers.get(limit);
  if (p === undefined) {
    // The plain case (a Content-Length JSON body) is read by json-body.ts, the rest by express.json.
    p = fastJsonBody(limit, express.json({ limit, type: ['application/json', 'application/*+json'] }));
    parsers.set(limit, p);
  }
  return p;
}

/**
 * The JSON body parser for authenticated routes, with the route's limit
 * (decided from the path below /api/v1) and the depth bound.
 */
export function jsonBody(): RequestHandler {
  return boundedJsonBody((req) => bodyLimitFor(req.path));
}

/** The JSON body parser with a fixed or per-request limit and the depth bound (public routes: after their rate limit). */
export function boundedJsonBody(limit: number | ((req: Request) => number)): RequestHandler {
  return (req: Request, res, next): void => {
    parserFor(typeof limit === 'number' ? limit : limit(req))(req, res, (err?: unknown) => {
      if (err !== undefined) {
        next(err);
        return;
      }
      if (req.body !== undefined && jsonDepth(req.body) > JSON_MAX_DEPTH) {
        next(new ForgeError('BAD_JSON', `request body nests deeper than ${JSON_MAX_DEPTH} levels`, { field: 'body' }));
        return;
      }
      next();
    });
  };
}

/**
 * Socket timeouts (seconds in the README): headers must arrive within 20 s
 * (slowloris), a whole request within 10 minutes (a 256 MB import on a slow
 * link), and an idle keep-alive socket closes after 65 s; a socket with no
 * traffic at all for 2 minutes is closed even mid-response (a stalled
 * firmware download keeps no descriptor forever). The keep-alive countdown
 * starts when the client has acknowledged the response, not when forge
 * handed it to the kernel (keepalive.ts).
 */
export const HTTP_TIMEOUTS = {
  headersMs: 20_000,
  requestMs: 600_000,
  keepAliveMs: 65_000,
  idleSocketMs: 120_000,
} as const;

/**
 * Long work before the first byte (validate or check of 100,000 systems takes minutes on a busy
 * host): the 2-minute idle-socket bound is for stalled transfers, not for an answer forge is still
 * computing, so it is off for the socket while `work` runs and back before the answer is sent.
 */
export async function computing<T>(req: Request, work: () => Promise<T>): Promise<T> {
  req.socket.setTimeout(0);
  try {
    return await work();
  } finally {
    req.socket.setTimeout(HTTP_TIMEOUTS.idleSocketMs);
  }
}

/** Milliseconds between the whitespace bytes of a long answer (longJson). */
export const LONG_ANSWER_HEARTBEAT_MS = 10_000;

/**
 * A JSON answer that takes minutes (validate or check of 100,000 systems on a busy host). The
 * status and headers go out at once and one space every `heartbeatMs` until the JSON, which may
 * follow leading whitespace (RFC 8259 s2: ws before a value). So no client waits for headers or
 * between body bytes: Node's fetch (undici, the CLI's) fails a request after 300 s without headers
 * (headersTimeout) or 300 s between body chunks (bodyTimeout), and before this a 100,000-system
 * validate on a loaded host failed in the CLI with the server still rendering.
 * The status is committed (200) before the work ends, so a failure after it is the body
 * `{"streamed_error": ERROR_BODY}` under `Forge-Streamed: json`; ApiClient turns it back into the
 * ForgeError (any other client sees the code and message in the body). The idle-socket bound is
 * off while the work runs, as in computing().
 */
export async function longJson(req: Request, res: Response, work: () => Promise<unknown>, log: Logger, heartbeatMs = LONG_ANSWER_HEARTBEAT_MS): Promise<void> {
  res.status(200);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader(LONG_ANSWER_HEADER, 'json');
  res.flushHeaders();
  const beat = setInterval(() => res.write(' '), heartbeatMs);
  let body: string;
  try {
    body = JSON.stringify(await computing(req, work));
  } catch (e) {
    body = JSON.stringify({ streamed_error: streamedError(req, e, log) });
  } finally {
    clearInterval(beat);
  }
  res.end(body);
}

/** Bounds of `?progress=MS` on a long answer that can report progress (longProgress). */
export const PROGRESS_MS = { min: 100, max: 60_000 } as const;

/** `?progress=MS` of a request, undefined when absent; a USAGE error naming the field when out of bounds. */
export function progressInterval(q: unknown): number | undefined {
  if (q === undefined) return undefined;
  const v = typeof q === 'string' && /^\d+$/.test(q) ? Number(q) : NaN;
  if (!(v >= PROGRESS_MS.min && v <= PROGRESS_MS.max)) {
    throw new ForgeError('INVALID_FIELD', `progress: must be milliseconds between progress lines, ${PROGRESS_MS.min}..${PROGRESS_MS.max} (got ${JSON.stringify(q)})`, { field: 'progress' });
  }
  return v;
}

/**
 * longJson with progress, asked with `?progress=MS`: newline-delimited JSON under
 * `Forge-Streamed: ndjson` (Content-Type application/x-ndjson), one object per line:
 * `{"progress":{"done":N,"total":M}}` every `everyMs` while the work runs (total 0: not
 * known; an empty line before the work's first count), then `{"result": ANSWER}` or `{"streamed_error": ERROR_BODY}`. A progress line is
 * also the heartbeat that keeps clients' body timeouts away. Without `?progress` the answer
 * stays longJson's (one JSON value after whitespace) for every client that reads it so.
 */
export async function longProgress(
  req: Request,
  res: Response,
  work: (progress: (done: number, total: number) => void) => Promise<unknown>,
  log: Logger,
  everyMs: number,
): Promise<void> {
  res.status(200);
  res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader(LONG_ANSWER_HEADER, 'ndjson');
  res.flushHeaders();
  let now: { done: number; total: number } | undefined;
  // Before the work's first count, an empty line: still the heartbeat, no figure to show.
  const beat = setInterval(() => res.write(now === undefined ? '\n' : `${JSON.stringify({ progress: now })}\n`), everyMs);
  let last: string;
  try {
    last = JSON.stringify({ result: await computing(req, () => work((done, total) => (now = { done, total }))) });
  } catch (e) {
    last = JSON.stringify({ streamed_error: streamedError(req, e, log) });
  } finally {
    clearInterval(beat);
  }
  res.end(`${last}\n`);
}

/** A failure after the status went out, as the body of a streamed answer; logged like the error handler does. */
function streamedError(req: Request, e: unknown, log: Logger): ReturnType<ForgeError['toBody']> {
  const fe = e instanceof ForgeError ? e : new ForgeError('INTERNAL', 'internal error (see the server log)');
  if (!(e instanceof ForgeError)) log.error('internal error', { method: req.method, path: req.path, err: e instanceof Error ? e.stack ?? e.message : String(e) });
  else if (fe.status >= 500) log.warn('request failed', { method: req.method, path: req.path, code: fe.code, msg: fe.message });
  return fe.toBody();
}

/**
 * The HTTP socket's listen backlog: connections whose handshake the kernel has completed, held
 * until forge accepts them. A boot storm connects hundreds of clients in the same instant, and
 * forge accepts them on one thread between other work: in the 1,000-PXE-client bench (issue 21)
 * Node's default of 511 filled (512 queued) and the kernel dropped 5 handshakes
 * (ListenOverflows), whose clients sent their SYN again a second later (RFC 6298 section 2: the
 * 1 s initial RTO). Linux caps the value at net.core.somaxconn (4096 by default since 5.4).
 * The queue holds completed handshakes only: a SYN flood fills the SYN queue, which SYN cookies
 * answer, not this one.
 */
export const HTTP_LISTEN_BACKLOG = 4096;

export function applyTimeouts(http: Server, log?: Logger, t: { readonly [K in keyof typeof HTTP_TIMEOUTS]: number } = HTTP_TIMEOUTS): KeepAliveStats {
  http.headersTimeout = t.headersMs;
  http.requestTimeout = t.requestMs;
  http.keepAliveTimeout = t.keepAliveMs;
  // Node emits the server's 'timeout' for both the idle and the keep-alive timer; keepalive.ts decides.
  http.timeout = t.idleSocketMs;
  return keepAliveUntilReceived(http, t, log);
}
