/**
 * FORGE_BENCH_STORE_PARTS=validate (bench/store.ts): `forge check` and `forge validate` of
 * every object through a real `forge serve`, SQLite and PostgreSQL side by side on stores
 * loaded with the first scale's systems (default 100,000), while a DHCP client on loopback
 * asks one DHCPINFORM after another (RFC 2131 section 3.4) of the same server, and beside it a
 * TFTP client one read request after another for a one-block file (RFC 1350: RRQ -> the first
 * DATA, then its ACK ends the transfer): the answers' round trips while the work runs are what
 * "without blocking DHCP/TFTP" means. Beside the wall
 * time: forge's CPU (every thread, /proc/PID/stat, so a worker pool's second core counts)
 * and PostgreSQL's, per system. FORGE_BENCH_STORE_BINS=LABEL=PATH,...: other builds, run in
 * every round beside this one on the same stores (interleaved); their validate answers must
 * be byte-equal to this build's (the pool renders what the in-process path rendered).
 * FORGE_BENCH_STORE_ROUNDS rounds (default 1). FORGE_BENCH_NODE_ARGS: node flags for forge.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateNew } from '../server/core/validate.js';
import { MessageType, Opt, Options, decode, encode } from '../server/protocol/dhcp4/index.js';
import { openPgStore } from '../server/store/postgres.js';
import { openSqliteStore } from '../server/store/sqlite.js';
import type { Store } from '../server/store/store.js';
import { bootRequest } from '../test/lib/dhcp-request.js';
import { startPostgres, type PgCluster } from '../test/lib/postgres.js';
import { startForge, type ForgeServer } from '../test/lib/server.js';
import { ackPacket, encode as tftpEncode } from '../server/protocol/tftp/index.js';
import { freeUdpPort, UdpPeer } from '../test/lib/tftp-client.js';
import { mac, ms, pct, system } from './core.js';
import { procCpuMs, treeCpuMs } from './proc.js';

/** CPU ms of a process's main thread alone (/proc/PID/task/PID/stat utime + stime, proc(5)): what the event loop that answers DHCP spent. */
function mainThreadMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * (procCpuMs(pid) / procTicks(pid));
  } catch {
    return NaN;
  }
}

/** utime+stime+cutime+cstime ticks of a process (to turn thread ticks into ms with procCpuMs's own tick length). */
function procTicks(pid: number | undefined): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [11, 12, 13, 14].reduce((a, i) => a + Number(f[i]), 0);
}

async function load(st: Store, count: number): Promise<void> {
  await st.create('distro', validateNew('distro', { name: 'd', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed: 'debian' }));
  await st.create('profile', validateNew('profile', { name: 'p', distro: 'd', kernel_options: 'console=ttyS0' }));
  for (let i = 0; i < count; i += 5000) {
    await st.bulkCreate('system', Array.from({ length: Math.min(5000, count - i) }, (_, k) => validateNew('system', system(i + k))));
  }
}

/** One DHCPINFORM after another (2 ms apart) from the bench systems' MACs until `work` settles. */
class DhcpProbe {
  private xid = 1;
  constructor(private readonly sock: Socket, private readonly port: number, private readonly total: number) {}

  static async open(port: number, total: number): Promise<DhcpProbe> {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
    return new DhcpProbe(sock, port, total);
  }

  close(): void {
    this.sock.close();
  }

  /** One INFORM; the round trip in ms, or Infinity when no ACK came within 5 s (a lost answer). */
  inform(): Promise<number> {
    const id = this.xid++;
    const n = Math.floor(Math.random() * this.total);
    const pkt = encode(bootRequest({ mac: mac(n), xid: id, options: new Options().setUint8(Opt.MessageType, MessageType.INFORM), ciaddr: '127.0.0.1' }));
    return new Promise((resolve) => {
      const t0 = performance.now();
      const timer = setTimeout(() => {
        this.sock.off('message', on);
        resolve(Infinity);
      }, 5000);
      const on = (data: Buffer): void => {
        const p = decode(data);
        if (p.xid !== id) return;
        clearTimeout(timer);
        this.sock.off('message', on);
        if (p.options.get(Opt.MessageType)?.[0] !== MessageType.ACK) throw new Error(`INFORM ${id}: not an ACK`);
        resolve(performance.now() - t0);
      };
      this.sock.on('message', on);
      this.sock.send(pkt, this.port, '127.0.0.1');
    });
  }

  async during<T>(work: Promise<T>): Promise<{ result: T; rtts: number[] }> {
    let done = false;
    const settled = work.finally(() => (done = true));
    const rtts: number[] = [];
    while (!done) {
      const rtt = await this.inform();
      if (!done) rtts.push(rtt);
      await new Promise((r) => setTimeout(r, 2));
    }
    return { result: await settled, rtts };
  }
}

