/**
 * The one builder of the small busybox initramfs images forge makes itself:
 * the discovery image (discovery/image.ts), forge-agent's rescue system
 * (agent/rescue.ts) and the VM tests' guests (test/lib/guest.ts) all call
 * writeInitramfs. Each image is Debian's busybox-static as /bin/busybox, the
 * kernel modules in load order under /lib/modules with /etc/modules-order,
 * optional host binaries with the shared libraries they link, extra files and
 * /init, packed as a gzip'd newc cpio archive: the format the kernel unpacks
 * into its rootfs (Linux Documentation/driver-api/early-userspace/
 * buffer-format.rst). The caller picks the kernel (boot/debkernel.ts) and the
 * modules; this module only lays out and packs.
 *
 * Node builtins and the error catalogue only: forge-agent ships it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ForgeError } from '../errors.js';
import { toolError, type KernelUser } from './debkernel.js';

/** Debian's busybox-static installs here. */
export const BUSYBOX = '/bin/busybox';

/** The first lines of a busybox PID 1: applets, PATH, /proc /sys /dev (the rescue VM and the test guests start so). */
export const BUSYBOX_INIT_BASE = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run /mnt
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
`;

/**
 * busybox udhcpc's event script (`udhcpc -s`, run with bound/renew/deconfig and the lease in
 * $ip $mask $router $dns): puts the address and the default route on the interface; with
 * `resolvConf`, the DNS servers into /etc/resolv.conf as well.
 */
export function udhcpcScript(opts: { resolvConf: boolean }): string {
  return `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface"
${opts.resolvConf ? `    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
` : ''}    ;;
esac
exit 0
`;
}

export interface InitramfsSpec {
  /** The shell script PID 1 runs (/init, mode 0755). */
  init: string;
  /** Kernel module files in load order (.ko, .ko.xz or .ko.zst): written plain, since busybox insmod reads no compressed modules. */
  modules: readonly string[];
  /** Extra files by their path in the image (mode 0755), written after /init. */
  files?: Readonly<Record<string, string | Buffer>>;
  /** Host binaries copied to the same path with the shared libraries ldd names (dynamic ones such as kexec). */
  binaries?: readonly string[];
  /** gzip level: 1 for images rebuilt often (rescue, test guests), 6 for the one served to machines. */
  gzipLevel: number;
  /** busybox-static; default BUSYBOX. */
  busybox?: string;
}

function run(u: KernelUser, cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 16 << 20, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  } catch (e) {
    throw toolError(u, cmd, args, e);
  }
}

/** A binary and the shared libraries it links (by ldd), copied to the same paths under ROOT. */
function copyWithLibs(u: KernelUser, bin: string, root: string): void {
  const files = [bin];
  for (const line of run(u, 'ldd', [bin]).split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1] !== undefined) files.push(m[1]);
  }
  for (const f of files) {
    const dest = join(root, f);
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(realpathSync(f), dest);
    chmodSync(dest, 0o755);
  }
}

/** Module files into DEST, xz/zstd ones decompressed; the names in load order. */
function copyModules(u: KernelUser, files: readonly string[], dest: string): string[] {
  mkdirSync(dest, { recursive: true });
  const names: string[] = [];
  for (const m of files) {
    let base = m.split('/').pop() ?? m;
    for (const [ext, tool] of [['.xz', 'xz'], ['.zst', 'zstd']] as const) {
      if (base.endsWith(ext)) {
        base = base.slice(0, -ext.length);
        run(u, 'sh', ['-c', `${tool} -dc "$1" > "$2"`, 'sh', m, join(dest, base)]);
      }
    }
    if (!existsSync(join(dest, base))) copyFileSync(m, join(dest, base));
    names.push(base);
  }
  return names;
}

/** Fails (naming the package) when busybox-static is missing: callers check before a long kernel download. */
export function requireBusybox(u: KernelUser, busybox = BUSYBOX): void {
  if (!existsSync(busybox)) throw new ForgeError(u.unavailable, `${u.label}: ${busybox} missing (apt-get install busybox-static)`, { field: 'busybox' });
}

/**
 * Lay out the image in a temporary directory and pack it to OUT (atomically:
 * written beside it, then renamed; mode 0644, since qemu under libvirt reads
 * it as another user). Answers the module names in load order.
 */
export function writeInitramfs(u: KernelUser, out: string, spec: InitramfsSpec): string[] {
  const busybox = spec.busybox ?? BUSYBOX;
  requireBusybox(u, busybox);
  const work = mkdtempSync(join(tmpdir(), 'forge-initramfs-'));
  try {
    const root = join(work, 'root');
    for (const d of ['bin', 'etc', 'lib/modules']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(busybox, join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    const names = copyModules(u, spec.modules, join(root, 'lib', 'modules'));
    for (const b of spec.binaries ?? []) copyWithLibs(u, b, root);
    writeFileSync(join(root, 'etc', 'modules-order'), names.join('\n') + '\n');
    writeFileSync(join(root, 'init'), spec.init, { mode: 0o755 });
    for (const [p, content] of Object.entries(spec.files ?? {})) {
      const dest = join(root, p.replace(/^\/+/, ''));
      mkdirSync(dirname(dest), { recursive: true });
      writeFileSync(dest, content, { mode: 0o755 });
    }
    mkdirSync(dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${process.pid}`;
    run(u, 'sh', ['-c', `find . | cpio -o -H newc --quiet | gzip -${spec.gzipLevel} > "$1"`, 'sh', tmp], { cwd: root });
    chmodSync(tmp, 0o644);
    renameSync(tmp, out);
    return names;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
