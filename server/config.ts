/**
 * Server configuration: one schema, four layers.
 *   defaults < config file (JSON, --config or /etc/forge/forge.json) < FORGE_* env < flags
 * A key `dhcp_mode` is `--dhcp-mode` on the command line and `FORGE_DHCP_MODE`
 * in the environment. Parsing happens once, at the edge (the `serve` command);
 * the result is a plain value the rest of the server reads.
 */
import { readFileSync, existsSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { ForgeError } from './errors.js';

export type DhcpMode = 'off' | 'proxy' | 'managed';
export type Ipv6RaMode = 'auto' | 'on' | 'off';
export type UnknownPolicy = 'ignore' | 'discover' | 'default';
export type UnknownBoot = 'local' | 'menu';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export interface ForgeConfig {
  data_dir: string;
  /** '' = SQLite in data_dir (one server); `postgres://...` = a PostgreSQL database several servers share. */
  store: string;
  /** HTTP listen address. */
  listen: string;
  http_port: number;
  /** Host (or host:port) that installers and agents use to reach forge's HTTP; '' = derive. */
  server: string;
  /** This server's name among several on one database (a subnet's `servers` names it); default the host name. */
  server_name: string;
  templates_dir: string;
  snippets_dir: string;
  pxe_just_once: boolean;

  dhcp_mode: DhcpMode;
  /** CIDRs this server is authoritative for (managed mode). */
  dhcp_subnet: string[];
  /** Dynamic pools, each `first,last`. Empty: reservations only. */
  dhcp_range: string[];
  dhcp_router: string;
  dhcp_dns: string[];
  dhcp_domain: string;
  /** Seconds. */
  dhcp_lease_time: number;
  dhcp_port: number;
  /** proxyDHCP boot-server port (PXE spec: 4011). 0 disables. */
  dhcp_proxy_port: number;
  /** Address the DHCP socket binds (must be 0.0.0.0 to see broadcasts). */
  dhcp_listen: string;
  /** Start managed mode even when another DHCP server answers the probe. */
  dhcp_force: boolean;
  /** Answer INIT-REBOOT requests of clients forge has no record of (RFC 2131 s4.3.2). */
  dhcp_authoritative: boolean;
  /** Seconds to listen for another DHCP server before answering in managed mode. 0 skips. */
  dhcp_probe_seconds: number;
  /** Seconds between probes of a link where another DHCP server answered (0: never again). */
  dhcp_reprobe_seconds: number;
  validate_workers: string;
  /** IPv6 router advertisements (radvd) on links managed DHCP serves, so PXE ROMs do not wait for IPv6 routers (services/ra.ts). */
  ipv6_ra: Ipv6RaMode;
  /** What to do with MACs no system has. */
  dhcp_unknown: UnknownPolicy;
  /** Profile served to unknown MACs when dhcp_unknown is `default`. */
  default_profile: string;
  /** Kernel options of the discovery image (before forge.url= and forge.mac=). */
  discovery_kernel_options: string;
  /** Extracted or installed linux-image root the discovery image's kernel comes from ('' = DATA_DIR/discovery/kernel, downloaded once with apt). */
  discovery_kernel_dir: string;
  /** Address handed out as siaddr / TFTP server ('' = server host). */
  next_server: string;

  tftp_enabled: boolean;
  tftp_listen: string;
  tftp_port: number;
  /** Extra directory of files served as they are. */
  tftp_root: string;
  tftp_max_transfers: number;
  /** Transfers one client address may hold at once. */
  tftp_max_per_client: number;
  /** Seconds a transfer may go without progress before its slot is freed (whatever timeout/backoff say). */
  tftp_stall_seconds: number;
  /** Directories distro kernels, initrds and trees may be served from ([] = the built-in ones, boot/confine.ts). */
  boot_roots: string[];

  /** Override loader paths, e.g. {"undionly.kpxe": "/opt/ipxe/undionly.kpxe"}. */
  loaders: Record<string, string>;
  /** Boot loader chain for BIOS clients: ipxe (undionly.kpxe) or pxelinux. */
  bios_loader: 'ipxe' | 'pxelinux';
  /** Boot loader for x64 UEFI clients: ipxe (ipxe.efi), grub, or shim (Secure Boot: shim -> grub). */
  uefi_loader: 'ipxe' | 'grub' | 'shim';
  /** Unknown machine with no `default` system: local boot or a profile menu. */
  unknown_boot: UnknownBoot;
  /** Minutes in one install stage before `forge status` says stalled. */
  stall_minutes: number;
  /** Minutes after netboot is turned off that a system's install URLs still answer (core/access.ts). */
  install_grace_minutes: number;
  /** Events older than this many days are deleted by the cleanup timer. */
  events_keep_days: number;
  /** At most this many events are kept per system (the oldest go first). */
  events_per_system: number;
  /** Audit entries older than this many days are deleted. */
  audit_keep_days: number;
  log_level: LogLevel;
  log_format: LogFormat;
  access_log: boolean;
}

type Kind = 'string' | 'int' | 'bool' | 'list' | 'map' | { oneOf: readonly string[] };

interface KeySpec {
  kind: Kind;
  doc: string;
  /** The value's shape beyond its kind: returns the rule it breaks, or undefined. */
  shape?: (v: never) => string | undefined;
}

/**
 * Environment variables the clients (the `forge` CLI and forge-agent) read. No serve key may use
 * one: `FORGE_SERVER` is the CLI's server URL, so serve's `server` key is `FORGE_SERVE_SERVER`.
 */
export const CLIENT_ENV = ['FORGE_SERVER', 'FORGE_TOKEN'] as const;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const isIPv6 = (v: string): boolean => /^[0-9A-Fa-f:.]+$/.test(v) && v.includes(':') && v.split('::').length <= 2;
const isPort = (v: string): boolean => /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535;

/** host or host:port, IPv6 in brackets: what `server` holds (never a URL). */
export function hostPortRule(v: string): string | undefined {
  if (v === '') return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v) || v.includes('/')) return `must be host or host:port, not a URL (got "${v}"; e.g. 10.96.0.1 or forge.example:8080)`;
  const br = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  if (br !== null) return isIPv6(br[1] ?? '') && (br[2] === undefined || isPort(br[2])) ? undefined : `"${v}" is not [IPv6] or [IPv6]:port`;
  const colon = v.lastIndexOf(':');
  if (colon > 0 && v.indexOf(':') === colon) {
    const host = v.slice(0, colon);
    const port = v.slice(colon + 1);
    if (!isPort(port)) return `port in "${v}" must be 1-65535`;
    return IPV4.test(host) || HOSTNAME.test(host) ? undefined : `"${host}" is not a host name or IPv4 address`;
  }
  return IPV4.test(v) || HOSTNAME.test(v) || isIPv6(v) ? undefined : `must be host or host:port (got "${v}")`;
}
const ipRule = (v: string): string | undefined => (IPV4.test(v) || isIPv6(v) ? undefined : `must be an IP address, not a host name or URL (got "${v}")`);
const ipv4OrEmpty = (v: string): string | undefined => (v === '' || IPV4.test(v) ? undefined : `must be an IPv4 address (got "${v}")`);
const ipv4List = (v: string[]): string | undefined => v.map(ipv4OrEmpty).find((x) => x !== undefined);
const portRule = (v: number): string | undefined => (v <= 65535 ? undefined : `must be a port number 0-65535 (got ${v})`);

