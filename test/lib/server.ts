/**
 * Starts a REAL `forge serve` process (node dist/server/cli/main.js serve)
 * with a temporary data directory and an ephemeral HTTP port, waits until it
 * prints `forge ready: URL`, and returns handles to drive and stop it.
 *
 *   const srv = await startForge();            // TFTP off unless asked
 *   const r = await srv.cli(['system', 'list']);   // runs the real `forge` CLI
 *   await srv.stop();                          // SIGTERM, then SIGKILL after 5 s
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultBootRoots } from '../../server/boot/confine.js';

/** dist/server/cli/main.js (this file is dist/test/lib/server.js once built). */
export const FORGE_BIN = fileURLToPath(new URL('../../server/cli/main.js', import.meta.url));

/** Boot roots test servers get unless a test passes --boot-roots itself: the built-in ones plus the fixtures' places. */
export const testBootRoots = (dataDir: string): string[] => [...defaultBootRoots(dataDir), ...TEST_BOOT_ROOTS];
// /var/lib/libvirt/images: agent labs keep kernels and trees where libvirt-qemu can read them (test/lib/agent-lab.ts labDir).
const TEST_BOOT_ROOTS = [tmpdir(), '/var/lib/libvirt/images', process.env['FORGE_TEST_CACHE'] ?? '/var/cache/forge-test', ...(process.env['FORGE_TEST_KERNEL_DIR'] !== undefined ? [process.env['FORGE_TEST_KERNEL_DIR']] : [])];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ForgeServer {
  /** e.g. http://127.0.0.1:40123 */
  url: string;
  port: number;
  token: string;
  dataDir: string;
  proc: ChildProcess;
  /** Everything the server printed so far (stdout + stderr). */
  output(): string;
  /** Run `forge ARGS` against this server (FORGE_SERVER and FORGE_TOKEN set). */
  cli(args: string[], env?: NodeJS.ProcessEnv, opts?: { input?: string; timeoutMs?: number }): Promise<CliResult>;
  /** fetch() relative to url with the bearer token (unless auth: false). */
  api(method: string, path: string, body?: unknown, opts?: { auth?: boolean | string; raw?: string }): Promise<{ status: number; body: unknown }>;
  /** SIGTERM and wait; removes the data dir unless keepData. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** SIGKILL and wait (data dir kept: restart with the same dataDir). */
  kill(): Promise<void>;
}

