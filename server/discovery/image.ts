/**
 * The discovery image, built on this host from Debian packages: the kernel of
 * Debian's linux-image package (extracted, not installed, into
 * DATA_DIR/discovery/kernel; or the root named by discovery_kernel_dir) with its NIC and disk
 * modules (the debian-installer netboot kernel's initrd carries NIC modules
 * only: d-i loads disk drivers from udebs later, so an image built on it saw
 * no disks), kexec from Debian's kexec-tools when installed (with the shared
 * libraries it links), and an initramfs around busybox-static whose /init
 * collects the machine's facts, POSTs them to forge (/api/v1/discover) and
 * then polls for what to do: wait, reboot, kexec (into the installer, falling
 * back to a reboot), poweroff.
 *
 * Kernel command line: forge.url=http://SERVER:PORT (required),
 * forge.mac=MAC or BOOTIF=01-aa-bb-.. (the boot NIC; default the first with
 * a DHCP lease), forge.poll=SECONDS (default 5).
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { debianKernel, moduleClosure, type KernelUser } from '../boot/debkernel.js';
import { requireBusybox, udhcpcScript, writeInitramfs } from '../boot/initramfs.js';
/** Debian's kexec-tools (optional: without it the image reboots instead of kexec'ing). */
export const KEXEC = '/sbin/kexec';

const IMAGE: KernelUser = { label: 'discovery image', unavailable: 'IMPORT_UNRECOGNISED', failed: 'IMPORT_UNRECOGNISED' };

/** Where `forge serve` serves the image from. */
export function discoveryDir(dataDir: string): string {
  return join(dataDir, 'discovery');
}

/** Needed to report at all: a virtio NIC (every VM here; real NICs are in OPTIONAL). */
export const REQUIRED_MODULES = ['virtio_pci', 'virtio_net'];
/** NICs and disk controllers taken when the kernel has them (dependencies follow by modinfo). */
export const OPTIONAL_MODULES = [
  'e1000', 'e1000e', 'igb', 'ixgbe', 'i40e', 'tg3', 'bnx2', 'bnxt_en', 'r8169', 'vmxnet3',
  'virtio_blk', 'virtio_scsi', 'sd_mod', 'ata_piix', 'ata_generic', 'ahci', 'nvme', 'megaraid_sas', 'mpt3sas', 'vmw_pvscsi',
];

/** The /init of the image (busybox sh). Strings are JSON-escaped; control characters dropped. */
export const DISCOVERY_INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
say() { echo "forge-discovery: $*" > /dev/console; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "$1="*) echo "\${w#*=}"; return 0;; esac; done; return 1; }
for m in $(cat /etc/modules-order); do insmod "/lib/modules/$m" 2>/dev/null; done
# Disks probe asynchronously after their driver loads: wait for the first (at most 10 s).
for i in 1 2 3 4 5 6 7 8 9 10; do ls /sys/block | grep -q -v -e '^loop' -e '^ram' && break; sleep 1; done
URL=$(arg forge.url) || { say "no forge.url= on the kernel command line"; sleep 30; poweroff -f; }
POLL=$(arg forge.poll) || POLL=5
MAC=$(arg forge.mac) || MAC=$(arg BOOTIF | sed 's/^01-//; s/-/:/g') || MAC=
MAC=$(echo "$MAC" | tr 'A-F' 'a-f')
ip link set lo up
sleep 1
for d in $(ls /sys/class/net); do [ "$d" = lo ] || ip link set "$d" up; done
sleep 3
UP=
for d in $(ls /sys/class/net); do
  [ "$d" = lo ] && continue
  a=$(cat /sys/class/net/$d/address)
  [ -n "$MAC" ] && [ "$a" != "$MAC" ] && continue
  if udhcpc -i "$d" -s /etc/udhcpc.script -q -t 6 -T 2 -n >/dev/null 2>&1; then UP=$d; [ -n "$MAC" ] || MAC=$a; break; fi
