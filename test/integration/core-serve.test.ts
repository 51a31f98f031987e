/**
 * `forge serve`: flags, config file, environment, token file, bad config,
 * graceful shutdown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startForge } from '../lib/server.js';

test('token file is created with mode 0600 and kept across restarts', async () => {
  const a = await startForge();
  const dataDir = a.dataDir;
  try {
    const st = statSync(join(dataDir, 'token'));
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(a.token.length >= 32);
    await a.stop({ keepData: true });
    const b = await startForge({ dataDir });
    assert.equal(b.token, a.token);
    // the CLI finds the token in FORGE_DATA_DIR without FORGE_TOKEN
    const r = await b.cli(['distro', 'add', '--name', 'd', '--kernel', '/srv/forge/k', '--initrd', '/srv/forge/i'], { FORGE_TOKEN: '' });
    assert.equal(r.code, 0, r.stderr);
    await b.stop({ keepData: true });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('config file < environment < flags', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-serve-'));
  try {
    const cfg = join(dir, 'forge.json');
    writeFileSync(cfg, JSON.stringify({ pxe_just_once: false, server: 'from-file.example', dhcp_dns: ['10.0.0.53', '10.0.0.54'] }));
    // startForge passes --server 127.0.0.1: the flag beats the file
    const s = await startForge({ args: ['--config', cfg], env: { FORGE_DHCP_DOMAIN: 'lab.example' } });
    try {
      await s.cli(['distro', 'add', '--name', 'd', '--kernel', '/srv/forge/k', '--initrd', '/srv/forge/i']);
      await s.cli(['profile', 'add', '--name', 'p', '--distro', 'd']);
      const v = (await s.api('GET', '/api/v1/profiles/p/blended')).body as Record<string, unknown>;
      assert.equal(v['pxe_just_once'], false, 'from the file');
      assert.deepEqual(v['name_servers'], ['10.0.0.53', '10.0.0.54'], 'list from the file');
      assert.deepEqual(v['name_servers_search'], ['lab.example'], 'from FORGE_DHCP_DOMAIN');
      assert.equal(v['server'], '127.0.0.1', 'the flag wins over the file');
    } finally {
      await s.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad configuration: clear error, usage exit code, nothing started', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-serve-'));
  try {
    const env = { ...process.env, FORGE_DATA_DIR: dir };
    let r = await runCli(['serve', '--data-dir', dir, '--http-port', 'eighty'], env, { timeoutMs: 15_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /CONFIG_INVALID: http_port/);
    r = await runCli(['serve', '--data-dir', dir, '--dhcp-mode', 'sometimes'], env, { timeoutMs: 15_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /dhcp_mode.*off, proxy, managed/);
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, '{"http_port": 8080, "colour": "red"}');
    r = await runCli(['serve', '--config', cfg], env, { timeoutMs: 15_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown key "colour"/);
    r = await runCli(['serve', '--no-such-flag'], env, { timeoutMs: 15_000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /USAGE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM shuts down cleanly with exit 0', async () => {
  const s = await startForge();
  const code = new Promise<number | null>((resolve) => s.proc.on('exit', (c) => resolve(c)));
  await s.stop();
  assert.equal(await code, 0);
  assert.match(s.output(), /forge stopped/);
});