export const CONFIG_SCHEMA: Record<keyof ForgeConfig, KeySpec> = {
  data_dir: { kind: 'string', doc: 'database, token and caches (default /var/lib/forge as root, else ~/.local/share/forge)' },
  store: {
    kind: 'string',
    doc: 'database: empty = SQLite DATA_DIR/forge.db (one server); postgres://USER[:PASS]@HOST[:PORT]/DB (or ?host=/socket/dir) = PostgreSQL shared by several servers',
    shape: (v: string) => (v === '' || /^postgres(ql)?:\/\/./i.test(v) ? undefined : `must be empty (SQLite in data_dir) or a postgres:// URL (got "${v.replace(/:[^@/]*@/, ':***@')}")`),
  },
  listen: { kind: 'string', doc: 'HTTP listen address (an address other than 0.0.0.0/:: is also what installers are told)', shape: ipRule },
  http_port: { kind: 'int', doc: 'HTTP port (API, boot files, autoinstall)', shape: portRule },
  server: { kind: 'string', doc: 'host[:port] installers use to reach forge (env FORGE_SERVE_SERVER; default: the address each client reached forge on)', shape: hostPortRule },
  server_name: {
    kind: 'string',
    doc: "this server's name among several on one database: it answers DHCP on subnets whose `servers` name it or name nobody (default: the host name)",
    shape: (v: string) => (/^[A-Za-z0-9._-]{1,128}$/.test(v) && v !== '.' && v !== '..' ? undefined : `must be 1-128 letters, digits, '.', '_' or '-' (got "${v}")`),
  },
  templates_dir: { kind: 'string', doc: 'site templates that shadow the shipped ones' },
  snippets_dir: { kind: 'string', doc: 'site snippets that shadow the shipped ones' },
  pxe_just_once: { kind: 'bool', doc: 'install done disables netboot' },
  dhcp_mode: { kind: { oneOf: ['off', 'proxy', 'managed'] }, doc: 'off (default), proxy (PXE only, beside another DHCP server) or managed' },
  dhcp_subnet: { kind: 'list', doc: 'CIDR(s) served in managed mode' },
  dhcp_range: { kind: 'list', doc: 'dynamic pool(s) as first,last' },
  dhcp_router: { kind: 'string', doc: 'option 3 router', shape: ipv4OrEmpty },
  dhcp_dns: { kind: 'list', doc: 'option 6 DNS servers', shape: ipv4List },
  dhcp_domain: { kind: 'string', doc: 'option 15 domain name' },
  dhcp_lease_time: { kind: 'int', doc: 'lease time in seconds' },
  dhcp_port: { kind: 'int', doc: 'DHCP server port', shape: portRule },
  dhcp_proxy_port: { kind: 'int', doc: 'proxyDHCP boot-server port (0 disables)', shape: portRule },
  dhcp_listen: { kind: 'string', doc: 'DHCP bind address (0.0.0.0 to receive broadcasts)', shape: ipRule },
  dhcp_force: { kind: 'bool', doc: 'answer even if another DHCP server is seen' },
  dhcp_authoritative: { kind: 'bool', doc: 'ACK/NAK INIT-REBOOT requests of clients forge has no lease for (default: stay silent, RFC 2131 4.3.2)' },
  dhcp_probe_seconds: { kind: 'int', doc: 'seconds spent probing for another DHCP server (0 skips)' },
  dhcp_reprobe_seconds: { kind: 'int', doc: 'seconds between new probes of a link where another DHCP server answered; forge answers there again once none does (0: never)', shape: (v: number) => (v === 0 || (v >= 5 && v <= 86400) ? undefined : 'must be 0 (never) or 5..86400 seconds') },
  ipv6_ra: {
    kind: { oneOf: ['auto', 'on', 'off'] },
    doc: "IPv6 router advertisements (no prefix, no DHCPv6 flags, router lifetime 0) answering solicitations on the links managed DHCP serves, through Debian's radvd, so PXE ROMs do not wait ~16 s for IPv6 routers: auto (when radvd is installed), on (radvd required), off",
  },
  dhcp_unknown: { kind: { oneOf: ['ignore', 'discover', 'default'] }, doc: 'unknown MACs: ignore, discover (boot the discovery image), or default (serve default_profile)' },
  default_profile: { kind: 'string', doc: 'profile for unknown MACs when dhcp_unknown=default' },
  discovery_kernel_options: { kind: 'string', doc: 'kernel options of the discovery image (forge adds forge.url= and forge.mac=)' },
  discovery_kernel_dir: { kind: 'string', doc: "linux-image root (boot/vmlinuz-VER, lib/modules/VER) for the discovery image (default: Debian's linux-image-amd64 extracted into DATA_DIR/discovery/kernel)" },
  next_server: { kind: 'string', doc: 'TFTP server address given to clients (default: forge\'s address on the client\'s network)', shape: ipv4OrEmpty },
  validate_workers: {
    kind: 'string',
    doc: 'threads that render and check for `forge validate` while the server thread reads the store and answers DHCP/TFTP/HTTP: auto (none on 1-2 cores, where a worker measured no faster; one per core beyond the first from 3), or 0 (render in the server thread, chunked) to 16',
    shape: (v: string) => (v === 'auto' || (/^\d+$/.test(v) && Number(v) <= 16) ? undefined : `must be auto or 0..16 (got "${v}")`),
  },
  tftp_enabled: { kind: 'bool', doc: 'run the TFTP server' },
  tftp_listen: { kind: 'string', doc: 'TFTP bind address', shape: ipRule },
  tftp_port: { kind: 'int', doc: 'TFTP port', shape: portRule },
  tftp_root: { kind: 'string', doc: 'extra directory served read-only over TFTP' },
  tftp_max_transfers: { kind: 'int', doc: 'concurrent TFTP transfers' },
  tftp_max_per_client: { kind: 'int', doc: 'concurrent TFTP transfers per client address (a flood from one address pins at most this many slots)', shape: (v: number) => (v >= 1 ? undefined : 'must be at least 1') },
  tftp_stall_seconds: { kind: 'int', doc: 'seconds a TFTP transfer may go without progress before it ends (bounds client-chosen timeouts and backoff)', shape: (v: number) => (v >= 1 && v <= 600 ? undefined : 'must be 1..600') },
  boot_roots: {
    kind: 'list',
    doc: 'directories distro kernels/initrds/trees may come from (default /srv/forge DATA_DIR/distros /usr/lib/debian-installer and the loader package dirs, /var/www/cobbler; never / /etc /root /proc /sys /dev or DATA_DIR)',
    shape: (v: string[]) => v.map((r) => (r.startsWith('/') ? undefined : `"${r}" must be an absolute path`)).find((x) => x !== undefined),
  },
  loaders: { kind: 'map', doc: 'loader file name -> path overrides' },
  bios_loader: { kind: { oneOf: ['ipxe', 'pxelinux'] }, doc: 'BIOS loader: ipxe or pxelinux' },
  uefi_loader: { kind: { oneOf: ['ipxe', 'grub', 'shim'] }, doc: 'UEFI loader: ipxe, grub, or shim (Secure Boot: signed shim -> signed GRUB); arm64 clients get grub for ipxe' },
  unknown_boot: { kind: { oneOf: ['local', 'menu'] }, doc: 'unknown machine without a default system' },
  stall_minutes: { kind: 'int', doc: 'minutes in a stage before status says stalled' },
  install_grace_minutes: { kind: 'int', doc: 'minutes after netboot is turned off that the install token still works (first-boot callbacks, cloud-init)', shape: (v: number) => (v <= 10_080 ? undefined : 'must be at most 10080 (a week)') },
  events_keep_days: { kind: 'int', doc: 'days events are kept (an automatic cleanup deletes older ones)', shape: (v: number) => (v >= 1 ? undefined : 'must be at least 1') },
  events_per_system: { kind: 'int', doc: 'events kept per system at most (the oldest are deleted first; the last install_done stays)', shape: (v: number) => (v >= 10 ? undefined : 'must be at least 10') },
  audit_keep_days: { kind: 'int', doc: 'days audit entries are kept', shape: (v: number) => (v >= 1 ? undefined : 'must be at least 1') },
  log_level: { kind: { oneOf: ['debug', 'info', 'warn', 'error'] }, doc: 'log verbosity' },
  log_format: { kind: { oneOf: ['text', 'json'] }, doc: 'log lines as text (key=value) or JSON, same fields' },
  access_log: { kind: 'bool', doc: 'one log line per HTTP request (component http.access)' },
};

