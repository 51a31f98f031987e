/**
 * Durability: a burst of `system add` calls, SIGKILL in the middle, restart
 * on the same data directory. Every add that got a 2xx answer must be there,
 * and SQLite's integrity check must pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startForge } from '../lib/server.js';

test('SIGKILL during a burst of adds loses no acknowledged write', async () => {
  const first = await startForge();
  const dataDir = first.dataDir;
  try {
    let r = await first.api('POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i' });
    assert.equal(r.status, 201);
    r = await first.api('POST', '/api/v1/profiles', { name: 'p', distro: 'd' });
    assert.equal(r.status, 201);

    const acked = new Set<string>();
    let failures = 0;
    let stop = false;
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const name = `w${w}-s${i}`;
        try {
          const res = await fetch(`${first.url}/api/v1/systems`, {
            method: 'POST',
            headers: { authorization: `Bearer ${first.token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ name, profile: 'p', interfaces: { eth0: { mac_address: 'random' } } }),
          });
          await res.text();
          if (res.status === 201) acked.add(name);
          else failures++;
        } catch {
          return; // the server is gone
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, w) => worker(w));
    // Kill once a good number of writes were acknowledged (bounded wait).
    const deadline = Date.now() + 20_000;
    while (acked.size < 400 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    await first.kill();
    stop = true;
    await Promise.all(workers);
    assert.ok(acked.size >= 50, `only ${acked.size} adds acknowledged before the kill`);
    assert.equal(failures, 0, 'no add failed while the server was up');

    // The database file as the killed process left it (WAL not checkpointed).
    const db = new Database(join(dataDir, 'forge.db'));
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }

    const second = await startForge({ dataDir });
    try {
      const systems = (await second.api('GET', '/api/v1/systems?name=w*')).body as { name: string; interfaces: Record<string, { mac_address: string }> }[];
      const names = new Set(systems.map((s) => s.name));
      const missing = [...acked].filter((n) => !names.has(n));
      assert.deepEqual(missing, [], `${missing.length} acknowledged adds lost`);
      // MACs are still unique and indexed after recovery
      const macs = systems.map((s) => s.interfaces['eth0']!.mac_address);
      assert.equal(new Set(macs).size, macs.length);
      const one = systems[0]!;
      const found = (await second.api('GET', `/api/v1/systems?mac_address=${one.interfaces['eth0']!.mac_address}`)).body as { name: string }[];
      assert.deepEqual(found.map((s) => s.name), [one.name]);
      // and it keeps accepting writes
      const w = await second.api('POST', '/api/v1/systems', { name: 'after-restart', profile: 'p' });
      assert.equal(w.status, 201);
    } finally {
      await second.stop({ keepData: true });
    }
    const db2 = new Database(join(dataDir, 'forge.db'));
    try {
      assert.equal(db2.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db2.close();
    }
  } finally {
    await first.kill();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
