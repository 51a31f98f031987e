/**
 * HTTP boot serving against a real `forge serve`, with a raw TCP client (so
 * the exact status line and header bytes GRUB and EDK II depend on are
 * checked, not what a lenient client library makes of them) and with curl.
 * Also the boot-area API (distro file digests, status) and CLI (import,
 * loaders, system events, status).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync, ftruncateSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startForge, type ForgeServer } from '../lib/server.js';
import { hasCommand } from '../lib/env.js';

interface RawResponse {
  head: string;
  statusLine: string;
  headers: string[];
  body: Buffer;
}

/** One request over a fresh TCP connection with `Connection: close`; returns the raw bytes split. */
function raw(port: number, request: string, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`raw request timed out: ${request.split('\r\n')[0]}`));
    }, timeoutMs);
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const sep = all.indexOf('\r\n\r\n');
      if (sep < 0) return reject(new Error(`no header end in ${JSON.stringify(all.toString('latin1').slice(0, 200))}`));
      const head = all.subarray(0, sep).toString('latin1');
      const lines = head.split('\r\n');
      resolve({ head, statusLine: lines[0] ?? '', headers: lines.slice(1), body: all.subarray(sep + 4) });
    });
    sock.write(request);
  });
}

const get = (path: string, extra = '', method = 'GET'): string =>
  `${method} ${path} HTTP/1.1\r\nHost: forge\r\nUser-Agent: GRUB 2.06\r\n${extra}Connection: close\r\n\r\n`;

/** The header line, matched case-sensitively the way GRUB's http.c does. */
function header(r: RawResponse, name: string): string | undefined {
  const line = r.headers.find((h) => h.startsWith(`${name}: `));
  return line?.slice(name.length + 2);
}

let srv: ForgeServer;
let dir: string;
let kernel: Buffer;
let initrd: Buffer;
let mac: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fgboot-http-'));
  kernel = randomBytes(3 * 1024 * 1024 + 17);
  initrd = randomBytes(700 * 1024 + 3);
  // A Debian-netboot-shaped tree, with a symlink that points out of it.
  mkdirSync(join(dir, 'tree', 'debian-installer', 'amd64'), { recursive: true });
  writeFileSync(join(dir, 'tree', 'debian-installer', 'amd64', 'linux'), kernel);
  writeFileSync(join(dir, 'tree', 'debian-installer', 'amd64', 'initrd.gz'), initrd);
  writeFileSync(join(dir, 'tree', 'README.txt'), 'tree file\n');
  writeFileSync(join(dir, 'secret.txt'), 'outside\n');
  symlinkSync(join(dir, 'secret.txt'), join(dir, 'tree', 'escape.txt'));
  // A 2 GiB sparse file: served by streaming, never read whole into memory.
  const fd = openSync(join(dir, 'big.img'), 'w');
  ftruncateSync(fd, 2 * 1024 * 1024 * 1024);
  closeSync(fd);
  srv = await startForge();
  const imp = await srv.cli(['import', '--path', join(dir, 'tree'), '--name', 'deb12']);
  assert.equal(imp.code, 0, imp.stderr);
  const add = await srv.cli(['system', 'add', '--name', 'vm9', '--profile', 'deb12', '--mac=random']);
  assert.equal(add.code, 0, add.stderr + add.stdout);
  const sys = (await srv.api('GET', '/api/v1/systems/vm9')).body as { interfaces: Record<string, { mac_address: string }> };
  mac = Object.values(sys.interfaces)[0]!.mac_address;
  assert.match(mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
});

after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('GET kernel: exact HTTP/1.1 status line, canonical Content-Length, full body', async () => {
  const r = await raw(srv.port, get('/boot/distro/deb12/kernel'));
  assert.equal(r.statusLine, 'HTTP/1.1 200 OK');
  assert.equal(header(r, 'Content-Length'), String(kernel.length));
  assert.equal(header(r, 'Accept-Ranges'), 'bytes');
  assert.equal(header(r, 'Content-Type'), 'application/octet-stream');
  assert.ok(!r.headers.some((h) => /^[a-z]/.test(h)), `every header name starts upper-case: ${r.headers.join(' | ')}`);
  assert.ok(r.body.equals(kernel));
});

