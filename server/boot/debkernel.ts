/**
 * Debian's linux-image package as the kernel of the small Linux systems forge
 * builds itself (forge-agent's rescue VM, the discovery image): extracted, not
 * installed (`apt-get download` + `dpkg -x`), or an already extracted/installed
 * root (DIR/boot/vmlinuz-VER + DIR/lib/modules/VER). The package ships no
 * modules.dep, so module dependencies are resolved with `modinfo -F depends`.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ForgeError, type ErrorCode } from '../errors.js';

const run = promisify(execFile);

export interface KernelRoot {
  root: string;
  vmlinuz: string;
  version: string;
  modulesDir: string;
}

/** Who is asking, for error text and codes (the rescue VM's errors are VIRT_*, the discovery image's IMPORT_*). */
export interface KernelUser {
  label: string;
  unavailable: ErrorCode;
  failed: ErrorCode;
}

/** A host tool that failed, as the caller's error: not installed (ENOENT), else what it wrote to stderr. */
export function toolError(u: KernelUser, cmd: string, args: readonly string[], e: unknown): ForgeError {
  const err = e as { code?: unknown; stderr?: string | Buffer; message: string };
  if (err.code === 'ENOENT') return new ForgeError(u.unavailable, `${u.label}: ${cmd} is not installed`);
  return new ForgeError(u.failed, `${u.label}: ${cmd} ${args.join(' ')}: ${String(err.stderr ?? '').trim() || err.message}`, { cause: e });
}

async function sh(u: KernelUser, cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    return (await run(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    throw toolError(u, cmd, args, e);
  }
}

/** The kernel of a root holding boot/vmlinuz-VER and lib/modules/VER; undefined when it has none. */
export function kernelIn(root: string): KernelRoot | undefined {
  const boot = join(root, 'boot');
  if (!existsSync(boot)) return undefined;
  for (const f of readdirSync(boot).filter((x) => x.startsWith('vmlinuz-')).sort().reverse()) {
    const version = f.slice('vmlinuz-'.length);
    const modulesDir = join(root, 'lib', 'modules', version);
    if (existsSync(modulesDir)) return { root, vmlinuz: join(boot, f), version, modulesDir };
  }
  return undefined;
}

/** `apt-get download PKG` + `dpkg -x` into INTO (replaced whole, atomically). */
export async function aptExtract(u: KernelUser, pkg: string, into: string, work: string): Promise<void> {
  mkdirSync(work, { recursive: true });
  // apt-get download writes into the current directory.
  await sh(u, 'sh', ['-c', 'cd "$1" && apt-get download -q "$2"', 'sh', work, pkg], 1_800_000).catch((e: unknown) => {
    throw new ForgeError(u.unavailable, `${u.label}: apt-get download ${pkg} failed (${(e as Error).message}); run apt-get update`);
  });
  const deb = readdirSync(work).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (deb === undefined) throw new ForgeError(u.failed, `${u.label}: apt-get download ${pkg} produced no .deb`);
  const tmp = `${into}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await sh(u, 'dpkg', ['-x', join(work, deb), tmp]);
  rmSync(join(work, deb), { force: true });
  rmSync(into, { recursive: true, force: true });
  renameSync(tmp, into);
}

/** DIR when it holds a kernel, else the current linux-image-amd64 extracted into CACHE (downloaded once). */
export async function debianKernel(u: KernelUser, dir: string | undefined, cache: string): Promise<KernelRoot> {
  if (dir !== undefined && dir !== '') {
    const k = kernelIn(dir);
    if (k === undefined) throw new ForgeError(u.failed, `${u.label}: no boot/vmlinuz-VER with lib/modules/VER under ${dir}`);
    return k;
  }
  const root = join(cache, 'kernel');
  const have = kernelIn(root);
  if (have !== undefined) return have;
  const deps = await sh(u, 'apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends: (linux-image-[0-9][^\s]*)/.exec(deps);
  if (m === null || m[1] === undefined) throw new ForgeError(u.unavailable, `${u.label}: apt knows no linux-image-amd64 (run apt-get update)`);
  await aptExtract(u, m[1], root, join(cache, 'pkg'));
  const k = kernelIn(root);
  if (k === undefined) throw new ForgeError(u.failed, `${u.label}: ${m[1]} holds no boot/vmlinuz-VER with its modules`);
  return k;
}

async function findModule(u: KernelUser, modulesDir: string, name: string): Promise<string | undefined> {
  const alt = name.includes('_') ? name.replace(/_/g, '-') : name.replace(/-/g, '_');
  const out = await sh(u, 'find', [modulesDir, '(', '-name', `${name}.ko*`, '-o', '-name', `${alt}.ko*`, ')']);
  return out.trim().split('\n').find((l) => l !== '');
}

function builtin(modulesDir: string, name: string): boolean {
  try {
    const list = readFileSync(join(modulesDir, 'modules.builtin'), 'utf8');
    return list.split('\n').some((l) => l.endsWith(`/${name}.ko`) || l.endsWith(`/${name.replace(/_/g, '-')}.ko`));
  } catch {
    return false;
  }
}

/**
 * Module files in load order (dependencies first). A required module that is
 * neither a file nor built in is an error; optional ones are skipped when absent.
 */
export async function moduleClosure(u: KernelUser, modulesDir: string, required: readonly string[], optional: readonly string[]): Promise<string[]> {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, must: boolean): Promise<void> => {
    if (seen.has(name)) return;
    seen.add(name);
    const file = await findModule(u, modulesDir, name);
    if (file === undefined) {
      if (must && !builtin(modulesDir, name)) throw new ForgeError(u.failed, `${u.label}: kernel module ${name} not found under ${modulesDir}`);
      return;
    }
    const deps = (await sh(u, 'modinfo', ['-F', 'depends', file])).trim();
    for (const d of deps.split(',').filter((s) => s !== '')) await visit(d, true);
    order.push(file);
  };
  for (const n of required) await visit(n, true);
  for (const n of optional) await visit(n, false);
  return order;
}
