/**
 * `forge-agent job run` and `ssh-key put`: a job in a rescue VM on the VM's disks (agent/jobs.ts
 * stages it, agent/rescue.ts builds the rescue system), and root's key put into a stopped VM
 * with the shipped ssh-key job.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { ForgeError } from '../server/errors.js';
import { type DomainInfo } from './domain.js';
import type { ParsedSub } from './subcommands.js';
import { exitStatus, follow, hookScript, rescueDomainXml, resolveJob, stageJob, type JobSource } from './jobs.js';
import { rescueSystem } from './rescue.js';
import { cacheDirOf, siblingLog, forgeDomain, positiveInt, refuseRunning, report, tmpXml, Virsh, type VmContext } from './virsh.js';

export interface JobOptions {
  timeoutSec: number;
  mirror: string | undefined;
  files: string[];
  cacheDir: string;
  type: 'qemu' | 'kvm';
  /** Extra content for the in share: relative path -> text (ssh-key put's keys). */
  inFiles?: Record<string, string>;
}

/** Runs one job against the stopped VM; returns the out directory. Throws JOB_FAILED on a failure or timeout. */
export async function runJob(v: Virsh, ctx: VmContext, info: DomainInfo, src: JobSource, o: JobOptions): Promise<string> {
  await refuseRunning(v, info, `job ${src.name} (its disks go into the rescue VM)`);
  const rescueName = `${info.name}-job`;
  if ((await v.state(rescueName)) !== undefined) throw new ForgeError('VIRT_EXISTS', `a domain ${rescueName} exists already (another job running?)`);
  const rescue = await rescueSystem(o.cacheDir, (m) => ctx.io.err(m));
  const firstDisk = info.disks.find((d) => d.device === 'disk' && d.source !== '');
  const base = firstDisk !== undefined && firstDisk.type === 'file' ? dirname(firstDisk.source) : '/var/lib/libvirt/images';
  const stamp = ctx.now().toISOString().replace(/[:.]/g, '-');
  const run = stageJob(src, join(base, `${info.name}.jobs`, `${src.name}-${stamp}`), o.files);
  for (const [rel, text] of Object.entries(o.inFiles ?? {})) {
    mkdirSync(dirname(join(run.indir, rel)), { recursive: true, mode: 0o755 });
    writeFileSync(join(run.indir, rel), text, { mode: 0o644 });
  }
  const env = { HOSTDIR: src.dir !== '' ? src.dir : run.workdir, WORKDIR: run.workdir, INDIR: run.indir, OUTDIR: run.outdir, VM: info.name, JOB: src.name };
  const hook = async (kind: 'pre' | 'post'): Promise<void> => {
    const f = src.dir === '' ? '' : join(src.dir, `${src.name}.${kind}`);
    if (f === '' || !existsSync(f)) return;
    ctx.io.err(`forge-agent: running ${src.name}.${kind} on the host`);
    const code = await hookScript(f, env, (s) => void process.stdout.write(s));
    if (code !== 0) throw new ForgeError('JOB_FAILED', `${src.name}.${kind} exited with status ${code} (work dir ${run.workdir})`);
  };
  await hook('pre');
  const consoleLog = siblingLog(info, rescueName);
  const xml = rescueDomainXml({ name: rescueName, vm: info, rescue, job: src.name, run, mirror: o.mirror, consoleLog, type: o.type, memoryMiB: 512 });
  const f = tmpXml(xml);
  try {
    await v.run(['create', f]);
  } finally {
    rmSync(f, { force: true });
  }
  ctx.io.err(`forge-agent: rescue VM ${rescueName} running job ${src.name} (timeout ${o.timeoutSec} s)`);
  const t0 = Date.now();
  let offset = 0;
  const write = (b: Buffer): void => void process.stdout.write(b);
  for (;;) {
    offset = follow(consoleLog, offset, write);
    if ((await v.state(rescueName)) === undefined) break;
    if (Date.now() - t0 > o.timeoutSec * 1000) {
      await v.run(['destroy', rescueName]).catch(() => '');
      await report(ctx, info, 'job', { job: src.name, result: 'timeout', outdir: run.outdir });
      throw new ForgeError('JOB_FAILED', `job ${src.name} did not finish within ${o.timeoutSec} s: the rescue VM was stopped (partial output in ${join(run.outdir, 'job.log')})`, { field: 'timeout' });
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  follow(consoleLog, offset, write);
  const status = exitStatus(run.outdir);
  if (status !== 0) {
    await report(ctx, info, 'job', { job: src.name, result: 'failed', status: status ?? null, outdir: run.outdir });
    throw new ForgeError('JOB_FAILED', status === undefined
      ? `job ${src.name}: the rescue system ended without a job status (see the console output above, ${consoleLog})`
      : `job ${src.name} exited with status ${status} (log ${join(run.outdir, 'job.log')})`);
  }
  await hook('post');
  await report(ctx, info, 'job', { job: src.name, result: 'ok', outdir: run.outdir });
  ctx.io.out(`${info.name}: job ${src.name} done; results in ${run.outdir}`);
  return run.outdir;
}

export function jobOptions(p: ParsedSub): JobOptions {
  const mirror = p.flags.get('mirror');
  if (typeof mirror === 'string' && !(existsSync(mirror) && statSync(mirror).isDirectory())) throw new ForgeError('USAGE', `--mirror ${mirror} is not a directory`, { field: 'mirror' });
  const files = p.flags.get('files');
  const vt = p.flags.get('virt-type') ?? 'qemu';
  if (vt !== 'qemu' && vt !== 'kvm') throw new ForgeError('USAGE', `--virt-type must be one of qemu|kvm, not '${String(vt)}'`, { field: 'virt-type' });
  return {
    timeoutSec: positiveInt(p, 'timeout', 600),
    mirror: typeof mirror === 'string' ? resolvePath(mirror) : undefined,
    files: typeof files === 'string' ? files.split(',').map((x) => x.trim()).filter((x) => x !== '') : [],
    cacheDir: cacheDirOf(p),
    type: vt,
  };
}

/** OpenSSH's fingerprint: SHA256: and the unpadded base64 of the key blob's sha256 (ssh-keygen -l). */
export function sshFingerprint(line: string): string | undefined {
  const m = /^(?:\S+ )?((?:ssh|ecdsa|sk)-\S+) ([A-Za-z0-9+/]+={0,2})(?: .*)?$/.exec(line.trim());
  if (m === null) return undefined;
  const blob = Buffer.from(m[2] as string, 'base64');
  if (blob.length < 16) return undefined;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export async function sshKeyPut(v: Virsh, ctx: VmContext, p: ParsedSub): Promise<void> {
  const [name, ...files] = p.args as [string, ...string[]];
  const info = await forgeDomain(v, name);
  await refuseRunning(v, info, 'ssh-key put (the root filesystem is changed offline)');
  let keyFiles = files;
  if (keyFiles.length === 0) {
    const dir = join(homedir(), '.ssh');
    keyFiles = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.pub')).map((f) => join(dir, f)) : [];
    if (keyFiles.length === 0) throw new ForgeError('USAGE', `no KEYFILE given and no ${dir}/*.pub`, { field: 'KEYFILE' });
  }
  const inFiles: Record<string, string> = {};
  const prints: string[] = [];
  keyFiles.forEach((kf, i) => {
    if (!existsSync(kf)) throw new ForgeError('NOT_FOUND', `key file ${kf} does not exist`, { field: 'KEYFILE' });
    const lines = readFileSync(kf, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const l of lines) {
      const fp = sshFingerprint(l);
      if (fp === undefined) throw new ForgeError('INVALID_FIELD', `${kf}: '${l.slice(0, 40)}...' is not an OpenSSH public key`, { field: 'KEYFILE' });
      prints.push(fp);
    }
    if (lines.length === 0) throw new ForgeError('INVALID_FIELD', `${kf} holds no public key`, { field: 'KEYFILE' });
    inFiles[`keys/${i}-${basename(kf)}${kf.endsWith('.pub') ? '' : '.pub'}`] = lines.join('\n') + '\n';
  });
  const o = { ...jobOptions(p), inFiles };
  await runJob(v, ctx, info, resolveJob('add-ssh-keys'), o);
  ctx.io.out(`${name}: root's authorized_keys has ${prints.join(', ')}`);
  await report(ctx, info, 'ssh_key_put', { fingerprints: prints });
}

