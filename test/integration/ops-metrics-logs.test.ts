/**
 * GET /metrics and the logs against real traffic. A real forge serve in a
 * LAN namespace (managed DHCP, TFTP on 69, JSON logs): perfdhcp (Kea's
 * load generator) as a relay, atftp fetching a boot config, and an iPXE-style
 * HTTP boot (boot config, autoinstall, install callbacks). The exposition is
 * parsed by the Prometheus project's own Python client parser
 * (python3-prometheus-client, prometheus_client.parser), and the counters
 * must have moved by at least what the clients did. Every log line on
 * stderr must be a JSON object; one access line per HTTP request.
 * A second, loopback forge with text logs shows the same access fields.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { need } from '../lib/env.js';
import { createLan } from '../lib/netns.js';
import { startForgeIn } from '../lib/boot-lab.js';
import { startForge } from '../lib/server.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  name: string;
  type: string;
  samples: Sample[];
}

/** The Prometheus client library's own text-format parser, from Debian. */
function parseExposition(text: string): Family[] {
  const py = [
    'import sys, json',
    'from prometheus_client.parser import text_string_to_metric_families',
    'out = [{"name": f.name, "type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]} for f in text_string_to_metric_families(sys.stdin.read())]',
    'print(json.dumps(out))',
  ].join('\n');
  return JSON.parse(execFileSync(PYTHON, ['-c', py], { input: text, encoding: 'utf8' })) as Family[];
}

function value(fams: Family[], sample: string, labels: Record<string, string> = {}, required = true): number {
  let sum = 0;
  let seen = false;
  for (const f of fams) {
    for (const s of f.samples) {
      if (s.name !== sample) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) {
        sum += s.value;
        seen = true;
      }
    }
  }
  assert.ok(seen || !required, `${sample}${JSON.stringify(labels)} is exposed: ${fams.find((f) => sample.startsWith(f.name))?.samples.map((x) => JSON.stringify(x.labels)).join(' ')}`);
  return sum;
}

const REQ = { root: true, commands: ['ip', 'perfdhcp', 'atftp', 'curl'], files: ['/usr/lib/python3/dist-packages/prometheus_client/parser.py'] };
/** Debian's python3 (the package's parser lives in its dist-packages), not a pyenv one first on PATH. */
const PYTHON = '/usr/bin/python3';

