/**
 * The discovery image, built on this host from Debian packages (no download):
 * the kernel of the installed debian-installer netboot package, the network
 * and disk modules for that kernel taken from its own initrd, and an
 * initramfs around busybox-static whose /init collects the machine's facts,
 * POSTs them to forge (/api/v1/discover) and then polls for what to do.
 *
 * Kernel command line: forge.url=http://SERVER:PORT (required),
 * forge.mac=MAC or BOOTIF=01-aa-bb-.. (the boot NIC; default the first with
 * a DHCP lease), forge.poll=SECONDS (default 5).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ForgeError } from '../errors.js';

export const NETBOOT_DIRS = [
  '/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64',
  '/usr/lib/debian-installer/images/13/amd64/text/debian-installer/amd64',
];
export const BUSYBOX = '/bin/busybox';

/** Modules loaded in this order when present (dependencies first). */
export const DISCOVERY_MODULES = [
  'virtio', 'virtio_ring', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'failover', 'net_failover', 'virtio_net',
  'virtio_blk', 'e1000', 'e1000e', 'scsi_mod', 'sd_mod', 'libata', 'ata_piix', 'ahci', 'nvme-core', 'nvme',
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
report
n=0
while true; do
  sleep "$POLL"
  a=$(wget -q -O - "$URL/api/v1/discover/$MAC" 2>/dev/null | sed -n 's/.*"action":"\\([a-z]*\\)".*/\\1/p')
  case "$a" in
    reboot|kexec) say "forge says $a: rebooting"; sync; reboot -f ;;
    poweroff) say "forge says poweroff"; sync; poweroff -f ;;
  esac
  n=$((n+1)); [ $((n % 60)) = 0 ] && report
done
`;

const UDHCPC = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}" dev "$interface"
    ;;
esac
exit 0
`;

export interface ImagePaths {
  kernel: string;
  initrd: string;
  /** Modules included, by file name. */
  modules: string[];
}

function netbootDir(): string {
  const d = NETBOOT_DIRS.find((x) => existsSync(join(x, 'linux')) && existsSync(join(x, 'initrd.gz')));
  if (d === undefined) {
    throw new ForgeError('IMPORT_UNRECOGNISED', `no debian-installer netboot kernel in ${NETBOOT_DIRS.join(' or ')} (apt-get install debian-installer-12-netboot-amd64)`, {
      field: 'netboot',
    });
  }
  return d;
}

/** Build DIR/linux and DIR/initrd.gz; returns their paths. Writes atomically (rename). */
export function buildDiscoveryImage(outDir: string): ImagePaths {
  const nb = netbootDir();
  if (!existsSync(BUSYBOX)) throw new ForgeError('IMPORT_UNRECOGNISED', `${BUSYBOX} missing (apt-get install busybox-static)`, { field: 'busybox' });
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'forge-discovery-'));
  try {
    // The netboot initrd carries the modules of its own kernel.
    const di = join(work, 'di');
    mkdirSync(di);
    execFileSync('sh', ['-c', `zcat "${join(nb, 'initrd.gz')}" | cpio -idm --quiet 'lib/modules/*'`], { cwd: di, stdio: ['ignore', 'ignore', 'pipe'] });
    const ver = readdirSync(join(di, 'lib', 'modules'))[0];
    if (ver === undefined) throw new ForgeError('IMPORT_UNRECOGNISED', `${nb}/initrd.gz holds no kernel modules`, { field: 'netboot' });
    const all = execFileSync('find', [join(di, 'lib', 'modules', ver), '-name', '*.ko*'], { encoding: 'utf8' }).trim().split('\n');
    const root = join(work, 'root');
    for (const d of ['bin', 'etc', 'lib/modules']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    const order: string[] = [];
    for (const m of DISCOVERY_MODULES) {
      const f = all.find((p) => p.split('/').pop()!.replace(/\.ko(\.xz|\.zst)?$/, '').replace(/-/g, '_') === m.replace(/-/g, '_'));
      if (f === undefined) continue;
      const base = f.split('/').pop()!;
      if (base.endsWith('.xz')) writeFileSync(join(root, 'lib/modules', base.slice(0, -3)), execFileSync('xz', ['-dc', f], { maxBuffer: 64 << 20 }));
      else if (base.endsWith('.zst')) writeFileSync(join(root, 'lib/modules', base.slice(0, -4)), execFileSync('zstd', ['-dc', f], { maxBuffer: 64 << 20 }));
      else copyFileSync(f, join(root, 'lib/modules', base));
      order.push(base.replace(/\.(xz|zst)$/, ''));
    }
    writeFileSync(join(root, 'etc', 'modules-order'), order.join('\n') + '\n');
    writeFileSync(join(root, 'etc', 'udhcpc.script'), UDHCPC, { mode: 0o755 });
    writeFileSync(join(root, 'init'), DISCOVERY_INIT, { mode: 0o755 });
    const initrd = join(outDir, 'initrd.gz');
    const kernel = join(outDir, 'linux');
    execFileSync('sh', ['-c', `find . | cpio -o -H newc --quiet | gzip -9 > "${initrd}.tmp"`], { cwd: root });
    renameSync(`${initrd}.tmp`, initrd);
    copyFileSync(join(nb, 'linux'), `${kernel}.tmp`);
    renameSync(`${kernel}.tmp`, kernel);
    mkdirSync(dirname(kernel), { recursive: true });
    return { kernel, initrd, modules: order };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
