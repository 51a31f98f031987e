#!/usr/bin/env node
/**
 * forge-agent: turns a forge system record into an installed libvirt VM
 * (Koan's --virt). See agent/flow.ts for the steps; `forge-agent --help`.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { closeSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { VERSION } from '../server/core/version.js';
import { EXIT, ForgeError } from '../server/errors.js';
import { HttpForgeApi } from './api.js';
import { prepareDisk, removeDisk } from './disk.js';
import { fetchCached, progressBar } from './download.js';
import { runInstall, type FlowDeps } from './flow.js';
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

export async function main(argv: string[]): Promise<number> {
  const io = { out: (s: string) => void process.stdout.write(s.endsWith('\n') ? s : `${s}\n`), err: (s: string) => void process.stderr.write(`${s}\n`) };
  try {
    if (argv[0] !== undefined && SUB_WORDS.has(argv[0])) {
      const sub = parseSub(argv);
      if (sub.help) {
        io.out(subHelp(sub.spec));
        return EXIT.ok;
      }
      return await runSub(sub, vmContext(sub, process.env, io));
    }
    // koan's flags and COBBLER_SERVER, translated (or refused with the forge way) before parsing.
    const koan = koanCompat(argv, process.env, FLAG_NAMES);
    const opts = parseOptions(koan.argv, { env: koan.env, isTTY: process.stdout.isTTY === true, isRoot: process.getuid?.() === 0, home: homedir() });
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
