/**
 * DHCP benchmark: perfdhcp DORA exchanges/s against forge (managed mode, a
 * real `forge serve` process) and against dnsmasq with an equivalent
 * configuration, in the same run and the same namespace setup:
 *
 *   LAN namespace: bridge br0 10.98.0.1/16, the server under test;
 *   relay namespace: 10.98.0.2/16, perfdhcp acting as a relay (giaddr), 10,000 simulated clients.
 *
 * Both servers: authoritative for 10.98.0.0/16, pool 10.98.1.0-10.98.80.255
 * (20,480 addresses), 1 h leases, leases persisted (forge: SQLite WAL, group
 * commit; dnsmasq: its lease file), no ping check before offering (forge has
 * none; dnsmasq --no-ping), per-packet logging off. Each offered rate runs
 * against a freshly started server. `node dist/bench/dhcp.js` prints the section.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createLan, type Lan, type LanClient } from '../test/lib/netns.js';

const FORGE_BIN = fileURLToPath(new URL('../server/cli/main.js', import.meta.url));
const RATES = (process.env['DHCP_BENCH_RATES'] ?? '1000,2000,4000').split(',').map(Number);
const SECONDS = Number(process.env['DHCP_BENCH_SECONDS'] ?? 8);
const CLIENTS = 10_000;

interface Result {
  server: Variant;
  offered: number;
  rate: number;
  doDrop: number;
  raDrop: number;
  doDelay: number;
  raDelay: number;
  acks: number;
}

function version(cmd: string, args: string[], re: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return re.exec(out)?.[1] ?? out.trim().split('\n')[0] ?? '?';
  } catch (e) {
    const out = String((e as { stdout?: unknown }).stdout ?? '') + String((e as { stderr?: unknown }).stderr ?? '');
    return re.exec(out)?.[1] ?? '?';
  }
}

function parse(server: Variant, offered: number, out: string): Result {
  const num = (re: RegExp, i = 0): number => Number([...out.matchAll(re)][i]?.[1] ?? NaN);
  return {
    server,
    offered,
    rate: num(/Rate: ([\d.]+) 4-way exchanges\/second/g),
    doDrop: num(/drops ratio: ([\d.]+) %/g, 0),
    raDrop: num(/drops ratio: ([\d.]+) %/g, 1),
    doDelay: num(/avg delay: ([\d.]+) ms/g, 0),
    raDelay: num(/avg delay: ([\d.]+) ms/g, 1),
    acks: num(/received packets: (\d+)/g, 1),
  };
}

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 8000);
  await done;
  clearTimeout(t);
}

/** The variants measured: each server with its default durability, and with the other durability. */
const VARIANTS = [
  { name: 'forge', label: 'forge (SQLite WAL, synchronous=NORMAL: no fsync per commit)' },
  { name: 'forge-fsync', label: 'forge, FORGE_SQLITE_SYNC=FULL (fsync per group commit)' },
  { name: 'dnsmasq', label: 'dnsmasq (lease file rewritten and fsync\'d per change)' },
  { name: 'dnsmasq-ro', label: 'dnsmasq --leasefile-ro (no lease persistence)' },
] as const;
type Variant = (typeof VARIANTS)[number]['name'];

async function startForge(lan: Lan, dir: string, fsync: boolean): Promise<ChildProcess> {
  const p = lan.spawn(process.execPath, [
    FORGE_BIN, 'serve', '--data-dir', dir, '--listen', lan.serverIp, '--http-port', '0', '--server', lan.serverIp,
    '--tftp-enabled', 'false', '--log-level', 'warn', '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/16',
    '--dhcp-range', '10.98.1.0,10.98.80.255', '--dhcp-router', '10.98.0.1', '--dhcp-lease-time', '3600', '--dhcp-probe-seconds', '0',
  ], { env: { ...process.env, FORGE_SQLITE_SYNC: fsync ? 'FULL' : 'NORMAL' } });
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => /forge ready/.test(out) || p.exitCode !== null, 20_000, `forge serve:\n${out}`);
  if (p.exitCode !== null) throw new Error(`forge serve exited:\n${out}`);
  return p;
}

