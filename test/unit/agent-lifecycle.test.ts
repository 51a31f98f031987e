/**
 * The lifecycle watch over `virsh event --loop`: its line format, and that a
 * wait ends at an event, at its timeout, or at once for an event that came
 * between waits. A stand-in `virsh` on PATH prints what libvirt's virsh prints;
 * the real one is exercised by the agent e2e test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LIFECYCLE_LINE, virshLifecycleWatch } from '../../agent/libvirt.js';

test('virsh lifecycle lines are recognised, other lines are not', () => {
  const m = LIFECYCLE_LINE.exec("event 'lifecycle' for domain 'vm9': Stopped Shutdown");
  assert.deepEqual(m?.slice(1, 4), ['vm9', 'Stopped', 'Shutdown']);
  assert.equal(LIFECYCLE_LINE.exec("event 'reboot' for domain 'vm9'"), null);
  assert.equal(LIFECYCLE_LINE.exec('events received: 1'), null);
});

test('a wait ends at an event for the domain, times out otherwise, and never misses one that came between waits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fg-virsh-'));
  const oldPath = process.env['PATH'];
  try {
    // Prints an event for another domain at once, one for vm9 after 300 ms, then stays quiet.
    writeFileSync(
      join(dir, 'virsh'),
      [
        '#!/bin/sh',
        'echo "event \'lifecycle\' for domain \'other\': Started Booted"',
        'sleep 0.3',
        'echo "event \'lifecycle\' for domain \'vm9\': Stopped Shutdown"',
        'sleep 0.3',
        'echo "event \'lifecycle\' for domain \'vm9\': Undefined Removed"',
        'exec sleep 30',
      ].join('\n'),
    );
    chmodSync(join(dir, 'virsh'), 0o755);
    process.env['PATH'] = `${dir}:${oldPath ?? ''}`;
    const w = virshLifecycleWatch('qemu:///system', 'vm9');
    try {
      const t0 = Date.now();
      assert.equal(await w.wait(5000), 'event');
      const took = Date.now() - t0;
      assert.ok(took >= 200 && took < 4000, `woke after ${took} ms`);
      assert.equal(w.events, 1, "the other domain's event is not counted");
      // The second vm9 event arrives while nobody waits; the next wait returns at once.
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(w.events, 2);
      const t1 = Date.now();
      assert.equal(await w.wait(5000), 'event');
      // No further event comes (the script sleeps), so 'event' proves the pending one
      // was counted; the bound only says it did not sit out the 5 s (files run two at a time).
      assert.ok(Date.now() - t1 < 2000, `returned after ${Date.now() - t1} ms`);
      assert.equal(await w.wait(200), 'timeout');
    } finally {
      w.close();
    }
  } finally {
    process.env['PATH'] = oldPath;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without virsh the watch is a plain timer', async () => {
  const oldPath = process.env['PATH'];
  process.env['PATH'] = '/nonexistent';
  try {
    const w = virshLifecycleWatch('qemu:///system', 'vm9');
    assert.equal(await w.wait(100), 'timeout');
    assert.equal(w.events, 0);
    w.close();
  } finally {
    process.env['PATH'] = oldPath;
  }
});
