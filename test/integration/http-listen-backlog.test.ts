/**
 * The HTTP listener's backlog as `forge serve` runs it (services/http/limits.ts
 * HTTP_LISTEN_BACKLOG): a boot storm's connections wait there until forge accepts them, and in the
 * 1,000-PXE-client bench (issue 21) Node's default of 511 filled and the kernel dropped
 * handshakes. Read from the kernel with ss: for a LISTEN socket, Send-Q is the backlog the
 * kernel applies (listen(2) capped at net.core.somaxconn). The old default fails this (511).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hasCommand, inCI } from '../lib/env.js';
import { startForge } from '../lib/server.js';
import { HTTP_LISTEN_BACKLOG } from '../../server/services/http/limits.js';

test('forge serve listens with a backlog of HTTP_LISTEN_BACKLOG (capped by net.core.somaxconn), not Node\'s 511', async (t) => {
  if (!hasCommand('ss')) {
    assert.ok(!inCI(), 'ss (iproute2) is needed in CI');
    t.skip('needs ss (iproute2)');
    return;
  }
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  const want = Math.min(HTTP_LISTEN_BACKLOG, somaxconn);
  assert.ok(want > 511, `somaxconn ${somaxconn} leaves no room above Node's default on this host`);
  const forge = await startForge();
  try {
    const out = execFileSync('ss', ['-ltnH', `sport = :${forge.port}`], { encoding: 'utf8' });
    const m = /^LISTEN\s+\d+\s+(\d+)\s/m.exec(out);
    assert.ok(m !== null, `no LISTEN socket on port ${forge.port}: ${out}`);
    assert.equal(Number(m[1]), want, `backlog of forge's HTTP listener (ss Send-Q): ${out}`);
  } finally {
    await forge.stop();
  }
});