async function startDnsmasq(lan: Lan, dir: string, readOnly: boolean): Promise<ChildProcess> {
  const p = lan.spawn('dnsmasq', [
    '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=br0', '--bind-interfaces',
    '--dhcp-range=10.98.1.0,10.98.80.255,255.255.0.0,1h', '--dhcp-option=3,10.98.0.1', '--dhcp-lease-max=100000',
    readOnly ? '--leasefile-ro' : `--dhcp-leasefile=${join(dir, 'dnsmasq.leases')}`, '--dhcp-authoritative', '--no-ping', '--quiet-dhcp',
  ]);
  let out = '';
  p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => /DHCP, sockets bound|started, version/.test(out) || p.exitCode !== null, 10_000, `dnsmasq:\n${out}`);
  if (p.exitCode !== null) throw new Error(`dnsmasq exited:\n${out}`);
  await new Promise((r) => setTimeout(r, 300));
  return p;
}

async function perf(relay: LanClient, rate: number): Promise<string> {
  const r = await relay.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', String(rate), '-R', String(CLIENTS), '-p', String(SECONDS), '10.98.0.1'], {
    timeoutMs: (SECONDS + 30) * 1000,
  });
  if (!/Rate:/.test(r.stdout)) throw new Error(`perfdhcp failed (${r.code}): ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export async function run(): Promise<string> {
  const lan = await createLan('fgdhcpb', { serverIp: '10.98.0.1', prefixLen: 16 });
  const results: Result[] = [];
  try {
    const relay = await lan.addClient();
    await relay.must('ip', ['addr', 'add', '10.98.0.2/16', 'dev', 'eth0']);
    for (const rate of RATES) {
      for (const { name: server } of VARIANTS) {
        const dir = mkdtempSync(join(tmpdir(), 'fgdhcpb-'));
        const p = server.startsWith('forge') ? await startForge(lan, dir, server === 'forge-fsync') : await startDnsmasq(lan, dir, server === 'dnsmasq-ro');
        try {
          results.push(parse(server, rate, await perf(relay, rate)));
        } finally {
          await stop(p);
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await lan.destroy();
  }
  const best = (s: Variant): number => Math.max(...results.filter((r) => r.server === s && Number.isFinite(r.rate)).map((r) => r.rate));
  const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  const rows = results.map(
    (r) => `| ${r.offered} | ${r.server} | ${f(r.rate, 0)} | ${f(r.doDrop, 1)} % | ${f(r.raDrop, 1)} % | ${f(r.doDelay, 2)} / ${f(r.raDelay, 2)} | ${f(r.acks)} |`,
  );
  const bf = best('forge');
  const bd = best('dnsmasq');
  const bff = best('forge-fsync');
  const bdr = best('dnsmasq-ro');
  const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(1)}x` : 'n/a');
  return [
    '## DHCP: DORA exchanges per second (perfdhcp)',
    '',
    `perfdhcp ${version('perfdhcp', ['-v'], /([\d.]+)/)} (Kea) as a relay (giaddr set, replies to giaddr:67) with ${CLIENTS.toLocaleString('en')} simulated clients,`,
    `${SECONDS} s per offered rate, against forge (managed mode, a real \`forge serve\` process) and dnsmasq ${version('dnsmasq', ['--version'], /Dnsmasq version ([\d.]+)/)}`,
    'with an equivalent configuration: authoritative for 10.98.0.0/16, pool of 20,480 addresses, 1 h leases,',
    'no ping check, no per-packet logging. Both run in the same network namespace (bridge, veth to the relay',
    'namespace), each rate against a freshly started server. Lease durability differs by default, so each server',
    'is also measured with the other one\'s durability:',
    '',
    ...VARIANTS.map((v) => `- **${v.name}**: ${v.label}`),
    '',
    '| offered rate (DORA/s) | server | achieved DORA/s | DISCOVER drops | REQUEST drops | avg delay DO / RA (ms) | ACKs |',
    '|---:|---|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `Best achieved: **forge ${f(bf)} DORA/s** vs dnsmasq ${f(bd)} (${ratio(bf, bd)}), each with its default durability;`,
    `with fsync per commit forge ${f(bff)} vs dnsmasq ${f(bd)} (${ratio(bff, bd)}); without persistence dnsmasq ${f(bdr)} vs forge ${f(bf)} (${ratio(bf, bdr)}).`,
    'Target from the issue: forge at least equal to dnsmasq. For scale, Kea publishes 11,686 leases/s single-threaded',
    '(memfile backend, server hardware). Here perfdhcp, the server under test and other work share 2 cores, so drops',
    'at the higher offered rates are CPU saturation of the whole machine, not only of the server.',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(
    (md) => process.stdout.write(md + '\n'),
    (e: unknown) => {
      process.stderr.write(`bench dhcp failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
