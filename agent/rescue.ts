/**
 * The rescue system jobs run in (seed 004 repacks ALT Rescue; forge builds
 * its own from Debian packages, nothing downloaded from elsewhere): the
 * kernel of Debian's linux-image package and an initramfs of Debian's
 * busybox-static, the kernel modules a job needs (virtio disks, 9p shares,
 * the usual root filesystems) and /init (RESCUE_INIT). Built once into the
 * cache dir and reused while its inputs are the same.
 *
 * Packages come through apt (`apt-get download` + `dpkg -x`: extracted, not
 * installed). An installed busybox-static is used as it is.
 * FORGE_AGENT_RESCUE_KERNEL_DIR names an already extracted linux-image
 * package instead (offline hosts, CI caches).
 */
import { createHash } from 'node:crypto';
import { copyFileSync, chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { sh } from './disk.js';

export interface RescueSystem {
  kernel: string;
  initrd: string;
}

/** Needed for every job: disks, the three 9p shares. */
const REQUIRED_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', '9pnet_virtio', '9p'];
/** Root filesystems a job may mount; taken when the kernel has them. */
// crc32c: ext4's and btrfs's soft dependency (modinfo softdep), loaded before them.
const OPTIONAL_MODULES = ['crc32c_generic', 'crc32c_intel', 'ext4', 'xfs', 'btrfs', 'vfat', 'isofs'];

/** 9p mount options the job gets as $MNTOPTS (virtio transport, Linux dialect, 512 KiB messages). */
export const MNTOPTS = 'trans=virtio,version=9p2000.L,msize=524288,cache=none';

/**
 * PID 1 of the rescue VM. Mounts the shares by their libvirt target names,
 * runs /tmp/.in/JOB.job with $INDIR $OUTDIR $MNTOPTS ($MIRROR when shared),
 * streams its output to the console and $OUTDIR/job.log, leaves the exit
 * status in $OUTDIR/.exit and powers off.
 */
/** The first lines of a busybox PID 1: applets, PATH, /proc /sys /dev (the test guests start the same way). */
export const BUSYBOX_INIT_BASE = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run /mnt
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
`;

export const RESCUE_INIT = `${BUSYBOX_INIT_BASE}for m in $(cat /etc/modules-order); do insmod "/lib/modules/$m" 2>/dev/null; done
say() { echo "forge-rescue: $*" > /dev/console; }
off() { sync; poweroff -f; sleep 30; }
job=""
for w in $(cat /proc/cmdline); do case "$w" in forge.job=*) job="\${w#forge.job=}";; esac; done
export MNTOPTS='${MNTOPTS}'
mkdir -p /tmp/.in /tmp/.out /tmp/.mirror
mount -t 9p -o "$MNTOPTS,ro" forge_in /tmp/.in || { say "cannot mount the job inputs"; off; }
mount -t 9p -o "$MNTOPTS" forge_out /tmp/.out || { say "cannot mount the job outputs"; off; }
if grep -qs '^forge_mirror' /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag && mount -t 9p -o "$MNTOPTS,ro" forge_mirror /tmp/.mirror; then export MIRROR=/tmp/.mirror; fi
export INDIR=/tmp/.in OUTDIR=/tmp/.out
# Wait for the disks to appear (virtio probes asynchronously).
for i in 1 2 3 4 5 6 7 8 9 10; do ls /sys/block | grep -q -e '^vd' -e '^sd' && break; sleep 1; done
say "job $job starting; disks: $(ls /sys/block | grep -e '^vd' -e '^sd' | tr '\\n' ' ')"
( cd /tmp && sh -e "/tmp/.in/$job.job"; echo $? > /tmp/.out/.exit ) 2>&1 | tee -a /tmp/.out/job.log > /dev/console
say "job $job ended with status $(cat /tmp/.out/.exit 2>/dev/null || echo '?')"
umount /tmp/.out
off
`;

function findModule(modulesDir: string, name: string): Promise<string | undefined> {
  const alt = name.includes('_') ? name.replace(/_/g, '-') : name.replace(/-/g, '_');
  return sh('find', [modulesDir, '(', '-name', `${name}.ko*`, '-o', '-name', `${alt}.ko*`, ')']).then((o) => o.trim().split('\n').find((l) => l !== ''));
}

/** Module files in load order (dependencies first); optional ones are skipped when absent. */
async function moduleClosure(modulesDir: string, required: string[], optional: string[]): Promise<string[]> {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = async (name: string, must: boolean): Promise<void> => {
    if (seen.has(name)) return;
    seen.add(name);
    const file = await findModule(modulesDir, name);
    if (file === undefined) {
      // Built into the kernel, or not there at all: only a required one that is neither is an error.
      if (must && !(await builtin(modulesDir, name))) throw new ForgeError('VIRT_FAILED', `rescue system: kernel module ${name} not found under ${modulesDir}`);
      return;
    }
    const deps = (await sh('modinfo', ['-F', 'depends', file])).trim();
    for (const d of deps.split(',').filter((s) => s !== '')) await visit(d, true);
    order.push(file);
  };
  for (const n of required) await visit(n, true);
  for (const n of optional) await visit(n, false);
  return order;
}

async function builtin(modulesDir: string, name: string): Promise<boolean> {
  try {
    const list = await sh('cat', [join(modulesDir, 'modules.builtin')]);
    return list.split('\n').some((l) => l.endsWith(`/${name}.ko`) || l.endsWith(`/${name.replace(/_/g, '-')}.ko`));
  } catch {
    return false;
  }
}

async function aptExtract(pkg: string, into: string, work: string): Promise<void> {
  mkdirSync(work, { recursive: true });
  // apt-get download writes into the current directory.
  await sh('sh', ['-c', 'cd "$1" && apt-get download -q "$2"', 'sh', work, pkg], 1_800_000).catch((e: unknown) => {
    throw new ForgeError('VIRT_UNAVAILABLE', `rescue system: apt-get download ${pkg} failed (${(e as Error).message}); run apt-get update, or set FORGE_AGENT_RESCUE_KERNEL_DIR`);
  });
  const deb = readdirSync(work).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (deb === undefined) throw new ForgeError('VIRT_FAILED', `apt-get download ${pkg} produced no .deb`);
  const tmp = `${into}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await sh('dpkg', ['-x', join(work, deb), tmp]);
  rmSync(join(work, deb), { force: true });
  rmSync(into, { recursive: true, force: true });
  renameSync(tmp, into);
}

