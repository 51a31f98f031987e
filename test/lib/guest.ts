/**
 * Guest images for the VM tests: a real Debian kernel and small initramfs
 * images built from Debian's busybox-static, so a VM test boots real Linux in
 * seconds under software emulation.
 *
 * The kernel comes from Debian's linux-image package, extracted (not
 * installed) into a cache: `apt-get download` + `dpkg -x`. It ships no
 * modules.dep, so module dependencies are resolved here with `modinfo`.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { KernelUser } from '../../server/boot/debkernel.js';
import { BUSYBOX_INIT_BASE, udhcpcScript, writeInitramfs } from '../../server/boot/initramfs.js';

export const CACHE_DIR = process.env['FORGE_TEST_CACHE'] ?? '/var/cache/forge-test';

export interface GuestKernel {
  vmlinuz: string;
  version: string;
  modulesDir: string;
}

/** Modules every guest loads: virtio and e1000 NICs, virtio disk. */
export const DEFAULT_MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk', 'e1000'];

let kernelMemo: GuestKernel | undefined;

/**
 * The guest kernel: $FORGE_TEST_KERNEL_DIR (an extracted linux-image package),
 * else the cache, else downloaded from Debian's archive into the cache.
 */
export function guestKernel(): GuestKernel {
  if (kernelMemo !== undefined) return kernelMemo;
  const root = process.env['FORGE_TEST_KERNEL_DIR'] ?? join(CACHE_DIR, 'kernel');
  if (!existsSync(join(root, 'boot'))) fetchKernelPackage(root);
  const vm = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  if (vm === undefined) throw new Error(`no vmlinuz-* under ${root}/boot`);
  const version = vm.slice('vmlinuz-'.length);
  kernelMemo = { vmlinuz: join(root, 'boot', vm), version, modulesDir: join(root, 'lib', 'modules', version) };
  return kernelMemo;
}

