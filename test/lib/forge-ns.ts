/** A real `forge serve` process inside a network namespace of test/lib/netns.ts. */
import type { ChildProcess } from 'node:child_process';
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
