/**
 * forge's IPv6 router advertisement (services/ra.ts) on the wire, read by the other side's tools:
 * ndisc6's rdisc6 solicits and decodes the RA, tcpdump's ICMPv6 decoder shows the IP hop limit,
 * the destination and the options, and radvd's own configtest parses what forge wrote.
 *
 * Started the README's way (managed mode, the default probe, no ipv6 flag): a client on the
 * bridge gets one RA per solicitation, unicast, hop limit 255, router lifetime 0, no M/O flag, no
 * prefix. Nothing answers with --ipv6-ra off, nor in proxy mode (the site owns that network), and
 * radvd ends with forge: on stop, and when forge is SIGKILLed (setpriv --pdeathsig). radvd runs as
 * Debian's radvd user with CAP_NET_RAW only, and `forge status` (GET /api/v1/status) shows the
 * link's RA state.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { createLan, must, type Lan, type LanClient } from '../lib/netns.js';
import { FORGE_BIN } from '../lib/server.js';
import type { RaStatus, StatusAnswer } from '../../server/api/types.js';

async function waitFor(out: () => string, re: RegExp, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(out())) {
    if (Date.now() > end) throw new Error(`${what}: not seen in ${ms} ms:\n${out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Forge {
  proc: ChildProcess;
  out: () => string;
  dir: string;
}

const HTTP_PORT = '8097';

async function serve(lan: Lan, extra: string[]): Promise<Forge> {
  const dir = mkdtempSync(join(tmpdir(), 'fgra-'));
  const proc = lan.spawn(process.execPath, [FORGE_BIN, 'serve', '--data-dir', dir, '--tftp-enabled', 'false', '--http-port', HTTP_PORT, ...extra]);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(() => out, /forge ready:|exited/, 30_000, 'forge ready');
  assert.match(out, /forge ready:/);
  return { proc, out: () => out, dir };
}

async function stop(f: Forge): Promise<void> {
  if (f.proc.exitCode === null) {
    const gone = new Promise((r) => f.proc.once('exit', r));
    f.proc.kill('SIGTERM');
    await gone;
  }
  rmSync(f.dir, { recursive: true, force: true });
}

/** rdisc6 (3 solicitations, 1.5 s each) with tcpdump decoding ICMPv6 on the client's link meanwhile. */
async function solicit(c: LanClient): Promise<{ rdisc: string; code: number | null; wire: string }> {
  const dump = c.spawn('tcpdump', ['-i', c.ifname, '-n', '-l', '-vv', 'icmp6']);
  let wire = '';
  let err = '';
  dump.stdout?.on('data', (d: Buffer) => (wire += d.toString()));
  dump.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => err, /listening on/, 15_000, 'tcpdump listening');
  const r = await c.exec('rdisc6', ['-1', '-r', '3', '-w', '1500', c.ifname], { timeoutMs: 20_000 });
  // Let the capture print the last packets.
  await new Promise((res) => setTimeout(res, 500));
  const gone = new Promise((res) => dump.once('exit', res));
  dump.kill('SIGINT');
  await gone;
  return { rdisc: r.stdout + r.stderr, code: r.code, wire };
}

interface RadvdProc {
  pid: string;
  cmdline: string[];
  ppid: string;
  uid: string;
  capEff: string;
}

/** The radvd processes in the LAN's namespace (the host's view: /proc of each pid). */
async function radvds(lan: Lan): Promise<RadvdProc[]> {
  const pids = (await must('ip', ['netns', 'pids', lan.ns])).split(/\s+/).filter((x) => x !== '');
  const out: RadvdProc[] = [];
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'radvd') continue;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      out.push({
        pid,
        cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'),
        ppid: /^PPid:\s+(\d+)/m.exec(status)?.[1] ?? '',
        uid: /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? '',
        capEff: /^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? '',
      });
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

/** radvd's main processes (each forks a privsep helper, radvd.c main). */
const mains = (ps: RadvdProc[]): RadvdProc[] => ps.filter((p) => !ps.some((q) => q.pid === p.ppid));

/** GET /api/v1/status's RA part, from inside the namespace. */
async function raStatus(lan: Lan): Promise<RaStatus | undefined> {
  const st = await lan.must(process.execPath, ['-e', `fetch('http://10.98.0.1:${HTTP_PORT}/api/v1/status').then((r) => r.text()).then((t) => console.log(t))`]);
  return (JSON.parse(st) as StatusAnswer).ipv6_ra;
}

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** tcpdump -vv lines, one entry per packet (continuation lines start with whitespace). */
const packets = (wire: string): string[] => wire.split(/\n(?=\S)/).filter((p) => /ICMP6/.test(p));

