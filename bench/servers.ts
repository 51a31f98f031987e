/**
 * Several servers (issue 19): in one run, on the same shared cores,
 *
 *   - API adds/s: 16 keep-alive HTTP clients adding one system per POST, spread evenly over one
 *     forge on SQLite, and over one, two and three forge servers on one PostgreSQL 15 (Debian,
 *     defaults: fsync on, Unix socket);
 *   - DHCP DORA/s: perfdhcp (Kea's) as relays, one per server, each server answering the same
 *     /16 pool (the dynamic addresses claimed in the database, `lease_claims`), the same total
 *     offered rate for every configuration, servers in network namespaces on one bridge;
 *   - failover time: two servers on one PostgreSQL with keepalived (Debian's) holding the service
 *     address, as README "Sites with several servers" sets them up; the active forge gets SIGKILL
 *     and the time to the next HTTP answer on the address (curl every 50 ms) and to the next DHCP
 *     OFFER to a broadcast DISCOVER (one every 100 ms) is measured, three times.
 *
 * Configurations run interleaved within each repeat so all see the same background load; the load
 * average is printed beside each figure. Figures, not pass/fail criteria.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLan, type Host, type Lan } from '../test/lib/netns.js';
import { startPostgres, type PgCluster } from '../test/lib/postgres.js';
import { startForge, type ForgeServer } from '../test/lib/server.js';
import { forgeInNamespace, type NsForge } from '../test/lib/forge-ns.js';
import { startVipPair, type VipPair } from '../test/lib/keepalived.js';
import { exchange, packet } from '../test/lib/dhcp-raw.js';
import { MessageType } from '../server/protocol/dhcp4/index.js';
import { client, ms, pct } from './core.js';
import { apiAdds } from './store.js';
import { load1 } from './proc.js';

const CONC = 16;
const ADDS = Number(process.env['FORGE_BENCH_SERVERS_ADDS'] ?? 3000);
/** Total offered DORA rates: one above what one server answers, one below what PostgreSQL's round trips allow. */
const DHCP_RATES = (process.env['FORGE_BENCH_SERVERS_RATES'] ?? '1000,100').split(',').map(Number);
const DHCP_SECONDS = Number(process.env['FORGE_BENCH_SERVERS_SECONDS'] ?? 8);
const REPEATS = Math.max(1, Number(process.env['FORGE_BENCH_SERVERS_REPEATS'] ?? 2));
const CLIENTS = 18_000;
/** Namespace name prefix (the shared development machine wants each engineer's own). */
const NS = process.env['FORGE_BENCH_NS'] ?? 'fgb';
/** Which parts run (adds, dhcp, failover) and which configurations (their labels' indexes, 0-3), for profiling one. */
const PARTS = new Set((process.env['FORGE_BENCH_SERVERS_PARTS'] ?? 'adds,dhcp,failover').split(','));

type Config = { label: string; store: 'sqlite' | 'pg'; servers: number };
const ALL_CONFIGS: Config[] = [
  { label: 'SQLite, one server', store: 'sqlite', servers: 1 },
  { label: 'PostgreSQL, one server', store: 'pg', servers: 1 },
  { label: 'PostgreSQL, two servers', store: 'pg', servers: 2 },
  { label: 'PostgreSQL, three servers', store: 'pg', servers: 3 },
];
const CONFIGS = (process.env['FORGE_BENCH_SERVERS_CONFIGS'] ?? '0,1,2,3').split(',').map((i) => ALL_CONFIGS[Number(i)]).filter((c): c is Config => c !== undefined);

async function addsRow(cluster: PgCluster, c: Config, repeat: number): Promise<string> {
  const url = c.store === 'pg' ? await cluster.createDatabase('bench') : '';
  const args = url === '' ? [] : ['--store', url];
  const servers: ForgeServer[] = [];
  try {
    for (let i = 0; i < c.servers; i++) servers.push(await startForge({ args, timeoutMs: 120_000 }));
    const first = client(servers[0]!);
    try {
      for (const [path, body] of [['/api/v1/distros', { name: 'd', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed: 'debian' }], ['/api/v1/profiles', { name: 'p', distro: 'd' }]] as const) {
        const r = await first.req('POST', path, body);
        if (r.status !== 201) throw new Error(`${path}: ${r.status} ${r.text}`);
      }
    } finally {
      first.close();
    }
    const load = load1();
    const r = await apiAdds(servers, 0, ADDS);
    return `| ${c.label} | ${repeat} | ${r.rate.toFixed(0)} | ${ms(pct(r.lat, 50))} | ${ms(pct(r.lat, 99))} | ${load} |`;
  } finally {
    for (const s of servers) await s.stop();
  }
}

