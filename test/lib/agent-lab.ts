/**
 * Fixtures for the forge-agent VM tests (real libvirt, real forge serve):
 *  - an isolated libvirt network (no <forward>: traffic only between the host
 *    and its own VMs) with its own bridge and subnet, removed afterwards;
 *  - busybox "installer" initramfs images that behave like an installer
 *    (fetch forge.autoinstall=URL and run it), crash, or hang;
 *  - a small bootable disk image (syslinux on FAT, no partition table) whose
 *    "firstboot" initramfs reports to forge and powers off.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildInitramfs, guestKernel } from './guest.js';

export const AGENT_BIN = new URL('../../agent/main.js', import.meta.url).pathname;

export function virsh(args: string[], opts: { allowFail?: boolean } = {}): string {
  const r = spawnSync('virsh', ['-q', '-c', 'qemu:///system', ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0 && opts.allowFail !== true) throw new Error(`virsh ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/**
 * Under qemu:///system qemu runs as libvirt-qemu. When /dev/kvm is root-only
 * (no udev in a container), libvirt finds its cached qemu capabilities
 * "KVM enabled when probing, but not available now" and re-probes qemu on
 * every domain start (~40 s here). udev's rule (root:kvm 0660) fixes that;
 * the agent still treats kvm as unusable unless its probe guest boots.
 */
export function udevKvmPermissions(): void {
  if (!existsSync('/dev/kvm')) return;
  const st = statSync('/dev/kvm');
  if ((st.mode & 0o060) === 0o060) return;
  spawnSync('chgrp', ['kvm', '/dev/kvm']);
  spawnSync('chmod', ['0660', '/dev/kvm']);
}

export interface LabNetwork {
  name: string;
  bridge: string;
  hostIp: string;
  destroy(): void;
}

/**
 * A transient, isolated libvirt network with DHCP (libvirt's dnsmasq) on a
 * random /24. `bootp(hostIp)` sets the DHCP boot file name (RFC 2132 option
 * 67 / BOOTP file): an http:// URL is fetched directly by the NIC's iPXE ROM.
 */
export function createNetwork(prefix: string, bootp?: (hostIp: string) => string): LabNetwork {
  for (let attempt = 0; attempt < 5; attempt++) {
    const rand = randomBytes(2).toString('hex');
    const name = `${prefix}-${rand}`;
    const bridge = `${prefix}${rand}`.slice(0, 15);
    const b = randomBytes(2);
    const net = `10.${200 + ((b[0] as number) % 50)}.${b[1] as number}`;
    const xml = `<network>
  <name>${name}</name>
  <bridge name='${bridge}' stp='off'/>
  <ip address='${net}.1' netmask='255.255.255.0'>
    <dhcp><range start='${net}.100' end='${net}.200'/>${bootp === undefined ? '' : `<bootp file='${bootp(`${net}.1`)}'/>`}</dhcp>
  </ip>
</network>
`;
    const file = `/tmp/${name}.xml`;
    writeFileSync(file, xml);
    const r = spawnSync('virsh', ['-q', '-c', 'qemu:///system', 'net-create', file], { encoding: 'utf8', timeout: 60_000 });
    rmSync(file, { force: true });
    if (r.status === 0) {
      return {
        name,
        bridge,
        hostIp: `${net}.1`,
        destroy: () => void virsh(['net-destroy', name], { allowFail: true }),
      };
    }
    if (!/already|in use|conflict/i.test(r.stderr)) throw new Error(`virsh net-create: ${r.stderr}`);
  }
  throw new Error('could not find a free subnet for the test network');
}

/** Remove a domain of any kind, quietly. */
export function removeDomain(name: string): void {
  virsh(['destroy', name], { allowFail: true });
  virsh(['undefine', name], { allowFail: true });
}

export function domainState(name: string): string {
  return virsh(['domstate', name], { allowFail: true }).trim();
}