test('managed DHCP the README way: rdisc6 gets an RA with no prefix, no M/O flags, router lifetime 0, hop limit 255, unicast to the solicitor', async (t) => {
  if (need(t, { root: true, commands: ['ip', 'rdisc6', 'tcpdump', 'radvd'] }) !== undefined) return;
  const lan = await createLan('fgra');
  let f: Forge | undefined;
  try {
    const c = await lan.addClient();
    f = await serve(lan, ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200', '--dhcp-router', '10.98.0.1', '--dhcp-dns', '10.98.0.1']);
    const forge = f;
    await waitFor(forge.out, /serving this link/, 30_000, 'probe of the bridge');
    // forge status: the bridge's RA state reaches answering, with radvd's pid.
    let last: RaStatus | undefined;
    const ready = await until('status shows br0 answering', 30_000, async () => {
      last = await raStatus(lan);
      const l = last?.links.find((x) => x.interface === 'br0');
      return l?.state === 'answering' && l.pid !== undefined ? l : undefined;
    }).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${JSON.stringify(last)}\n${forge.out()}`);
    });
    // `forge status` (the CLI, as an operator runs it) prints the link's RA state with radvd's pid.
    const cli = await lan.exec(process.execPath, [FORGE_BIN, 'status'], {
      env: { ...process.env, FORGE_SERVER: `http://10.98.0.1:${HTTP_PORT}`, FORGE_TOKEN: readFileSync(join(forge.dir, 'token'), 'utf8').trim() },
      timeoutMs: 30_000,
    });
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /^IPV6 RA\s+STATE\s+SINCE$/m, cli.stdout);
    assert.match(cli.stdout, new RegExp(`^br0\\s+answering \\(radvd ${ready.pid}\\)\\s+\\d{4}-`, 'm'), cli.stdout);
    // radvd runs as Debian's radvd user with CAP_NET_RAW (bit 13) only, and is the pid status shows.
    const all = await radvds(lan);
    const [rd] = mains(all);
    assert.ok(rd !== undefined, 'radvd runs in the namespace');
    assert.equal(mains(all).length, 1, JSON.stringify(all));
    assert.equal(rd.pid, String(ready.pid), 'status names the running radvd');
    assert.notEqual(rd.uid, '0', 'radvd is not root');
    assert.equal(rd.uid, /^radvd:x:(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'))?.[1], 'radvd runs as the radvd user');
    assert.equal(BigInt(`0x${rd.capEff}`), 1n << 13n, `only CAP_NET_RAW: ${rd.capEff}`);
    // radvd parses the configuration forge wrote.
    const conf = rd.cmdline[rd.cmdline.indexOf('--config') + 1] ?? '';
    assert.ok(existsSync(conf), `radvd's configuration ${conf}`);
    const check = await must('radvd', ['--configtest', '--config', conf, '--logmethod', 'stderr']).catch((e: unknown) => String(e));
    assert.doesNotMatch(check, /error|failed/i, check);

    const { rdisc, code, wire } = await solicit(c);
    assert.equal(code, 0, `rdisc6 got an answer:\n${rdisc}\n${wire}\n${forge.out()}`);
    assert.match(rdisc, /Router lifetime\s*:\s*0 \(0x00000000\) seconds/);
    assert.match(rdisc, /Hop limit\s*:\s*undefined/, 'Cur Hop Limit 0: unspecified, hosts keep theirs');
    assert.match(rdisc, /Stateful address conf\.\s*:\s*No/);
    assert.match(rdisc, /Stateful other conf\.\s*:\s*No/);
    assert.doesNotMatch(rdisc, /Prefix|Recursive DNS|Route\s*:/, 'nothing a host could configure from');
    const brLl = (await lan.must('ip', ['-6', '-o', 'addr', 'show', 'dev', 'br0', 'scope', 'link'])).match(/inet6 (fe80::[0-9a-f:]+)/)?.[1];
    assert.ok(brLl !== undefined, 'the bridge has a link-local address');
    assert.match(rdisc, new RegExp(`from ${brLl}`), 'from the bridge the served subnet is on');
    const clientLl = (await c.must('ip', ['-6', '-o', 'addr', 'show', 'dev', c.ifname, 'scope', 'link'])).match(/inet6 (fe80::[0-9a-f:]+)/)?.[1];
    assert.ok(clientLl !== undefined);

    const ras = packets(wire).filter((p) => /router advertisement/.test(p));
    assert.ok(ras.length >= 1, `tcpdump saw the RA:\n${wire}`);
    for (const p of ras) {
      assert.match(p, /hlim 255/, `RFC 4861 s4.2/s6.1.2: IP hop limit 255:\n${p}`);
      assert.match(p, new RegExp(`${brLl} > ${clientLl}:`), `unicast to the soliciting address, never ff02::1:\n${p}`);
      assert.match(p, /Flags \[none\]/, p);
      assert.match(p, /router lifetime 0s/, p);
      assert.doesNotMatch(p, /prefix info|rdnss|route info/i, p);
      assert.match(p, /icmp6 sum ok/, p);
    }

    // forge's stop ends radvd, and no radvd is left in the namespace.
    await stop(forge);
    f = undefined;
    assert.deepEqual(await radvds(lan), [], 'radvd ended with forge');
    assert.equal(existsSync(conf), false, 'its runtime directory is removed');
  } finally {
    if (f !== undefined) await stop(f);
    await lan.destroy();
  }
});

