/**
 * 1,000 simulated PXE clients at once (issue 21): time until every client has its initrd,
 * forge alone vs dnsmasq (DHCP + TFTP) + nginx (HTTP), serving the same files, in one run,
 * interleaved and repeated:
 *
 *   1. DHCP: perfdhcp as a relay, N DORA exchanges from N simulated MACs;
 *   2. loader: N atftp clients fetch pxelinux.0 (blksize 1468, lock-step as PXE ROMs do),
 *      at most CONC at once (process spawning on 2 cores is the limit beyond that);
 *   3. kernel + initrd: N HTTP clients at once, one keep-alive connection each, kernel then
 *      initrd (Debian 12's installer linux + initrd.gz), as iPXE fetches them.
 *
 * All in network namespaces (test/lib/netns.ts): the servers on a bridge at 10.98.0.1/16, the
 * clients in a namespace at 10.98.0.2/16. nginx is Debian's, unpacked from its .deb into the
 * bench cache (bench/debs.ts) so that no system-wide web server is installed or started.
 * Run alone: `node dist/bench/pxe.js` (PXE_BENCH_CLIENTS, PXE_BENCH_REPEATS).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createLan, type Host, type Lan, type LanClient } from '../test/lib/netns.js';
import { startForgeIn } from '../test/lib/boot-lab.js';
import { debBinary, debVersion } from './debs.js';
import { load1, procCpuMs } from './proc.js';

const DI = '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64';
const KERNEL = join(DI, 'linux');
const INITRD = join(DI, 'initrd.gz');
const PXELINUX = '/usr/lib/PXELINUX/pxelinux.0';
const CLIENT = fileURLToPath(new URL('./pxe-client.js', import.meta.url));
const N = Math.max(1, Number(process.env['PXE_BENCH_CLIENTS'] ?? 1000));
const REPEATS = Math.max(1, Number(process.env['PXE_BENCH_REPEATS'] ?? 2));
const TFTP_CONC = 200;
/**
 * The HTTP phase's own limit (PXE_BENCH_HTTP_LIMIT_S): the client then reports who finished and
 * counts the rest as not finished, so the run always yields its table. At 500 clients and load 22
 * the phase took 393-435 s; 1,000 clients move twice the bytes through the same 2 cores.
 */
const HTTP_LIMIT_S = Math.max(60, Number(process.env['PXE_BENCH_HTTP_LIMIT_S'] ?? 1800));
const SERVER = '10.98.0.1';
/**
 * The simulated clients' TCP receive buffer (net.ipv4.tcp_rmem of their namespace: min default max),
 * PXE_BENCH_CLIENT_RMEM, or `host` for the host's own. Default: at most 256 KiB, the largest window
 * iPXE advertises (src/include/ipxe/tcp.h TCP_MAX_WINDOW_SIZE). 1,000 real clients each hold their
 * own window in their own memory; 1,000 Linux sockets in one namespace autotune theirs up to
 * tcp_rmem's 32 MiB, and all of it counts against the one host's tcp_mem, which both servers' send
 * queues share: above it the kernel drops and prunes received segments and both ends wait out
 * retransmission timeouts (the first counters table shows it when set to `host`).
 */
const CLIENT_RMEM = process.env['PXE_BENCH_CLIENT_RMEM'] ?? '4096 131072 262144';
/** PXE_BENCH_PHASES=dhcp,tftp,http (default all) and PXE_BENCH_SERVERS=forge,rival (default both): reproduce one phase alone. */
const PHASES = new Set((process.env['PXE_BENCH_PHASES'] ?? 'dhcp,tftp,http').split(','));
const SERVERS = new Set((process.env['PXE_BENCH_SERVERS'] ?? 'forge,rival').split(','));
const NONE = { stdout: '', stderr: '', code: 0 };

interface Outcome {
  done: number[];
  bytes: number;
  failures: string[];
}

