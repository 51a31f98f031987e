/**
 * forge-agent configuration in layers (seed 004's habit): built-in defaults
 * < /etc/forge/agent.json < ~/.config/forge/agent.json < environment < flags.
 * A config file is a JSON object whose keys are long option names
 * (`"virt-path": "/srv/vms"`, `"nogfx": true`); the environment is
 * FORGE_SERVER, FORGE_TOKEN, LIBVIRT_DEFAULT_URI and FORGE_AGENT_<OPTION>
 * (`FORGE_AGENT_VIRT_PATH`). Pure: the files' contents are passed in.
 */
import { ForgeError } from '../server/errors.js';

/** Options a config layer may set (what a host keeps the same from run to run). */
export const CONFIG_KEYS = [
  'server', 'token', 'connect', 'cache-dir', 'log-dir', 'virt-path', 'virt-file-size', 'virt-network', 'virt-bridge', 'virt-type',
  'firmware', 'machine', 'graphics', 'nogfx', 'qemu-disk-type', 'qemu-net-type', 'timeout',
  'build', 'suite', 'mirror', 'overlay', 'hooks', 'layout', 'apt-cache', 'no-rootfs-cache',
] as const;
const BOOLEAN_KEYS: ReadonlySet<string> = new Set(['nogfx', 'no-rootfs-cache']);

/** What the agent uses when no layer says otherwise (the option parser's defaults). */
export function builtinDefaults(isRoot: boolean, home: string): Record<string, string> {
  return {
    connect: 'qemu:///system',
    'cache-dir': isRoot ? '/var/cache/forge-agent' : `${home}/.cache/forge-agent`,
    'log-dir': '/var/log/libvirt/qemu',
    'virt-path': "the record's virt_path, else /var/lib/libvirt/images",
    'virt-network': "the record's virt_bridge, else libvirt network default",
    'virt-type': "the record's virt_type, else auto",
    firmware: 'bios',
    graphics: 'vnc',
    'qemu-disk-type': 'virtio',
    'qemu-net-type': 'virtio',
    timeout: '3600',
    build: "the record's build_method, else installer",
    overlay: '/etc/forge/overlay/PROFILE',
    hooks: '/etc/forge/hooks',
    layout: 'gpt',
    'apt-cache': 'CACHE-DIR/apt',
  };
}

export const ENV_OF: Record<string, string> = { server: 'FORGE_SERVER', token: 'FORGE_TOKEN', connect: 'LIBVIRT_DEFAULT_URI' };

export function envName(key: string): string {
  return ENV_OF[key] ?? `FORGE_AGENT_${key.toUpperCase().replace(/-/g, '_')}`;
}

export interface ConfigFile {
  path: string;
  /** The file's text, undefined when it does not exist. */
  text: string | undefined;
}

export interface Layered {
  /** Option -> value (true for a set boolean), from the highest layer below the flags. */
  values: Map<string, string | true>;
  /** Option -> where it came from (a file path or `env NAME`). */
  source: Map<string, string>;
}

/** Merge the file layers (lowest first) and the environment. Throws USAGE naming the file and key. */
export function layerConfig(files: readonly ConfigFile[], env: Record<string, string | undefined>): Layered {
  const values = new Map<string, string | true>();
  const source = new Map<string, string>();
  for (const f of files) {
    if (f.text === undefined) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(f.text);
    } catch (e) {
      throw new ForgeError('USAGE', `${f.path}: not JSON (${(e as Error).message})`, { field: f.path });
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ForgeError('USAGE', `${f.path}: must be a JSON object of option names`, { field: f.path });
    for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
      if (!(CONFIG_KEYS as readonly string[]).includes(k)) throw new ForgeError('USAGE', `${f.path}: '${k}' is not a configurable option (${CONFIG_KEYS.join(', ')})`, { field: k });
      if (BOOLEAN_KEYS.has(k)) {
        if (typeof v !== 'boolean') throw new ForgeError('USAGE', `${f.path}: '${k}' must be true or false`, { field: k });
        if (v) values.set(k, true);
        else values.delete(k);
      } else if (typeof v === 'string' || typeof v === 'number') {
        values.set(k, String(v));
      } else {
        throw new ForgeError('USAGE', `${f.path}: '${k}' must be a string or number`, { field: k });
      }
      source.set(k, f.path);
    }
  }
  for (const k of CONFIG_KEYS) {
    const e = env[envName(k)];
    if (e === undefined || e === '') continue;
    if (BOOLEAN_KEYS.has(k)) {
      if (/^(1|true|yes)$/i.test(e)) values.set(k, true);
      else values.delete(k);
    } else values.set(k, e);
    source.set(k, `env ${envName(k)}`);
  }
  return { values, source };
}

/** `forge-agent config`: every option with its value and layer. */
export function configReport(l: Layered, flags: ReadonlyMap<string, string | true>, defaults: Record<string, string>): string {
  const lines: string[] = [];
  for (const k of CONFIG_KEYS) {
    const f = flags.get(k);
    const v = f ?? l.values.get(k);
    const src = f !== undefined ? 'flag' : l.source.get(k) ?? 'default';
    const shown = v === undefined ? defaults[k] ?? '(unset)' : v === true ? 'true' : k === 'token' ? '(set, hidden)' : v;
    lines.push(`${k.padEnd(16)} ${shown}  [${src}]`);
  }
  return lines.join('\n') + '\n';
}