test('no RA with --ipv6-ra off, nor in proxy mode', async (t) => {
  if (need(t, { root: true, commands: ['ip', 'rdisc6', 'tcpdump', 'radvd'] }) !== undefined) return;
  const lan = await createLan('fgra');
  try {
    const c = await lan.addClient();
    for (const args of [
      ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200', '--dhcp-probe-seconds', '0', '--ipv6-ra', 'off'],
      ['--dhcp-mode', 'proxy'],
    ]) {
      const f = await serve(lan, args);
      try {
        if (args.includes('managed')) await waitFor(f.out, /DHCP service started/, 10_000, 'dhcp');
        const { rdisc, code, wire } = await solicit(c);
        assert.notEqual(code, 0, `${args.join(' ')}: no answer expected:\n${rdisc}`);
        assert.equal(packets(wire).filter((p) => /router advertisement/.test(p)).length, 0, `${args.join(' ')}: no RA on the wire:\n${wire}`);
        assert.equal(existsSync(join(f.dir, 'radvd', 'radvd.conf')), false);
      } finally {
        await stop(f);
      }
    }
  } finally {
    await lan.destroy();
  }
});

test('a SIGKILLed forge leaves no radvd behind (setpriv --pdeathsig), and the next forge starts its own', async (t) => {
  if (need(t, { root: true, commands: ['ip', 'rdisc6', 'tcpdump', 'radvd', 'setpriv'] }) !== undefined) return;
  const lan = await createLan('fgra');
  let f: Forge | undefined;
  try {
    const c = await lan.addClient();
    const managed = ['--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.200'];
    f = await serve(lan, managed);
    const first = f;
    await until('radvd started', 60_000, async () => ((await radvds(lan)).length > 0 ? true : undefined));
    const gone = new Promise((r) => first.proc.once('exit', r));
    first.proc.kill('SIGKILL');
    await gone;
    // The kernel sends radvd SIGTERM as forge dies; radvd then sends nothing more and exits.
    await until('radvd gone after SIGKILL of forge', 15_000, async () => ((await radvds(lan)).length === 0 ? true : undefined)).catch(async (e: unknown) => {
      throw new Error(`${String(e)}: ${JSON.stringify(await radvds(lan))}`);
    });
    // The same data_dir serves again, and its radvd answers.
    const dir = first.dir;
    f = undefined;
    const proc = lan.spawn(process.execPath, [FORGE_BIN, 'serve', '--data-dir', dir, '--tftp-enabled', 'false', '--http-port', HTTP_PORT, ...managed]);
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    f = { proc, out: () => out, dir };
    await waitFor(() => out, /serving this link/, 60_000, 'second forge serving');
    await until('status shows br0 answering again', 30_000, async () => ((await raStatus(lan))?.links.some((x) => x.interface === 'br0' && x.state === 'answering') === true ? true : undefined));
    const { rdisc, code } = await solicit(c);
    assert.equal(code, 0, `the second forge's radvd answers:\n${rdisc}\n${out}`);
    assert.equal(mains(await radvds(lan)).length, 1, 'one radvd');
  } finally {
    if (f !== undefined) await stop(f);
    await lan.destroy();
  }
});
