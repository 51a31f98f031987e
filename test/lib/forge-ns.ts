/** A real `forge serve` process inside a network namespace of test/lib/netns.ts. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import type { Host } from './netns.js';
import { FORGE_BIN } from './server.js';

export interface NsForge {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * Starts `forge serve` inside `host`'s namespace (test/lib/server.ts starts it in the host
 * namespace, where it must not bind port 67) listening on `ip`, which installers are also told;
 * resolves when it is ready (or rejects with its output). `args` come last and win.
 */
export async function forgeInNamespace(host: Host, ip: string, dataDir: string, args: string[], opts: { expectExit?: boolean; timeoutMs?: number } = {}): Promise<NsForge> {
  // FORGE_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`): node flags for profiling a bench's servers.
  const nodeArgs = (process.env['FORGE_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  const proc = host.spawn(process.execPath, [
    ...nodeArgs, FORGE_BIN, 'serve', '--data-dir', dataDir, '--listen', ip, '--http-port', '0', '--server', ip,
    '--tftp-enabled', 'false', '--log-level', 'warn', ...args,
  ]);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const limit = opts.timeoutMs ?? 20_000;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`forge did not become ready in ${limit} ms:\n${out}`)), limit);
    const poll = setInterval(() => {
      if (/forge ready:/.test(out)) {
        clearInterval(poll);
        clearTimeout(timer);
        resolve();
      }
    }, 50);
    void exited.then(() => {
      clearInterval(poll);
      clearTimeout(timer);
      if (opts.expectExit === true) resolve();
      else reject(new Error(`forge exited before it was ready:\n${out}`));
    });
  });
  return {
    proc,
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** A TCP forward from the test's own loopback into a namespace: the test reaches `ip:port` from there. */
export interface NsForward {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  close(): Promise<void>;
}

/** The relay run inside the namespace for one connection: stdin/stdout <-> ip:port. */
const RELAY = "const s=require('net').connect(+process.argv[2],process.argv[1]);process.stdin.pipe(s);s.pipe(process.stdout);s.on('close',()=>process.exit(0));s.on('error',()=>process.exit(1));";

/**
 * Listens on 127.0.0.1 (a free port) in the test's namespace and relays each connection to
 * `ip:port` from `host`'s namespace through a small node process started there (`ip netns
 * exec`; a process sees one network namespace), so the server sees `host`'s address as the client. fetch keeps connections alive, so a test spawns
 * a relay per connection, not per request. Traffic stays between loopback and the namespace.
 */
export async function forwardInto(host: Host, ip: string, port: number): Promise<NsForward> {
  const relays = new Set<ChildProcess>();
  const server = createServer((sock) => {
    const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, '-e', RELAY, ip, String(port)], { stdio: ['pipe', 'pipe', 'ignore'] });
    relays.add(child);
    sock.pipe(child.stdin!);
    child.stdout!.pipe(sock);
    child.stdin!.on('error', () => undefined);
    sock.on('error', () => child.kill());
    sock.on('close', () => child.kill());
    child.on('exit', () => {
      relays.delete(child);
      sock.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: local } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${local}`,
    async close() {
      for (const c of relays) c.kill();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
