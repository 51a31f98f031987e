/**
 * --virt-type auto: kvm only when it demonstrably works. Cobbler users found
 * their VMs silently running as plain QEMU (installs taking 12 hours, koan
 * #2); the opposite failure exists too: libvirt offers kvm whenever /dev/kvm
 * exists, yet under broken nested virtualisation a kvm guest never gets past
 * its first instructions. So after libvirt's domcapabilities say kvm, a probe
 * boots the installer kernel itself under `-accel kvm` for a few seconds and
 * requires its banner on the serial port.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { release, uptime } from 'node:os';

export interface VirtTypeDecision {
  type: 'kvm' | 'qemu';
  /** Printed loudly when installs will be slow or the choice is doubtful. */
  warning: string | undefined;
  reason: string;
}

/** Pure: the decision from what the probes found. */
export function decideVirtType(
  requested: 'kvm' | 'qemu' | 'auto',
  caps: { libvirtOffersKvm: boolean; probe: 'ok' | 'failed' | 'skipped'; detail: string },
): VirtTypeDecision {
  if (requested === 'qemu') return { type: 'qemu', warning: undefined, reason: 'requested qemu (software emulation)' };
  if (requested === 'kvm') {
    return caps.libvirtOffersKvm
      ? { type: 'kvm', warning: undefined, reason: 'requested kvm' }
      : { type: 'kvm', warning: `kvm was requested but libvirt does not offer it (${caps.detail}); the domain will fail to start`, reason: 'requested kvm' };
  }
  if (caps.libvirtOffersKvm && caps.probe === 'ok') return { type: 'kvm', warning: undefined, reason: 'auto: libvirt offers kvm and a kvm probe guest ran' };
  const why = !caps.libvirtOffersKvm ? `libvirt does not offer kvm (${caps.detail})` : `libvirt offers kvm but a kvm probe guest did not run (${caps.detail})`;
  return {
    type: 'qemu',
    reason: `auto: ${why}`,
    warning: `WARNING: using plain QEMU software emulation: ${why}. Installs will be SLOW (tens of times slower than kvm). Fix /dev/kvm or pass --virt-type qemu to silence this.`,
  };
}

/** `virsh domcapabilities --virttype kvm`: libvirt's own opinion, and the emulator path. */
export async function libvirtKvm(virsh: (args: string[]) => Promise<string>): Promise<{ offers: boolean; emulator: string; detail: string }> {
  try {
    const xml = await virsh(['domcapabilities', '--virttype', 'kvm', '--arch', 'x86_64']);
    const path = /<path>([^<]+)<\/path>/.exec(xml)?.[1] ?? 'qemu-system-x86_64';
    return { offers: /<domain>kvm<\/domain>/.test(xml), emulator: path, detail: 'domcapabilities lists kvm' };
  } catch (e) {
    return { offers: false, emulator: 'qemu-system-x86_64', detail: (e as Error).message.split('\n')[0] ?? 'domcapabilities failed' };
  }
}

/**
 * Boot `kernel` with -accel kvm and wait up to `timeoutMs` for "Linux version"
 * on the serial port (printed within a second on working kvm, via earlyprintk).
 */
export function probeKvm(emulator: string, kernel: string, timeoutMs = 8000): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      emulator,
      ['-accel', 'kvm', '-m', '128', '-nodefaults', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
        '-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 rdinit=/nonexistent'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    let settled = false;
    const finish = (ok: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => finish(false, `no kernel banner within ${timeoutMs} ms under -accel kvm`), timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString('latin1');
      if (out.includes('Linux version')) finish(true, 'kernel banner seen');
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', (e) => finish(false, `${emulator}: ${e.message}`));
    child.on('exit', (code) => finish(false, `qemu exited (${code}) before the banner: ${err.trim().split('\n').pop() ?? ''}`));
  });
}

/**
 * The probe costs up to its timeout on a host where kvm is broken, so its
 * verdict is remembered in the cache directory until the host reboots or
 * qemu/kernel change (the key), which is when the answer could change.
 */
export async function probeKvmCached(cacheDir: string, emulator: string, kernel: string, timeoutMs = 8000): Promise<{ ok: boolean; detail: string }> {
  let emuStamp = '';
  try {
    emuStamp = String(statSync(emulator).mtimeMs);
  } catch {
    // a bare command name: the probe itself reports whether it exists
  }
  const bootMinute = Math.round((Date.now() - uptime() * 1000) / 60_000);
  const key = `${release()}|${emulator}|${emuStamp}|${bootMinute}|${kvmStamp()}`;
  const file = `${cacheDir}/kvm-probe.json`;
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as { key?: unknown; ok?: unknown; detail?: unknown };
    if (c.key === key && typeof c.ok === 'boolean' && typeof c.detail === 'string') return { ok: c.ok, detail: `${c.detail} (cached probe; delete ${file} to probe again)` };
  } catch {
    // no cached verdict
  }
  const r = await probeKvm(emulator, kernel, timeoutMs);
  try {
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(file, JSON.stringify({ key, ok: r.ok, detail: r.detail }) + '\n');
  } catch {
    // an unwritable cache only costs the next run another probe
  }
  return r;
}

function kvmStamp(): string {
  try {
    const s = statSync('/dev/kvm');
    return `${s.mode}:${s.ctimeMs}`;
  } catch {
    return 'none';
  }
}
