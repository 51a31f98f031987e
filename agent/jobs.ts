/**
 * Jobs in a rescue VM (seed 004, VM for ALT's `@job`): a job is a directory
 * holding JOB.job (required: runs inside the rescue system), JOB.pre and
 * JOB.post (optional: run on the host before and after, with sh) and any
 * other files. The stopped VM's disks are attached to a transient rescue
 * domain (agent/rescue.ts) with three 9p shares (accessmode squash): /tmp/.in (read-only: the
 * job's files), /tmp/.out (writable: results and job.log) and, optionally,
 * a read-only mirror at /tmp/.mirror. Output streams to the terminal (the
 * rescue VM's serial console log, followed) and to $OUTDIR/job.log. The
 * rescue VM powers off when the job ends; at the timeout it is destroyed
 * and the job fails with JOB_FAILED.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ForgeError } from '../server/errors.js';
import type { DomainInfo } from './domain.js';
import { esc } from './domxml.js';
import type { RescueSystem } from './rescue.js';

/** Shell helpers every shipped job starts with: find and mount the installed system's root filesystem. */
const MOUNT_ROOT = `# The installed system's root: the first partition or whole disk with /etc and /bin or /usr.
DESTDIR=\${DESTDIR:-/mnt/system}
mkdir -p "$DESTDIR"
found=""
for dev in \${SETUP_ROOTDEV:-$(ls /dev/vd[a-z]* /dev/sd[a-z]* 2>/dev/null)}; do
  mount "$dev" "$DESTDIR" 2>/dev/null || continue
  if [ -d "$DESTDIR/etc" ] && { [ -e "$DESTDIR/bin" ] || [ -d "$DESTDIR/usr" ]; }; then found="$dev"; break; fi
  umount "$DESTDIR"
done
[ -n "$found" ] || { echo "no root filesystem found on $(ls /dev/vd[a-z]* /dev/sd[a-z]* 2>/dev/null | tr '\\n' ' ')"; exit 1; }
echo "root filesystem: $found"
`;

/** Jobs that ship with forge-agent (seed 004's add-ssh-keys and post-install). */
export const SHIPPED_JOBS: Record<string, Record<string, string>> = {
  'add-ssh-keys': {
    'add-ssh-keys.job': `${MOUNT_ROOT}mkdir -p "$DESTDIR/root/.ssh"
chmod 700 "$DESTDIR/root/.ssh"
touch "$DESTDIR/root/.ssh/authorized_keys"
n=0
for k in "$INDIR"/keys/*.pub; do
  [ -f "$k" ] || continue
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    grep -qxF "$line" "$DESTDIR/root/.ssh/authorized_keys" || { echo "$line" >> "$DESTDIR/root/.ssh/authorized_keys"; n=$((n+1)); }
  done < "$k"
done
chmod 600 "$DESTDIR/root/.ssh/authorized_keys"
echo "added $n key(s) to /root/.ssh/authorized_keys on $found"
cp "$DESTDIR/root/.ssh/authorized_keys" "$OUTDIR/authorized_keys"
umount "$DESTDIR"
`,
  },
  'post-install': {
    'post-install.job': `${MOUNT_ROOT}script="$INDIR/\${SETUP_SCRIPT:-post-install.sh}"
[ -f "$script" ] || { echo "post-install: $(basename "$script") missing: give it with --files"; exit 1; }
for d in proc sys dev; do mkdir -p "$DESTDIR/$d"; mount --bind "/$d" "$DESTDIR/$d"; done
mkdir -p "$DESTDIR/tmp/.forge-in"
mount --bind "$INDIR" "$DESTDIR/tmp/.forge-in"
echo "post-install: running $(basename "$script") in a chroot of $found"
status=0
INDIR=/tmp/.forge-in chroot "$DESTDIR" /bin/sh -e "/tmp/.forge-in/$(basename "$script")" || status=$?
umount "$DESTDIR/tmp/.forge-in"
for d in dev sys proc; do umount "$DESTDIR/$d"; done
umount "$DESTDIR"
exit $status
`,
  },
};

export interface JobSource {
  name: string;
  /** Directory holding the job's files ('' for a shipped job). */
  dir: string;
  /** File name -> content for shipped jobs. */
  files: Record<string, string>;
}

/** A directory (DIR holding BASENAME.job, or DIR/JOB.job) or a shipped job name. */
export function resolveJob(job: string): JobSource {
  const shipped = SHIPPED_JOBS[job];
  const p = resolve(job);
  if (existsSync(p) && statSync(p).isDirectory()) {
    const name = basename(p);
    if (!existsSync(join(p, `${name}.job`))) throw new ForgeError('USAGE', `job directory ${p} has no ${name}.job (the one required file)`, { field: 'JOB' });
    return { name, dir: p, files: {} };
  }
  if (existsSync(`${p}.job`)) return { name: basename(p), dir: dirname(p), files: {} };
  if (shipped !== undefined) return { name: job, dir: '', files: shipped };
  throw new ForgeError('NOT_FOUND', `no job ${job}: not a directory with ${basename(p)}.job, not DIR/${basename(p)}.job, not a shipped job (${Object.keys(SHIPPED_JOBS).join(', ')})`, { field: 'JOB' });
}

export interface JobRun {
  workdir: string;
  indir: string;
  outdir: string;
}

