/**
 * Templates are trusted code: `forge serve` refuses to start when the site
 * templates_dir or snippets_dir (or something in them) is group/other
 * writable or owned by another user, naming the path; a sane one starts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FORGE_BIN, startForge } from '../lib/server.js';

function serve(dir: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [FORGE_BIN, 'serve', '--data-dir', join(dir, 'data'), '--http-port', '0', '--listen', '127.0.0.1', '--tftp-enabled', 'false', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: r.stdout + r.stderr };
}

test('a world-writable templates_dir, a group-writable snippet, a foreign-owned template: refused at start, naming the path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'forge-tpl-trust-'));
  try {
    const tpl = join(dir, 'templates');
    const snip = join(dir, 'snippets');
    mkdirSync(join(tpl, 'preseed'), { recursive: true, mode: 0o755 });
    mkdirSync(snip, { recursive: true, mode: 0o755 });
    writeFileSync(join(tpl, 'preseed', 'site.seed'), 'd-i debian-installer/locale string en_US\n', { mode: 0o644 });
    writeFileSync(join(snip, 'late.sh'), 'echo hi\n', { mode: 0o644 });
    chmodSync(tpl, 0o755);
    chmodSync(snip, 0o755);

    chmodSync(tpl, 0o777);
    let r = serve(dir, ['--templates-dir', tpl, '--snippets-dir', snip]);
    assert.equal(r.status, 2, r.out);
    assert.ok(r.out.includes(`templates_dir: ${tpl} is writable by group`), r.out);
    assert.doesNotMatch(r.out, /\n\s+at /, 'no stack trace');
    chmodSync(tpl, 0o755);

    chmodSync(join(snip, 'late.sh'), 0o664);
    r = serve(dir, ['--templates-dir', tpl, '--snippets-dir', snip]);
    assert.equal(r.status, 2, r.out);
    assert.ok(r.out.includes(`snippets_dir: ${join(snip, 'late.sh')} is writable by group`), r.out);
    chmodSync(join(snip, 'late.sh'), 0o644);

    chmodSync(join(tpl, 'preseed', 'site.seed'), 0o646);
    r = serve(dir, ['--templates-dir', tpl, '--snippets-dir', snip]);
    assert.equal(r.status, 2, r.out);
    assert.ok(r.out.includes(`${join(tpl, 'preseed', 'site.seed')} is writable by other`), r.out);
    chmodSync(join(tpl, 'preseed', 'site.seed'), 0o644);

    if (process.getuid?.() === 0) {
      chownSync(join(tpl, 'preseed'), 65534, 65534);
      r = serve(dir, ['--templates-dir', tpl, '--snippets-dir', snip]);
      assert.equal(r.status, 2, r.out);
      assert.ok(r.out.includes(`${join(tpl, 'preseed')} is owned by uid 65534`), r.out);
      chownSync(join(tpl, 'preseed'), 0, 0);
    } else {
      t.diagnostic('not root: the foreign-owner case needs chown');
    }

    const ok = await startForge({ args: ['--templates-dir', tpl, '--snippets-dir', snip] });
    try {
      const h = await ok.api('GET', '/api/v1/templates', undefined, { auth: false });
      assert.equal(h.status, 200);
    } finally {
      await ok.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
