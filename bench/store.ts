/**
 * Store benchmark: SQLite and PostgreSQL side by side in one run, at
 * 100,000 systems (FORGE_BENCH_STORE_SCALES=100000,1000000 adds a million).
 * Per backend: a bulk load through the store (5,000 per transaction), then
 * in process the lookups the DHCP and boot paths make (by MAC, by name), a
 * full name listing, and one-by-one adds with 16 in flight; then through a
 * real `forge serve` (16 HTTP clients, one system per POST), and for
 * PostgreSQL the same adds spread over two servers on one database.
 * PostgreSQL runs with its defaults (fsync on, synchronous_commit on) on a
 * Unix socket, on the same 2 cores as forge and the client.
 */
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { validateNew } from '../server/core/validate.js';
import { openSqliteStore } from '../server/store/sqlite.js';
import { openPgStore } from '../server/store/postgres.js';
import type { Store } from '../server/store/store.js';
import { startPostgres, type PgCluster } from '../test/lib/postgres.js';
import { startForge, type ForgeServer } from '../test/lib/server.js';
import { client, mac, ms, oneByOne, pct, system } from './core.js';

const CONC = 16;

async function load(st: Store, count: number): Promise<number> {
  await st.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed: 'debian' }));
  await st.create('profile', validateNew('profile', { name: 'p', distro: 'd', kernel_options: 'console=ttyS0' }));
  const t0 = performance.now();
  for (let i = 0; i < count; i += 5000) {
    await st.bulkCreate('system', Array.from({ length: Math.min(5000, count - i) }, (_, k) => validateNew('system', system(i + k))));
    if (i % 100_000 === 0 && i > 0) process.stderr.write(`  loaded ${i}\n`);
  }
  return count / ((performance.now() - t0) / 1000);
}

async function lookups(st: Store, total: number, samples: number): Promise<{ byMac: number[]; byName: number[] }> {
  const byMac: number[] = [];
  const byName: number[] = [];
  for (let i = 0; i < samples; i++) {
    const n = Math.floor(Math.random() * total);
    let s = performance.now();
    const a = await st.findSystemByMac(mac(n));
    byMac.push(performance.now() - s);
    s = performance.now();
    const b = await st.get('system', `sys${n}`);
    byName.push(performance.now() - s);
    if (a?.name !== `sys${n}` || b === undefined) throw new Error(`lookup sys${n}`);
  }
  return { byMac, byName };
}

/** `count` single-system creates, CONC in flight, in process. */
async function adds(st: Store, from: number, count: number): Promise<{ rate: number; lat: number[] }> {
  let next = from;
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONC }, async () => {
      while (next < from + count) {
        const n = next++;
        const s = performance.now();
        await st.create('system', validateNew('system', system(n)));
        lat.push(performance.now() - s);
      }
    }),
  );
  return { rate: count / ((performance.now() - t0) / 1000), lat };
}

/** API adds spread over `servers` (CONC clients in all, split evenly). */
async function apiAdds(servers: ForgeServer[], from: number, count: number): Promise<{ rate: number; lat: number[] }> {
  const per = Math.floor(count / servers.length);
  const t0 = performance.now();
  const parts = await Promise.all(
    servers.map(async (srv, i) => {
      const c = client(srv);
      try {
        return await oneByOne(c, from + i * per, per, CONC / servers.length);
      } finally {
        c.close();
      }
    }),
  );
  return { rate: (per * servers.length) / ((performance.now() - t0) / 1000), lat: parts.flatMap((p) => p.lat) };
}

export async function run(): Promise<string> {
  const load0 = loadavg()[0]!;
  const scales = (process.env['FORGE_BENCH_STORE_SCALES'] ?? '100000').split(',').map(Number);
  const rows: string[] = [];
  const cluster: PgCluster = (await startPostgres(undefined, { fsync: true }))!;
  const dirs: string[] = [];
  try {
    for (const scale of scales) {
      for (const backend of ['SQLite', 'PostgreSQL'] as const) {
        process.stderr.write(`bench store: ${backend} at ${scale}\n`);
        const dir = mkdtempSync(join(tmpdir(), 'forge-bench-store-'));
        dirs.push(dir);
        const url = backend === 'PostgreSQL' ? await cluster.createDatabase('bench') : '';
        const st = backend === 'SQLite' ? openSqliteStore(dir) : await openPgStore(url);
        const row = (what: string, v: string, p50 = '', p99 = ''): void => void rows.push(`| ${scale.toLocaleString('en')} | ${backend} | ${what} | ${v} | ${p50} | ${p99} |`);
        try {
          row('bulk load, 5,000 per transaction (systems/s)', (await load(st, scale)).toFixed(0));
          const l = await lookups(st, scale, 20_000);
          row('`findSystemByMac` (DHCP path), in process', '', ms(pct(l.byMac, 50)), ms(pct(l.byMac, 99)));
          row('`get(system, NAME)` (boot path), in process', '', ms(pct(l.byName, 50)), ms(pct(l.byName, 99)));
          let t = performance.now();
          const names = await st.listNames('system');
          row('`listNames(system)`, every name', `${names.length.toLocaleString('en')} in ${ms(performance.now() - t)}`);
          t = performance.now();
          const all = await st.list('system');
          row('`list(system)`, every document', `${all.length.toLocaleString('en')} in ${ms(performance.now() - t)}`);
          const a = await adds(st, scale, 5000);
          row(`one-by-one adds, ${CONC} in flight, in process (adds/s)`, a.rate.toFixed(0), ms(pct(a.lat, 50)), ms(pct(a.lat, 99)));
        } finally {
          await st.close();
        }
        const args = backend === 'PostgreSQL' ? ['--store', url] : [];
        const one = await startForge({ ...(backend === 'SQLite' ? { dataDir: dir } : {}), args, timeoutMs: 120_000 });
        try {
          const r = await apiAdds([one], scale + 5000, 5000);
          row(`API adds, ${CONC} clients, one server (adds/s)`, r.rate.toFixed(0), ms(pct(r.lat, 50)), ms(pct(r.lat, 99)));
          if (backend === 'PostgreSQL') {
            const two = await startForge({ args, timeoutMs: 120_000 });
            try {
              const r2 = await apiAdds([one, two], scale + 10_000, 5000);
              row(`API adds, ${CONC} clients over two servers on one database (adds/s)`, r2.rate.toFixed(0), ms(pct(r2.lat, 50)), ms(pct(r2.lat, 99)));
            } finally {
              await two.stop();
            }
          }
        } finally {
          await one.stop(backend === 'SQLite' ? { keepData: true } : {});
        }
      }
    }
  } finally {
    await cluster.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  return [
    '## store: SQLite and PostgreSQL side by side',
    '',
    `Same run, same ${cpus().length} shared cores for forge, the client and PostgreSQL 15 (Debian, defaults: fsync and synchronous_commit on, Unix socket). SQLite: WAL, synchronous=NORMAL, group commit.`,
    `Load average of the (shared) machine: ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end: figures scale with what else runs.`,
    'Each system has one interface with a MAC and a static IP (both unique). In-process figures are the store call as the DHCP/boot code makes it; API figures are per request as a keep-alive HTTP client saw them.',
    '',
    '| systems | store | what | value | p50 | p99 |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    'Targets from issue 19 (at 1,000,000 systems): lookup by MAC p99 < 1 ms, boot-config generation p99 < 2 ms, API adds >= 2,000/s on PostgreSQL with 16 clients.',
  ].join('\n');
}
