/**
 * Composition root: config -> store -> context -> HTTP, DHCP, TFTP. The only
 * place that wires modules together. `startServer` resolves once every
 * service listens and returns a handle that closes them in reverse order.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createBootFiles } from './boot/files.js';
import type { ForgeConfig } from './config.js';
import type { ServerContext } from './context.js';
import { baseUrlOf, settingsFromConfig } from './core/settings.js';
import { EventHub } from './api/stream.js';
import { ForgeError } from './errors.js';
import type { Logger } from './log.js';
import { startDhcp } from './services/dhcp.js';
import { buildApp } from './services/http/app.js';
import { applyTimeouts } from './services/http/limits.js';
import type { Service } from './services/service.js';
import { startTftp } from './services/tftp.js';
import { openSqliteStore } from './store/sqlite.js';
import type { NewEvent } from './store/store.js';

export interface RunningServer {
  ctx: ServerContext;
  /** The HTTP port actually bound (differs from config when 0 was asked). */
  httpPort: number;
  services: Service[];
  close(): Promise<void>;
}

/** Reads DATA_DIR/token, creating it (mode 0600) on first start. */
export function ensureToken(dataDir: string): string {
  const file = join(dataDir, 'token');
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t !== '') return t;
  }
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}

export async function startServer(config: ForgeConfig, log: Logger, env: NodeJS.ProcessEnv = {}): Promise<RunningServer> {
  mkdirSync(config.data_dir, { recursive: true, mode: 0o700 });
  const store = openSqliteStore(
    config.data_dir,
    env['FORGE_SQLITE_SYNC'] === 'FULL' ? 'FULL' : 'NORMAL',
    env['FORGE_SQLITE_GROUP_COMMIT'] !== '0',
  );
  const token = ensureToken(config.data_dir);
  const settings = settingsFromConfig(config);
  const evlog = log.child('events');
  const events = new EventHub();
  const ctx: ServerContext = {
    config,
    settings,
    store,
    log,
    token,
    baseUrl: baseUrlOf(settings),
    events,
    record(ev: NewEvent): void {
      store.addEvent(ev).then((stored) => events.publish(stored)).catch((e: unknown) => evlog.warn('could not record event', { system: ev.system, type: ev.type, err: e }));
    },
  };

  const services: Service[] = [];
  const app = buildApp(ctx);
  const http = createServer(app);
  applyTimeouts(http);
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.http_port, config.listen, () => {
      http.off('error', reject);
      resolve();
    });
  }).catch((e: unknown) => {
    void store.close();
    throw new ForgeError('CONFIG_INVALID', `cannot listen on ${config.listen}:${config.http_port}: ${(e as Error).message}`, {
      field: 'http_port',
    });
  });
  const httpPort = (http.address() as AddressInfo).port;
  if (config.http_port === 0) {
    // Installers need the real port in their URLs.
    settings.http_port = httpPort;
    ctx.baseUrl = baseUrlOf(settings);
  }
  services.push({
    name: 'http',
    endpoints: [`tcp ${config.listen}:${httpPort}`],
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  });

  const close = async (): Promise<void> => {
    for (const s of [...services].reverse()) {
      try {
        await s.close();
      } catch (e) {
        log.warn('service did not close cleanly', { service: s.name, err: e });
      }
    }
    await store.close();
  };

  try {
    const dhcp = await startDhcp(ctx);
    if (dhcp !== undefined) services.push(dhcp);
    const tftp = config.tftp_enabled ? await startTftp(ctx, createBootFiles(ctx)) : undefined;
    if (tftp !== undefined) services.push(tftp);
  } catch (e) {
    await close();
    throw e;
  }

  return { ctx, httpPort, services, close };
}