function fetchKernelPackage(root: string): void {
  // Test files run two at a time (test/run.mjs), and two of them may find the
  // kernel missing at once: each downloads into a directory of its own, unpacks
  // beside the root and renames; the loser of the rename keeps the winner's tree.
  const pkgDir = join(CACHE_DIR, `kpkg-${process.pid}`);
  rmSync(pkgDir, { recursive: true, force: true });
  mkdirSync(pkgDir, { recursive: true });
  const deps = execFileSync('apt-cache', ['depends', 'linux-image-amd64'], { encoding: 'utf8' });
  const m = /Depends: (linux-image-[0-9][^\s]*)/.exec(deps);
  if (m === null || m[1] === undefined) throw new Error('apt-cache: linux-image-amd64 has no linux-image-* dependency (run apt-get update)');
  const pkg = m[1];
  execFileSync('apt-get', ['download', '-q', pkg], { cwd: pkgDir, stdio: 'ignore' });
  const deb = readdirSync(pkgDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (deb === undefined) throw new Error(`apt-get download ${pkg} produced no .deb in ${pkgDir}`);
  const tmp = `${root}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  execFileSync('dpkg', ['-x', join(pkgDir, deb), tmp]);
  rmSync(pkgDir, { recursive: true, force: true });
  if (existsSync(join(root, 'boot'))) {
    rmSync(tmp, { recursive: true, force: true });
    return;
  }
  rmSync(root, { recursive: true, force: true });
  try {
    renameSync(tmp, root);
  } catch (e) {
    // Another file renamed its tree into place between the check and here.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(join(root, 'boot'))) throw e;
  }
}

function findModule(modulesDir: string, name: string): string {
  const out = execFileSync('find', [modulesDir, '-name', `${name}.ko*`], { encoding: 'utf8' }).trim().split('\n')[0];
  const alt = name.includes('_') ? name.replace(/_/g, '-') : name.replace(/-/g, '_');
  if (out !== undefined && out !== '') return out;
  const out2 = execFileSync('find', [modulesDir, '-name', `${alt}.ko*`], { encoding: 'utf8' }).trim().split('\n')[0];
  if (out2 !== undefined && out2 !== '') return out2;
  throw new Error(`kernel module ${name} not found under ${modulesDir}`);
}

/** Module files in load order (dependencies first). */
export function moduleClosure(kernel: GuestKernel, names: string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const file = findModule(kernel.modulesDir, name);
    const deps = execFileSync('modinfo', ['-F', 'depends', file], { encoding: 'utf8' }).trim();
    for (const d of deps.split(',').filter((s) => s !== '')) visit(d);
    order.push(file);
  };
  for (const n of names) visit(n);
  return order;
}

/**
 * Shell prelude of every guest init: busybox applets, /proc /sys /dev,
 * modules, and helpers:
 *   arg NAME        value of NAME= on the kernel command line
 *   net_up          DHCP on the first ethernet interface (udhcpc)
 *   say MSG         a line on the serial console, prefixed `forge-guest:`
 *   halt_now        sync and power off (the VM exits)
 */
export const INIT_PRELUDE = `${BUSYBOX_INIT_BASE}say() { echo "forge-guest: $*" > /dev/console; }
halt_now() { sync; say "powering off"; poweroff -f; sleep 30; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "\${w#*=}"; return 0;; esac; done; return 1; }
for m in $(cat /etc/modules-order); do insmod "/lib/modules/$m" 2>/dev/null; done
net_up() {
  ip link set lo up
  for i in 1 2 3 4 5 6 7 8 9 10; do
    dev=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
    [ -n "$dev" ] && break
    sleep 1
  done
  [ -n "$dev" ] || { say "no network interface"; return 1; }
  ip link set "$dev" up
  udhcpc -i "$dev" -s /etc/udhcpc.script -q -t 10 -T 2 -n || { say "dhcp failed on $dev"; return 1; }
  say "network up on $dev: $(ip -4 -o addr show dev $dev | awk '{print $4}')"
}
say "init started, kernel $(uname -r)"
`;

/** Guests resolve names (the install tests fetch by host name): DNS into /etc/resolv.conf too. */
const UDHCPC_SCRIPT = udhcpcScript({ resolvConf: true });

export interface InitramfsOptions {
  /** Shell run after INIT_PRELUDE as /init (PID 1). Should end in halt_now or a wait. */
  init: string;
  /** Extra files: path inside the image -> content. */
  files?: Record<string, string | Buffer>;
  /** Kernel modules to load (with their dependencies). Default DEFAULT_MODULES. */
  modules?: string[];
}

const GUEST: KernelUser = { label: 'test guest', unavailable: 'VIRT_UNAVAILABLE', failed: 'VIRT_FAILED' };

/**
 * Build (or reuse from the cache) a gzip'd newc cpio initramfs holding
 * busybox-static, the modules and /init (server/boot/initramfs.ts, the
 * builder of the discovery image and the rescue system). Returns its path.
 */
export function buildInitramfs(opts: InitramfsOptions): string {
  const kernel = guestKernel();
  const modules = moduleClosure(kernel, opts.modules ?? DEFAULT_MODULES);
  const h = createHash('sha256');
  // The builder's own text is in the key: a change to it rebuilds every cached guest.
  h.update(writeInitramfs.toString()).update(kernel.version).update(INIT_PRELUDE).update(opts.init).update(modules.join('\n'));
  for (const [k, v] of Object.entries(opts.files ?? {}).sort(([a], [b]) => a.localeCompare(b))) h.update(k).update(v);
  const out = join(CACHE_DIR, 'initramfs', `${h.digest('hex').slice(0, 16)}.cpio.gz`);
  if (existsSync(out)) return out;

  writeInitramfs(GUEST, out, { init: INIT_PRELUDE + opts.init + '\n', modules, files: { 'etc/udhcpc.script': UDHCPC_SCRIPT, ...opts.files }, gzipLevel: 1 });
  return out;
}
