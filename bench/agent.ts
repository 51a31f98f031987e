/**
 * Agent benchmark: wall time from `forge-agent --system T --virt` to the
 * installer domain running (the process returns under --no-wait right after
 * libvirt started the transient installer), with a cold cache (kernel and
 * initrd downloaded and checked) and a warm one (reused after a sha256 check).
 * Reference in the same run: `virt-install --install kernel=,initrd=` (what
 * Koan shells out to) with the same local kernel/initrd, disk size, network
 * and memory, timed until it returns with the domain started
 * (--noautoconsole). Real libvirtd (qemu:///system, domain type qemu), a real
 * `forge serve` on loopback, an isolated libvirt network; the guest's own boot
 * is excluded. Run alone: `node dist/bench/agent.js` (root, libvirtd running).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startForge } from '../test/lib/server.js';
import { guestKernel } from '../test/lib/guest.js';
import { AGENT_BIN, HANG_INIT, createNetwork, initrdFor, labDir, removeDomain, udevKvmPermissions, virsh } from '../test/lib/agent-lab.js';

const RUNS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function fmt(xs: number[]): string {
  return `${median(xs).toFixed(2)} | ${Math.min(...xs).toFixed(2)} | ${Math.max(...xs).toFixed(2)}`;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): { seconds: number; stdout: string; stderr: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: 180_000 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { seconds, stdout: r.stdout, stderr: r.stderr };
}

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? '?';
}

export async function run(): Promise<string> {
  if (process.getuid?.() !== 0) throw new Error('bench/agent needs root (qemu:///system)');
  if (spawnSync('virsh', ['-c', 'qemu:///system', 'version'], { timeout: 30_000 }).status !== 0) throw new Error('libvirtd is not running');
  udevKvmPermissions();
  const kernel = guestKernel().vmlinuz;
  const initrd = initrdFor(HANG_INIT);
  const net = createNetwork('fgab');
  const dir = labDir('fgab');
  const srv = await startForge();
  const name = `fgab${process.pid}`;
  const cold: number[] = [];
  const warm: number[] = [];
  const ref: number[] = [];
  const steps = new Map<string, number[]>();
  let auto: { seconds: number; warning: boolean; cachedSeconds: number } | undefined;
  try {
    const mk = async (kind: string, body: unknown): Promise<void> => {
      const r = await srv.api('POST', `/api/v1/${kind}`, body);
      if (r.status !== 201 && r.status !== 200) throw new Error(`create ${kind}: ${JSON.stringify(r.body)}`);
    };
    await mk('distros', { name: 'bench', kernel, initrd, breed: 'generic' });
    await mk('profiles', { name: 'bench', distro: 'bench' });
    await mk('systems', { name, profile: 'bench', virt_ram: 256, virt_file_size: 1, interfaces: { eth0: { mac_address: 'random' } } });
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FORGE_'))), FORGE_SERVER: srv.url, FORGE_TOKEN: srv.token, FORGE_AGENT_TRACE: '1' };
    const agentRun = (cache: string, extra: string[] = ['-T', 'qemu']): { seconds: number; stderr: string } => {
      removeDomain(name);
      rmSync(join(dir, 'disks'), { recursive: true, force: true });
      const r = timed(process.execPath, [AGENT_BIN, '-y', name, '--virt', '--no-wait', '--nogfx', '--virt-network', net.name, '--virt-path', join(dir, 'disks'), '--cache-dir', cache, ...extra], env);
      const state = virsh(['domstate', name]).trim();
      if (state !== 'running') throw new Error(`installer not running after forge-agent: ${state}`);
      removeDomain(name); // one VM at a time: the next measurement must not compete with this guest
      return r;
    };
    // Interleaved, so that forge-agent and virt-install see the same load on this shared machine.
    for (let i = 0; i < RUNS; i++) {
      const cache = join(dir, `cache-cold-${i}`);
      cold.push(agentRun(cache).seconds);
      const w = agentRun(cache);
      warm.push(w.seconds);
      for (const m of w.stderr.matchAll(/^trace: (\w+) (\d+) ms$/gm)) {
        const list = steps.get(m[1] as string) ?? [];
        list.push(Number(m[2]));
        steps.set(m[1] as string, list);
      }
      const ref1 = `${name}-vi`;
      removeDomain(ref1);
      rmSync(join(dir, 'vi'), { recursive: true, force: true });
      mkdirSync(join(dir, 'vi'), { recursive: true });
      const r = timed('virt-install', [
        '--connect', 'qemu:///system', '--name', ref1, '--virt-type', 'qemu', '--memory', '256', '--vcpus', '1',
        '--disk', `path=${join(dir, 'vi', `${ref1}.qcow2`)},size=1,format=qcow2,bus=virtio`,
        '--install', `kernel=${kernel},initrd=${initrd},kernel_args=console=ttyS0`,
        '--network', `network=${net.name},model=virtio`, '--graphics', 'none', '--osinfo', 'detect=on,require=off',
        '--noautoconsole', '--noreboot',
      ], process.env);
      ref.push(r.seconds);
      if (virsh(['domstate', ref1]).trim() !== 'running') throw new Error('virt-install: domain not running');
      removeDomain(ref1);
    }
    const a = agentRun(join(dir, 'cache-cold-0'), ['-T', 'auto']);
    const a2 = agentRun(join(dir, 'cache-cold-0'), ['-T', 'auto']);
    auto = { seconds: a.seconds, warning: /WARNING: using plain QEMU/.test(a.stderr), cachedSeconds: a2.seconds };
  } finally {
    // virt-install defines a storage pool for the disk's directory: remove the ones under ours.
    for (const pool of virsh(['pool-list', '--all', '--name'], { allowFail: true }).split('\n').map((x) => x.trim()).filter((x) => x !== '')) {
      if (virsh(['pool-dumpxml', pool], { allowFail: true }).includes(`<path>${dir}`)) {
        virsh(['pool-destroy', pool], { allowFail: true });
        virsh(['pool-undefine', pool], { allowFail: true });
      }
    }
    removeDomain(name);
    removeDomain(`${name}-vi`);
    for (const f of [name, `${name}-install`, `${name}-console`, `${name}-vi`]) rmSync(`/var/log/libvirt/qemu/${f}.log`, { force: true });
    await srv.stop();
    net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const lines = [
    '## forge-agent: time to the installer domain running',
    '',
    `Wall time of \`forge-agent --system T --virt --no-wait -T qemu\` (fetch the blended record, kernel/initrd into the cache,`,
    `qcow2 disk, define the persistent domain, start the transient installer) until libvirt reports the installer running;`,
    `the guest's own boot is excluded. Kernel ${(spawnSync('stat', ['-c', '%s', kernel], { encoding: 'utf8' }).stdout.trim())} bytes,`,
    `initrd ${(spawnSync('stat', ['-c', '%s', initrd], { encoding: 'utf8' }).stdout.trim())} bytes, served by a real \`forge serve\` on loopback.`,
    `Reference: virt-install (the tool Koan shells out to) with the same local kernel/initrd, 1 GiB qcow2, network and 256 MiB, until it returns`,
    `with the domain started (\`--noautoconsole\`); it downloads nothing. ${RUNS} runs each, seconds.`,
    '',
    '| case | median | min | max |',
    '|---|---|---|---|',
    `| forge-agent, cold cache (download + sha256 check) | ${fmt(cold)} |`,
    `| forge-agent, warm cache (sha256 re-check, no download) | ${fmt(warm)} |`,
    `| virt-install --install kernel=,initrd= (reference) | ${fmt(ref)} |`,
    '',
    `Where a warm run's time goes (median ms per step, inside the process; the rest is Node start-up and exit): ${[...steps.entries()].map(([k, v]) => `${k} ${median(v)}`).join(', ')}.`,
    '',
    auto === undefined
      ? ''
      : `With \`--virt-type auto\` one warm run took ${auto.seconds.toFixed(2)} s: libvirt offers kvm here but /dev/kvm is nested and broken, so the kvm probe guest runs until its 8 s limit before qemu is chosen${auto.warning ? ' (with the loud warning)' : ''}; the next run reuses the cached verdict (until reboot or a qemu/kernel change) and took ${auto.cachedSeconds.toFixed(2)} s.`,
    '',
    `Target: under 2 s warm. Tools: ${version('virsh', ['--version'])} (libvirt), ${version('qemu-system-x86_64', ['--version'])}, virt-install ${version('virt-install', ['--version'])}, Node ${process.version}. Machine: 2 cores shared with other work.`,
    '',
  ];
  return lines.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  run().then(
    (s) => process.stdout.write(s),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