export function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/forge';
  return join(homedir(), '.local', 'share', 'forge');
}

export function defaults(): ForgeConfig {
  return {
    data_dir: defaultDataDir(),
    store: '',
    listen: '0.0.0.0',
    http_port: 8080,
    server: '',
    // The short host name: what an operator types in a subnet's `servers`.
    server_name: hostname().split('.')[0] || 'forge',
    templates_dir: '/etc/forge/templates',
    snippets_dir: '/etc/forge/snippets',
    pxe_just_once: true,
    dhcp_mode: 'off',
    dhcp_subnet: [],
    dhcp_range: [],
    dhcp_router: '',
    dhcp_dns: [],
    dhcp_domain: '',
    dhcp_lease_time: 3600,
    dhcp_port: 67,
    dhcp_proxy_port: 4011,
    dhcp_listen: '0.0.0.0',
    dhcp_force: false,
    dhcp_authoritative: false,
    dhcp_probe_seconds: 3,
    dhcp_reprobe_seconds: 60,
    ipv6_ra: 'auto',
    dhcp_unknown: 'ignore',
    default_profile: '',
    // no_timer_check: the IO-APIC timer check misfires on loaded virtual machines (a panic before
    // init), as Fedora's cloud images know; on hardware it only skips that sanity check.
    discovery_kernel_options: 'console=tty0 console=ttyS0 no_timer_check',
    discovery_kernel_dir: '',
    next_server: '',
    validate_workers: 'auto',
    tftp_enabled: true,
    tftp_listen: '0.0.0.0',
    tftp_port: 69,
    tftp_root: '',
    tftp_max_transfers: 64,
    tftp_max_per_client: 8,
    tftp_stall_seconds: 15,
    boot_roots: [],
    loaders: {},
    bios_loader: 'ipxe',
    uefi_loader: 'ipxe',
    unknown_boot: 'local',
    stall_minutes: 60,
    install_grace_minutes: 60,
    events_keep_days: 30,
    events_per_system: 1000,
    audit_keep_days: 365,
    log_level: 'info',
    log_format: 'text',
    access_log: true,
  };
}

