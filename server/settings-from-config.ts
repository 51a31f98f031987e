/**
 * Settings: the last link of the blending chain, derived from the server
 * configuration. Reads the host's interface list (no other I/O) to find the
 * address installers should use when `server` is not configured; outside
 * core/ for that reason (core/ is pure).
 */
import { networkInterfaces } from 'node:os';
import type { ForgeConfig } from './config.js';
import type { Settings } from './core/model.js';

type IfaceTable = ReturnType<typeof networkInterfaces>;

/** First non-internal IPv4 address of the host, or 127.0.0.1. */
export function firstHostIPv4(table: IfaceTable = networkInterfaces()): string {
  for (const addrs of Object.values(table)) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal && !a.address.startsWith('127.')) return a.address;
    }
  }
  return '127.0.0.1';
}

export function settingsFromConfig(config: ForgeConfig, table?: IfaceTable): Settings {
  // A specific listen address is the only one installers can reach; otherwise each request
  // is answered with the address it arrived on (services/origin.ts) and this is the fallback.
  const listen = config.listen !== '0.0.0.0' && config.listen !== '::' && config.listen !== '' ? config.listen : undefined;
  const server = config.server !== '' ? config.server : listen !== undefined ? (listen.includes(':') ? `[${listen}]` : listen) : firstHostIPv4(table);
  return {
    server,
    http_port: config.http_port,
    next_server: config.next_server !== '' ? config.next_server : server.replace(/:\d+$/, ''),
    pxe_just_once: config.pxe_just_once,
    install_grace_minutes: config.install_grace_minutes,
    default_name_servers: config.dhcp_dns,
    default_name_servers_search: config.dhcp_domain !== '' ? [config.dhcp_domain] : [],
    default_virt_type: 'kvm',
    default_virt_cpus: 1,
    default_virt_ram: 1024,
    default_virt_file_size: 8,
    default_virt_path: '',
    default_virt_bridge: '',
    default_virt_disk_driver: 'qcow2',
    kernel_options: {},
    autoinstall_meta: {},
  };
}
