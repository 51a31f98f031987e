/**
 * TFTP service adapter: config -> TftpServer, with the boot-file provider
 * first and `tftp_root` second, and completed boot-file transfers recorded
 * as lifecycle events. The engine lives in ./tftp/ and the codec in
 * ../protocol/tftp/. Path policy (a leading `/` is stripped, `..`,
 * backslashes, NUL and symlinks out of the root are refused) is documented
 * in ./tftp/paths.ts.
 */
import type { BootFileProvider } from '../boot/files.js';
import type { ForgeConfig } from '../config.js';
import type { RecordEvent } from '../deps.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Service } from './service.js';
import { TftpServer } from './tftp/server.js';

export interface TftpDeps {
  config: Pick<ForgeConfig, 'tftp_enabled' | 'tftp_port' | 'tftp_listen' | 'tftp_root' | 'tftp_max_transfers' | 'tftp_max_per_client' | 'tftp_stall_seconds'>;
  log: Logger;
  record: RecordEvent;
  /** Where the transfer counters are exposed (GET /metrics). */
  metrics?: Pick<Metrics, 'tftpBytes' | 'watchTftp'>;
}

/** Starts the TFTP service unless disabled; undefined when tftp_enabled is false. */
export async function startTftp(deps: TftpDeps, files: BootFileProvider): Promise<Service | undefined> {
  const c = deps.config;
  if (!c.tftp_enabled) return undefined;
  const log = deps.log.child('tftp');
  const server = new TftpServer({
    port: c.tftp_port,
    address: c.tftp_listen,
    root: c.tftp_root,
    provider: files,
    maxTransfers: c.tftp_max_transfers,
    maxPerClient: c.tftp_max_per_client,
    stallMs: c.tftp_stall_seconds * 1000,
    log,
    onComplete: (t) => {
      deps.metrics?.tftpBytes.inc(t.bytes);
      if (t.system === undefined) return;
      // Generated configs come as buffers, loaders (and anything else) as files.
      deps.record({
        system: t.system,
        type: t.kind === 'buffer' ? 'boot_config_served' : 'loader_fetched',
        source: 'tftp',
        detail: { file: t.file, client: t.client, bytes: t.bytes, ms: t.ms },
      });
    },
  });
  await server.start();
  deps.metrics?.watchTftp(server.stats);
  const endpoint = `udp ${c.tftp_listen}:${server.port}`;
  log.info('listening', { endpoint, root: c.tftp_root === '' ? '(none)' : c.tftp_root, max_transfers: c.tftp_max_transfers });
  return {
    name: 'tftp',
    endpoints: [endpoint],
    close: () => server.close(),
  };
}
