#!/usr/bin/env node
/**
 * forge-agent: turns a forge system record into an installed libvirt VM
 * (Koan's --virt). See agent/flow.ts for the steps; `forge-agent --help`.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { builtinDefaults, configReport, layerConfig, type ConfigFile, type Layered } from './config.js';
import { homedir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { VERSION } from '../server/core/version.js';
import { EXIT, ForgeError } from '../server/errors.js';
import { HttpForgeApi } from './api.js';
import { prepareDisk, removeDisk } from './disk.js';
import { fetchCached, progressBar } from './download.js';
import { runInstall, type FlowDeps } from './flow.js';
import { interruptBuild, runBuild } from './build.js';
import { LibvirtHost } from './libvirt.js';
import { FLAG_NAMES, helpText, parseOptions, type AgentOptions } from './options.js';
import { koanCompat } from './koan.js';
import { parseSub, subHelp, subSummary, SUB_WORDS } from './subcommands.js';
import { runSub, vmContext } from './vm.js';
import { randomMac } from './plan.js';
import { decideVirtType, libvirtKvm, probeKvmCached } from './virttype.js';

export function readTail(path: string, bytes: number): string {
  try {
    const size = statSync(path).size;
    const start = Math.max(0, size - bytes);
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.alloc(size - start);
      const n = readSync(fd, buf, 0, buf.length, start);
      return buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

export function productionDeps(opts: AgentOptions, io: { out: (s: string) => void; err: (s: string) => void }): FlowDeps {
  const api = new HttpForgeApi(opts.server, opts.token, (m) => io.err(`warning: ${m}`));
  return {
    api,
    connectVirt: () => LibvirtHost.open(opts.connect),
    fetchFile: async (f, label) => {
      const bar = progressBar(label, process.stderr);
      try {
        return await fetchCached(f, opts.cacheDir, bar.tick);
      } finally {
        bar.end();
      }
    },
    prepareDisk,
    removeDisk,
    resolveVirtType: async (requested, kernel, virsh) => {
      if (requested === 'qemu') return decideVirtType('qemu', { libvirtOffersKvm: false, probe: 'skipped', detail: '' });
      const caps = await libvirtKvm(virsh);
      let probe: 'ok' | 'failed' | 'skipped' = 'skipped';
      let detail = caps.detail;
      if (requested === 'auto' && caps.offers) {
        if (kernel === undefined) {
          detail = 'no kernel to probe with (PXE install)';
        } else {
          const r = await probeKvmCached(opts.cacheDir, caps.emulator, kernel);
          probe = r.ok ? 'ok' : 'failed';
          detail = r.detail;
        }
      }
      return decideVirtType(requested, { libvirtOffersKvm: caps.offers, probe, detail });
    },
    readTail,
    out: io.out,
    err: io.err,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
    uuid: () => randomUUID(),
    randomMac: () => randomMac((n) => randomInt(n)),
    pollMs: 1000,
    ...(process.env['FORGE_AGENT_TRACE'] === '1' ? { trace: (step: string, ms: number) => io.err(`trace: ${step} ${ms} ms`) } : {}),
  };
}

/** /etc/forge/agent.json < ~/.config/forge/agent.json (XDG_CONFIG_HOME) < environment. */
export function loadConfig(env: Record<string, string | undefined>): Layered {
  const userDir = env['XDG_CONFIG_HOME'] ?? join(homedir(), '.config');
  const read = (path: string): ConfigFile => ({ path, text: existsSync(path) ? readFileSync(path, 'utf8') : undefined });
  return layerConfig([read(env['FORGE_AGENT_SYSTEM_CONFIG'] ?? '/etc/forge/agent.json'), read(join(userDir, 'forge/agent.json'))], env);
}

