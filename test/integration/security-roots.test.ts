/**
 * Files are confined to the boot roots, against a real `forge serve`: a
 * distro pointing at /etc/shadow, DATA_DIR/token, `/` or through a symlink
 * from an allowed root to /etc is refused at write time (field and roots
 * named), on import, and, when such a distro is already in the store, is
 * never served over HTTP or TFTP and is flagged by `forge check`.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { FORGE_BIN, startForge } from '../lib/server.js';
import type { ForgeServer } from '../lib/server.js';
import { freeUdpPort, tftpGet } from '../lib/tftp-client.js';
import { openSqliteStore } from '../../server/store/sqlite.js';
import { defaultDistro } from '../../server/core/defaults.js';

type Obj = Record<string, unknown>;
const dir = mkdtempSync(join(tmpdir(), 'forge-roots-'));
const root = join(dir, 'root');
const dataDir = join(dir, 'data');
let srv: ForgeServer;
let tftpPort = 0;

async function start(): Promise<ForgeServer> {
  tftpPort = await freeUdpPort();
  return startForge({ dataDir, tftp: true, args: ['--boot-roots', root, '--tftp-listen', '127.0.0.1', '--tftp-port', String(tftpPort)] });
}

before(async () => {
  mkdirSync(join(root, 'ok'), { recursive: true });
  writeFileSync(join(root, 'ok', 'linux'), 'KERNEL');
  writeFileSync(join(root, 'ok', 'initrd.gz'), 'INITRD');
  symlinkSync('/etc', join(root, 'etc-link'));
  srv = await start();
});
after(async () => {
  await srv?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const good = (): Obj => ({ kernel: join(root, 'ok', 'linux'), initrd: join(root, 'ok', 'initrd.gz'), breed: 'generic' });

test('a distro inside the boot root is accepted and served', async () => {
  const r = await srv.api('POST', '/api/v1/distros', { name: 'fine', ...good(), tree: join(root, 'ok') });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const k = await fetch(`${srv.url}/boot/distro/fine/kernel`);
  assert.equal(k.status, 200);
  assert.equal(await k.text(), 'KERNEL');
  const t = await fetch(`${srv.url}/tree/fine/initrd.gz`);
  assert.equal(await t.text(), 'INITRD');
});

test('kernel=/etc/shadow, initrd=DATA_DIR/token, tree=/ and a symlink to /etc are refused at write time', async () => {
  const cases: [string, Obj, string][] = [
    ['kernel', { ...good(), kernel: '/etc/shadow' }, '/etc is never served'],
    ['initrd', { ...good(), initrd: join(dataDir, 'token') }, 'data directory'],
    ['initrd', { ...good(), initrd: join(dataDir, 'forge.db') }, 'data directory'],
    ['tree', { ...good(), tree: '/' }, '"/" is never served'],
    ['kernel', { ...good(), kernel: join(root, 'etc-link', 'shadow') }, 'resolves to /etc/shadow'],
    ['kernel', { ...good(), kernel: '/srv/elsewhere/linux' }, 'outside the boot roots'],
    ['tree', { ...good(), tree: '/proc/self' }, '/proc is never served'],
  ];
  for (const [i, [field, body, why]] of cases.entries()) {
    const r = await srv.api('POST', '/api/v1/distros', { name: `bad${i}`, ...body });
    assert.equal(r.status, 400, `${field}: ${JSON.stringify(r.body)}`);
    const b = r.body as Obj;
    assert.equal(b['code'], 'PATH_OUTSIDE_ROOTS');
    assert.equal(b['field'], field);
    assert.ok(String(b['message']).includes(why), String(b['message']));
    assert.ok(String(b['message']).includes(root), 'names the allowed roots');
  }
  const e = await srv.api('PATCH', '/api/v1/distros/fine', { kernel: '/etc/shadow' });
  assert.equal(e.status, 400);
  assert.equal((e.body as Obj)['field'], 'kernel');
  const bulk = await srv.api('POST', '/api/v1/distros/bulk', [{ name: 'b1', ...good() }, { name: 'b2', ...good(), initrd: '/root/.ssh/id_rsa' }]);
  assert.equal(bulk.status, 400);
  assert.match(String((bulk.body as Obj)['message']), /^item 1: /);
  const imp = await srv.api('POST', '/api/v1/import', { forge_export: 1, distros: [{ name: 'imp', ...good(), kernel: '/etc/shadow' }] });
  assert.equal(imp.status, 400);
  assert.equal((imp.body as Obj)['field'], 'kernel');
  const list = (await srv.api('GET', '/api/v1/distros?fields=name')).body as Obj[];
  assert.deepEqual(list.map((d) => d['name']), ['fine'], 'nothing refused was stored');
});

test('a leftover distro pointing at /etc/shadow and DATA_DIR/token is not served over HTTP or TFTP, and forge check flags it', async () => {
  await srv.stop({ keepData: true });
  const store = openSqliteStore(dataDir);
  await store.create('distro', { ...defaultDistro('old'), kernel: '/etc/shadow', initrd: join(dataDir, 'token'), tree: '/' });
  await store.close();
  srv = await start();
  const k = await fetch(`${srv.url}/boot/distro/old/kernel`);
  assert.equal(k.status, 404);
  const kb = await k.text();
  assert.ok(!kb.includes('root:'), 'no shadow content');
  const i = await fetch(`${srv.url}/boot/distro/old/initrd`);
  assert.equal(i.status, 404);
  assert.ok(!(await i.text()).includes(srv.token), 'token not served');
  for (const p of ['/tree/old/etc/shadow', '/tree/old/etc/passwd', `/tree/old${dataDir}/token`]) {
    const t = await fetch(srv.url + p);
    assert.equal(t.status, 404, p);
  }
  for (const f of ['distro/old/kernel', 'distro/old/initrd', '/distro/old/initrd']) {
    const r = await tftpGet(tftpPort, f, { totalMs: 5000 });
    assert.ok(r.error !== undefined, `TFTP ${f} refused`);
    assert.equal(r.data.length, 0);
  }
  const files = await srv.api('GET', '/api/v1/distros/old/files');
  assert.equal(files.status, 404, 'no digest of /etc/shadow either');
  const ok = await tftpGet(tftpPort, 'distro/fine/kernel', { totalMs: 5000 });
  assert.equal(ok.data.toString(), 'KERNEL', 'TFTP still serves confined files');
  const chk = await srv.cli(['check']);
  assert.equal(chk.code, 8, chk.stdout + chk.stderr);
  assert.match(chk.stdout + chk.stderr, /distro old.*kernel.*\/etc\/shadow.*never served/);
  assert.match(chk.stdout + chk.stderr, /distro old.*initrd.*data directory/);
  assert.match(chk.stdout + chk.stderr, /distro old.*tree/);
});

test('boot_roots and tftp_root may not be /, /etc or the data directory: serve exits 2 naming the key', () => {
  const other = join(dir, 'other');
  for (const [flag, value] of [['--boot-roots', '/'], ['--boot-roots', '/etc'], ['--boot-roots', other], ['--tftp-root', '/etc'], ['--tftp-root', other]] as const) {
    const r = spawnSync(process.execPath, [FORGE_BIN, 'serve', '--data-dir', other, '--http-port', '0', '--listen', '127.0.0.1', '--tftp-enabled', 'false', flag, value], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, `${flag} ${value}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, new RegExp(`${flag.slice(2).replace('-', '_')}: `));
  }
});