/** The installer: like a real one it reads the autoinstall URL from the command line and runs what forge renders. */
export const INSTALLER_INIT = `net_up || halt_now
url=$(arg forge.autoinstall)
say "autoinstall $url"
if wget -q -O /tmp/install.sh "$url"; then
  sh /tmp/install.sh && say "install script ok" || say "install script failed"
else
  say "autoinstall fetch failed"
fi
halt_now`;

/** An installer whose init exits: the kernel panics ("Attempted to kill init!"). */
export const CRASH_INIT = `say "installer crashing"
exit 1`;

/** An installer that never finishes. */
export const HANG_INIT = `say "installer hanging"
while true; do sleep 60; done`;

/** The installed system's init: tell forge about the first boot, then power off. */
export const FIRSTBOOT_INIT = `net_up
fb=$(arg forge.firstboot)
if wget -q -O /dev/null --post-data "" "$fb"; then say "firstboot reported"; else say "firstboot report failed"; fi
halt_now`;

/** The install step the site snippet dir puts into forge's generic script: write the image to the disk. */
export function installSnippet(): string {
  return `# forge-agent e2e: write the prepared bootable image to the first disk
img="$FORGE_URL/tree/{{ distro_name }}/{{ system_name }}.img"
echo "forge-installer: writing disk from $img" > /dev/console
wget -q -O - "$img" | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null
sync
echo "forge-installer: disk written" > /dev/console
`;
}

/**
 * Debian's busybox-static 1.35 `wget -T N` segfaults (seen: the shipped
 * callback_fn snippet's `wget -q -T 30` died with SIGSEGV in the guest), so
 * the installer carries a minimal `curl` (what forge_callback prefers) that
 * maps the callback's `curl -fsS -m N -X POST -o FILE URL` onto wget without -T.
 */
export const CURL_SHIM = `#!/bin/sh
url=""; out=/dev/null; post=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift ;;
    -m) shift ;;
    -X) [ "$2" = POST ] && post=1; shift ;;
    -*) ;;
    *) url="$1" ;;
  esac
  shift
done
if [ -n "$post" ]; then exec wget -q -O "$out" --post-data "" "$url"; fi
exec wget -q -O "$out" "$url"
`;

export function initrdFor(init: string): string {
  return buildInitramfs({ init, files: { '/usr/bin/curl': CURL_SHIM } });
}

/**
 * A bootable disk image: FAT without a partition table (a "superfloppy"),
 * syslinux's boot sector and ldlinux, the kernel and the firstboot initramfs.
 */
export function buildDiskImage(dir: string, system: string, firstbootUrl: string): string {
  const kernel = guestKernel();
  const fb = initrdFor(FIRSTBOOT_INIT);
  const img = join(dir, `${system}.img`);
  rmSync(img, { force: true });
  execFileSync('truncate', ['-s', '32M', img]);
  execFileSync('mkfs.vfat', ['-n', 'FORGEVM', img], { stdio: 'ignore' });
  execFileSync('syslinux', ['--install', img]);
  const cfg = join(dir, `${system}.syslinux.cfg`);
  writeFileSync(cfg, `DEFAULT forge\nPROMPT 0\nTIMEOUT 0\nLABEL forge\n  KERNEL vmlinuz\n  INITRD fb.gz\n  APPEND console=ttyS0 quiet no_timer_check forge.firstboot=${firstbootUrl}\n`);
  execFileSync('mcopy', ['-i', img, kernel.vmlinuz, '::vmlinuz']);
  execFileSync('mcopy', ['-i', img, fb, '::fb.gz']);
  execFileSync('mcopy', ['-i', img, cfg, '::syslinux.cfg']);
  return img;
}

/** A directory qemu (user libvirt-qemu) can traverse. */
export function labDir(prefix: string): string {
  const dir = `/var/lib/libvirt/images/${prefix}-${randomBytes(3).toString('hex')}`;
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  return dir;
}
