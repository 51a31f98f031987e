/**
 * In-process DHCP micro-benchmark (issue 21): relayed DORA exchanges for distinct MACs, `inFlight`
 * at a time, through the real DhcpHandler, LeaseTable and a SQLite store in a temp dir, with the
 * store stack `forge serve` builds (server/main.ts: the system index and object cache of
 * store/layers.ts, every call timed by metrics.ts) and its logger at `--log-level warn`. No sockets: what it measures is forge's own
 * CPU per exchange (decode, lookups, address choice, encode, the lease committed before the ACK),
 * from process.cpuUsage(), which a loaded machine inflates less than a rate.
 *
 *   node dist/bench/dhcp-handler.js [EXCHANGES=20000] [IN_FLIGHT=32]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defaults, type ForgeConfig } from '../server/config.js';
import { createLogger } from '../server/log.js';
import { Metrics, timedStore } from '../server/metrics.js';
import { MessageType, Opt, Options, decode, encode } from '../server/protocol/dhcp4/index.js';
import { createDhcpHandler } from '../server/services/dhcp.js';
import type { DhcpHandler } from '../server/services/dhcp/handler.js';
import { settingsFromConfig } from '../server/settings-from-config.js';
import { SqliteStore } from '../server/store/sqlite.js';
import { serverStore } from '../server/store/layers.js';
import { bootRequest } from '../test/lib/dhcp-request.js';

const GIADDR = '10.98.0.2';

function packet(type: number, i: number, requested?: string, serverId?: string): Buffer {
  const o = new Options().setUint8(Opt.MessageType, type);
  if (requested !== undefined) o.setIp(Opt.RequestedIP, requested);
  if (serverId !== undefined) o.setIp(Opt.ServerIdentifier, serverId);
  o.set(Opt.ParameterRequestList, Buffer.of(1, 3, 6, 15, 51, 54));
  const mac = `02:bb:${[(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, 1].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  return encode(bootRequest({ mac, xid: i, options: o, giaddr: GIADDR }));
}

async function dora(h: DhcpHandler, i: number): Promise<boolean> {
  const from = { address: GIADDR, port: 67, localPort: 67 };
  const offer = await h.handle({ data: packet(MessageType.DISCOVER, i), ...from });
  if (offer === undefined) return false;
  const o = decode(offer.data);
  const ack = await h.handle({ data: packet(MessageType.REQUEST, i, o.yiaddr, o.options.ip(Opt.ServerIdentifier)), ...from });
  return ack !== undefined && decode(ack.data).options.messageType() === MessageType.ACK;
}

export async function measure(exchanges: number, inFlight: number): Promise<{ cpuUsPerDora: number; acks: number; commits: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'fgdhcph-'));
  const raw = new SqliteStore({ file: join(dir, 'forge.db') });
  const layered = await serverStore(raw, (e) => {
    throw e;
  });
  await layered.index.loaded();
  const metrics = new Metrics({ store: raw });
  const store = timedStore(layered.store, metrics.storeDuration);
  try {
    const config: ForgeConfig = {
      ...defaults(),
      data_dir: dir,
      server: '10.98.0.1',
      dhcp_mode: 'managed',
      dhcp_subnet: ['10.98.0.0/16'],
      dhcp_range: ['10.98.1.0,10.98.250.255'],
      dhcp_router: '10.98.0.1',
      dhcp_lease_time: 3600,
      dhcp_probe_seconds: 0,
    };
    const h = await createDhcpHandler({ config, settings: settingsFromConfig(config), store, log: createLogger('warn', 'bench', () => undefined), baseUrl: () => 'http://10.98.0.1:8080', record: () => undefined, absent: { mac: (m) => layered.index.absentMac(m), ip: (ip) => layered.index.absentIp(ip) } });
    // Warm-up (JIT), not counted.
    for (let i = 0; i < 2000; i++) await dora(h, exchanges + i);
    const commits0 = raw.commitStats.commits;
    const t0 = process.cpuUsage();
    let next = 0;
    let acks = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < exchanges) if (await dora(h, next++)) acks++;
      }),
    );
    const d = process.cpuUsage(t0);
    await h.leases.flush();
    return { cpuUsPerDora: (d.user + d.system) / exchanges, acks, commits: raw.commitStats.commits - commits0 };
  } finally {
    await layered.index.stop();
    await layered.store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const n = Number(process.argv[2] ?? 20_000);
  const k = Number(process.argv[3] ?? 32);
  measure(n, k).then(
    (r) => process.stdout.write(`${n} relayed DORA exchanges, ${k} in flight: ${r.cpuUsPerDora.toFixed(1)} µs CPU per exchange, ${r.acks} ACKs, ${r.commits} store commits\n`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
