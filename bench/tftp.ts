/**
 * TFTP benchmark (issues 4, 21): time and server CPU to fetch a 64 MiB file
 * with atftp at blksize 1468 and windowsize 1, 8 and 16 from forge, atftpd
 * (both RFC 7440), tftpd-hpa and dnsmasq (lock-step only) in the same run,
 * interleaved; then 100 atftp clients fetching one 32 MiB file at once from
 * forge and from atftpd, all checked byte-identical (sha256).
 *
 * forge (bench/tftp-serve.ts, a process of its own), atftpd (unpacked from
 * its .deb into a cache, bench/debs.ts) and tftpd-hpa listen on ephemeral
 * loopback ports; dnsmasq's TFTP
 * port is fixed at 69, so it runs in a network namespace of its own
 * (`fgtftp-<rand>`, loopback only) and its atftp runs there too. Needs root
 * for that namespace; without root the dnsmasq column is skipped.
 *
 * Run alone: `node dist/bench/tftp.js`.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { debBinary, debVersion } from './debs.js';
import { load1, procCpuMs, procSched, procUserSysMs } from './proc.js';

const SERVE = fileURLToPath(new URL('./tftp-serve.js', import.meta.url));

const MiB = 1024 * 1024;
const BIG = 64 * MiB;
const SHARED = 32 * MiB;
const CLIENTS = 100;
/** FORGE_BENCH_TFTP_WINDOWS=1,16 measures only those windowsizes; FORGE_BENCH_TFTP_PARTS=single or fanout runs one part. */
const WINDOWS = (process.env['FORGE_BENCH_TFTP_WINDOWS'] ?? '1,8,16').split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 1);
const PARTS = new Set((process.env['FORGE_BENCH_TFTP_PARTS'] ?? 'single,fanout').split(','));
const REPEATS = PARTS.has('single') ? Number(process.env['FORGE_BENCH_REPEATS'] ?? 5) : 0;
/**
 * FORGE_BENCH_TFTP_PIN: `both` (default) measures every transfer twice per repeat, unpinned and
 * pinned (the atftp client on CPU 0, every server process and thread, with tftpd-hpa's forked
 * children, on CPU 1: no site runs its clients on the server's cores); `on` or `off` one of them.
 */
const PIN_MODES = ((): ('unpinned' | 'pinned')[] => {
  const v = process.env['FORGE_BENCH_TFTP_PIN'] ?? 'both';
  if (cpus().length < 2) return ['unpinned'];
  return v === 'on' ? ['pinned'] : v === 'off' ? ['unpinned'] : ['unpinned', 'pinned'];
})();
/**
 * FORGE_BENCH_TFTP_BASELINE=LABEL=DIR[,LABEL=DIR]: also measure the engine of other builds
 * (DIR/bench/tftp-serve.js, e.g. `git archive COMMIT` built with tsc) as "forge LABEL",
 * interleaved with the rest.
 */
const BASELINES: { name: string; dir: string; env?: Record<string, string> }[] = (process.env['FORGE_BENCH_TFTP_BASELINE'] ?? '')
  .split(',')
  .filter((x) => x.includes('='))
  .map((x) => ({ name: `forge ${x.slice(0, x.indexOf('='))}`, dir: x.slice(x.indexOf('=') + 1) }));