export const flagName = (key: string): string => key.replace(/_/g, '-');
/** Keys whose FORGE_<KEY> name a client already reads (CLIENT_ENV) get another name. */
const ENV_OVERRIDE: Partial<Record<string, string>> = { server: 'FORGE_SERVE_SERVER' };
export const envName = (key: string): string => ENV_OVERRIDE[key] ?? `FORGE_${key.toUpperCase()}`;

function coerce(key: string, spec: KeySpec, raw: unknown, origin: string): unknown {
  const v = coerceKind(key, spec, raw, origin);
  const rule = spec.shape?.(v as never);
  if (rule !== undefined) throw new ForgeError('CONFIG_INVALID', `${key} (${origin}): ${rule}`, { field: key });
  return v;
}

function coerceKind(key: string, spec: KeySpec, raw: unknown, origin: string): unknown {
  const bad = (rule: string): ForgeError =>
    new ForgeError('CONFIG_INVALID', `${key} (${origin}): ${rule}`, { field: key });
  const k = spec.kind;
  if (k === 'string') {
    if (typeof raw !== 'string') throw bad('must be a string');
    return raw;
  }
  if (k === 'int') {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < 0) throw bad('must be a whole number >= 0');
    return n;
  }
  if (k === 'bool') {
    if (typeof raw === 'boolean') return raw;
    if (typeof raw === 'string') {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
    }
    throw bad('must be true or false');
  }
  if (k === 'list') {
    if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw;
    // From env/flags: space or semicolon separated (commas are used inside dhcp_range items).
    if (typeof raw === 'string') return raw.split(/[\s;]+/).filter((s) => s !== '');
    throw bad('must be a list of strings');
  }
  if (k === 'map') {
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) {
      const out: Record<string, string> = {};
      for (const [mk, mv] of Object.entries(raw)) {
        if (typeof mv !== 'string') throw bad(`value of ${mk} must be a string`);
        out[mk] = mv;
      }
      return out;
    }
    if (typeof raw === 'string') {
      const out: Record<string, string> = {};
      for (const part of raw.split(/[\s;]+/).filter((s) => s !== '')) {
        const eq = part.indexOf('=');
        if (eq <= 0) throw bad(`expected name=path, got "${part}"`);
        out[part.slice(0, eq)] = part.slice(eq + 1);
      }
      return out;
    }
    throw bad('must be an object of strings');
  }
  if (typeof raw !== 'string' || !k.oneOf.includes(raw)) throw bad(`must be one of ${k.oneOf.join(', ')}`);
  return raw;
}

