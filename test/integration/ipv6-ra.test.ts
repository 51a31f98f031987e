/**
 * forge's IPv6 router advertisement (services/ra.ts) on the wire, read by the other side's tools:
 * ndisc6's rdisc6 solicits and decodes the RA, tcpdump's ICMPv6 decoder shows the IP hop limit,
 * the destination and the options, and radvd's own configtest parses what forge wrote.
 *
 * Started the README's way (managed mode, the default probe, no ipv6 flag): a client on the
 * bridge gets one RA per solicitation, unicast, hop limit 255, router lifetime 0, no M/O flag, no
 * prefix. Nothing answers with --ipv6-ra off, nor in proxy mode (the site owns that network), and
 * radvd ends with forge.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { createLan, must, type Lan, type LanClient } from '../lib/netns.js';
import { FORGE_BIN } from '../lib/server.js';

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

async function serve(lan: Lan, extra: string[]): Promise<Forge> {
  const dir = mkdtempSync(join(tmpdir(), 'fgra-'));
  const proc = lan.spawn(process.execPath, [FORGE_BIN, 'serve', '--data-dir', dir, '--tftp-enabled', 'false', ...extra]);
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
    // radvd parses the configuration forge wrote.
    const conf = join(forge.dir, 'radvd', 'radvd.conf');
    await waitFor(() => (existsSync(conf) ? 'yes' : ''), /yes/, 10_000, 'radvd.conf written');
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
    const pids = (await must('ip', ['netns', 'pids', lan.ns])).split(/\s+/).filter((x) => x !== '');
    for (const pid of pids) {
      const comm = await must('cat', [`/proc/${pid}/comm`]).catch(() => '');
      assert.notEqual(comm.trim(), 'radvd', 'radvd ended with forge');
    }
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
