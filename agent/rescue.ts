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
import { copyFileSync, chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { aptExtract, debianKernel, moduleClosure, type KernelUser } from '../server/boot/debkernel.js';
import { BUSYBOX_INIT_BASE, writeInitramfs } from '../server/boot/initramfs.js';
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

const RESCUE: KernelUser = { label: 'rescue system', unavailable: 'VIRT_UNAVAILABLE', failed: 'VIRT_FAILED' };

async function busybox(cache: string): Promise<string> {
  try {
    if ((await sh('dpkg', ['-S', '/bin/busybox'])).startsWith('busybox-static:')) return '/bin/busybox';
  } catch {
    // not installed from a package: take Debian's
  }
  const root = join(cache, 'busybox-static');
  if (!existsSync(join(root, 'bin', 'busybox'))) await aptExtract(RESCUE, 'busybox-static', root, join(cache, 'pkg'));
  return join(root, 'bin', 'busybox');
}

/** The rescue kernel and initramfs, built into CACHE/rescue when missing or out of date. */
export async function rescueSystem(cacheDir: string, progress: (msg: string) => void): Promise<RescueSystem> {
  const cache = join(cacheDir, 'rescue');
  mkdirSync(cache, { recursive: true });
  const k = await debianKernel(RESCUE, process.env['FORGE_AGENT_RESCUE_KERNEL_DIR'], cache);
  const vmlinuz = k.vmlinuz.split('/').pop()!;
  const version = k.version;
  const bb = await busybox(cache);
  const h = createHash('sha256').update(version).update(RESCUE_INIT).update(bb).update(REQUIRED_MODULES.join()).update(OPTIONAL_MODULES.join());
  const initrd = join(cache, `initrd-${h.digest('hex').slice(0, 16)}.cpio.gz`);
  // qemu (libvirt-qemu under qemu:///system) reads kernel and initrd: keep them world-readable.
  const kernel = join(cache, vmlinuz);
  if (!existsSync(kernel)) {
    copyFileSync(k.vmlinuz, kernel);
    chmodSync(kernel, 0o644);
  }
  if (existsSync(initrd)) return { kernel, initrd };
  progress(`building the rescue system (kernel ${version}, busybox-static)`);
  const modules = await moduleClosure(RESCUE, k.modulesDir, REQUIRED_MODULES, OPTIONAL_MODULES);
  writeInitramfs(RESCUE, initrd, { init: RESCUE_INIT, modules, busybox: bb, gzipLevel: 1 });
  return { kernel, initrd };
}
