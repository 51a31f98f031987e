/**
 * Pure parts of HTTP boot serving and the install lifecycle: Range parsing
 * (RFC 9110 s14) and stage/stall judgement.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRange } from '../../server/services/http/range.js';
import { formatDuration, stageInfo } from '../../server/events/lifecycle.js';
import type { ForgeEvent, EventType } from '../../server/core/model.js';

test('Range: single ranges, suffix, open-ended, unsatisfiable, ignored forms', () => {
  const size = 1000;
  assert.deepEqual(parseRange(undefined, size), { kind: 'full' });
  assert.deepEqual(parseRange('bytes=0-99', size), { kind: 'partial', start: 0, end: 99 });
  assert.deepEqual(parseRange('bytes=500-', size), { kind: 'partial', start: 500, end: 999 });
  assert.deepEqual(parseRange('bytes=990-5000', size), { kind: 'partial', start: 990, end: 999 });
  assert.deepEqual(parseRange('bytes=-10', size), { kind: 'partial', start: 990, end: 999 });
  assert.deepEqual(parseRange('bytes=-5000', size), { kind: 'partial', start: 0, end: 999 });
  assert.deepEqual(parseRange('bytes=1000-', size), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=-0', size), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=0-1,5-6', size), { kind: 'full' });
  assert.deepEqual(parseRange('items=0-1', size), { kind: 'full' });
  assert.deepEqual(parseRange('bytes=9-3', size), { kind: 'full' });
  assert.deepEqual(parseRange('bytes=abc', size), { kind: 'full' });
});

test('Range: a partial answer always lies inside the file', () => {
  fc.assert(
    fc.property(fc.nat(1 << 20), fc.string(), (size, tail) => {
      const r = parseRange(`bytes=${tail}`, size);
      if (r.kind === 'partial') return r.start >= 0 && r.start <= r.end && r.end < size;
      return true;
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1 << 20 }), fc.nat(1 << 21), (size, start) => {
      const r = parseRange(`bytes=${start}-`, size);
      return start < size ? r.kind === 'partial' && r.start === start && r.end === size - 1 : r.kind === 'unsatisfiable';
    }),
  );
});

let id = 0;
const ev = (type: EventType, minute: number, detail: Record<string, unknown> = {}): ForgeEvent => ({
  id: ++id,
  system: 'vm9',
  type,
  source: 'test',
  time: new Date(Date.UTC(2026, 10, 22, 4, minute)).toISOString(),
  detail,
});
const at = (minute: number): number => Date.UTC(2026, 10, 22, 4, minute);

test('stage: latest event decides, time counts from the start of the run, stall after the limit', () => {
  assert.equal(stageInfo([], at(0), 60).stage, 'new');
  const installing = [ev('boot_config_served', 0), ev('kernel_fetched', 1), ev('autoinstall_served', 2), ev('install_start', 3)];
  const s = stageInfo(installing, at(14), 60);
  assert.equal(s.stage, 'installing');
  assert.equal(s.minutes, 12);
  assert.equal(s.stalled, false);
  assert.equal(stageInfo(installing, at(62), 60).stalled, true);
  const done = [...installing, ev('install_done', 20), ev('netboot_disabled', 20)];
  const d = stageInfo(done, at(200), 60);
  assert.equal(d.stage, 'installed');
  assert.equal(d.stalled, false, 'a finished install never stalls');
  const localBoot = [...done, ev('boot_config_served', 30, { boot: 'local' })];
  assert.equal(stageInfo(localBoot, at(31), 60).stage, 'local');
  const edited = [...installing, ev('edited', 10)];
  assert.equal(stageInfo(edited, at(14), 60).stage, 'installing', 'an edit does not reset the stage');
  assert.equal(stageInfo([ev('agent_failed', 1)], at(100), 5).stalled, false);
});

test('durations read like `12m`, `3h05m`, `2d4h`', () => {
  assert.equal(formatDuration(12), '12m');
  assert.equal(formatDuration(185), '3h05m');
  assert.equal(formatDuration(60 * 52), '2d4h');
});