interface Run {
  server: 'forge' | 'dnsmasq + nginx';
  repeat: number;
  load: string;
  dhcpMs: number;
  acks: number;
  tftpMs: number;
  tftpOk: number;
  httpMs: number;
  httpOk: number;
  httpBytes: number;
  /** When the last client that got its initrd had it (ms into the HTTP phase). */
  httpLastMs: number;
  cpuMs: number;
  /** The HTTP phase's TCP story: counters of the server's and the clients' namespaces, the accept queue. */
  tcp: { server: Counters; client: Counters; maxQueue: number; backlog: number; maxMemPages: number };
  failures: string[];
}

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** CPU of a process and its direct children (nginx's workers), from /proc. */
function treeCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  let kids: number[] = [];
  try {
    kids = readdirSync(`/proc/${pid}/task`).flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    /* gone */
  }
  return procCpuMs(pid) + kids.reduce((a, k) => a + (procCpuMs(k) || 0), 0);
}

/** Failures counted by kind ("initrd: socket hang up: 7"), the numbers (client, seconds) taken out. */
function kinds(failures: string[]): string[] {
  const n = new Map<string, number>();
  for (const f of failures) {
    const k = f.replace(/^client \d+: /, '').replace(/ \(kernel done at [\d.]+ s\)/, '').replace(/ at [\d.]+ s( \((connected at [\d.]+ s|never connected)\))?$/, '');
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n].map(([k, c]) => `${c} x ${k}`);
}

/**
 * TCP counters of a namespace (nstat -as: absolute, history untouched; the MIBs are per network
 * namespace, so the server's and the clients' are apart). The accept queue's story: a SYN or a
 * handshake's last ACK dropped because the listener's queue was full (TcpExtListenOverflows,
 * TcpExtListenDrops), SYN cookies, and the retransmissions that followed.
 */
const TCP_COUNTERS = [
  'TcpExtListenOverflows', 'TcpExtListenDrops', 'TcpExtSyncookiesSent', 'TcpExtTCPSynRetrans', 'TcpRetransSegs', 'TcpExtTCPTimeouts',
  // TCP memory (net.ipv4.tcp_mem, one limit for the whole host): pressure entered, and segments a receiver dropped or pruned for it.
  'TcpExtTCPMemoryPressures', 'TcpExtTCPRcvQDrop', 'TcpExtPruneCalled', 'TcpExtTCPOFODrop',
] as const;
type Counters = Record<(typeof TCP_COUNTERS)[number], number>;

async function tcpCounters(host: Host): Promise<Counters> {
  const r = await host.exec('nstat', ['-asz', ...TCP_COUNTERS], { timeoutMs: 10_000 });
  const c = Object.fromEntries(TCP_COUNTERS.map((k) => [k, NaN])) as Counters;
  for (const m of r.stdout.matchAll(/^(\w+)\s+(\d+)/gm)) if ((TCP_COUNTERS as readonly string[]).includes(m[1]!)) c[m[1] as keyof Counters] = Number(m[2]);
  return c;
}

function counterDelta(a: Counters, b: Counters): Counters {
  return Object.fromEntries(TCP_COUNTERS.map((k) => [k, b[k] - a[k]])) as Counters;
}

/**
 * Samples the HTTP listener's accept queue in `host` every 200 ms (ss: Recv-Q of a LISTEN socket
 * is the queue of completed handshakes not yet accepted, Send-Q its backlog), and the host's TCP
 * memory in pages (/proc/net/sockstat `mem`: one count for the whole host, against tcp_mem): the
 * deepest queue, the backlog and the most TCP memory seen, when stopped.
 */