test('HEAD: same length, no body', async () => {
  const r = await raw(srv.port, get('/boot/distro/deb12/initrd', '', 'HEAD'));
  assert.equal(r.statusLine, 'HTTP/1.1 200 OK');
  assert.equal(header(r, 'Content-Length'), String(initrd.length));
  assert.equal(r.body.length, 0);
});

test('Range bytes=N- (GRUB resume) -> 206 with Content-Range and the tail', async () => {
  const n = 1_000_000;
  const r = await raw(srv.port, get('/boot/distro/deb12/kernel', `Range: bytes=${n}-\r\n`));
  assert.equal(r.statusLine, 'HTTP/1.1 206 Partial Content');
  assert.equal(header(r, 'Content-Range'), `bytes ${n}-${kernel.length - 1}/${kernel.length}`);
  assert.equal(header(r, 'Content-Length'), String(kernel.length - n));
  assert.ok(r.body.equals(kernel.subarray(n)));
});

test('Range bytes=a-b and suffix ranges -> 206; 512-byte sanboot-style reads', async () => {
  const r = await raw(srv.port, get('/boot/distro/deb12/kernel', 'Range: bytes=512-1023\r\n'));
  assert.equal(r.statusLine, 'HTTP/1.1 206 Partial Content');
  assert.equal(header(r, 'Content-Length'), '512');
  assert.ok(r.body.equals(kernel.subarray(512, 1024)));
  const s = await raw(srv.port, get('/boot/distro/deb12/initrd', 'Range: bytes=-100\r\n'));
  assert.equal(s.statusLine, 'HTTP/1.1 206 Partial Content');
  assert.ok(s.body.equals(initrd.subarray(initrd.length - 100)));
});

test('Range past the end -> 416 with Content-Range: bytes */SIZE', async () => {
  const r = await raw(srv.port, get('/boot/distro/deb12/kernel', `Range: bytes=${kernel.length}-\r\n`));
  assert.equal(r.statusLine, 'HTTP/1.1 416 Range Not Satisfiable');
  assert.equal(header(r, 'Content-Range'), `bytes */${kernel.length}`);
});

test('a 2 GiB file is streamed: HEAD and a Range at its end answer at once', async () => {
  await srv.api('POST', '/api/v1/distros', { name: 'big', kernel: join(dir, 'big.img'), initrd: join(dir, 'big.img'), arch: 'x86_64', breed: 'generic' });
  const size = 2 * 1024 * 1024 * 1024;
  const h = await raw(srv.port, get('/boot/distro/big/kernel', '', 'HEAD'));
  assert.equal(header(h, 'Content-Length'), String(size));
  const r = await raw(srv.port, get('/boot/distro/big/kernel', `Range: bytes=${size - 4096}-\r\n`));
  assert.equal(r.statusLine, 'HTTP/1.1 206 Partial Content');
  assert.equal(r.body.length, 4096);
});

test('iPXE script per MAC: kernel/initrd over HTTP, blended command line, events recorded', async () => {
  for (const form of [mac, mac.replace(/:/g, '-').toUpperCase()]) {
    const r = await raw(srv.port, get(`/boot/ipxe/${form}`));
    assert.equal(r.statusLine, 'HTTP/1.1 200 OK');
    const text = r.body.toString('utf8');
    assert.match(text, /^#!ipxe\n/);
    assert.match(text, new RegExp(`^kernel --name kernel ${srv.url.replace(/\./g, '\\.')}/boot/distro/deb12/kernel\\?mac=${mac} initrd=initrd .*url=${srv.url.replace(/\./g, '\\.')}/i/[0-9a-f]{32}/autoinstall/system/vm9`, 'm'));
    assert.match(text, /^initrd --name initrd \S+\/boot\/distro\/deb12\/initrd/m);
  }
  const k = await raw(srv.port, get(`/boot/distro/deb12/kernel?mac=${mac}`));
  assert.equal(k.body.length, kernel.length);
  const ev = (await srv.api('GET', '/api/v1/systems/vm9/events')).body as { type: string; source: string }[];
  assert.ok(ev.some((e) => e.type === 'boot_config_served' && e.source === 'http'), JSON.stringify(ev));
  assert.ok(ev.some((e) => e.type === 'kernel_fetched'), JSON.stringify(ev));
  const events = await srv.cli(['system', 'events', '--name', 'vm9']);
  assert.equal(events.code, 0, events.stderr);
  assert.match(events.stdout, /^TIME\s+SOURCE\s+TYPE\s+DETAIL/m);
  assert.match(events.stdout, /\shttp\s+kernel_fetched\s+file=distro\/deb12\/kernel/);
  const status = await srv.cli(['status']);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^vm9\s+deb12\s+on\s+booting \d+m\s+kernel_fetched$/m);
});