function perfRate(out: string): { rate: number; doDrop: number; raDrop: number } {
  const num = (re: RegExp, i = 0): number => Number([...out.matchAll(re)][i]?.[1] ?? NaN);
  return { rate: num(/Rate: ([\d.]+) 4-way exchanges\/second/g), doDrop: num(/drops ratio: ([\d.]+) %/g, 0), raDrop: num(/drops ratio: ([\d.]+) %/g, 1) };
}

async function dhcpRow(cluster: PgCluster, c: Config, repeat: number, rate: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'forge-bench-servers-'));
  const lan = await createLan(`${NS}sv`, { serverIp: '10.98.0.1', prefixLen: 16 });
  const forges: NsForge[] = [];
  try {
    const url = c.store === 'pg' ? await cluster.createDatabase('bench') : '';
    const dhcp = ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/16', '--dhcp-range', '10.98.1.0,10.98.80.255', '--dhcp-router', '10.98.0.1', '--dhcp-lease-time', '3600', ...(url === '' ? [] : ['--store', url])];
    const relays: [Host, string][] = [];
    for (let i = 0; i < c.servers; i++) {
      const ip = `10.98.0.${11 + i}`;
      const h = await lan.addClient();
      await h.must('ip', ['addr', 'add', `${ip}/16`, 'dev', 'eth0']);
      forges.push(await forgeInNamespace(h, ip, join(dir, `s${i}`), [...dhcp, '--server-name', `s${i}`], { timeoutMs: 60_000 }));
      const relay = await lan.addClient();
      await relay.must('ip', ['addr', 'add', `10.98.0.${21 + i}/16`, 'dev', 'eth0']);
      relays.push([relay, ip]);
    }
    const per = Math.max(1, Math.floor(rate / c.servers));
    const load = load1();
    const outs = await Promise.all(
      relays.map(([relay, server], i) =>
        relay.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', String(per), '-R', String(Math.floor(CLIENTS / c.servers)), '-p', String(DHCP_SECONDS), '-b', `mac=00:0c:0${i + 1}:00:00:00`, server], { timeoutMs: (DHCP_SECONDS + 60) * 1000 }),
      ),
    );
    const stats = outs.map((o) => perfRate(o.stdout));
    if (stats.some((s) => Number.isNaN(s.rate))) throw new Error(`perfdhcp: ${outs.map((o) => o.stdout + o.stderr).join('\n---\n')}`);
    const total = stats.reduce((a, s) => a + s.rate, 0);
    const drops = stats.map((s) => `${s.doDrop.toFixed(1)}/${s.raDrop.toFixed(1)}`).join(', ');
    return `| ${c.label} | ${repeat} | ${rate} | ${total.toFixed(0)} | ${drops} | ${load} |`;
  } finally {
    for (const f of forges) await f.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Kill -> next HTTP answer on the service address, and -> next DHCP OFFER, `REPEATS + 1` times. */
async function failover(cluster: PgCluster): Promise<string[]> {
  const VIP = '10.98.0.10';
  const PORT = 8080;
  const dir = mkdtempSync(join(tmpdir(), 'forge-bench-fo-'));
  const lan: Lan = await createLan(`${NS}fo`);
  const rows: string[] = [];
  let pair: VipPair | undefined;
  try {
    const url = await cluster.createDatabase('bench');
    const flags = ['--store', url, '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200', '--dhcp-router', '10.98.0.1'];
    pair = await startVipPair(lan, dir, { vip: VIP, port: PORT, args: (name) => [...flags, '--server-name', name] });
    const vip = pair;
    const probe = await lan.addClient();
    await probe.must('ip', ['route', 'add', 'default', 'dev', 'eth0']);
    const until = async (ok: () => Promise<boolean>, limitMs: number): Promise<number> => {
      const t0 = Date.now();
      while (!(await ok())) {
        if (Date.now() - t0 > limitMs) return NaN;
      }
      return Date.now() - t0;
    };
    const http = async (): Promise<boolean> => {
      if ((await lan.exec('curl', ['-sf', '-m', '1', '-o', '/dev/null', `http://${VIP}:${PORT}/api/v1/health`])).code === 0) return true;
      await new Promise((r) => setTimeout(r, 50));
      return false;
    };
    let xid = 0x6f000000;
    const dhcp = async (): Promise<boolean> =>
      (await exchange(probe, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', listenMs: 100 }, [packet({ type: MessageType.DISCOVER, mac: '52:54:00:6f:ff:01', xid: xid++ })])).length > 0;
    for (let i = 0; i <= REPEATS; i++) {
      // keepalived gives the address back to a (higher priority) once its forge answers again.
      if (Number.isNaN(await until(async () => (await vip.holder()) === 'a' && (await http()), 60_000))) throw new Error('server a did not take the address back');
      const load = load1();
      const a = vip.servers[0]!.forge;
      a.proc.kill('SIGKILL');
      const [h, d] = await Promise.all([until(http, 60_000), until(dhcp, 60_000)]);
      rows.push(`| ${i + 1} | ${(h / 1000).toFixed(1)} s | ${(d / 1000).toFixed(2)} s | ${load} |`);
      await a.exited;
      await vip.restart('a');
    }
  } finally {
    await pair?.stop();
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export async function run(): Promise<string> {
  const load0 = load1();
  const cluster: PgCluster = (await startPostgres(undefined, { fsync: process.env['FORGE_BENCH_PG_FSYNC'] !== 'off' }))!;
  const adds: string[] = [];
  const dhcp: string[] = [];
  let fo: string[] = [];
  try {
    for (let r = 1; r <= REPEATS; r++) {
      for (const c of PARTS.has('adds') ? CONFIGS : []) {
        process.stderr.write(`bench servers: adds, ${c.label}, repeat ${r}\n`);
        adds.push(await addsRow(cluster, c, r));
      }
      for (const rate of PARTS.has('dhcp') ? DHCP_RATES : []) {
        for (const c of CONFIGS) {
          process.stderr.write(`bench servers: DHCP, ${c.label}, ${rate}/s, repeat ${r}\n`);
          dhcp.push(await dhcpRow(cluster, c, r, rate));
        }
      }
    }
    if (PARTS.has('failover')) {
      process.stderr.write('bench servers: failover\n');
      fo = await failover(cluster);
    }
  } finally {
    await cluster.stop();
  }
  return [
    '## servers: one, two and three forge servers on PostgreSQL vs one on SQLite; failover time',
    '',
    `Same run, same shared cores for the servers, the clients and PostgreSQL 15 (Debian defaults: fsync and synchronous_commit on, Unix socket). Load average ${load0} at the start; the load at each measurement is beside it.`,
    '',
    `### API adds: ${ADDS.toLocaleString('en')} one-by-one POSTs, ${CONC} keep-alive clients split evenly over the servers`,
    '',
    '| configuration | repeat | adds/s | p50 | p99 | load |',
    '|---|---|---|---|---|---|',
    ...adds,
    '',
    `### DHCP: perfdhcp DORA exchanges/s, one relay per server, ${DHCP_RATES.join(' and ')}/s offered in all for ${DHCP_SECONDS} s, ${CLIENTS.toLocaleString('en')} clients, one shared /16 pool`,
    '',
    'Drops are DISCOVER/REQUEST percent per relay. Servers start with the default start-up probe (servers of one database are not rivals). On PostgreSQL every offered and acknowledged pool address is also claimed in the database (`lease_claims`), so no two servers hand out one address, and every ACK waits for its lease\'s commit (fsync on). The claims, the lease writes and the lookups the in-process index cannot answer (these clients are all unknown) that arrive while one statement is in flight go together in the next (group commits, store/postgres/leases.ts); a claim commits without waiting for its own WAL flush (the ACK\'s lease commit flushes it). Each server starts its round robin at a random address of the shared pool.',
    '',
    '| configuration | repeat | offered/s | DORA/s | drops % | load |',
    '|---|---|---|---|---|---|',
    ...dhcp,
    '',
    '### Failover: SIGKILL of the active forge -> next answer (two servers, keepalived, `fall 2` at `interval 1`)',
    '',
    'HTTP: the health URL on the service address (curl, 1 s timeout, every 50 ms). DHCP: a broadcast DISCOVER every 100 ms until an OFFER comes (both servers answer the subnet, so the other one answers at once; each probe is a fresh node process sending one DISCOVER, so this figure is an upper bound, most of it that process starting on the loaded machine).',
    '',
    '| kill | next HTTP answer | next DHCP OFFER | load |',
    '|---|---|---|---|',
    ...fo,
  ].join('\n');
}
