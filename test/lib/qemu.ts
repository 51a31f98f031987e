/**
 * qemu VMs for tests, under software emulation (TCG: nested KVM does not work
 * here). The serial console goes to a file the test can wait on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from './netns.js';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
/** Secure Boot build (needs SMM) and variables with Microsoft's keys enrolled and Secure Boot on. */
export const OVMF_CODE_SB = '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd';
export const OVMF_VARS_MS = '/usr/share/OVMF/OVMF_VARS_4M.ms.fd';

/** arm64 UEFI (qemu-efi-aarch64): edk2's ArmVirtQemu build for qemu's `virt` machine, 64 MiB flash images. */
export const AAVMF_CODE = '/usr/share/AAVMF/AAVMF_CODE.fd';
export const AAVMF_VARS = '/usr/share/AAVMF/AAVMF_VARS.fd';

/** The UEFI setups. The Secure Boot build keeps its variables in SMM: q35 with SMM and a secure flash. */
const UEFI = {
  uefi: { code: OVMF_CODE, vars: OVMF_VARS, machine: 'q35' },
  'uefi-sb': { code: OVMF_CODE_SB, vars: OVMF_VARS_MS, machine: 'q35,smm=on' },
  // cortex-a57: TCG emulates it much faster than `max` (no pointer authentication to emulate).
  aavmf: { code: AAVMF_CODE, vars: AAVMF_VARS, machine: 'virt' },
} as const;

/** qemu binary for a firmware (aavmf: the arm64 one). */
export const qemuBinary = (firmware: QemuOptions['firmware']): string => (firmware === 'aavmf' ? 'qemu-system-aarch64' : 'qemu-system-x86_64');

export interface QemuOptions {
  /** Run inside this namespace (e.g. a Lan); required with `tap`. */
  host?: Host;
  /** Tap device (from lan.addTap()) for the NIC; no NIC when absent. */
  tap?: string;
  mac?: string;
  nic?: 'virtio-net-pci' | 'e1000';
  /** uefi-sb: OVMF with Secure Boot enforced (Microsoft keys), as on a stock UEFI server; aavmf: arm64 (qemu-system-aarch64). */
  firmware?: 'bios' | 'uefi' | 'uefi-sb' | 'aavmf';
  /**
   * The firmware's own network stack instead of the NIC's iPXE option ROM (`romfile=`): EDK II's
   * PXE and HTTP boot on OVMF. Always so for uefi-sb and aavmf (Debian's ROMs are unsigned x86 code).
   */
  noRom?: boolean;
  /** `-fw_cfg name=KEY,string=VALUE` entries (OVMF knobs such as opt/org.tianocore/IPv4PXESupport). */
  fwCfg?: Record<string, string>;
  /** Network boot first (NIC bootindex=1). Default true when tap is set and no kernel is given. */
  netboot?: boolean;
  /** Disk image (qcow2 or raw, by extension) attached as virtio, bootindex 2. */
  disk?: string;
  /** Direct kernel boot. */
  kernel?: string;
  initrd?: string;
  append?: string;
  memoryMiB?: number;
  /** Exit instead of rebooting (default true). */
  noReboot?: boolean;
  extraArgs?: string[];
}

export interface Vm {
  proc: ChildProcess;
  serialPath: string;
  /** Serial console output so far. */
  serial(): string;
  /** Resolve with the serial text when it matches re; reject on timeout or VM exit without a match. */
  waitForSerial(re: RegExp, timeoutMs: number): Promise<string>;
  /** Resolves when qemu exits (with its exit code). */
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

export function qemuArgs(o: QemuOptions, serialPath: string, varsPath: string | undefined): string[] {
  const firmware = o.firmware ?? 'bios';
  const args = [
    '-accel', 'tcg',
    '-machine', firmware === 'bios' ? 'pc' : UEFI[firmware].machine,
    ...(firmware === 'aavmf' ? ['-cpu', 'cortex-a57'] : []),
    '-m', String(o.memoryMiB ?? 384),
    '-smp', '1',
    '-display', 'none',
    '-vga', 'none',
    '-monitor', 'none',
    '-chardev', `file,id=ser0,path=${serialPath}`,
    '-serial', 'chardev:ser0',
  ];
  if (o.noReboot ?? true) args.push('-no-reboot');
  if (firmware !== 'bios') {
    if (firmware === 'uefi-sb') args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${UEFI[firmware].code}`);
    args.push('-drive', `if=pflash,format=raw,unit=1,file=${varsPath ?? ''}`);
  }
  const netboot = o.netboot ?? (o.tap !== undefined && o.kernel === undefined);
  if (o.tap !== undefined) {
    args.push('-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no`);
    let dev = `${o.nic ?? 'virtio-net-pci'},netdev=n0`;
    if (o.mac !== undefined) dev += `,mac=${o.mac}`;
    // Secure Boot: the firmware's own EDK II PXE, as on a server whose NIC ROM is signed
    // (Debian's iPXE ROMs are not; OVMF would run them anyway, so take them out).
    if (firmware === 'uefi-sb' || firmware === 'aavmf' || o.noRom === true) dev += ',romfile=';
    if (netboot) dev += ',bootindex=1';
    args.push('-device', dev);
  } else {
    args.push('-nic', 'none');
  }
  if (o.disk !== undefined) {
    const fmt = o.disk.endsWith('.qcow2') ? 'qcow2' : 'raw';
    args.push('-drive', `if=none,id=d0,format=${fmt},file=${o.disk}`);
    args.push('-device', 'virtio-blk-pci,drive=d0,bootindex=2');
  }
  if (o.kernel !== undefined) {
    args.push('-kernel', o.kernel);
    if (o.initrd !== undefined) args.push('-initrd', o.initrd);
    args.push('-append', o.append ?? 'console=ttyS0 no_timer_check');
  }
  for (const [k, v] of Object.entries(o.fwCfg ?? {})) args.push('-fw_cfg', `name=${k},string=${v}`);
  args.push(...(o.extraArgs ?? []));
  return args;
}

export function startQemu(o: QemuOptions): Vm {
  const dir = mkdtempSync(join(tmpdir(), 'forge-vm-'));
  const serialPath = join(dir, 'serial.log');
  let varsPath: string | undefined;
  if (o.firmware !== undefined && o.firmware !== 'bios') {
    varsPath = join(dir, 'OVMF_VARS.fd');
    copyFileSync(UEFI[o.firmware].vars, varsPath);
  }
  const args = qemuArgs(o, serialPath, varsPath);
  const proc =
    o.host !== undefined
      ? o.host.spawn(qemuBinary(o.firmware), args, { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(qemuBinary(o.firmware), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const serial = (): string => (existsSync(serialPath) ? readFileSync(serialPath, 'latin1') : '');

  return {
    proc,
    serialPath,
    serial,
    exited,
    waitForSerial(re, timeoutMs) {
      return new Promise((resolve, reject) => {
        const start = Date.now();
        const tick = (): void => {
          const s = serial();
          if (re.test(s)) return resolve(s);
          if (done) return reject(new Error(`VM exited before ${re} appeared.\nqemu stderr: ${stderr}\nserial tail:\n${s.slice(-3000)}`));
          if (Date.now() - start > timeoutMs)
            return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}.\nserial tail:\n${s.slice(-3000)}`));
          setTimeout(tick, 250);
        };
        tick();
      });
    },
    async kill() {
      if (!done) {
        proc.kill('SIGKILL');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
