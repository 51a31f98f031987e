/**
 * The client side of the 1,000-PXE-clients bench (bench/pxe.ts), run inside the client
 * namespace: N simulated clients fetch the loader over TFTP (one atftp process each, at most
 * C at once), or kernel + initrd over HTTP (one keep-alive connection per client, kernel then
 * initrd, as iPXE does). Prints one JSON line: per-client completion times (ms from the start),
 * bytes, failures.
 *
 *   node dist/bench/pxe-client.js tftp SERVER FILE N C
 *   node dist/bench/pxe-client.js http BASEURL KERNEL_PATH INITRD_PATH N [LIMIT_S]
 *
 * The HTTP phase ends itself after LIMIT_S (default 1800): it then reports the clients that
 * finished and counts the others as "not finished within LIMIT_S s", so a slow run still yields
 * its figure instead of being killed with nothing printed. Progress (clients done, GiB moved)
 * goes to stderr every 30 s.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Outcome {
  done: number[];
  bytes: number;
  failures: string[];
}

async function tftp(server: string, file: string, n: number, conc: number): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'fgpxe-'));
  const t0 = performance.now();
  const out: Outcome = { done: [], bytes: 0, failures: [] };
  let next = 0;
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const local = join(dir, `c${i}`);
      // blksize 1468 as PXE ROMs ask (pxelinux/iPXE), no windowsize (PXE ROMs do not send it).
      execFile('atftp', ['--option', 'blksize 1468', '-g', '-r', file, '-l', local, server], { timeout: 120_000 }, (err, _o, stderr) => {
        if (err !== null) out.failures.push(`client ${i}: ${String(stderr).trim().split('\n').pop() ?? err.message}`);
        else {
          out.bytes += statSync(local).size;
          out.done.push(performance.now() - t0);
        }
        rmSync(local, { force: true });
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: Math.min(conc, n) }, async () => {
      while (next < n) await one(next++);
    }),
  );
  rmSync(dir, { recursive: true, force: true });
  return out;
}

/**
 * When this client's TCP connection came up (ms from the phase start), or undefined before: a
 * failure's message carries it, so a late connect (SYN retransmitted: a full accept queue) and
 * a connection up for long before its request was parsed (a header timeout) tell apart.
 */
interface Conn {
  at?: number;
}

function get(agent: http.Agent, url: string, onChunk: (bytes: number) => void, conn: Conn, t0: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`${url}: HTTP ${res.statusCode ?? '?'}`));
        return;
      }
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        onChunk(c.length);
      });
      res.on('end', () => resolve(n));
      res.on('error', reject);
    });
    req.setTimeout(300_000, () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.on('socket', (sock) => {
      if (conn.at === undefined && sock.connecting) sock.once('connect', () => (conn.at = performance.now() - t0));
      else if (conn.at === undefined) conn.at = performance.now() - t0;
    });
  });
}

async function httpFetch(base: string, kernel: string, initrd: string, n: number, limitS: number): Promise<Outcome> {
  const t0 = performance.now();
  const out: Outcome = { done: [], bytes: 0, failures: [] };
  /** Bytes received so far by every client, finished or not (progress only). */
  let moved = 0;
  const agents = new Set<http.Agent>();
  let timedOut = false;
  const at = (): string => ((performance.now() - t0) / 1000).toFixed(1);
  const progress = setInterval(() => {
    process.stderr.write(`[pxe-client] ${at()} s: ${out.done.length}/${n} have their initrd, ${(moved / 2 ** 30).toFixed(1)} GiB received, ${out.failures.length} failed\n`);
  }, 30_000);
  const all = Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.add(agent);
      let step = 'kernel';
      const conn: Conn = {};
      try {
        // (`out.bytes += await ...` would read out.bytes before the await and lose the other clients' bytes)
        const k = await get(agent, base + kernel, (c) => (moved += c), conn, t0);
        step = `initrd (kernel done at ${at()} s)`;
        const i2 = await get(agent, base + initrd, (c) => (moved += c), conn, t0);
        out.bytes += k + i2;
        out.done.push(performance.now() - t0);
      } catch (e) {
        const up = conn.at === undefined ? 'never connected' : `connected at ${(conn.at / 1000).toFixed(1)} s`;
        if (!timedOut) out.failures.push(`client ${i}: ${step}: ${(e as Error).message} at ${at()} s (${up})`);
      } finally {
        agent.destroy();
        agents.delete(agent);
      }
    }),
  );
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      const left = n - out.done.length - out.failures.length;
      for (let j = 0; j < left; j++) out.failures.push(`not finished within ${limitS} s`);
      for (const a of agents) a.destroy();
      resolve();
    }, limitS * 1000);
  });
  await Promise.race([all, limit]);
  clearTimeout(timer);
  clearInterval(progress);
  return out;
}

const [mode, a, b, c, d, e] = process.argv.slice(2);
const result =
  mode === 'tftp'
    ? await tftp(a ?? '', b ?? '', Number(c), Number(d))
    : mode === 'http'
      ? await httpFetch(a ?? '', b ?? '', c ?? '', Number(d), Number(e ?? 1800))
      : undefined;
if (result === undefined) {
  process.stderr.write('usage: pxe-client tftp SERVER FILE N C | http BASEURL KERNEL INITRD N [LIMIT_S]\n');
  process.exitCode = 2;
} else {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // Sockets a time limit destroyed may still hold timers: the result is out, end now.
  process.exit(0);
}