function listenQueue(host: Host, port: number): { stop: () => Promise<{ maxQueue: number; backlog: number; maxMemPages: number }> } {
  const p = host.spawn('sh', ['-c', `while :; do ss -ltnH 'sport = :${port}'; grep '^TCP:' /proc/net/sockstat; sleep 0.2; done`]);
  let maxQueue = 0;
  let backlog = NaN;
  let maxMemPages = 0;
  let buf = '';
  p.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      const mem = /^TCP:.* mem (\d+)/.exec(l);
      if (mem !== null) maxMemPages = Math.max(maxMemPages, Number(mem[1]));
      const m = /^LISTEN\s+(\d+)\s+(\d+)/.exec(l);
      if (m === null) continue;
      maxQueue = Math.max(maxQueue, Number(m[1]));
      backlog = Number(m[2]);
    }
  });
  return {
    stop: async () => {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
      return { maxQueue, backlog, maxMemPages };
    },
  };
}

/** net.ipv4.tcp_mem (pages: below, pressure, hard limit), as the table cites it. */
function tcpMem(): string {
  try {
    const [low, pressure, max] = readFileSync('/proc/sys/net/ipv4/tcp_mem', 'utf8').trim().split(/\s+/);
    return `${pressure ?? '?'} and ${max ?? '?'}; below ${low ?? '?'} no pressure`;
  } catch {
    return 'unreadable';
  }
}

/** A client's JSON line; a phase left out (PXE_BENCH_PHASES) has none and no failure, a client that died has none and one. */
function outcome(phase: string, stdout: string): Outcome {
  if (stdout.trim() !== '') return JSON.parse(stdout.trim()) as Outcome;
  return { done: [], bytes: 0, failures: PHASES.has(phase) ? ['no output'] : [] };
}

/** Runs a client in `host`, its progress (stderr) shown live, its stdout collected. */
function execLive(host: LanClient, cmd: string, args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const p = host.spawn(cmd, args);
    let stdout = '';
    let stderr = '';
    p.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
      process.stderr.write(d);
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
  });
}

async function phases(host: Host, client: LanClient, server: Run['server'], repeat: number, tftpFile: string, kernelPath: string, initrdPath: string, cpu: () => number): Promise<Run> {
  const load = load1();
  const cpu0 = cpu();
  let t = performance.now();
  const d = !PHASES.has('dhcp') ? NONE : await client.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', '2000', '-R', String(N), '-n', String(N), '-W', '1000000', SERVER], { timeoutMs: 120_000 });
  const dhcpMs = performance.now() - t;
  const acks = Number([...d.stdout.matchAll(/received packets: (\d+)/g)][1]?.[1] ?? NaN);
  if (process.env['PXE_BENCH_DEBUG'] !== undefined) process.stderr.write(`perfdhcp ${d.code}: ${d.stdout}\n${d.stderr}\n`);
  t = performance.now();
  const tf = !PHASES.has('tftp') ? NONE : await client.exec(process.execPath, [CLIENT, 'tftp', SERVER, tftpFile, String(N), String(TFTP_CONC)], { timeoutMs: 600_000 });
  const tftpMs = performance.now() - t;
  const to = outcome('tftp', tf.stdout);
  const [srv0, cli0] = [await tcpCounters(host), await tcpCounters(client)];
  const queue = listenQueue(host, 8080);
  t = performance.now();
  const ht = !PHASES.has('http') ? NONE : await execLive(client, process.execPath, [CLIENT, 'http', `http://${SERVER}:8080`, kernelPath, initrdPath, String(N), String(HTTP_LIMIT_S)], (HTTP_LIMIT_S + 120) * 1000);
  const httpMs = performance.now() - t;
  const q = await queue.stop();
  const tcp = { server: counterDelta(srv0, await tcpCounters(host)), client: counterDelta(cli0, await tcpCounters(client)), ...q };
  if (process.env['PXE_BENCH_DEBUG'] !== undefined) process.stderr.write(`tftp: ${tf.stdout.slice(0, 300)} ${tf.stderr.slice(0, 300)}\nhttp: ${ht.stdout.slice(0, 300)} ${ht.stderr.slice(0, 300)}\n`);
  const ho = outcome('http', ht.stdout);
  return {
    server,
    repeat,
    load,
    dhcpMs,
    acks,
    tftpMs,
    tftpOk: to.done.length,
    httpMs,
    httpOk: ho.done.length,
    httpBytes: ho.bytes,
    httpLastMs: ho.done.length > 0 ? Math.max(...ho.done) : NaN,
    cpuMs: cpu() - cpu0,
    tcp,
    failures: [...kinds([...to.failures, ...ho.failures]), ...[...to.failures, ...ho.failures].slice(0, 5)],
  };
}