/** Copies the job's files into WORK/in (and extra files), makes WORK/out; qemu (libvirt-qemu) must read in and write out. */
export function stageJob(src: JobSource, workdir: string, extra: string[]): JobRun {
  const indir = join(workdir, 'in');
  const outdir = join(workdir, 'out');
  mkdirSync(indir, { recursive: true });
  mkdirSync(outdir, { recursive: true });
  chmodSync(workdir, 0o755);
  if (src.dir !== '') {
    for (const f of readdirSync(src.dir)) {
      const from = join(src.dir, f);
      if (statSync(from).isFile()) copyFileSync(from, join(indir, f));
    }
  }
  for (const [f, content] of Object.entries(src.files)) writeFileSync(join(indir, f), content);
  for (const e of extra) {
    if (!existsSync(e) || !statSync(e).isFile()) throw new ForgeError('NOT_FOUND', `--files: ${e} is not a file`, { field: 'files' });
    copyFileSync(e, join(indir, basename(e)));
  }
  for (const f of readdirSync(indir)) chmodSync(join(indir, f), 0o644);
  chmodSync(indir, 0o755);
  // Written by qemu's user through 9p passthrough.
  chmodSync(outdir, 0o777);
  return { workdir, indir, outdir };
}

/** The transient rescue domain: the VM's disks (as virtio, vda...), the shares, serial console to LOG. Pure. */
export function rescueDomainXml(o: {
  name: string; vm: DomainInfo; rescue: RescueSystem; job: string; run: JobRun; mirror: string | undefined; consoleLog: string; type: 'qemu' | 'kvm'; memoryMiB: number;
}): string {
  const x: string[] = [];
  const p = (i: number, s: string): void => void x.push(' '.repeat(i) + s);
  p(0, `<domain type='${o.type}'>`);
  p(2, `<name>${esc(o.name)}</name>`);
  p(2, `<uuid>${randomUUID()}</uuid>`);
  p(2, `<metadata>`);
  p(4, `<forge:agent xmlns:forge='https://forge.invalid/xmlns/agent/1'>rescue</forge:agent>`);
  p(2, `</metadata>`);
  p(2, `<memory unit='MiB'>${o.memoryMiB}</memory>`);
  p(2, `<vcpu>1</vcpu>`);
  p(2, `<os>`);
  p(4, `<type arch='x86_64' machine='pc'>hvm</type>`);
  p(4, `<kernel>${esc(o.rescue.kernel)}</kernel>`);
  p(4, `<initrd>${esc(o.rescue.initrd)}</initrd>`);
  p(4, `<cmdline>console=ttyS0 quiet forge.job=${esc(o.job)}</cmdline>`);
  p(2, `</os>`);
  p(2, `<features><acpi/><apic/></features>`);
  p(2, `<on_poweroff>destroy</on_poweroff>`);
  p(2, `<on_reboot>destroy</on_reboot>`);
  p(2, `<on_crash>destroy</on_crash>`);
  p(2, `<devices>`);
  o.vm.disks
    .filter((d) => d.device === 'disk')
    .forEach((d, i) => {
      const dev = `vd${String.fromCharCode(97 + i)}`;
      p(4, `<disk type='${d.type === 'block' ? 'block' : 'file'}' device='disk'>`);
      p(6, `<driver name='qemu' type='${esc(d.format || 'raw')}'/>`);
      p(6, d.type === 'block' ? `<source dev='${esc(d.source)}'/>` : `<source file='${esc(d.source)}'/>`);
      p(6, `<target dev='${dev}' bus='virtio'/>`);
      p(4, `</disk>`);
    });
  const share = (dir: string, tag: string, ro: boolean): void => {
    // squash: files keep the guest's modes, and the chown to root that qemu (an unprivileged user) cannot do is ignored.
    p(4, `<filesystem type='mount' accessmode='squash'>`);
    p(6, `<source dir='${esc(dir)}'/>`);
    p(6, `<target dir='${tag}'/>`);
    if (ro) p(6, `<readonly/>`);
    p(4, `</filesystem>`);
  };
  share(o.run.indir, 'forge_in', true);
  share(o.run.outdir, 'forge_out', false);
  if (o.mirror !== undefined) share(o.mirror, 'forge_mirror', true);
  p(4, `<serial type='pty'>`);
  p(6, `<log file='${esc(o.consoleLog)}' append='off'/>`);
  p(6, `<target port='0'/>`);
  p(4, `</serial>`);
  p(4, `<console type='pty'><target type='serial' port='0'/></console>`);
  p(4, `<memballoon model='none'/>`);
  p(2, `</devices>`);
  p(0, `</domain>`);
  return x.join('\n') + '\n';
}

/** Runs JOB.pre / JOB.post on the host with the job's variables (seed 004: $HOSTDIR, $WORKDIR, $INDIR, $OUTDIR). */
export function hookScript(file: string, env: Record<string, string>, out: (s: string) => void): Promise<number> {
  return new Promise((res, rej) => {
    const c = spawn('sh', ['-e', file], { cwd: env['WORKDIR'], env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout.setEncoding('utf8').on('data', (d: string) => out(d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => out(d));
    c.on('error', rej);
    c.on('close', (code) => res(code ?? 1));
  });
}

/** Follows a growing file from `offset`; returns the new offset. */
export function follow(path: string, offset: number, write: (b: Buffer) => void): number {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return offset;
  }
  if (size < offset) offset = 0; // truncated (append='off' on a new boot)
  if (size === offset) return offset;
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(size - offset);
    const n = readSync(fd, buf, 0, buf.length, offset);
    write(buf.subarray(0, n));
    return offset + n;
  } finally {
    closeSync(fd);
  }
}

export function exitStatus(outdir: string): number | undefined {
  try {
    const t = readFileSync(join(outdir, '.exit'), 'utf8').trim();
    return /^\d+$/.test(t) ? Number(t) : undefined;
  } catch {
    return undefined;
  }
}