export interface ConfigSources {
  /** Path of a JSON config file; when absent /etc/forge/forge.json is read if it exists. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Flag values keyed by config key (snake_case), as strings, string lists or booleans. */
  flags?: Partial<Record<keyof ForgeConfig, unknown>>;
}

const DEFAULT_CONFIG_FILE = '/etc/forge/forge.json';

export function loadConfig(src: ConfigSources = {}): ForgeConfig {
  const cfg = defaults() as unknown as Record<string, unknown>;
  const keys = Object.keys(CONFIG_SCHEMA) as (keyof ForgeConfig)[];
  const apply = (key: keyof ForgeConfig, raw: unknown, origin: string): void => {
    const spec = CONFIG_SCHEMA[key];
    cfg[key] = coerce(key, spec, raw, origin);
  };

  const file = src.file ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ForgeError('CONFIG_INVALID', `config file ${file}: ${(e as Error).message}`, { field: 'config' });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ForgeError('CONFIG_INVALID', `config file ${file}: must hold a JSON object`, { field: 'config' });
    }
    for (const [k, v] of Object.entries(parsed)) {
      if (!(k in CONFIG_SCHEMA)) {
        throw new ForgeError('CONFIG_INVALID', `config file ${file}: unknown key "${k}"`, { field: k });
      }
      apply(k as keyof ForgeConfig, v, file);
    }
  }
  const env = src.env ?? {};
  for (const key of keys) {
    const v = env[envName(key)];
    if (v !== undefined && v !== '') apply(key, v, envName(key));
  }
  for (const key of keys) {
    const v = src.flags?.[key];
    if (v !== undefined) apply(key, v, `--${flagName(key)}`);
  }
  return cfg as unknown as ForgeConfig;
}