async function kernelDir(cache: string): Promise<string> {
  const env = process.env['FORGE_AGENT_RESCUE_KERNEL_DIR'];
  if (env !== undefined && env !== '') return env;
  const root = join(cache, 'kernel');
  if (existsSync(join(root, 'boot'))) return root;
  const deps = await sh('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends: (linux-image-[0-9][^\s]*)/.exec(deps);
  if (m === null || m[1] === undefined) throw new ForgeError('VIRT_UNAVAILABLE', 'rescue system: apt knows no linux-image-amd64 (run apt-get update)');
  await aptExtract(m[1], root, join(cache, 'pkg'));
  return root;
}

async function busybox(cache: string): Promise<string> {
  try {
    if ((await sh('dpkg', ['-S', '/bin/busybox'])).startsWith('busybox-static:')) return '/bin/busybox';
  } catch {
    // not installed from a package: take Debian's
  }
  const root = join(cache, 'busybox-static');
  if (!existsSync(join(root, 'bin', 'busybox'))) await aptExtract('busybox-static', root, join(cache, 'pkg'));
  return join(root, 'bin', 'busybox');
}

/** The rescue kernel and initramfs, built into CACHE/rescue when missing or out of date. */
export async function rescueSystem(cacheDir: string, progress: (msg: string) => void): Promise<RescueSystem> {
  const cache = join(cacheDir, 'rescue');
  mkdirSync(cache, { recursive: true });
  const kdir = await kernelDir(cache);
  const vmlinuz = readdirSync(join(kdir, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  if (vmlinuz === undefined) throw new ForgeError('VIRT_FAILED', `rescue system: no vmlinuz-* under ${kdir}/boot`);
  const version = vmlinuz.slice('vmlinuz-'.length);
  const bb = await busybox(cache);
  const h = createHash('sha256').update(version).update(RESCUE_INIT).update(bb).update(REQUIRED_MODULES.join()).update(OPTIONAL_MODULES.join());
  const initrd = join(cache, `initrd-${h.digest('hex').slice(0, 16)}.cpio.gz`);
  // qemu (libvirt-qemu under qemu:///system) reads kernel and initrd: keep them world-readable.
  const kernel = join(cache, vmlinuz);
  if (!existsSync(kernel)) {
    copyFileSync(join(kdir, 'boot', vmlinuz), kernel);
    chmodSync(kernel, 0o644);
  }
  if (existsSync(initrd)) return { kernel, initrd };
  progress(`building the rescue system (kernel ${version}, busybox-static)`);
  const modulesDir = join(kdir, 'lib', 'modules', version);
  const modules = await moduleClosure(modulesDir, REQUIRED_MODULES, OPTIONAL_MODULES);
  const dir = join(cache, `.build-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  try {
    mkdirSync(join(dir, 'bin'), { recursive: true });
    mkdirSync(join(dir, 'etc'), { recursive: true });
    mkdirSync(join(dir, 'lib', 'modules'), { recursive: true });
    copyFileSync(bb, join(dir, 'bin', 'busybox'));
    chmodSync(join(dir, 'bin', 'busybox'), 0o755);
    const names: string[] = [];
    for (const m of modules) {
      let base = m.split('/').pop() ?? m;
      for (const [ext, tool] of [['.xz', 'xz'], ['.zst', 'zstd']] as const) {
        if (base.endsWith(ext)) {
          base = base.slice(0, -ext.length);
          await sh('sh', ['-c', `${tool} -dc "$1" > "$2"`, 'sh', m, join(dir, 'lib', 'modules', base)]);
        }
      }
      if (!existsSync(join(dir, 'lib', 'modules', base))) copyFileSync(m, join(dir, 'lib', 'modules', base));
      names.push(base);
    }
    writeFileSync(join(dir, 'etc', 'modules-order'), names.join('\n') + '\n');
    writeFileSync(join(dir, 'init'), RESCUE_INIT, { mode: 0o755 });
    mkdirSync(dirname(initrd), { recursive: true });
    const tmp = `${initrd}.tmp-${process.pid}`;
    await sh('sh', ['-c', 'cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 > "$2"', 'sh', dir, tmp], 600_000);
    chmodSync(tmp, 0o644);
    renameSync(tmp, initrd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { kernel, initrd };
}