// This build's JavaScript transfer beside its native pump (native/tftp.c), unless
// FORGE_BENCH_TFTP_JS=0: the pump's gain measured in the same run, not against an old table.
if (process.env['FORGE_BENCH_TFTP_JS'] !== '0') BASELINES.unshift({ name: 'forge js', dir: fileURLToPath(new URL('..', import.meta.url)), env: { FORGE_NATIVE_TFTP: '0' } });
/** Extra node flags for forge's process (e.g. `--cpu-prof --cpu-prof-dir=DIR`), as in the servers bench. */
const NODE_ARGS = (process.env['FORGE_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');

interface Target {
  name: string;
  port: number;
  /** The server's process (its threads and later children are pinned with it). */
  pid: number | undefined;
  /** Prefix for running the client (e.g. `ip netns exec NS`). */
  wrap: string[];
  /** CPU milliseconds the server has used so far (itself and reaped children). */
  cpu: () => number;
}

/**
 * CPU of a process and every child it forks from now on, via a transient
 * cgroup-v1 cpuacct group (tftpd-hpa forks one child per transfer and lets
 * the kernel reap it, so /proc totals miss them). Falls back to /proc.
 */
const CPUACCT = '/sys/fs/cgroup/cpuacct';
const groups: string[] = [];
function cgroupCpu(pid: number | undefined, name: string): () => number {
  if (pid === undefined) return () => NaN;
  try {
    const dir = join(CPUACCT, `${name}-${randomBytes(3).toString('hex')}`);
    mkdirSync(dir);
    groups.push(dir);
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    return () => Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8').trim()) / 1e6;
  } catch {
    return () => procCpuMs(pid);
  }
}

function removeGroups(): void {
  for (const dir of groups.splice(0)) {
    try {
      rmdirSync(dir);
    } catch {
      // still has tasks for a moment; the kernel keeps an empty group harmlessly
    }
  }
}

function sha256File(p: string): string {
  return createHash('sha256').update(readFileSync(p)).digest('hex');
}

function writeRandom(path: string, size: number): void {
  const fd = openSync(path, 'w');
  for (let off = 0; off < size; off += MiB) writeSync(fd, randomBytes(Math.min(MiB, size - off)));
  closeSync(fd);
}

function version(cmd: string, args: string[]): string {
  try {
    // Some tools print their version on stderr; merge both.
    const out = execFileSync('sh', ['-c', `"$0" "$@" 2>&1`, cmd, ...args], { encoding: 'utf8' });
    return out.split('\n')[0]?.trim() ?? '?';
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `${err.stdout ?? ''}${err.stderr ?? ''}`.split('\n')[0]?.trim() ?? '?';
  }
}

function exec(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; ms: number; stderr: string }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 * MiB }, (err, _stdout, stderr) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, ms, stderr });
    });
  });
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function atftpArgs(ws: number, remote: string, local: string, port: number): string[] {
  return ['--option', 'blksize 1468', '--option', `windowsize ${ws}`, '-g', '-r', remote, '-l', local, '127.0.0.1', String(port)];
}

/** Every thread of `pid` (and what it forks from now on) on these CPUs (taskset's list syntax). */
function pinTo(pid: number | undefined, list: string): void {
  if (pid !== undefined) execFileSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore' });
}

async function fetchOnce(t: Target, ws: number, file: string, local: string, expect: string, pin: 'pinned' | 'unpinned'): Promise<number> {
  const [cmd, ...pre] = [...(pin === 'pinned' ? ['taskset', '-c', '0'] : []), ...t.wrap, 'atftp'];
  const r = await exec(cmd as string, [...pre, ...atftpArgs(ws, file, local, t.port)], 120000);
  if (r.code !== 0) throw new Error(`${t.name} ws${ws}: atftp exit ${r.code}: ${r.stderr.trim()}`);
  if (sha256File(local) !== expect) throw new Error(`${t.name} ws${ws}: sha256 mismatch`);
  return r.ms;
}

const best = (xs: number[]): number => Math.min(...xs);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

function waitForUdp(children: ChildProcess[], ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms)).then(() => {
    for (const c of children) if (c.exitCode !== null) throw new Error(`${c.spawnfile} exited early (${c.exitCode})`);
  });
}

interface Started {
  proc: ChildProcess;
  port: number;
}

/** forge's TFTP engine in a process of its own (bench/tftp-serve.ts), so /proc shows its CPU alone. */
async function startForgeTftp(root: string, serve = SERVE, env: Record<string, string> = {}): Promise<Started & { stats: () => Promise<Record<string, number>> }> {
  const proc = spawn(process.execPath, [...NODE_ARGS, serve, root, String(CLIENTS + 10)], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  let buf = '';
  const lines: ((l: string) => void)[] = [];
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.shift()?.(l);
    }
  });
  const next = (): Promise<string> => new Promise((r) => lines.push(r));
  const first = await Promise.race([next(), new Promise<string>((_, rej) => setTimeout(() => rej(new Error('forge tftp-serve did not start')), 15000))]);
  const port = (JSON.parse(first) as { port: number }).port;
  return {
    proc,
    port,
    stats: async () => {
      const p = next();
      proc.stdin?.write('stats\n');
      return JSON.parse(await p) as Record<string, number>;
    },
  };
}