/** Lines are written when a response finishes, a moment after the client has it. */
async function waitForLines(output: () => string, re: RegExp, n: number): Promise<string[]> {
  const end = Date.now() + 10_000;
  for (;;) {
    const got = output().split('\n').filter((l) => re.test(l));
    if (got.length >= n || Date.now() > end) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('metrics parse with the Prometheus parser and move with perfdhcp, atftp and an HTTP boot; JSON logs, one access line per request', async (t) => {
  if (need(t, REQ) !== undefined) return;
  execFileSync(PYTHON, ['-c', 'import prometheus_client.parser']);
  const dir = mkdtempSync(join(tmpdir(), 'fgmetrics-'));
  const lan = await createLan('fgmet');
  try {
    const forge = await startForgeIn(lan, join(dir, 'data'), [
      '--dhcp-mode', 'managed', '--dhcp-subnet', '10.98.0.0/24', '--dhcp-range', '10.98.0.100,10.98.0.149',
      '--dhcp-probe-seconds', '0', '--tftp-port', '69', '--log-format', 'json',
    ]);
    let httpRequests = 0;
    const api = async (m: string, p: string, b?: unknown): Promise<unknown> => {
      httpRequests++;
      const r = await forge.api(m, p, b);
      assert.ok(r.status < 300, `${m} ${p}: ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const text = async (p: string): Promise<string> => {
      httpRequests++;
      return forge.text(p);
    };
    await api('POST', '/api/v1/distros', { name: 'd', kernel: '/srv/forge/k', initrd: '/srv/forge/i', breed: 'generic' });
    await api('POST', '/api/v1/profiles', { name: 'p', distro: 'd' });
    await api('POST', '/api/v1/systems', { name: 'vm1', profile: 'p', netboot_enabled: true, interfaces: { eth0: { mac_address: '52:54:00:aa:00:01' } } });

    const before = parseExposition(await text('/metrics'));
    for (const f of before) {
      assert.match(f.name, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
      if (f.type === 'counter') assert.ok(f.samples.every((s) => !s.name.endsWith('_total') || s.name.startsWith(f.name)), f.name);
    }
    assert.ok(before.some((f) => f.name === 'nodejs_eventloop_lag_seconds'), 'event-loop lag');
    assert.equal(value(before, 'forge_dhcp_pool_addresses', { subnet: '10.98.0.0/24' }), 50);
    // The system index, loaded in the background at start, holds the one system created.
    assert.equal(value(before, 'forge_system_index_ready'), 1);
    assert.equal(value(before, 'forge_system_index_systems'), 1);
    // SQLite reads install windows per name (the whole table is kept only on a shared store).
    assert.equal(value(before, 'forge_install_windows_cached'), 0);

    // perfdhcp as a relay: DISCOVER/OFFER, REQUEST/ACK exchanges.
    const relay = await lan.addClient();
    await relay.must('ip', ['addr', 'add', '10.98.0.2/24', 'dev', 'eth0']);
    const perf = await relay.exec('perfdhcp', ['-4', '-l', 'eth0', '-r', '10', '-R', '10', '-n', '10', '10.98.0.1'], { timeoutMs: 60_000 });
    assert.ok(/DISCOVER-OFFER/.test(perf.stdout), perf.stdout + perf.stderr);
    // atftp: the generated default boot config, over TFTP.
    const tftpClient = await lan.addClient();
    await tftpClient.must('ip', ['addr', 'add', '10.98.0.3/24', 'dev', 'eth0']);
    const local = join(dir, 'fetched');
    const got = await tftpClient.exec('atftp', ['-g', '-r', 'pxelinux.cfg/01-52-54-00-aa-00-01', '-l', local, '10.98.0.1', '69'], { timeoutMs: 30_000 });
    assert.equal(got.code, 0, got.stderr);
    const tftpBytes = statSync(local).size;
    // An HTTP boot: what iPXE and the installer ask for.
    await text('/boot/ipxe/52:54:00:aa:00:01');
    // Installer paths under the system's install token, as the rendered files carry them (issue 13).
    const installBase = ((await api('GET', '/api/v1/systems/vm1/blended')) as { install_base_url: string }).install_base_url.replace(/^http:\/\/[^/]+/, '');
    assert.match(installBase, /^\/i\/[0-9a-f]+$/);
    for (const p of ['/autoinstall/system/vm1', '/api/v1/systems/vm1/install/start', '/api/v1/systems/vm1/install/done']) await text(installBase + p);
    const after = parseExposition(await text('/metrics'));

    const d = (s: string, l: Record<string, string> = {}): number => value(after, s, l) - value(before, s, l, false);
    // perfdhcp's own counts: what it sent forge received; what it got forge sent.
    const stat = (section: string, what: string): number => Number(new RegExp(`Statistics for: ${section}\\*+\\s+sent packets: (\\d+)\\s+received packets: (\\d+)`).exec(perf.stdout)?.[what === 'sent' ? 1 : 2] ?? 'NaN');
    const [doSent, doRecv, raSent, raRecv] = [stat('DISCOVER-OFFER', 'sent'), stat('DISCOVER-OFFER', 'recv'), stat('REQUEST-ACK', 'sent'), stat('REQUEST-ACK', 'recv')];
    assert.ok(doRecv > 0 && raRecv > 0, perf.stdout);
    assert.ok(d('forge_dhcp_received_packets_total') >= doSent + raSent, `received >= ${doSent}+${raSent}`);
    assert.ok(d('forge_dhcp_packets_total', { type: 'discover', result: 'offer' }) >= doRecv, `offers >= ${doRecv}`);
    assert.ok(d('forge_dhcp_packets_total', { type: 'request', result: 'ack' }) >= raRecv, `acks >= ${raRecv}`);
    assert.ok(value(after, 'forge_dhcp_leases', { subnet: '10.98.0.0/24' }) >= 1, 'leases per subnet');
    assert.ok(d('forge_tftp_requests_total') >= 1);
    assert.ok(d('forge_tftp_transfers_total', { result: 'completed' }) >= 1);
    assert.ok(d('forge_tftp_sent_bytes_total') >= tftpBytes && tftpBytes > 0, `TFTP bytes >= ${tftpBytes}`);
    assert.ok(d('forge_http_requests_total', { route: '/boot/ipxe/:mac', status: '200' }) >= 1, 'boot config request by route pattern');
    assert.equal(d('forge_http_request_duration_seconds_count', { route: '/api/v1/systems/:name/install/start' }), 1, 'latency histogram per route');
    assert.ok(d('forge_autoinstall_renders_total', { result: 'ok' }) >= 1, 'renders');
    assert.ok(d('forge_events_total', { type: 'install_done' }) >= 1, 'installs by stage');
    assert.equal(value(after, 'forge_systems', { stage: 'installed' }), 1);
    assert.equal(value(after, 'forge_systems_stalled'), 0);
    assert.ok(d('forge_store_operation_duration_seconds_count', { op: 'addEvent' }) >= 1, 'store latency');

    // Logs: every stderr line of the server is JSON with the fixed fields; one access line per HTTP request.
    await waitForLines(forge.output, /"forge\.http\.access"/, httpRequests);
    const lines = forge.output().split('\n').filter((l) => l.startsWith('{'));
    assert.ok(lines.length > 0);
    const recs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const r of recs) for (const k of ['time', 'level', 'component', 'msg']) assert.equal(typeof r[k], 'string', `${k} in ${JSON.stringify(r)}`);
    const nonJson = forge.output().split('\n').filter((l) => l !== '' && !l.startsWith('{') && !/^(forge \d|  \w|forge ready)/.test(l));
    assert.deepEqual(nonJson, [], 'only the startup banner (stdout) is not JSON');
    // startForgeIn polls readiness without HTTP; forge.api/text made httpRequests requests.
    const access = recs.filter((r) => r['component'] === 'forge.http.access');
    assert.equal(access.length, httpRequests, 'one access line per request');
    const boot = access.find((r) => r['path'] === '/boot/ipxe/52:54:00:aa:00:01');
    assert.deepEqual(Object.keys(boot ?? {}).sort(), ['bytes', 'client', 'component', 'level', 'method', 'ms', 'msg', 'path', 'route', 'server', 'status', 'time']);
    assert.equal(boot!['server'], '10.98.0.1:8080', 'the local end the request arrived on');
    assert.equal(boot!['status'], 200);
    assert.equal(boot!['route'], '/boot/ipxe/:mac');
    await forge.stop();
  } finally {
    await lan.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('text logs carry the same access fields as key=value; access_log false turns them off', async () => {
  const forge = await startForge({ args: ['--log-level', 'info'] });
  try {
    await forge.api('GET', '/api/v1/systems/none');
    await forge.api('GET', '/api/v1/health');
    const access = await waitForLines(forge.output, / forge\.http\.access: request /, 2);
    assert.equal(access.length, 2, forge.output());
    const fields = (l: string): string[] => [...l.matchAll(/ (\w+)=/g)].map((m) => m[1]!).sort();
    assert.deepEqual(fields(access[0]!), ['bytes', 'client', 'method', 'ms', 'path', 'route', 'server', 'status']);
    assert.match(access[0]!, /^\S+Z info forge\.http\.access: request client=127\.0\.0\.1 server=127\.0\.0\.1:\d+ method=GET path=\/api\/v1\/systems\/none route=\/api\/v1\/systems\/:name status=404 /);
  } finally {
    await forge.stop();
  }
  const quiet = await startForge({ args: ['--log-level', 'info', '--access-log', 'false'] });
  try {
    await quiet.api('GET', '/api/v1/health');
    assert.doesNotMatch(quiet.output(), /http\.access/);
  } finally {
    await quiet.stop();
  }
});