/** The file the TFTP probe reads: under 512 bytes, so its first DATA is its last (RFC 1350 section 6). */
const TFTP_PROBE_FILE = 'probe.bin';
const TFTP_PROBE_DATA = Buffer.from('forge tftp probe\n'.repeat(8));

/** One TFTP read after another (2 ms apart), each from a new port (its own TID, RFC 1350 section 4), until `work` settles. */
class TftpProbe {
  constructor(private readonly port: number) {}

  /** RRQ -> first DATA in ms (the DATA checked and ACKed), or Infinity when none came within 5 s. */
  async read(): Promise<number> {
    const peer = await UdpPeer.open();
    try {
      const t0 = performance.now();
      peer.send(tftpEncode({ op: 'RRQ', filename: TFTP_PROBE_FILE, mode: 'octet', options: [] }), this.port);
      const r = await peer.next(5000);
      if (r === undefined) return Infinity;
      const rtt = performance.now() - t0;
      if (r.packet.op !== 'DATA' || r.packet.block !== 1 || !Buffer.from(r.packet.data).equals(TFTP_PROBE_DATA)) throw new Error(`TFTP probe: not the file's DATA: ${JSON.stringify(r.packet).slice(0, 200)}`);
      await peer.sendAsync(ackPacket(1), r.port);
      return rtt;
    } finally {
      peer.close();
    }
  }

  async during<T>(work: Promise<T>): Promise<number[]> {
    let done = false;
    void work.finally(() => (done = true)).catch(() => undefined);
    const rtts: number[] = [];
    while (!done) {
      const rtt = await this.read();
      if (!done) rtts.push(rtt);
      await new Promise((r) => setTimeout(r, 2));
    }
    return rtts;
  }
}

