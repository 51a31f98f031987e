/**
 * keepalived (Debian's, VRRP) holding one floating service address for forge servers in network
 * namespaces: the README's "One floating service address" configuration, with a health check on
 * the server's own forge, so the address follows forge's health, never keepalived's opinion alone.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { forgeInNamespace, type NsForge } from './forge-ns.js';
import type { Host, Lan, LanClient } from './netns.js';

/** keepalived.conf for one server of the group (README "Sites with several servers"). */
export function keepalivedConf(o: { name: string; ip: string; port: number; vip: string; priority: number }): string {
  return `global_defs {
  router_id ${o.name}
  enable_script_security
  script_user root
}
vrrp_script forge_up {
  script "/usr/bin/curl -sf -m 1 -o /dev/null http://${o.ip}:${o.port}/api/v1/health"
  interval 1
  fall 2
  rise 1
}
vrrp_instance forge {
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority ${o.priority}
  advert_int 1
  virtual_ipaddress {
    ${o.vip}/24
  }
  track_script {
    forge_up
  }
}
`;
}

/** Writes the configuration into `dir` and starts keepalived in `host`'s namespace (killed with the Lan). */
export function startKeepalived(host: Host, dir: string, o: Parameters<typeof keepalivedConf>[0]): void {
  writeFileSync(join(dir, 'keepalived.conf'), keepalivedConf(o));
  host.spawn('keepalived', ['--dont-fork', '--log-console', '--vrrp', '-f', join(dir, 'keepalived.conf'), '-p', join(dir, 'ka.pid'), '-r', join(dir, 'vrrp.pid')]);
}

/** The name of the host (of `hosts`) whose eth0 holds `vip` now, if any. */
export async function vipHolder(hosts: readonly [string, Host][], vip: string): Promise<string | undefined> {
  for (const [name, h] of hosts) if ((await h.must('ip', ['-4', 'addr', 'show', 'eth0'])).includes(`inet ${vip}/`)) return name;
  return undefined;
}

/** One server of a keepalived pair: its namespace, address and data directory, and its forge. */
export interface VipServer {
  name: string;
  ip: string;
  host: LanClient;
  dataDir: string;
  forge: NsForge;
}

export interface VipPair {
  /** The API token both servers share (a client of the address must not care which answers). */
  token: string;
  /** a (priority 150, 10.98.0.11) and b (priority 100, 10.98.0.12), in that order. */
  servers: VipServer[];
  /** [name, host] for vipHolder. */
  hosts: [string, Host][];
  /** Who holds the address now. */
  holder(): Promise<string | undefined>;
  /** Starts server `name`'s forge again (after a kill) with the same arguments. */
  restart(name: string): Promise<NsForge>;
  /** Stops every forge (keepalived ends with the Lan). */
  stop(): Promise<void>;
}

/** The pair's servers: name, address, VRRP priority (a is preferred). */
const PAIR = [['a', '10.98.0.11', 150], ['b', '10.98.0.12', 100]] as const;

/**
 * The README's "One floating service address" setup on `lan`: two servers, each in its own
 * namespace with its address, its own data directory in `dir` holding the shared token, a forge
 * listening on every address at `port` that tells installers `vip:port`, and keepalived tracking
 * that forge's health. `args(name)` are the forge flags of each (store URL, DHCP mode, ...).
 * Resolves once both forges are ready; stops what it started when one fails.
 */
export async function startVipPair(lan: Lan, dir: string, o: { vip: string; port: number; args: (name: string) => string[]; timeoutMs?: number }): Promise<VipPair> {
  const token = randomBytes(24).toString('base64url');
  const servers: VipServer[] = [];
  const launch = (host: Host, name: string, ip: string, dataDir: string): Promise<NsForge> =>
    forgeInNamespace(host, ip, dataDir, ['--listen', '0.0.0.0', '--http-port', String(o.port), '--server', `${o.vip}:${o.port}`, ...o.args(name)], { timeoutMs: o.timeoutMs ?? 60_000 });
  const stop = async (): Promise<void> => {
    for (const s of servers) await s.forge.stop().catch(() => undefined);
  };
  try {
    for (const [name, ip, priority] of PAIR) {
      const host = await lan.addClient();
      await host.must('ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      const dataDir = join(dir, name);
      mkdirSync(dataDir, { mode: 0o700 });
      writeFileSync(join(dataDir, 'token'), `${token}\n`, { mode: 0o600 });
      servers.push({ name, ip, host, dataDir, forge: await launch(host, name, ip, dataDir) });
      startKeepalived(host, dataDir, { name: `forge-${name}`, ip, port: o.port, vip: o.vip, priority });
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const hosts = servers.map((s): [string, Host] => [s.name, s.host]);
  return {
    token,
    servers,
    hosts,
    holder: () => vipHolder(hosts, o.vip),
    async restart(name) {
      const s = servers.find((x) => x.name === name);
      if (s === undefined) throw new Error(`no server ${name} in the pair`);
      s.forge = await launch(s.host, s.name, s.ip, s.dataDir);
      return s.forge;
    },
    stop,
  };
}

/** Waits until `http://vip:port/api/v1/health` answers 200 from `client`; throws after `ms`. */
export async function waitForVip(client: Host, vip: string, port: number, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while ((await client.exec('curl', ['-sf', '-m', '2', '-o', '/dev/null', `http://${vip}:${port}/api/v1/health`])).code !== 0) {
    if (Date.now() - t0 > ms) throw new Error(`the service address ${vip}:${port} did not answer within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
