/**
 * keepalived (Debian's, VRRP) holding one floating service address for forge servers in network
 * namespaces: the README's "One floating service address" configuration, with a health check on
 * the server's own forge, so the address follows forge's health, never keepalived's opinion alone.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Host } from './netns.js';

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
