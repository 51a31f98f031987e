/** The SSE codec: what encodeSse writes, SseParser reads back, however the bytes are split. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeSse, SseParser, sseComment } from '../../server/protocol/sse/codec.js';

test('round trip through any chunking, comments ignored, multi-line data kept', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ id: fc.nat().map(String), event: fc.constantFrom('install_start', 'dhcp_ack'), data: fc.string() }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat({ max: 50 }), { maxLength: 20 }),
      (msgs, cuts) => {
        const wire = msgs.map((m) => sseComment('ping') + encodeSse(m)).join('');
        const p = new SseParser();
        const got = [];
        let at = 0;
        for (const c of [...cuts, wire.length]) {
          const next = Math.min(wire.length, at + c);
          got.push(...p.push(wire.slice(at, next)));
          at = next;
        }
        got.push(...p.push(wire.slice(at)));
        const norm = (s: string): string => s.replace(/\r\n|\r/g, '\n');
        assert.deepEqual(got, msgs.map((m) => ({ id: m.id, event: m.event, data: norm(m.data) })));
        assert.equal(p.lastEventId, msgs.at(-1)!.id);
      },
    ),
  );
});

test('spec details: retry, CRLF line ends, a field without a colon, no space after the colon', () => {
  const p = new SseParser();
  assert.deepEqual(p.push('retry: 3000\r\nid:7\r\ndata\r\ndata:x\r\n\r\n'), [{ id: '7', data: '\nx', retry: 3000 }]);
  // The id persists for later events without one.
  assert.deepEqual(p.push('data: y\n\n'), [{ id: '7', data: 'y' }]);
  assert.equal(encodeSse({ event: 'a\nb', data: 'one\ntwo' }), 'event: a b\ndata: one\ndata: two\n\n');
});
