/** A client of forge's event stream (GET /api/v1/events/stream, server-sent events) for tests. */
import assert from 'node:assert/strict';
import type { ForgeEvent } from '../../server/core/model.js';
import { SseParser } from '../../server/protocol/sse/codec.js';

export interface Stream {
  events: ForgeEvent[];
  status: number;
  close(): void;
  /** Resolves once `n` events have arrived. */
  waitFor(n: number, ms?: number): Promise<void>;
}

/** Opens GET BASE/api/v1/events/stream?QUERY and collects its events (checking each SSE id and name). */
export async function openStream(base: string, query: string, headers: Record<string, string> = {}): Promise<Stream> {
  const ctl = new AbortController();
  const res = await fetch(`${base}/api/v1/events/stream${query}`, { headers, signal: ctl.signal });
  const events: ForgeEvent[] = [];
  const waiters: (() => void)[] = [];
  if (res.ok && res.body !== null) {
    const parser = new SseParser();
    const dec = new TextDecoder();
    void (async () => {
      try {
        for await (const chunk of res.body!) {
          for (const m of parser.push(dec.decode(chunk as Uint8Array, { stream: true }))) {
            if (m.event === 'hello') continue;
            const ev = JSON.parse(m.data) as ForgeEvent;
            assert.equal(m.id, String(ev.id), 'the SSE id is the event id');
            assert.equal(m.event, ev.type, 'the SSE event name is the event type');
            events.push(ev);
            for (const w of waiters.splice(0)) w();
          }
        }
      } catch {
        /* aborted */
      }
    })();
  } else {
    await res.text();
  }
  return {
    events,
    status: res.status,
    close: () => ctl.abort(),
    async waitFor(n, ms = 20_000) {
      const end = Date.now() + ms;
      while (events.length < n) {
        if (Date.now() > end) throw new Error(`only ${events.length} of ${n} events arrived: ${events.map((e) => e.type).join(' ')}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
    },
  };
}