export interface StartOptions {
  /** Extra `forge serve` flags. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Reuse a data directory (e.g. restart after kill). */
  dataDir?: string;
  /** Start the TFTP service (default: off, `--tftp-enabled false`). */
  tftp?: boolean;
  /** ms to wait for readiness (default 20 s). */
  timeoutMs?: number;
  /** Node flags before the script, e.g. `--cpu-prof` (not allowed in NODE_OPTIONS). */
  nodeArgs?: string[];
  /** Another build's server/cli/main.js (a benchmark comparing two builds in one run); default this build's. */
  bin?: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv, opts: { input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [FORGE_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`forge ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    p.stdin.end(opts.input ?? '');
  });
}

/** fetch() of BASE+path with the bearer token (unless auth: false); the body parsed as JSON when it is. */
export async function apiRequest(
  base: string, token: string, method: string, path: string, body?: unknown, o: { auth?: boolean | string; raw?: string; timeoutMs?: number } = {},
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {};
  const auth = o.auth ?? true;
  if (auth !== false) headers['authorization'] = `Bearer ${typeof auth === 'string' ? auth : token}`;
  let payload: string | undefined = o.raw;
  if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + path, {
    method, headers, ...(payload === undefined ? {} : { body: payload }), ...(o.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(o.timeoutMs) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

export async function startForge(opts: StartOptions = {}): Promise<ForgeServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'forge-test-'));
  const args = [
    ...(opts.nodeArgs ?? []),
    opts.bin ?? FORGE_BIN,
    'serve',
    '--data-dir',
    dataDir,
    '--listen',
    '127.0.0.1',
    '--http-port',
    '0',
    '--server',
    '127.0.0.1',
    '--log-level',
    'warn',
  ];
  if (opts.tftp !== true) args.push('--tftp-enabled', 'false');
  // Test fixtures live in temp dirs and the test cache: configure those as
  // boot roots (beside the README's /srv/forge) instead of loosening the rule.
  const extra = opts.args ?? [];
  if (!extra.includes('--boot-roots')) for (const r of testBootRoots(dataDir)) args.push('--boot-roots', r);
  args.push(...(opts.args ?? []));
  // Keep the host's FORGE_* settings out of the test server.
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_')));
  const proc = spawn(process.execPath, args, { env: { ...baseEnv, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = false;
  const exitP = new Promise<void>((resolve) => proc.on('exit', () => {
    exited = true;
    resolve();
  }));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`forge serve did not become ready in time:\n${out}`));
    }, opts.timeoutMs ?? 20_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /forge ready: http:\/\/[^\s]+:(\d+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`forge serve exited (${code ?? sig}) before it was ready:\n${out}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const token = readFileSync(join(dataDir, 'token'), 'utf8').trim();

  const waitExit = async (sig: NodeJS.Signals, graceMs: number): Promise<void> => {
    if (exited) return;
    proc.kill(sig);
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    await exitP;
    clearTimeout(t);
  };

  return {
    url,
    port,
    token,
    dataDir,
    proc,
    output: () => out,
    cli: (cliArgs, env = {}, o = {}) =>
      runCli(cliArgs, { ...baseEnv, FORGE_SERVER: url, FORGE_TOKEN: token, FORGE_DATA_DIR: dataDir, ...env }, o),
    api: (method, path, body, o = {}) => apiRequest(url, token, method, path, body, o),
    async stop(o = {}) {
      await waitExit('SIGTERM', 5000);
      if (o.keepData !== true && opts.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
    async kill() {
      await waitExit('SIGKILL', 5000);
    },
  };
}

/** GET a path from the server: status, content type and body text. */
/** The system an installer path is about (/autoinstall/system/N, /cblr/svc/op/.../system/N, /api/v1/systems/N/install/...). */
const INSTALLER_PATH = [
  /^\/(?:autoinstall|cloud-init|cblr\/svc\/op\/(?:autoinstall|ks|nopxe)|cblr\/svc\/op\/trig\/mode\/[^/]+)\/system\/([^/?]+)/,
  /^\/api\/v1\/systems\/([^/?]+)\/(?:install\/(?:start|done|report)|firstboot|cloud-init\/done)/,
];

/**
 * The URL an installer uses for `path`: forge's own install_base_url for the
 * system (BASE/i/TOKEN while its install window is open, core/access.ts), as
 * the rendered kernel command line and templates carry it. Other paths: as is.
 */
export async function installerUrl(srv: Pick<ForgeServer, 'url' | 'api'>, path: string): Promise<string> {
  const m = INSTALLER_PATH.map((re) => re.exec(path)).find((x) => x !== null);
  if (m === undefined || m === null) return srv.url + path;
  const r = await srv.api('GET', `/api/v1/systems/${m[1]!}/blended`);
  const base = r.status === 200 ? (r.body as { install_base_url?: unknown }).install_base_url : undefined;
  return typeof base === 'string' ? base.replace(/^http:\/\/[^/]+/, srv.url) + path : srv.url + path;
}

/** GET as an installer would (installer paths through the system's install token, installerUrl). */
export async function getText(srv: ForgeServer, path: string): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(await installerUrl(srv, path));
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

export interface TimelineEvent {
  type: string;
  detail: Record<string, unknown>;
}

/** Events are recorded fire-and-forget: poll (bounded) until `n` events of `type` show up; returns the timeline. */
export async function waitForEvent(srv: ForgeServer, system: string, type: string, n = 1, timeoutMs = 10000): Promise<TimelineEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await srv.api('GET', `/api/v1/systems/${system}/events`);
    const evs = (Array.isArray(r.body) ? r.body : ((r.body as { events?: unknown }).events ?? [])) as TimelineEvent[];
    if (evs.filter((e) => e.type === type).length >= n) return evs;
    if (Date.now() > deadline) throw new Error(`no ${type} event for ${system} within ${timeoutMs} ms; have ${evs.map((e) => e.type).join(', ')}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** `forge ARGS` against srv, which must exit 0: its stdout (the failure shows both streams). */
export async function cliOk(srv: Pick<ForgeServer, 'cli'>, args: string[]): Promise<string> {
  const r = await srv.cli(args);
  assert.equal(r.code, 0, `forge ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}