test('netboot disabled -> iPXE exit, GRUB exit, pxelinux LOCALBOOT 0; unknown MAC -> local', async () => {
  const off = await srv.api('PATCH', '/api/v1/systems/vm9', { netboot_enabled: false });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  try {
    const i = (await raw(srv.port, get(`/boot/ipxe/${mac}`))).body.toString();
    assert.match(i, /^exit$/m);
    assert.doesNotMatch(i, /^kernel /m);
    const g = (await raw(srv.port, get(`/boot/grub/grub.cfg-01-${mac.replace(/:/g, '-')}`))).body.toString();
    assert.match(g, /^  exit$/m);
    const p = (await raw(srv.port, get(`/boot/pxelinux.cfg/01-${mac.replace(/:/g, '-')}`))).body.toString();
    assert.match(p, /^  LOCALBOOT 0$/m);
  } finally {
    await srv.api('PATCH', '/api/v1/systems/vm9', { netboot_enabled: true });
  }
  const u = (await raw(srv.port, get('/boot/ipxe/02:00:00:00:00:01'))).body.toString();
  assert.match(u, /local boot \(unknown_machine\)/);
  const bad = await raw(srv.port, get('/boot/ipxe/not-a-mac'));
  assert.equal(bad.statusLine, 'HTTP/1.1 400 Bad Request');
});

test('firmware configs answered before Express are byte-identical to Express\'s answers (a query sends a request through Express)', async () => {
  const dashed = mac.replace(/:/g, '-');
  const paths = [
    `/boot/ipxe/${mac}`, `/boot/ipxe/${dashed.toUpperCase()}`, `/boot/ipxe/${mac}.ipxe`, '/boot/ipxe/default', '/boot/ipxe/02:00:00:00:00:01', '/boot/ipxe/not-a-mac',
    `/boot/pxelinux.cfg/01-${dashed}`, '/boot/pxelinux.cfg/default', '/boot/pxelinux.cfg/nonsense',
    '/boot/grub/grub.cfg', `/boot/grub/grub.cfg-01-${dashed}`, `/boot/grub/system/${mac}`, '/boot/grub/nothing/here',
  ];
  const comparable = (r: RawResponse): string => [r.statusLine, ...r.headers.filter((h) => !h.startsWith('Date: '))].join('\n');
  const before = (await srv.api('GET', '/metrics')).body as string;
  const count = (m: string, route: string): number =>
    [...m.matchAll(new RegExp(`^forge_http_requests_total\\{[^}]*route="${route.replace(/[.*]/g, '\\$&')}"[^}]*\\} (\\d+)`, 'gm'))].reduce((a, x) => a + Number(x[1]), 0);
  for (const method of ['GET', 'HEAD']) {
    for (const p of paths) {
      const direct = await raw(srv.port, get(p, '', method));
      const viaExpress = await raw(srv.port, get(`${p}?via=express`, '', method));
      assert.equal(comparable(direct), comparable(viaExpress), `${method} ${p}`);
      // The iPXE script names this request's install token: the same system, the same token.
      assert.equal(direct.body.toString('utf8'), viaExpress.body.toString('utf8'), `${method} ${p}`);
      if (method === 'HEAD') assert.equal(direct.body.length, 0, `HEAD ${p}: no body`);
    }
  }
  const after = (await srv.api('GET', '/metrics')).body as string;
  // Both halves are counted under their route patterns: each path twice (direct, through Express) per method.
  assert.equal(count(after, '/boot/ipxe/:mac') - count(before, '/boot/ipxe/:mac'), 2 * 2 * 6);
  assert.equal(count(after, '/boot/pxelinux.cfg/:name') - count(before, '/boot/pxelinux.cfg/:name'), 2 * 2 * 3);
  assert.equal(count(after, '/boot/grub/*rest') - count(before, '/boot/grub/*rest'), 2 * 2 * 4);
});

