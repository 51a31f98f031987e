/**
 * Live events: GET /api/v1/events/stream, server-sent events (see
 * protocol/sse/codec.ts). Every recorded event is published on the EventHub
 * after it is stored; a stream sends the ones its filter matches, each with
 * its store id as the SSE id, so a client that reconnects with Last-Event-ID
 * (or asks `?since_id=N`) gets every event after it from the store first and
 * then the live ones, none lost and none twice.
 *
 * Bounds (an open stream holds a socket and memory): at most
 * STREAM_LIMITS.anonymous streams without a token and STREAM_LIMITS.total in
 * all; a client that stops reading while events keep coming is cut off once
 * STREAM_LIMITS.bufferBytes are queued for it (it reconnects with its last id
 * and loses nothing); replay waits for the socket to drain.
 */
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { EVENT_TYPES } from '../core/model.js';
import type { ForgeEvent } from '../core/model.js';
import { ForgeError, invalid } from '../errors.js';
import { encodeSse, sseComment } from '../protocol/sse/codec.js';
import { globToRegExp } from '../store/common.js';
import type { Auth } from '../auth.js';

export const STREAM_LIMITS = {
  anonymous: 16,
  total: 64,
  bufferBytes: 1 << 20,
  heartbeatMs: 15_000,
  replayBatch: 500,
} as const;

/** In-process fan-out of stored events to open streams (and the metrics). */
export class EventHub {
  private readonly subs = new Set<(ev: ForgeEvent) => void>();
  private fed = false;
  /**
   * A store that delivers every committed event of every server in id order
   * (PostgreSQL's LISTEN/NOTIFY feed) becomes the hub's only source: local
   * publishes are then left to it, so a stream never sees one server's event
   * ahead of an older one from another.
   */
  feedFrom(subscribe: (fn: (ev: ForgeEvent) => void) => unknown): void {
    this.fed = true;
    subscribe((ev) => this.fanOut(ev));
  }
  publish(ev: ForgeEvent): void {
    if (!this.fed) this.fanOut(ev);
  }
  private fanOut(ev: ForgeEvent): void {
    for (const s of this.subs) s(ev);
  }
  subscribe(fn: (ev: ForgeEvent) => void): () => void {
    this.subs.add(fn);
    return () => void this.subs.delete(fn);
  }
}

export interface EventFilter {
  system?: RegExp;
  types?: RegExp[];
}

/** `?system=GLOB&type=a,b*` as a filter; names the bad field. Pure. */
export function parseEventFilter(query: Record<string, unknown>): EventFilter {
  const f: EventFilter = {};
  const sys = query['system'];
  if (sys !== undefined) {
    if (typeof sys !== 'string' || sys === '' || sys.length > 256) throw invalid('system', 'must be a system name or glob (at most 256 characters)');
    f.system = globToRegExp(sys);
  }
  const type = query['type'];
  if (type !== undefined) {
    if (typeof type !== 'string' || type === '' || type.length > 1024) throw invalid('type', 'must be a comma-separated list of event types or globs');
    f.types = type.split(',').map((t) => {
      const re = globToRegExp(t.trim());
      if (!EVENT_TYPES.some((e) => re.test(e))) throw invalid('type', `${t.trim()} matches no event type (${EVENT_TYPES.join(', ')})`);
      return re;
    });
  }
  return f;
}

export function eventMatches(f: EventFilter, ev: ForgeEvent): boolean {
  if (f.system !== undefined && !f.system.test(ev.system)) return false;
  if (f.types !== undefined && !f.types.some((re) => re.test(ev.type))) return false;
  return true;
}

function resumeId(req: Request): number | undefined {
  const raw = req.get('last-event-id') ?? (typeof req.query['since_id'] === 'string' ? req.query['since_id'] : undefined);
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw invalid(req.get('last-event-id') !== undefined ? 'last-event-id' : 'since_id', 'must be an event id (a whole number >= 0)');
  return n;
}


/** What the live stream uses. */
export interface StreamDeps {
  store: Store;
  events: EventHub;
  auth: Auth;
  log: Logger;
}

/** The GET /api/v1/events/stream handler (its row is in api/routes.ts). */
export function streamHandler(ctx: StreamDeps): RequestHandler {
  let anonymous = 0;
  let total = 0;
  const log = ctx.log.child('stream');

  return async (req: Request, res: Response) => {
    const filter = parseEventFilter(req.query as Record<string, unknown>);
    let after = resumeId(req);
    const anon = (await ctx.auth.identify(req, res)).kind === 'anonymous';
    if (total >= STREAM_LIMITS.total || (anon && anonymous >= STREAM_LIMITS.anonymous)) {
      res.setHeader('Retry-After', '10');
      throw new ForgeError(
        'TOO_MANY_STREAMS',
        anon
          ? `${STREAM_LIMITS.anonymous} anonymous event streams are open already (send the token for more)`
          : `${STREAM_LIMITS.total} event streams are open already`,
      );
    }
    total++;
    if (anon) anonymous++;

    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache, no-transform');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    res.write(encodeSse({ event: 'hello', data: JSON.stringify({ after: after ?? null }), retry: 2000 }));

    let closed = false;
    let replaying = after !== undefined;
    const pending: ForgeEvent[] = [];
    const send = (ev: ForgeEvent): void => {
      if (closed) return;
      if (after !== undefined && ev.id <= after) return;
      after = ev.id;
      if (!eventMatches(filter, ev)) return;
      if (res.writableLength > STREAM_LIMITS.bufferBytes) {
        log.warn('event stream client is not reading; closing it (it resumes with Last-Event-ID)', { client: req.socket.remoteAddress });
        cleanup();
        res.destroy();
        return;
      }
      res.write(encodeSse({ id: String(ev.id), event: ev.type, data: JSON.stringify(ev) }));
    };
    // Subscribe before reading the store: an event stored meanwhile is
    // either in the replay or in `pending` (or both: ids drop duplicates).
    const unsubscribe = ctx.events.subscribe((ev) => (replaying ? pending.push(ev) : send(ev)));
    const heartbeat = setInterval(() => res.write(sseComment('keep-alive')), STREAM_LIMITS.heartbeatMs);
    heartbeat.unref();
    function cleanup(): void {
      if (closed) return;
      closed = true;
      unsubscribe();
      clearInterval(heartbeat);
      total--;
      if (anon) anonymous--;
    }
    req.on('close', cleanup);
    res.on('close', cleanup);

    try {
      while (replaying && !closed) {
        const batch = await ctx.store.eventsAfter(after ?? 0, STREAM_LIMITS.replayBatch);
        for (const ev of batch) send(ev);
        if (res.writableNeedDrain) await new Promise<void>((resolve) => {
          res.once('drain', resolve);
          res.once('close', resolve);
        });
        if (batch.length < STREAM_LIMITS.replayBatch) replaying = false;
      }
      for (const ev of pending.splice(0)) send(ev);
    } catch (e) {
      log.warn('event stream replay failed', { err: e });
      cleanup();
      res.end();
    }
  };
}