async function forgeRun(lan: Lan, client: LanClient, dir: string, repeat: number): Promise<Run> {
  const data = join(dir, `forge-${repeat}`);
  const forge = await startForgeIn(lan, data, [
    '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/16', '--dhcp-range', '10.98.1.0,10.98.80.255', '--dhcp-router', SERVER,
    '--dhcp-probe-seconds', '0', '--tftp-port', '69', '--tftp-max-transfers', String(N + 10), '--tftp-max-per-client', String(N + 10),
    '--log-level', 'warn',
  ]);
  try {
    const ok = async (m: string, p: string, b: unknown): Promise<void> => {
      const r = await forge.api(m, p, b);
      if (r.status >= 300) throw new Error(`${m} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
    };
    await ok('POST', '/api/v1/distros', { name: 'd12', kernel: KERNEL, initrd: INITRD, arch: 'x86_64', breed: 'debian' });
    return await phases(lan, client, 'forge', repeat, 'pxelinux.0', '/boot/distro/d12/kernel', '/boot/distro/d12/initrd', () => procCpuMs(forge.proc.pid));
  } finally {
    await forge.stop();
  }
}

async function rivalRun(lan: Lan, client: LanClient, dir: string, repeat: number, nginxBin: string): Promise<Run> {
  const root = join(dir, 'root');
  if (!existsSync(root)) {
    mkdirSync(root, { recursive: true });
    symlinkSync(PXELINUX, join(root, 'pxelinux.0'));
    symlinkSync(KERNEL, join(root, 'linux'));
    symlinkSync(INITRD, join(root, 'initrd.gz'));
  }
  const ng = join(dir, `nginx-${repeat}`);
  mkdirSync(ng, { recursive: true });
  // Debian's defaults that matter for static files (sendfile, tcp_nopush, keep-alive), auto workers; no access log.
  writeFileSync(
    join(ng, 'nginx.conf'),
    `user root; worker_processes auto; daemon off; pid ${ng}/nginx.pid; error_log ${ng}/error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_timeout 65; default_type application/octet-stream;
  client_body_temp_path ${ng}/body; proxy_temp_path ${ng}/proxy; fastcgi_temp_path ${ng}/fcgi; uwsgi_temp_path ${ng}/uwsgi; scgi_temp_path ${ng}/scgi;
  server { listen ${SERVER}:8080; root ${root}; } }
`,
  );
  const nginx = lan.spawn(nginxBin, ['-p', ng, '-e', `${ng}/error.log`, '-c', join(ng, 'nginx.conf')]);
  const dns = lan.spawn('dnsmasq', [
    '--keep-in-foreground', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--interface=br0', '--bind-interfaces', '--user=root',
    '--dhcp-range=10.98.1.0,10.98.80.255,255.255.0.0,1h', '--dhcp-option=3,10.98.0.1', '--dhcp-lease-max=100000', '--leasefile-ro',
    '--dhcp-authoritative', '--no-ping', '--quiet-dhcp', '--enable-tftp', `--tftp-root=${root}`, `--tftp-max=${N + 10}`, '--quiet-tftp',
    '--dhcp-boot=pxelinux.0,,10.98.0.1', '--log-facility=-',
  ]);
  let out = '';
  dns.stderr?.on('data', (x: Buffer) => (out += x.toString()));
  dns.stdout?.on('data', (x: Buffer) => (out += x.toString()));
  try {
    await waitFor(() => /started, version/.test(out) || dns.exitCode !== null, 10_000, `dnsmasq:\n${out}`);
    await waitFor(() => existsSync(`${ng}/nginx.pid`) || nginx.exitCode !== null, 10_000, 'nginx');
    if (dns.exitCode !== null || nginx.exitCode !== null) throw new Error(`dnsmasq or nginx exited:\n${out}\n${readFileSync(`${ng}/error.log`, 'utf8')}`);
    await new Promise((r) => setTimeout(r, 300));
    return await phases(lan, client, 'dnsmasq + nginx', repeat, 'pxelinux.0', '/linux', '/initrd.gz', () => procCpuMs(dns.pid) + treeCpuMs(nginx.pid));
  } finally {
    for (const p of [dns, nginx] as ChildProcess[]) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    }
  }
}

export async function run(): Promise<string> {
  const nginxBin = debBinary('nginx', 'usr/sbin/nginx');
  const dir = mkdtempSync(join(tmpdir(), 'fgpxe-bench-'));
  const lan = await createLan('fgpxe', { serverIp: SERVER, prefixLen: 16 });
  const runs: Run[] = [];
  const loadStart = load1();
  try {
    const client = await lan.addClient();
    await client.must('ip', ['addr', 'add', '10.98.0.2/16', 'dev', 'eth0']);
    if (CLIENT_RMEM !== 'host') await client.must('sysctl', ['-q', '-w', `net.ipv4.tcp_rmem=${CLIENT_RMEM}`]);
    for (let r = 1; r <= REPEATS; r++) {
      // Alternate who goes first, so neither always runs on the warmer (or busier) machine.
      const order = r % 2 === 1 ? ['forge', 'rival'] : ['rival', 'forge'];
      for (const who of order.filter((w) => SERVERS.has(w))) runs.push(who === 'forge' ? await forgeRun(lan, client, dir, r) : await rivalRun(lan, client, dir, r, nginxBin));
    }
  } finally {
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  const total = (x: Run): number => x.dhcpMs + x.tftpMs + x.httpMs;
  const rows = runs.map(
    (x) =>
      `| ${x.repeat} | ${x.server} | ${s(x.dhcpMs)} (${x.acks} ACKs) | ${s(x.tftpMs)} (${x.tftpOk}/${N}) | ${s(x.httpMs)} (${x.httpOk}/${N}, ${(x.httpBytes / 2 ** 30).toFixed(1)} GiB; last initrd at ${s(x.httpLastMs)}) | **${s(total(x))}** | ${s(x.cpuMs)} (${(x.cpuMs / N).toFixed(1)} ms per client) | ${x.load} |`,
  );
  const perRepeat = Array.from({ length: REPEATS }, (_, i) => {
    const f = runs.find((x) => x.repeat === i + 1 && x.server === 'forge');
    const d = runs.find((x) => x.repeat === i + 1 && x.server !== 'forge');
    return f !== undefined && d !== undefined ? `${(total(d) / total(f)).toFixed(2)}x` : 'n/a';
  });
  const fails = runs.filter((x) => x.failures.length > 0).map((x) => `- ${x.server}, repeat ${x.repeat}: ${x.failures.join('; ')}`);
  const ksize = (readFileSync(KERNEL).length / 2 ** 20).toFixed(1);
  const isize = (readFileSync(INITRD).length / 2 ** 20).toFixed(1);
  return [
    `## ${N.toLocaleString('en')} PXE clients at once: time until all have their initrd`,
    '',
    `forge alone vs dnsmasq ${debVersion('dnsmasq', ['--version'], /Dnsmasq version ([\d.]+)/)} (DHCP + TFTP) + nginx ${debVersion(nginxBin, ['-v'], /nginx\/([\d.]+)/)} (Debian's, HTTP),`,
    `the same files: pxelinux.0, Debian 12 installer kernel (${ksize} MiB) and initrd.gz (${isize} MiB). Simulated clients in a network namespace, in three phases:`,
    `DHCP (perfdhcp as a relay, ${N.toLocaleString('en')} DORA exchanges offered at 2,000/s, plus its 1 s wait for late answers), the loader over TFTP (${N.toLocaleString('en')} atftp clients, blksize 1468, lock-step, at most ${TFTP_CONC} at once),`,
    `then kernel + initrd over HTTP (${N.toLocaleString('en')} clients at once, one keep-alive connection each). forge's TFTP limits are raised to ${N + 10} transfers`,
    `(all simulated clients share one address, and forge's default per-address cap is 8); dnsmasq's --tftp-max likewise. ${REPEATS} repeats, the order alternating.`,
    `The HTTP phase stops itself after ${HTTP_LIMIT_S} s (clients not done by then are listed as not finished).`,
    `Load average at the start: ${loadStart}.`,
    '',
    '| repeat | server | DHCP (s) | loader over TFTP (s) | kernel + initrd over HTTP (s) | total (s) | server CPU (s) | load |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `dnsmasq + nginx time / forge time, per repeat: ${perRepeat.join(', ')} (above 1: forge faster). Target from issue 21: forge at least as fast.`,
    '',
    'The HTTP phase over TCP: the listener\'s accept queue (ss, sampled every 200 ms: the deepest queue of connections not yet accepted,',
    'and the backlog), the host\'s TCP memory at its highest (/proc/net/sockstat, pages, against tcp_mem\'s pressure and hard limits',
    `${tcpMem()}), and the counters of the server\'s and the clients\' namespaces (nstat) over the phase: handshakes dropped because the`,
    'accept queue was full (ListenOverflows, ListenDrops), SYN cookies, SYNs resent, segments retransmitted and retransmission timeouts',
    `(RTO), TCP memory pressure entered, and received segments dropped or pruned for memory. Clients\' tcp_rmem: ${CLIENT_RMEM === 'host' ? "the host's" : `${CLIENT_RMEM} (min default max bytes)`}.`,
    '',
    '| repeat | server | accept queue deepest / backlog | listen overflows, drops | SYN cookies, SYNs resent | TCP memory at most (pages) | server: retransmitted, RTOs, memory pressure | clients: memory pressure, receive drops (queue, out of order), prunes |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
    ...runs.map((x) => {
      const [sv, cl] = [x.tcp.server, x.tcp.client];
      return `| ${x.repeat} | ${x.server} | ${x.tcp.maxQueue} / ${x.tcp.backlog} | ${sv.TcpExtListenOverflows}, ${sv.TcpExtListenDrops} | ${sv.TcpExtSyncookiesSent}, ${cl.TcpExtTCPSynRetrans} | ${x.tcp.maxMemPages} | ${sv.TcpRetransSegs}, ${sv.TcpExtTCPTimeouts}, ${sv.TcpExtTCPMemoryPressures} | ${cl.TcpExtTCPMemoryPressures}, ${cl.TcpExtTCPRcvQDrop} + ${cl.TcpExtTCPOFODrop}, ${cl.TcpExtPruneCalled} |`;
    }),
    ...(fails.length > 0 ? ['', 'Failures (first five per run):', ...fails] : []),
    '',
    'What limits this figure: the clients (perfdhcp, up to 200 atftp processes, one Node process holding 1,000 HTTP',
    'connections) run on the same 2 cores as the server, and the HTTP phase moves about 50 GiB through loopback, so',
    'the client side uses as much CPU as the server; the DHCP phase is bound by the offered rate, not the server.',
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(
    (md) => process.stdout.write(md + '\n'),
    (e: unknown) => {
      process.stderr.write(`bench pxe failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