test('install tree: files served, `..` and symlinks out of the tree refused, never a redirect', async (t) => {
  const r = await raw(srv.port, get('/tree/deb12/README.txt'));
  assert.equal(r.statusLine, 'HTTP/1.1 200 OK');
  assert.equal(r.body.toString(), 'tree file\n');
  const esc = await raw(srv.port, get('/tree/deb12/escape.txt'));
  assert.equal(esc.statusLine, 'HTTP/1.1 404 Not Found');
  const dotdot = await raw(srv.port, get('/tree/deb12/../../../etc/passwd'));
  assert.match(dotdot.statusLine, /^HTTP\/1\.1 404 /);
  const enc = await raw(srv.port, get('/tree/deb12/%2e%2e/secret.txt'));
  assert.match(enc.statusLine, /^HTTP\/1\.1 404 /);
  const dirReq = await raw(srv.port, get('/tree/deb12/debian-installer'));
  assert.equal(dirReq.statusLine, 'HTTP/1.1 404 Not Found', 'a directory is not redirected to a trailing slash');
  if (!hasCommand('curl')) return t.skip('curl not installed');
  const curl = (args: string[]): string => execFileSync('curl', ['-s', '--path-as-is', ...args], { encoding: 'latin1', maxBuffer: 64 << 20 });
  assert.equal(curl(['-o', '/dev/null', '-w', '%{http_code}', `${srv.url}/tree/deb12/../../secret.txt`]), '404');
  assert.equal(curl(['-w', '%{http_code}', '-o', '/dev/null', '-r', '100-199', `${srv.url}/boot/distro/deb12/kernel`]), '206');
  assert.equal(curl(['-r', '100-199', `${srv.url}/boot/distro/deb12/kernel`]).length, 100);
  const headOut = curl(['-I', `${srv.url}/boot/distro/deb12/initrd`]);
  assert.match(headOut, new RegExp(`^Content-Length: ${initrd.length}\\r$`, 'm'));
  // curl resuming a partial download (-C -) gets the rest, byte for byte.
  const part = join(dir, 'partial');
  writeFileSync(part, kernel.subarray(0, 123_457));
  execFileSync('curl', ['-s', '-f', '-C', '-', '-o', part, `${srv.url}/boot/distro/deb12/kernel`]);
  assert.equal(createHash('sha256').update(execFileSync('cat', [part], { maxBuffer: 64 << 20 })).digest('hex'), createHash('sha256').update(kernel).digest('hex'));
});

test('GET /api/v1/distros/NAME/files: URL, size and sha256 for forge-agent', async () => {
  const r = await srv.api('GET', '/api/v1/distros/deb12/files');
  assert.equal(r.status, 200);
  const b = r.body as Record<string, { url: string; size: number; sha256: string }>;
  assert.equal(b['kernel']?.size, kernel.length);
  assert.equal(b['kernel']?.sha256, createHash('sha256').update(kernel).digest('hex'));
  assert.equal(b['initrd']?.sha256, createHash('sha256').update(initrd).digest('hex'));
  assert.equal(b['kernel']?.url, `${srv.url}/boot/distro/deb12/kernel`);
  const missing = await srv.api('GET', '/api/v1/distros/nope/files');
  assert.equal(missing.status, 404);
  assert.equal((missing.body as { code: string }).code, 'NOT_FOUND');
});