export async function validateOnly(scale: number): Promise<string[]> {
  const rounds = Number(process.env['FORGE_BENCH_STORE_ROUNDS'] ?? 1);
  const nodeArgs = (process.env['FORGE_BENCH_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  // FORGE_BENCH_VALIDATE_WORKERS=auto,2,0: this build once per validate_workers value (default: its default only).
  const workers = (process.env['FORGE_BENCH_VALIDATE_WORKERS'] ?? '').split(',').filter((w) => w !== '');
  const bins: { label: string; bin?: string; args: string[]; env?: NodeJS.ProcessEnv }[] = [
    ...(workers.length === 0 ? [{ label: 'this build', args: [] }] : workers.map((w) => ({ label: `this build, validate_workers ${w}`, args: ['--validate-workers', w] }))),
    ...(process.env['FORGE_BENCH_STORE_BINS'] ?? '').split(',').filter((b) => b.includes('=')).map((b) => ({ label: b.slice(0, b.indexOf('=')), bin: b.slice(b.indexOf('=') + 1), args: [] })),
  ];
  // Experiments only: FORGE_BENCH_VALIDATE_ENV=LABEL:K=V;... adds this build with that environment.
  for (const e of (process.env['FORGE_BENCH_VALIDATE_ENV'] ?? '').split(';').filter((x) => x.includes(':'))) {
    const [label, kv] = [e.slice(0, e.indexOf(':')), e.slice(e.indexOf(':') + 1)];
    bins.push({ label, args: [], env: { ...process.env, [kv.slice(0, kv.indexOf('='))]: kv.slice(kv.indexOf('=') + 1) } });
  }
  const rows: string[] = [];
  const cluster: PgCluster = (await startPostgres(undefined, { fsync: true }))!;
  const stores: { backend: 'SQLite' | 'PostgreSQL'; dir: string; url: string }[] = [];
  const answers = new Map<string, string>();
  try {
    for (const backend of ['SQLite', 'PostgreSQL'] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'forge-bench-validate-'));
      const url = backend === 'PostgreSQL' ? await cluster.createDatabase('bench') : '';
      const st = backend === 'SQLite' ? openSqliteStore(dir) : await openPgStore(url);
      const t0 = performance.now();
      try {
        await load(st, scale);
      } finally {
        await st.close();
      }
      process.stderr.write(`  loaded ${scale} into ${backend} in ${ms(performance.now() - t0)}\n`);
      stores.push({ backend, dir, url });
    }
    for (let round = 1; round <= rounds; round++) {
      for (const s of stores) for (const b of bins) {
        const port = await freeUdpPort();
        const tftpPort = await freeUdpPort();
        const tftpRoot = mkdtempSync(join(tmpdir(), 'forge-bench-validate-tftp-'));
        writeFileSync(join(tftpRoot, TFTP_PROBE_FILE), TFTP_PROBE_DATA);
        const srv: ForgeServer = await startForge({
          tftp: true,
          ...(s.backend === 'SQLite' ? { dataDir: s.dir } : {}),
          args: [
            ...(s.backend === 'PostgreSQL' ? ['--store', s.url] : []),
            '--dhcp-mode', 'managed', '--dhcp-subnet', '127.0.0.0/8', '--dhcp-range', '127.0.0.100,127.0.0.200',
            '--dhcp-port', String(port), '--dhcp-listen', '127.0.0.1', '--dhcp-probe-seconds', '0', '--dhcp-proxy-port', '0',
            '--tftp-listen', '127.0.0.1', '--tftp-port', String(tftpPort), '--tftp-root', tftpRoot,
            ...b.args,
          ],
          ...(b.env === undefined ? {} : { env: b.env }),
          nodeArgs,
          timeoutMs: 600_000,
          ...(b.bin === undefined ? {} : { bin: b.bin }),
        });
        const probe = await DhcpProbe.open(port, scale);
        const tftp = new TftpProbe(tftpPort);
        try {
          const idle: number[] = [];
          const idleTftp: number[] = [];
          for (let i = 0; i < 200; i++) {
            idle.push(await probe.inform());
            idleTftp.push(await tftp.read());
          }
          for (const [what, path] of [['`forge check`', '/api/v1/check'], ['`forge validate`', '/api/v1/validate']] as const) {
            const f0 = procCpuMs(srv.proc.pid);
            const m0 = mainThreadMs(srv.proc.pid);
            const p0 = s.backend === 'PostgreSQL' ? treeCpuMs(cluster.pid()) : 0;
            const t0 = performance.now();
            const work = srv.api('GET', path);
            const [{ result: r, rtts }, trtts] = await Promise.all([probe.during(work), tftp.during(work)]);
            const wall = performance.now() - t0;
            const forgeMs = procCpuMs(srv.proc.pid) - f0;
            const mainMs = mainThreadMs(srv.proc.pid) - m0;
            const pgMs = s.backend === 'PostgreSQL' ? treeCpuMs(cluster.pid()) - p0 : 0;
            if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
            const body = JSON.stringify(r.body);
            if (path === '/api/v1/validate') {
              const checked = (r.body as { checked?: number }).checked;
              if (checked !== scale + 1) throw new Error(`validate checked ${String(checked)}, not ${scale + 1}`);
              // Every build answers the same on the same store (the pool renders what the in-process path did).
              const first = answers.get(s.backend);
              if (first === undefined) answers.set(s.backend, body);
              else if (first !== body) throw new Error(`${b.label} on ${s.backend}: validate answer differs from the first build's (${body.length} vs ${first.length} bytes)`);
            }
            const lost = rtts.filter((x) => x === Infinity).length;
            const tlost = trtts.filter((x) => x === Infinity).length;
            const per = (x: number): string => ((x / scale) * 1000).toFixed(0);
            const line = `| ${round} | ${b.label} | ${s.backend} | ${what} | ${(wall / 1000).toFixed(1)} s | ${(forgeMs / 1000).toFixed(1)} s = ${per(forgeMs)} µs | ${per(mainMs)} µs | ${s.backend === 'PostgreSQL' ? `${(pgMs / 1000).toFixed(1)} s = ${per(pgMs)} µs` : '(in forge)'} | ${rtts.length.toLocaleString('en')}${lost > 0 ? ` (${lost} lost)` : ''} | ${ms(pct(rtts, 50))} | ${ms(pct(rtts, 99))} | ${ms(Math.max(...rtts))} | ${ms(pct(idle, 99))} | ${trtts.length.toLocaleString('en')}${tlost > 0 ? ` (${tlost} lost)` : ''} | ${ms(pct(trtts, 50))} | ${ms(pct(trtts, 99))} | ${ms(Math.max(...trtts))} | ${ms(pct(idleTftp, 99))} | ${loadavg()[0]!.toFixed(1)} |`;
            rows.push(line);
            process.stderr.write(`  ${line}\n`);
          }
        } finally {
          probe.close();
          await srv.stop(s.backend === 'SQLite' ? { keepData: true } : {});
          rmSync(tftpRoot, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await cluster.stop();
    for (const s of stores) rmSync(s.dir, { recursive: true, force: true });
  }
  return [
    `## store: \`forge check\` and \`forge validate\` of ${scale.toLocaleString('en')} systems, SQLite and PostgreSQL, with DHCP and TFTP answered meanwhile`,
    '',
    'Through a real `forge serve` (GET /api/v1/check, /api/v1/validate) on a loaded store; meanwhile, side by side, one DHCPINFORM after another (2 ms apart) and one TFTP read after another (RRQ for a 136-byte file -> its DATA, then the ACK; a new port each) to the same server on loopback. CPU per system from /proc/PID/stat (forge: every thread; PostgreSQL: postmaster and backends). "idle p99": 200 INFORMs and 200 TFTP reads before the work. Builds on one store give byte-equal validate answers (checked by the bench).',
    '',
    '| round | build | store | what | wall | forge CPU (per system) | of it, forge\'s main thread | PostgreSQL CPU (per system) | DHCP answers meanwhile | p50 | p99 | max | idle p99 | TFTP reads answered meanwhile (RRQ -> DATA) | p50 | p99 | max | idle p99 | load |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ];
}
