/**
 * The TFTP engine's one retransmission clock (server/services/tftp/clock.ts, issue 21): a
 * deadline never fires before the time asked for (RFC 1350 section 2: retransmit after a
 * timeout), members may leave while ticking, and the interval runs only while members exist,
 * so an idle server holds no timer. Real timers, no fakes; only lower bounds on time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetransmitClock } from '../../server/services/tftp/clock.js';

test('tick size follows the base timeout, bounded to 5-50 ms', () => {
  assert.equal(new RetransmitClock(1000).tickMs, 50);
  assert.equal(new RetransmitClock(200).tickMs, 20);
  assert.equal(new RetransmitClock(10).tickMs, 5);
});

test('a deadline fires no earlier than asked, also right after the clock was idle', async () => {
  const clock = new RetransmitClock(100); // 10 ms ticks
  // Idle for a while first: the tick must not be stale when the next member arrives.
  await new Promise((r) => setTimeout(r, 60));
  for (const ms of [30, 75]) {
    const fired = await new Promise<number>((resolve) => {
      const t0 = performance.now();
      const member = {
        due: 0,
        onTick(tick: number): void {
          if (tick < this.due) return;
          clock.delete(member);
          resolve(performance.now() - t0);
        },
      };
      clock.add(member);
      member.due = clock.after(ms);
    });
    assert.ok(fired >= ms, `fired after ${fired.toFixed(1)} ms, asked ${ms} ms`);
    assert.equal(clock.running, false, 'the interval stops with its last member');
  }
});

test('members may end inside their own tick; the others keep ticking', async () => {
  const clock = new RetransmitClock(50);
  const seen: string[] = [];
  const quitter = { onTick: (): void => { seen.push('quitter'); clock.delete(quitter); } };
  let stayed = 0;
  const stayer = { onTick: (): void => { stayed++; if (stayed === 3) clock.delete(stayer); } };
  clock.add(quitter);
  clock.add(stayer);
  const deadline = Date.now() + 10_000;
  while (clock.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(seen, ['quitter']);
  assert.equal(stayed, 3);
  assert.equal(clock.running, false);
});