test('a distro whose kernel is an http URL is fetched once, cached, and served (not redirected)', async () => {
  const created = await srv.api('POST', '/api/v1/distros', {
    name: 'remote',
    kernel: `${srv.url}/boot/distro/deb12/kernel`,
    initrd: `${srv.url}/boot/distro/deb12/initrd`,
    arch: 'x86_64',
    breed: 'generic',
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const r = await raw(srv.port, get('/boot/distro/remote/kernel'));
  assert.equal(r.statusLine, 'HTTP/1.1 200 OK');
  assert.ok(r.body.equals(kernel));
  const files = (await srv.api('GET', '/api/v1/distros/remote/files')).body as Record<string, { sha256: string }>;
  assert.equal(files['initrd']?.sha256, createHash('sha256').update(initrd).digest('hex'));
  const cached = execFileSync('ls', [join(srv.dataDir, 'cache', 'distro')], { encoding: 'utf8' }).trim().split('\n');
  assert.equal(cached.length, 2, cached.join(' '));
});

test('forge import: Debian netboot recognised, tree URL in autoinstall_meta; junk -> IMPORT_UNRECOGNISED', async () => {
  const d = (await srv.api('GET', '/api/v1/distros/deb12')).body as { breed: string; tree: string; autoinstall_meta: Record<string, string> };
  assert.equal(d.breed, 'debian');
  assert.equal(d.tree, join(dir, 'tree'));
  assert.equal(d.autoinstall_meta['tree'], `${srv.url}/tree/deb12`);
  const p = await srv.api('GET', '/api/v1/profiles/deb12');
  assert.equal(p.status, 200);
  const bad = await srv.cli(['import', '--path', dir, '--name', 'junk']);
  assert.equal(bad.code, 3, bad.stdout + bad.stderr);
  assert.match(bad.stderr, /IMPORT_UNRECOGNISED|no install or netboot tree/);
  assert.match(bad.stderr, /\.treeinfo/);
});

test('forge loaders lists each loader with its package', async () => {
  const r = await srv.cli(['loaders']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^LOADER\s+FIRMWARE\s+STATUS/m);
  for (const n of ['undionly.kpxe', 'ipxe.efi', 'pxelinux.0', 'ldlinux.c32', 'grubx64.efi', 'shimx64.efi']) assert.match(r.stdout, new RegExp(`^${n.replace('.', '\\.')}\\s`, 'm'));
  const j = await srv.cli(['loaders', '--json']);
  const list = JSON.parse(j.stdout) as { name: string; origin: string; package: string; path: string }[];
  const und = list.find((l) => l.name === 'undionly.kpxe');
  assert.equal(und?.package, 'ipxe');
  if (und?.origin !== 'missing') {
    const r2 = await raw(srv.port, get('/boot/loaders/undionly.kpxe', '', 'HEAD'));
    assert.equal(r2.statusLine, 'HTTP/1.1 200 OK');
    assert.ok(Number(header(r2, 'Content-Length')) > 1000);
  }
  const nope = await raw(srv.port, get('/boot/loaders/..%2f..%2fetc%2fpasswd'));
  assert.match(nope.statusLine, /^HTTP\/1\.1 404 /);
});

test('unknown machine: the system named `default` is served when it exists', async () => {
  const add = await srv.cli(['system', 'add', '--name', 'default', '--profile', 'deb12']);
  assert.equal(add.code, 0, add.stderr + add.stdout);
  try {
    const s = (await raw(srv.port, get('/boot/ipxe/02:00:00:00:00:09'))).body.toString();
    assert.match(s, /^# system default profile deb12 distro deb12$/m);
    assert.match(s, /url=\S+\/autoinstall\/system\/default/);
    // No events for a machine forge does not know by MAC.
    const ev = (await srv.api('GET', '/api/v1/systems/default/events')).body as unknown[];
    assert.equal(ev.length, 0);
  } finally {
    await srv.api('DELETE', '/api/v1/systems/default');
  }
  assert.match((await raw(srv.port, get('/boot/ipxe/02:00:00:00:00:09'))).body.toString(), /^exit$/m);
});

test('unknown_boot=menu: iPXE and pxelinux menus of profiles, GRUB menu, default entry = local disk', async () => {
  const m = await startForge({ args: ['--unknown-boot', 'menu'] });
  try {
    await m.api('POST', '/api/v1/distros', { name: 'd1', kernel: join(dir, 'tree', 'debian-installer', 'amd64', 'linux'), initrd: join(dir, 'tree', 'debian-installer', 'amd64', 'initrd.gz'), arch: 'x86_64', breed: 'debian' });
    await m.api('POST', '/api/v1/profiles', { name: 'web', distro: 'd1' });
    await m.api('POST', '/api/v1/profiles', { name: 'db', distro: 'd1' });
    const ipxe = await (await fetch(`${m.url}/boot/ipxe/default`)).text();
    assert.match(ipxe, /^menu /m);
    assert.match(ipxe, /^item p\d web$/m);
    assert.match(ipxe, /^item p\d db$/m);
    assert.match(ipxe, /--default local/);
    const pxl = await (await fetch(`${m.url}/boot/pxelinux.cfg/default`)).text();
    assert.match(pxl, /^UI menu\.c32$/m);
    assert.match(pxl, /^  MENU LABEL web$/m);
    assert.match(pxl, /url=\S+\/autoinstall\/profile\/db/);
    const grub = await (await fetch(`${m.url}/boot/grub/grub.cfg-01-02-00-00-00-00-0a`)).text();
    assert.match(grub, /^set default=local$/m);
    assert.match(grub, /^menuentry web --id p\d \{$/m);
  } finally {
    await m.stop();
  }
});
