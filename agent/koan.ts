/**
 * koan's command line on forge-agent: the flags koan users type, translated
 * into forge-agent's before parsing, or refused with what to use instead.
 * Pure (environment passed in).
 *
 * - COBBLER_SERVER (koan's environment variable) names the server when
 *   FORGE_SERVER is not set; koan's bare `--server HOST` and `--port P` become
 *   forge's URL (a bare host means http://HOST:8080, forge serve's default
 *   port, unless --port says otherwise).
 * - `--kopts "a=b c"`: extra installer kernel options; as in koan they
 *   override the server's options of the same key (koan app.py
 *   calc_kernel_args merges them into the server's).
 * - `--qemu-machine-type T`: forge-agent's `--machine`, when this build has it.
 * - koan flags forge-agent does not implement are refused, each with the
 *   forge way to do the same thing.
 */
import { ForgeError } from '../server/errors.js';

export interface KoanCompat {
  argv: string[];
  env: Record<string, string | undefined>;
  /** Notes for the user (translations made). */
  notes: string[];
}

/** koan flags with no forge-agent counterpart, and what to use. */
const REFUSED: Record<string, string> = {
  'replace-self': 'forge reinstalls a machine over the network: forge system reinstall --name NAME (or --netboot-enabled true and a reboot)',
  r: 'forge reinstalls a machine over the network: forge system reinstall --name NAME',
  kexec: 'forge reinstalls over the network: forge system reinstall --name NAME',
  'add-reinstall-entry': 'forge reinstalls over the network: forge system reinstall --name NAME',
  image: 'forge has no image objects: install a --system or --profile',
  i: 'forge has no image objects: install a --system or --profile',
  'update-files': 'forge does not serve per-system config files (koan --update-files)',
  'update-config': 'forge does not serve per-system config files (koan --update-config)',
  'static-interface':
    'forge already puts the static boot interface on the installer command line (ip=IP::GW:MASK:HOST:IFACE:none, from the system record); to choose another interface give it with --kopts "ip=IP::GW:MASK:HOST:IFACE:none nameserver=DNS"',
  'force-path': 'use --force (replaces the domain and overwrites its disk)',
  noreboot: 'use --no-wait (forge-agent then leaves the installer running and does not boot the disk)',
  wait: 'use --vm-poll --timeout SECONDS',
  'virt-uuid': 'forge-agent makes the UUID; the system record names the domain',
  'no-gfx': 'use --nogfx or --graphics none',
};

/** A koan server (host, host:port or URL) as forge's URL. */
export function serverUrl(server: string, port: string | undefined): string {
  if (/^https?:\/\//.test(server)) return server;
  if (port !== undefined && !/^\d{1,5}$/.test(port)) throw new ForgeError('USAGE', `--port must be a port number, not '${port}'`, { field: 'port' });
  const hasPort = /:\d+$/.test(server);
  return `http://${server}${hasPort ? '' : `:${port ?? '8080'}`}`;
}

/** Split argv into (name, value, index) for --x V, --x=V, -x V; knows which flags take values by `takesValue`. */
export function koanCompat(argv: readonly string[], env: Record<string, string | undefined>, agentFlags: ReadonlySet<string>): KoanCompat {
  const out: string[] = [];
  const notes: string[] = [];
  let port: string | undefined;
  let server: string | undefined;
  const kopts: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--?([A-Za-z][\w-]*)(?:=(.*))?$/.exec(arg);
    if (m === null) {
      out.push(arg);
      continue;
    }
    const name = m[1]!;
    const long = arg.startsWith('--');
    const value = (): string => {
      if (m[2] !== undefined) return m[2];
      const v = argv[i + 1];
      if (v === undefined) throw new ForgeError('USAGE', `--${name} needs a value`, { field: name });
      i++;
      return v;
    };
    if (long && name === 'port') port = value();
    else if ((long && name === 'server') || (!long && name === 's')) server = value();
    else if (long && name === 'kopts') kopts.push(value());
    else if (long && name === 'qemu-machine-type') {
      const t = value();
      if (!agentFlags.has('machine')) {
        throw new ForgeError('USAGE', `--qemu-machine-type ${t}: this forge-agent picks the machine type itself (pc); it takes no machine option`, { field: 'qemu-machine-type' });
      }
      // QEMU names: q35, pc-q35-X.Y (q35); pc, pc-i440fx-X.Y (pc)
      out.push('--machine', t.includes('q35') ? 'q35' : t.startsWith('pc') ? 'pc' : t);
      notes.push(`--qemu-machine-type ${t} -> --machine`);
    } else if ((long || name.length === 1) && REFUSED[name] !== undefined && !agentFlags.has(name)) {
      throw new ForgeError('USAGE', `koan's ${long ? '--' : '-'}${name} is not supported by forge-agent: ${REFUSED[name]}`, { field: name });
    } else out.push(arg);
  }
  const outEnv = { ...env };
  if (server !== undefined) out.unshift('--server', serverUrl(server, port));
  else if (port !== undefined) {
    const base = env['FORGE_SERVER'] ?? env['COBBLER_SERVER'];
    if (base === undefined || base === '') throw new ForgeError('USAGE', '--port needs --server HOST (or COBBLER_SERVER)', { field: 'port' });
    outEnv['FORGE_SERVER'] = serverUrl(base.replace(/^https?:\/\//, '').replace(/:\d+$/, ''), port);
  }
  if ((outEnv['FORGE_SERVER'] ?? '') === '' && (env['COBBLER_SERVER'] ?? '') !== '') {
    outEnv['FORGE_SERVER'] = serverUrl(env['COBBLER_SERVER']!, port);
    notes.push(`COBBLER_SERVER -> ${outEnv['FORGE_SERVER']}`);
  }
  if (kopts.length > 0) out.push('--kopts', kopts.join(' '));
  return { argv: out, env: outEnv, notes };
}

/**
 * The installer command line with koan's --kopts applied: a key given in
 * kopts replaces every word of that key from the server (console= may be
 * given several times in kopts, and all of them are kept), a `!key` removes it.
 */
export function mergeKopts(cmdline: string, kopts: string | undefined): string {
  if (kopts === undefined || kopts.trim() === '') return cmdline;
  const key = (w: string): string => w.split('=')[0]!;
  const extra = kopts.trim().split(/\s+/);
  const drop = new Set(extra.map((w) => key(w).replace(/^!/, '')));
  const kept = cmdline.trim().split(/\s+/).filter((w) => w !== '' && !drop.has(key(w)));
  return [...kept, ...extra.filter((w) => !w.startsWith('!'))].join(' ');
}