/** The record's build_method (an autoinstall_meta key, top-level in the blended view). */
export function buildMethodOf(blended: unknown): 'debootstrap' | 'installer' {
  const m = typeof blended === 'object' && blended !== null ? (blended as Record<string, unknown>)['build_method'] : undefined;
  if (m === undefined || m === '' || m === 'installer') return 'installer';
  if (m === 'debootstrap') return 'debootstrap';
  throw new ForgeError('INVALID_FIELD', `build_method '${String(m)}' must be debootstrap or installer`, { field: 'build_method' });
}

export async function main(argv: string[]): Promise<number> {
  const io = { out: (s: string) => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`), err: (s: string) => void process.stderr.write(`${s}\n`) };
  try {
    const layered = loadConfig(process.env);
    if (argv[0] !== undefined && SUB_WORDS.has(argv[0])) {
      const sub = parseSub(argv);
      if (sub.help) {
        io.out(subHelp(sub.spec));
        return EXIT.ok;
      }
      if (sub.spec.path[0] === 'config') {
        io.out(configReport(layered, new Map(), builtinDefaults(process.getuid?.() === 0, homedir())));
        return EXIT.ok;
      }
      // The subcommands take connect/server/token from the same layers.
      for (const k of ['connect', 'server', 'token']) {
        const v = layered.values.get(k);
        if (!sub.flags.has(k) && typeof v === 'string') sub.flags.set(k, v);
      }
      return await runSub(sub, vmContext(sub, process.env, io));
    }
    // koan's flags and COBBLER_SERVER, translated (or refused with the forge way) before parsing.
    const koan = koanCompat(argv, process.env, FLAG_NAMES);
    const opts = parseOptions(koan.argv, { env: koan.env, config: layered.values, isTTY: process.stdout.isTTY === true, isRoot: process.getuid?.() === 0, home: homedir() });
    if (opts.help) {
      io.out(helpText() + subSummary());
      return EXIT.ok;
    }
    if (opts.version) {
      io.out(`forge-agent ${VERSION}`);
      return EXIT.ok;
    }
    const deps = productionDeps(opts, io);
    if (opts.list !== undefined) {
      for (const n of await deps.api.list(opts.list)) io.out(n);
      return EXIT.ok;
    }
    if (opts.display && opts.build === 'debootstrap') throw new ForgeError('USAGE', '--display shows the installer path only; --build debootstrap has no dry run yet', { field: 'display' });
    if (opts.target !== undefined && opts.build !== 'installer' && !opts.display) {
      // `--build debootstrap`, or `build_method: debootstrap` on the record (profile autoinstall_meta), so one record works both ways.
      const method = opts.build ?? buildMethodOf(await deps.api.blended(opts.target.kind, opts.target.name));
      if (method === 'debootstrap') {
        // Ctrl-C: stop the running step; runBuild then releases mounts, loop devices and new disks.
        process.on('SIGINT', () => {
          io.err('forge-agent: interrupted; releasing what the build made');
          interruptBuild();
        });
        await runBuild(opts, { ...deps, tty: process.stderr.isTTY === true });
        return EXIT.ok;
      }
    }
    // Ctrl-C while following the installer: the VM is libvirt's, not ours; say how to go on.
    process.once('SIGINT', () => {
      io.err('forge-agent: interrupted; an installer already started keeps running (virsh list --all). After it has shut down, boot the disk with: virsh start NAME');
      process.exit(130);
    });
    await runInstall(opts, deps);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof ForgeError) {
      io.err(`forge-agent: ${e.code}: ${e.message}`);
      const d = e.details as { console_tail?: unknown } | undefined;
      if (typeof d?.console_tail === 'string' && d.console_tail !== '') {
        io.err('--- tail of the installer console ---');
        io.err(d.console_tail.trimEnd());
        io.err('---');
      }
      return e.exit;
    }
    io.err(`forge-agent: internal error: ${(e as Error).stack ?? String(e)}`);
    return EXIT.internal;
  }
}

// Run when executed (also through npm's bin symlink), not when imported by tests.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    () => process.exit(EXIT.internal),
  );
}
