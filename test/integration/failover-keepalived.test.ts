/**
 * One floating service address for two forge servers on one PostgreSQL:
 * keepalived (Debian's, VRRP) in each server's network namespace holds
 * 10.98.0.10 on the server whose forge answers its health check. The
 * active server's forge is killed with SIGKILL; keepalived on the other
 * takes the address, and the same URL answers again, with everything
 * written through the first server (one database) and the same token. The
 * time from the kill to the next answer is printed, not asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { createLan, type Host } from '../lib/netns.js';
import { startPostgres } from '../lib/postgres.js';
import { startVipPair, type VipPair } from '../lib/keepalived.js';

const REQ = { root: true, commands: ['ip', 'keepalived', 'curl'] };
const VIP = '10.98.0.10';
const PORT = 18080;

test('keepalived floating address: SIGKILL the active forge, the same URL answers from the other, same data', async (t) => {
  if (need(t, REQ) !== undefined) return;
  const cluster = await startPostgres(t);
  if (cluster === undefined) return;
  const dir = mkdtempSync(join(tmpdir(), 'fgka-'));
  const lan = await createLan('fgka');
  let pair: VipPair | undefined;
  try {
    const url = await cluster.createDatabase();
    pair = await startVipPair(lan, dir, { vip: VIP, port: PORT, args: () => ['--store', url], timeoutMs: 30_000 });
    const { token, servers } = pair;
    const forges = servers.map((s) => s.forge);
    const viaVip = (client: Host, path: string, extra: string[] = []) =>
      client.exec('curl', ['-s', '-m', '2', '-w', '\n%{http_code}', ...extra, `http://${VIP}:${PORT}${path}`], { timeoutMs: 10_000 });
    const holder = pair.holder;
    const until = async (what: string, ok: () => Promise<boolean>, ms = 60_000): Promise<number> => {
      const t0 = Date.now();
      while (!(await ok())) {
        if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms / 1000} s`);
        await new Promise((r) => setTimeout(r, 100));
      }
      return Date.now() - t0;
    };
    await until('the address answers', async () => (await viaVip(lan, '/api/v1/health')).stdout.endsWith('200'));
    const first = await holder();
    assert.equal(first, 'a', 'the higher priority holds the address');
    const auth = ['-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json'];
    for (const [kind, body] of [
      ['distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'debian' }],
      ['profiles', { name: 'p', distro: 'd' }],
      ['systems', { name: 'web1', profile: 'p', interfaces: { eth0: { mac_address: '52:54:00:70:00:01' } } }],
    ] as const) {
      const r = await viaVip(lan, `/api/v1/${kind}`, [...auth, '-X', 'POST', '-d', JSON.stringify(body)]);
      assert.ok(r.stdout.endsWith('201'), `POST ${kind} through the address: ${r.stdout}`);
    }

    forges[0]!.proc.kill('SIGKILL');
    const killedAt = Date.now();
    const took = await until('the other server answers on the address', async () => (await viaVip(lan, '/api/v1/health')).stdout.endsWith('200'));
    t.diagnostic(`failover: SIGKILL -> next answer on ${VIP} in ${((Date.now() - killedAt) / 1000).toFixed(1)} s (${took} ms polled)`);
    assert.equal(await holder(), 'b', 'keepalived moved the address to the server whose forge answers');
    const got = await viaVip(lan, '/api/v1/systems/web1');
    assert.ok(got.stdout.endsWith('200'), `what was written through server a is served by b: ${got.stdout}`);
    assert.match(got.stdout, /52:54:00:70:00:01/);
    const more = await viaVip(lan, '/api/v1/systems', [...auth, '-X', 'POST', '-d', JSON.stringify({ name: 'web2', profile: 'p' })]);
    assert.ok(more.stdout.endsWith('201'), `writes with the same token keep working: ${more.stdout}`);
  } finally {
    await pair?.stop();
    await lan.destroy();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
