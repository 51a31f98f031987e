/**
 * Shared fixtures of the DHCP tests: the DHCP service's dependencies over a real SQLite file
 * in a temp dir, and builders for client packets. Not a test file itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaults, type ForgeConfig } from '../../server/config.js';
import { defaultDistro, defaultInterface, defaultProfile, defaultSystem } from '../../server/core/defaults.js';
import type { NetInterface, System } from '../../server/core/model.js';
import { settingsFromConfig } from '../../server/settings-from-config.js';
import type { DhcpDeps } from '../../server/services/dhcp.js';
import { memoryLogger } from '../../server/log.js';
import type { NewEvent } from '../../server/store/store.js';
import { SqliteStore } from '../../server/store/sqlite.js';
import { MessageType, Opt, Options, encode, type Packet } from '../../server/protocol/dhcp4/index.js';
import { bootRequest } from '../lib/dhcp-request.js';

export interface Fixture {
  ctx: DhcpDeps;
  store: SqliteStore;
  events: NewEvent[];
  lines: string[];
  addSystem(name: string, mac: string, ip: string, over?: Partial<System>, iface?: Partial<NetInterface>): Promise<void>;
  cleanup(): Promise<void>;
}

export async function fixture(over: Partial<ForgeConfig> = {}): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcp-'));
  const config: ForgeConfig = {
    ...defaults(),
    data_dir: dir,
    server: '10.98.0.1',
    http_port: 8080,
    next_server: '10.98.0.1',
    dhcp_mode: 'managed',
    dhcp_subnet: ['10.98.0.0/24'],
    dhcp_router: '10.98.0.1',
    dhcp_dns: ['10.98.0.1'],
    dhcp_domain: 'lab.test',
    dhcp_probe_seconds: 0,
    ...over,
  };
  const store = new SqliteStore({ file: join(dir, 'forge.db') });
  const log = memoryLogger('debug');
  const events: NewEvent[] = [];
  await store.create('distro', { ...defaultDistro('deb12'), kernel: '/k', initrd: '/i' });
  await store.create('profile', { ...defaultProfile('deb12-base'), distro: 'deb12' });
  await store.create('profile', { ...defaultProfile('deb12-grub'), parent: 'deb12-base', boot_loaders: ['grub'] });
  const ctx: DhcpDeps = {
    config,
    settings: settingsFromConfig(config),
    store,
    log,
    baseUrl: () => 'http://10.98.0.1:8080',
    record: (ev) => void events.push(ev),
  };
  return {
    ctx,
    store,
    events,
    lines: log.lines,
    async addSystem(name, mac, ip, o = {}, i = {}) {
      await store.create('system', {
        ...defaultSystem(name),
        profile: 'deb12-base',
        hostname: `${name}.lab.test`,
        interfaces: { eth0: { ...defaultInterface(), mac_address: mac, ip_address: ip, ...i } },
        ...o,
      });
    },
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const PXE_BIOS = { arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001' };
export const PXE_UEFI = { arch: 7, vendorClass: 'PXEClient:Arch:00007:UNDI:003016' };

export interface ClientOpts {
  type: number;
  mac: string;
  xid?: number;
  arch?: number;
  vendorClass?: string;
  userClass?: string;
  requested?: string;
  serverId?: string;
  ciaddr?: string;
  giaddr?: string;
  relayInfo?: Buffer;
  flags?: number;
}

export function clientPacket(o: ClientOpts): Packet {
  const opts = new Options().setUint8(Opt.MessageType, o.type);
  if (o.requested !== undefined) opts.setIp(Opt.RequestedIP, o.requested);
  if (o.serverId !== undefined) opts.setIp(Opt.ServerIdentifier, o.serverId);
  opts.set(Opt.ParameterRequestList, Buffer.of(1, 3, 6, 12, 15, 66, 67));
  if (o.arch !== undefined) opts.setUint16(Opt.ClientArch, o.arch);
  if (o.vendorClass !== undefined) opts.setString(Opt.VendorClass, o.vendorClass);
  if (o.userClass !== undefined) opts.setString(Opt.UserClass, o.userClass);
  if (o.relayInfo !== undefined) opts.set(Opt.RelayAgentInfo, o.relayInfo);
  return bootRequest({
    mac: o.mac,
    xid: o.xid ?? 0x1234,
    options: opts,
    hops: o.giaddr !== undefined ? 1 : 0,
    ...(o.flags !== undefined ? { flags: o.flags } : {}),
    ...(o.ciaddr !== undefined ? { ciaddr: o.ciaddr } : {}),
    ...(o.giaddr !== undefined ? { giaddr: o.giaddr } : {}),
  });
}

export const wire = (o: ClientOpts): Buffer => encode(clientPacket(o));
export { MessageType };