/** Lock-step only: these servers do not implement RFC 7440, so atftp falls back to lock-step at any windowsize. */
const NO_WINDOWS = new Set(['tftpd-hpa', 'dnsmasq']);
const BASELINE_NAMES = new Set(BASELINES.map((b) => b.name));

export async function run(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'fgtftp-bench-'));
  const root = join(dir, 'root');
  const outDir = join(dir, 'out');
  mkdirSync(root);
  mkdirSync(outDir);
  const children: ChildProcess[] = [];
  let ns: string | undefined;
  const lines: string[] = [];
  const loadStart = load1();
  const atftpdBin = debBinary('atftpd', 'usr/sbin/atftpd');
  let forge: Awaited<ReturnType<typeof startForgeTftp>> | undefined;
  const cleanUp = (): void => {
    removeGroups();
    if (ns !== undefined) {
      try {
        execFileSync('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // A bench stopped by `timeout` or Ctrl-C still ends its servers and removes its namespace,
  // cgroups and files (without this, a stopped run left all three behind).
  const onTerm = (): void => {
    for (const c of children) c.kill('SIGKILL');
    // tftpd-hpa's forked children (one per transfer in flight) are in its cgroup, not in `children`.
    for (const g of groups) {
      for (const pid of readFileSync(join(g, 'cgroup.procs'), 'utf8').split('\n').filter((x) => x !== '')) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    setTimeout(() => {
      cleanUp();
      process.exit(143);
    }, 1000);
  };
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onTerm);
  try {
    writeRandom(join(root, 'big.bin'), BIG);
    writeRandom(join(root, 'shared.bin'), SHARED);
    const bigSha = sha256File(join(root, 'big.bin'));
    const sharedSha = sha256File(join(root, 'shared.bin'));

    forge = await startForgeTftp(root);
    children.push(forge.proc);
    const forgePid = forge.proc.pid;
    const targets: Target[] = [{ name: 'forge', port: forge.port, pid: forgePid, wrap: [], cpu: () => procCpuMs(forgePid) }];
    for (const b of BASELINES) {
      const base = await startForgeTftp(root, join(b.dir, 'bench', 'tftp-serve.js'), b.env);
      children.push(base.proc);
      const basePid = base.proc.pid;
      targets.push({ name: b.name, port: base.port, pid: basePid, wrap: [], cpu: () => procCpuMs(basePid) });
    }

    const hpaPort = await freeUdpPort();
    const hpa = spawn('in.tftpd', ['--foreground', '--listen', '--address', `127.0.0.1:${hpaPort}`, '--secure', root], { stdio: 'ignore' });
    children.push(hpa);
    targets.push({ name: 'tftpd-hpa', port: hpaPort, pid: hpa.pid, wrap: [], cpu: cgroupCpu(hpa.pid, 'fgtftp-hpa') });

    // atftpd: one process, a thread per transfer (its /proc utime+stime covers them all).
    const atftpdPort = await freeUdpPort();
    const atftpd = spawn(
      atftpdBin,
      ['--daemon', '--no-fork', '--port', String(atftpdPort), '--bind-address', '127.0.0.1', '--user', 'root', '--group', 'root',
        '--logfile', '/dev/null', '--verbose=1', '--maxthread', String(CLIENTS + 10), root],
      { stdio: 'ignore' },
    );
    children.push(atftpd);
    const atftpdPid = atftpd.pid;
    targets.push({ name: 'atftpd', port: atftpdPort, pid: atftpdPid, wrap: [], cpu: () => procCpuMs(atftpdPid) });

    let dnsmasqNote = '';
    if (process.getuid?.() === 0) {
      ns = `fgtftp-${randomBytes(3).toString('hex')}`;
      execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const dm = spawn(
        'ip',
        ['netns', 'exec', ns, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--port=0', '--user=root', '--group=root',
          '--listen-address=127.0.0.1', '--bind-interfaces', '--enable-tftp', `--tftp-root=${root}`, `--tftp-max=${CLIENTS + 10}`,
          `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--log-facility=-', '--quiet-tftp'],
        { stdio: 'ignore' },
      );
      children.push(dm);
      // `ip netns exec` execs dnsmasq in place, so the pid is dnsmasq's.
      targets.push({ name: 'dnsmasq', port: 69, pid: dm.pid, wrap: ['ip', 'netns', 'exec', ns], cpu: cgroupCpu(dm.pid, 'fgtftp-dnsmasq') });
    } else {
      dnsmasqNote = 'dnsmasq skipped: its TFTP port is fixed at 69, and the namespace that isolates it needs root.';
    }
    await waitForUdp(children, 500);

    // Warm the page cache so the first server measured is not penalised.
    readFileSync(join(root, 'big.bin'));

    const results = new Map<string, number[]>();
    const cpuResults = new Map<string, number[]>();
    const loads: string[] = [];
    const allCpus = `0-${cpus().length - 1}`;
    for (let rep = 0; rep < REPEATS; rep++) {
      loads.push(load1());
      // Interleave servers (and pinning modes) within a repeat so background load hits them alike.
      for (const pin of PIN_MODES) {
        for (const t of targets) pinTo(t.pid, pin === 'pinned' ? '1' : allCpus);
        // Who goes first rotates per repeat: no server always runs right after the same one.
        const order = targets.map((_, i) => targets[(i + rep) % targets.length] as Target);
        for (const ws of WINDOWS) {
          for (const t of order) {
            if (ws > 1 && NO_WINDOWS.has(t.name)) continue;
            const local = join(outDir, `${t.name}-${ws}.bin`);
            const cpu0 = t.cpu();
            const ms = await fetchOnce(t, ws, 'big.bin', local, bigSha, pin);
            const cpu = t.cpu() - cpu0;
            const key = `${t.name}|${ws}|${pin}`;
            results.set(key, [...(results.get(key) ?? []), ms]);
            cpuResults.set(key, [...(cpuResults.get(key) ?? []), cpu]);
            rmSync(local, { force: true });
          }
        }
      }
    }
    // The 100-client part runs unpinned (100 clients on one CPU would measure that CPU).
    for (const t of targets) pinTo(t.pid, allCpus);
    const loadEnd = load1();

    // 100 clients at once, one 32 MiB file, from forge and from atftpd (the other server that windows), one after the other.
    const fanout: string[] = [];
    for (const t of targets.filter((x) => PARTS.has('fanout') && (x.name === 'forge' || x.name === 'atftpd' || BASELINE_NAMES.has(x.name)))) {
      const before = t.name === 'forge' ? await forge.stats() : undefined;
      // forge is one thread (plus libuv's pool): what it did with the wall time, from its schedstat.
      const sched0 = t.name === 'forge' ? procSched(forgePid) : undefined;
      const us0 = t.name === 'forge' ? procUserSysMs(forgePid) : undefined;
      const load = load1();
      const cpu0 = t.cpu();
      const t0 = process.hrtime.bigint();
      const outs = Array.from({ length: CLIENTS }, (_, i) => join(outDir, `c${i}.bin`));
      const rs = await Promise.all(outs.map((o) => exec('atftp', atftpArgs(8, 'shared.bin', o, t.port), 600000)));
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpu = t.cpu() - cpu0;
      let ok = 0;
      const errors: string[] = [];
      rs.forEach((r, i) => {
        if (r.code !== 0) errors.push(`client ${i}: exit ${r.code} ${r.stderr.trim().split('\n').pop() ?? ''}`);
        else if (sha256File(outs[i] as string) !== sharedSha) errors.push(`client ${i}: sha256 mismatch`);
        else ok++;
        rmSync(outs[i] as string, { force: true });
      });
      const clientMs = rs.map((r) => r.ms);
      let where = 'n/a';
      if (sched0 !== undefined && us0 !== undefined) {
        const sched1 = procSched(forgePid);
        const us1 = procUserSysMs(forgePid);
        where =
          `on CPU ${((sched1.runMs - sched0.runMs) / 1000).toFixed(1)} s (user ${((us1.user - us0.user) / 1000).toFixed(1)}, sys ${((us1.sys - us0.sys) / 1000).toFixed(1)}), ` +
          `runnable waiting for a CPU ${((sched1.waitMs - sched0.waitMs) / 1000).toFixed(1)} s, idle in epoll ${((wallMs - (sched1.runMs - sched0.runMs) - (sched1.waitMs - sched0.waitMs)) / 1000).toFixed(1)} s; ` +
          `context switches ${sched1.voluntary - sched0.voluntary} voluntary, ${sched1.involuntary - sched0.involuntary} preempted`;
      }
      const retrans = before !== undefined ? String(((await forge.stats())['retransmits'] ?? NaN) - (before['retransmits'] ?? NaN)) : 'n/a';
      fanout.push(
        `| ${t.name} | ${CLIENTS} | ${ok}/${CLIENTS} | ${(wallMs / 1000).toFixed(2)} s | ${((SHARED * ok) / MiB / (wallMs / 1000)).toFixed(0)} MB/s | ${(cpu / 1000).toFixed(2)} s | ${(Math.max(...clientMs) / 1000).toFixed(2)} s | ${(Math.min(...clientMs) / 1000).toFixed(2)} s | ${retrans} | ${load} | ${where} |`,
      );
      if (errors.length > 0) fanout.push(...errors.slice(0, 5).map((e) => `|  | ${t.name} failure: ${e} |`));
    }

    const fmt = (ms: number): string => (ms / 1000).toFixed(2);
    const mbs = (ms: number): string => (BIG / MiB / (ms / 1000)).toFixed(1);
    const med = (name: string, ws: number, pin: string): number => median(results.get(`${name}|${ws}|${pin}`) ?? [NaN]);
    const cpuMed = (name: string, ws: number, pin: string): number => median(cpuResults.get(`${name}|${ws}|${pin}`) ?? [NaN]);
    lines.push('## TFTP', '');
    lines.push(
      `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), shared with other work; loopback. ` +
        `Node ${process.version}; ${version('atftp', ['-V'])} client; ${version('in.tftpd', ['-V'])}; atftpd ${debVersion(atftpdBin, ['--version'], /atftp-([\d.]+)/)} ` +
        `(Debian's atftpd, unpacked with \`dpkg -x\`: it conflicts with tftpd-hpa as a package); ${version('dnsmasq', ['--version'])}. ` +
        `forge's TFTP engine runs in a process of its own (bench/tftp-serve.ts). ` +
        `1-minute load average ${loadStart} at the start and ${loadEnd} at the end; per repeat: ${loads.join(', ')} (other engineers' tests share the 2 cores).`,
      '',
    );
    for (const pin of REPEATS > 0 ? PIN_MODES : []) {
      const where =
        pin === 'pinned'
          ? 'pinned: the atftp client on CPU 0, every server (all its threads, tftpd-hpa\'s forked children) on CPU 1 (`taskset`)'
          : 'unpinned: client and server share both cores as the scheduler likes';
      lines.push(
        `### 64 MiB file, atftp \`--option "blksize 1468" --option "windowsize N"\`, ${where}: median of ${REPEATS} runs, servers interleaved within each run`,
        '',
        'Wall time in seconds (MB/s) [best run], and the server process\'s CPU (user+sys from /proc; tftpd-hpa and dnsmasq through a cpuacct cgroup, since tftpd-hpa forks per transfer) per transfer, median.',
        '',
      );
      lines.push(`| server | ${WINDOWS.map((ws) => `ws ${ws}${ws === 1 ? ' (lock-step)' : ''} | CPU ws ${ws}`).join(' | ')} |`);
      lines.push(`|---|${WINDOWS.map(() => '---|---:|').join('')}`);
      for (const t of targets) {
        const cells = WINDOWS.map((ws) => {
          if (ws > 1 && NO_WINDOWS.has(t.name)) return 'n/a: lock-step only | ';
          const m = med(t.name, ws, pin);
          return `${fmt(m)} s (${mbs(m)}) [${fmt(best(results.get(`${t.name}|${ws}|${pin}`) ?? [NaN]))}] | ${(cpuMed(t.name, ws, pin) / 1000).toFixed(2)} s`;
        });
        lines.push(`| ${t.name} | ${cells.join(' | ')} |`);
      }
      lines.push('');
      const paths = await forge.stats();
      lines.push(`forge's transfers so far: ${paths['native'] ?? 0} by the native pump (native/tftp.c), ${paths['js'] ?? 0} by the JavaScript transfer${BASELINE_NAMES.has('forge js') ? "; 'forge js' is this build with FORGE_NATIVE_TFTP=0" : ''}.`, '');
      lines.push(
        'All runs byte-identical (sha256). tftpd-hpa 5.2 and dnsmasq 2.90 do not implement RFC 7440, so they were measured lock-step only.',
      );
      lines.push('');
      for (const t of targets) {
        lines.push(
          `- ${t.name} raw (ms, wall/CPU): ${WINDOWS.filter((ws) => results.has(`${t.name}|${ws}|${pin}`))
            .map((ws) => `ws${ws} ${(results.get(`${t.name}|${ws}|${pin}`) ?? []).map((x, i) => `${x.toFixed(0)}/${(cpuResults.get(`${t.name}|${ws}|${pin}`)?.[i] ?? NaN).toFixed(0)}`).join(' ')}`)
            .join('; ')}`,
        );
      }
      const ratio = (a: number, b: number): string => `${(b / a).toFixed(2)}x`;
      const cpuS = (name: string, ws: number): string => `${(cpuMed(name, ws, pin) / 1000).toFixed(2)} s`;
      lines.push('');
      lines.push(
        `Speed relative to the rival (rival time / forge time, above 1 = forge faster), ${pin}: lock-step vs tftpd-hpa ${ratio(med('forge', 1, pin), med('tftpd-hpa', 1, pin))}, ` +
          `vs atftpd ${ratio(med('forge', 1, pin), med('atftpd', 1, pin))}, vs dnsmasq ${ratio(med('forge', 1, pin), med('dnsmasq', 1, pin))}; ` +
          `ws 8 vs atftpd ${ratio(med('forge', 8, pin), med('atftpd', 8, pin))}; ws 16 vs atftpd ${ratio(med('forge', 16, pin), med('atftpd', 16, pin))}` +
          BASELINES.map((b) => `; vs ${b.name}: ws 1 ${ratio(med('forge', 1, pin), med(b.name, 1, pin))}, ws 16 ${ratio(med('forge', 16, pin), med(b.name, 16, pin))}`).join('') +
          `. CPU per lock-step transfer: forge ${cpuS('forge', 1)}${BASELINES.map((b) => ` (${b.name} ${cpuS(b.name, 1)})`).join('')}, tftpd-hpa ${cpuS('tftpd-hpa', 1)}, atftpd ${cpuS('atftpd', 1)}; ` +
          `at ws 16: forge ${cpuS('forge', 16)}${BASELINES.map((b) => ` (${b.name} ${cpuS(b.name, 16)})`).join('')}, atftpd ${cpuS('atftpd', 16)}. ` +
          'Targets from issue 21: at least 1.0x tftpd-hpa lock-step and atftpd at ws 8 and 16.',
      );
      lines.push('');
    }
    if (REPEATS > 0) {
      lines.push(
        'What limits these figures: loopback, so a lock-step round trip is tens of microseconds and the transfer is bound by the per-datagram ' +
          'CPU cost of the server and of the atftp client (the client uses as much CPU as the server). Unpinned, client and server share 2 cores ' +
          'with the rest of the machine, and a woken client can preempt the server; pinned, each has a core of its own (shared with the other work on ' +
          'the machine). The spread between runs (raw figures) comes from that other work.',
      );
    }
    if (dnsmasqNote !== '') lines.push('', dnsmasqNote);
    if (PARTS.has('fanout')) {
      lines.push('', `### ${CLIENTS} atftp clients fetching one 32 MiB file at once (blksize 1468, windowsize 8)`, '');
      lines.push('| server | clients | completed byte-identical | wall time | aggregate | server CPU | slowest client | fastest client | retransmits | load | where forge\'s wall time went (schedstat) |');
      lines.push('|---|---|---|---|---|---|---|---|---|---|---|');
      lines.push(...fanout);
      lines.push('');
    }
    return lines.join('\n');
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onTerm);
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    cleanUp();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(
    (md) => process.stdout.write(md + '\n'),
    (e: unknown) => {
      process.stderr.write(`bench tftp failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