done
[ -n "$UP" ] || { say "no DHCP lease on any interface"; sleep 30; reboot -f; }
say "network up on $UP ($MAC)"
j() { tr -d '\\000-\\037' < "$1" 2>/dev/null | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g; s/^ *//; s/ *$//'; }
facts() {
  printf '{"mac":"%s","interfaces":[' "$MAC"
  s=
  for d in $(ls /sys/class/net); do
    [ "$d" = lo ] && continue
    c=$(cat /sys/class/net/$d/carrier 2>/dev/null); [ "$c" = 1 ] && l=true || l=false
    printf '%s{"name":"%s","mac":"%s","link":%s}' "$s" "$d" "$(cat /sys/class/net/$d/address)" "$l"; s=,
  done
  printf '],"vendor":"%s","product":"%s","serial":"%s","uuid":"%s"' "$(j /sys/class/dmi/id/sys_vendor)" "$(j /sys/class/dmi/id/product_name)" "$(j /sys/class/dmi/id/product_serial)" "$(j /sys/class/dmi/id/product_uuid)"
  grep -m1 'model name' /proc/cpuinfo | sed 's/^[^:]*: *//' > /tmp/cpu
  printf ',"cpus":%s,"cpu_model":"%s","arch":"%s"' "$(grep -c ^processor /proc/cpuinfo)" "$(j /tmp/cpu)" "$(uname -m)"
  printf ',"ram_mib":%s,"disks":[' "$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)"
  s=
  for b in $(ls /sys/block); do
    case "$b" in loop*|ram*|sr*|fd*|zram*) continue;; esac
    sz=$(cat /sys/block/$b/size); r=$(cat /sys/block/$b/queue/rotational 2>/dev/null); [ "$r" = 1 ] && r=true || r=false
    printf '%s{"name":"%s","size_gib":%s,"model":"%s","rotational":%s}' "$s" "$b" "$(awk "BEGIN{printf \\"%.2f\\", $sz*512/1073741824}")" "$(j /sys/block/$b/device/model)" "$r"; s=,
  done
  [ -d /sys/firmware/efi ] && fw=uefi || fw=bios
  printf '],"firmware":"%s"}' "$fw"
}
report() {
  facts > /tmp/facts.json
  wget -q -O /tmp/answer --header 'Content-Type: application/json' --post-file /tmp/facts.json "$URL/api/v1/discover" \\
    && say "reported: $(cat /tmp/answer)" || say "report refused or failed: $(cat /tmp/answer 2>/dev/null)"
}
# kexec into what forge names at $URL/api/v1/discover/$MAC/kexec (kernel URL, initrd URL, command line:
# one a line); any failure returns and the caller reboots.
kexec_into() {
  command -v kexec >/dev/null 2>&1 || { say "no kexec in this image"; return 1; }
  wget -q -O /tmp/kx "$URL/api/v1/discover/$MAC/kexec" || { say "forge named no kexec target"; return 1; }
  k=$(sed -n 1p /tmp/kx); i=$(sed -n 2p /tmp/kx); c=$(sed -n 3p /tmp/kx)
  wget -q -O /tmp/kernel "$k" && wget -q -O /tmp/initrd "$i" || { say "kexec: download failed"; return 1; }
  say "kexec: loading $k"
  kexec -l /tmp/kernel --initrd=/tmp/initrd --command-line="$c" || kexec -s -l /tmp/kernel --initrd=/tmp/initrd --command-line="$c" || { say "kexec: load refused"; return 1; }
  sync; say "kexec: starting the installer kernel"
  kexec -e
  return 1
}
report
n=0
while true; do
  sleep "$POLL"
  a=$(wget -q -O - "$URL/api/v1/discover/$MAC" 2>/dev/null | sed -n 's/.*"action":"\\([a-z]*\\)".*/\\1/p')
  case "$a" in
    reboot) say "forge says reboot: rebooting"; sync; reboot -f ;;
    kexec) say "forge says kexec"; kexec_into || { say "kexec failed: rebooting"; sync; reboot -f; } ;;
    poweroff) say "forge says poweroff"; sync; poweroff -f ;;
  esac
  n=$((n+1)); [ $((n % 60)) = 0 ] && report
done
`;

/** The image's udhcpc script: address and route only (forge.url names forge by address). */
const UDHCPC = udhcpcScript({ resolvConf: false });

export interface ImagePaths {
  kernel: string;
  initrd: string;
  /** Modules included, by file name. */
  modules: string[];
  /** The kernel's version (linux-image package). */
  version: string;
  /** Whether kexec is in the image. */
  kexec: boolean;
}

export interface ImageOptions {
  /** linux-image root (boot/vmlinuz-VER + lib/modules/VER); default the package extracted into OUT/kernel. */
  kernelDir?: string;
  progress?: (msg: string) => void;
}

/** Build OUT/linux and OUT/initrd.gz; returns their paths. Writes atomically (rename). */
export async function buildDiscoveryImage(outDir: string, opts: ImageOptions = {}): Promise<ImagePaths> {
  requireBusybox(IMAGE);
  mkdirSync(outDir, { recursive: true });
  const k = await debianKernel(IMAGE, opts.kernelDir, outDir);
  opts.progress?.(`discovery image: kernel ${k.version} from ${k.root}`);
  const modules = await moduleClosure(IMAGE, k.modulesDir, REQUIRED_MODULES, OPTIONAL_MODULES);
  const kexec = existsSync(KEXEC);
  const initrd = join(outDir, 'initrd.gz');
  const kernel = join(outDir, 'linux');
  const order = writeInitramfs(IMAGE, initrd, {
    init: DISCOVERY_INIT,
    modules,
    files: { 'etc/udhcpc.script': UDHCPC },
    ...(kexec ? { binaries: [KEXEC] } : {}),
    gzipLevel: 6,
  });
  copyFileSync(k.vmlinuz, `${kernel}.tmp`);
  chmodSync(`${kernel}.tmp`, 0o644);
  renameSync(`${kernel}.tmp`, kernel);
  return { kernel, initrd, modules: order, version: k.version, kexec };
}

/** forge serve under policy discover: the image is built when missing (once; rebuild with forge discovery image). */
export async function ensureDiscoveryImage(dataDir: string, kernelDir: string, progress: (msg: string) => void): Promise<ImagePaths | undefined> {
  const out = discoveryDir(dataDir);
  if (existsSync(join(out, 'linux')) && existsSync(join(out, 'initrd.gz'))) return undefined;
  return buildDiscoveryImage(out, { ...(kernelDir !== '' ? { kernelDir } : {}), progress });
}
