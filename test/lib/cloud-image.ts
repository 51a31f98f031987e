/**
 * A Debian 12 cloud image built from Debian packages for the cloud-init
 * e2e: mmdebstrap (apt's configured mirror, deb.debian.org by default) with
 * cloud-init, a kernel (linux-image-amd64 + initramfs-tools), systemd,
 * ifupdown + isc-dhcp-client (Debian's cloud-init renders ENI) and
 * openssh-server; turned into an ext4 image with `mkfs.ext4 -d`. It boots by
 * direct kernel boot (qemu -kernel/-initrd), so no boot loader is installed.
 *
 * Built once and cached under /var/cache/forge-test/cloud-image-<VERSION>/
 * (FORGE_TEST_CACHE overrides the root) so CI is not bound by downloads;
 * every boot gets its own qcow2 overlay, the cached image is never written.
 * A lock directory keeps two concurrent test runs from building at once.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bump when the package list or the build changes (a new cache directory). */
const VERSION = 'v1';
const PACKAGES = [
  'linux-image-amd64', 'initramfs-tools', 'systemd-sysv', 'udev', 'cloud-init', 'ifupdown', 'isc-dhcp-client',
  'openssh-server', 'curl', 'netbase', 'ca-certificates', 'iproute2',
];

export interface CloudImage {
  kernel: string;
  initrd: string;
  /** Raw ext4 root filesystem (read-only base: boot an overlay). */
  rootfs: string;
}

export function cacheRoot(): string {
  return process.env['FORGE_TEST_CACHE'] ?? '/var/cache/forge-test';
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Build (or reuse) the image; `progress` gets one line per step. */
export function cloudImage(progress: (line: string) => void = () => {}): CloudImage {
  const dir = join(cacheRoot(), `cloud-image-${VERSION}`);
  const img: CloudImage = { kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.img'), rootfs: join(dir, 'rootfs.ext4') };
  if ([img.kernel, img.initrd, img.rootfs].every((p) => existsSync(p))) return img;
  mkdirSync(cacheRoot(), { recursive: true });
  const lock = `${dir}.lock`;
  for (let waited = 0; ; waited += 2000) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another run is building; a lock older than 30 minutes is stale.
      if (Date.now() - statSync(lock).mtimeMs > 30 * 60_000) rmSync(lock, { recursive: true, force: true });
      if ([img.kernel, img.initrd, img.rootfs].every((p) => existsSync(p))) return img;
      if (waited % 60_000 === 0) progress('waiting for another run to finish building the cloud image');
      sleepMs(2000);
    }
  }
  const work = `${dir}.build-${process.pid}`;
  try {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(join(work, 'root'), { recursive: true });
    progress(`mmdebstrap bookworm (${PACKAGES.length} packages and their dependencies) into ${work}`);
    const r = spawnSync('mmdebstrap', ['--variant=apt', `--include=${PACKAGES.join(',')}`, 'bookworm', join(work, 'root')], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status !== 0) throw new Error(`mmdebstrap failed (${r.status}):\n${r.stderr.slice(-4000)}`);
    const root = join(work, 'root');
    const boot = readdirSync(join(root, 'boot'));
    const k = boot.find((f) => f.startsWith('vmlinuz-'));
    const i = boot.find((f) => f.startsWith('initrd.img-'));
    if (k === undefined || i === undefined) throw new Error(`no kernel/initrd in ${root}/boot: ${boot.join(' ')}`);
    execFileSync('cp', [join(root, 'boot', k), join(work, 'vmlinuz')]);
    execFileSync('cp', [join(root, 'boot', i), join(work, 'initrd.img')]);
    // Root on /dev/vda, no boot loader: the kernel is given to qemu.
    writeFileSync(join(root, 'etc', 'fstab'), '/dev/vda / ext4 defaults 0 1\n');
    writeFileSync(join(root, 'etc', 'hostname'), 'unconfigured\n');
    rmSync(join(root, 'etc', 'machine-id'), { force: true });
    writeFileSync(join(root, 'etc', 'machine-id'), '');
    progress('mkfs.ext4 -d (2 GiB sparse)');
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'root', '-d', root, join(work, 'rootfs.ext4'), '2G']);
    rmSync(root, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    progress(`cloud image cached in ${dir}`);
    return img;
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(lock, { recursive: true, force: true });
  }
}

/** A qcow2 overlay on the cached base (the base stays untouched). */
export function overlay(img: CloudImage, path: string): string {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', img.rootfs, '-F', 'raw', path]);
  return path;
}
