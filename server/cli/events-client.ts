/**
 * Client of GET /api/v1/events/stream for the CLI (`--follow`, `--watch`)
 * and forge-agent: reads the server-sent events with fetch, hands each
 * stored event to the caller, and when the connection drops reconnects with
 * Last-Event-ID so nothing is missed (the server replays from its store).
 */
import type { ForgeEvent } from '../core/model.js';
import { ForgeError, fromBody } from '../errors.js';
import { SseParser } from '../protocol/sse/codec.js';

export interface FollowOptions {
  server: string;
  token?: string | undefined;
  /** Filter: system glob, comma-separated types. */
  system?: string;
  type?: string;
  /** Resume after this event id (the newest one the caller already has). */
  after?: number;
  onEvent(ev: ForgeEvent): void;
  /** Called after the stream opens (first time and every reconnect). */
  onOpen?(): void;
  /** Reports a dropped connection before the retry. */
  onDrop?(why: string): void;
  signal?: AbortSignal;
  /** ms before reconnecting (the server's `retry:` overrides it). */
  retryMs?: number;
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/** Runs until `signal` aborts; throws only for answers a retry cannot fix (bad filter, auth). */
export async function followEvents(o: FollowOptions): Promise<void> {
  const root = o.server.replace(/\/+$/, '');
  const q = new URLSearchParams();
  if (o.system !== undefined) q.set('system', o.system);
  if (o.type !== undefined) q.set('type', o.type);
  const url = `${root}/api/v1/events/stream${q.size > 0 ? `?${q}` : ''}`;
  let after = o.after;
  let retry = o.retryMs ?? 2000;
  const aborted = (): boolean => o.signal?.aborted === true;
  while (!aborted()) {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (o.token !== undefined) headers['authorization'] = `Bearer ${o.token}`;
    if (after !== undefined) headers['last-event-id'] = String(after);
    let why: string;
    try {
      const res = await fetch(url, { headers, ...(o.signal !== undefined ? { signal: o.signal } : {}) });
      if (!res.ok) {
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        const err = fromBody(body, res.status);
        if (res.status !== 503) throw err;
        why = err.message;
      } else if (res.body === null) {
        why = 'empty answer';
      } else {
        o.onOpen?.();
        const parser = new SseParser();
        const decoder = new TextDecoder();
        for await (const chunk of res.body) {
          for (const m of parser.push(decoder.decode(chunk as Uint8Array, { stream: true }))) {
            if (m.retry !== undefined) retry = m.retry;
            if (m.id === undefined || m.event === 'hello') continue;
            const ev = JSON.parse(m.data) as ForgeEvent;
            after = ev.id;
            o.onEvent(ev);
          }
        }
        why = 'the server closed the stream';
      }
    } catch (e) {
      if (aborted()) return;
      if (e instanceof ForgeError) throw e;
      const cause = (e as { cause?: { code?: string } }).cause;
      why = `cannot reach forge at ${root}: ${cause?.code ?? (e as Error).message}`;
    }
    if (aborted()) return;
    o.onDrop?.(why);
    await sleep(retry, o.signal);
  }
}

/** Resolves on SIGINT/SIGTERM (the end of `--follow` and `--watch`), aborting the controller. */
export function stopOnSignal(ctl: AbortController): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      ctl.abort();
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

