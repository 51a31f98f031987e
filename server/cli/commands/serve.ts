/**
 * `forge serve`: every key of server/config.ts is a flag (`dhcp_mode` ->
 * `--dhcp-mode`); list keys repeat (`--dhcp-range a,b --dhcp-range c,d`).
 * Prints `forge ready: URL` once every service listens (the actual port when
 * `--http-port 0` was asked), then runs until SIGTERM/SIGINT.
 */
import { networkInterfaces } from 'node:os';
import { CONFIG_SCHEMA, flagName, loadConfig } from '../../config.js';
import type { ForgeConfig } from '../../config.js';
import { createLogger } from '../../log.js';
import { VERSION } from '../../core/version.js';
import type { CommandSpec, OptionSpec } from '../command.js';

function serveOptions(): Record<string, OptionSpec> {
  const o: Record<string, OptionSpec> = {
    config: { type: 'string', description: 'JSON config file (default /etc/forge/forge.json if it exists)', arg: 'FILE' },
  };
  for (const [key, spec] of Object.entries(CONFIG_SCHEMA)) {
    const k = spec.kind;
    const multiple = k === 'list' || k === 'map';
    const arg = k === 'int' ? 'N' : k === 'bool' ? 'true|false' : typeof k === 'object' ? k.oneOf.join('|') : k === 'map' ? 'NAME=PATH' : 'VALUE';
    o[flagName(key)] = { type: 'string', description: spec.doc, arg, ...(multiple ? { multiple: true } : {}), ...(k === 'bool' ? { bare: 'true' } : {}) };
  }
  return o;
}

export const serve: CommandSpec = {
  path: ['serve'],
  summary: 'run the forge server (HTTP API, boot files, autoinstall, DHCP, TFTP)',
  help: [
    'Layers: defaults < config file < FORGE_* environment (FORGE_HTTP_PORT=8080) < flags.',
    'The server key is FORGE_SERVE_SERVER: FORGE_SERVER is the CLI\'s server URL, never read by serve.',
    'examples:',
    '  forge serve --data-dir /var/lib/forge --http-port 8080',
    '  forge serve --dhcp-mode managed --dhcp-subnet 10.98.0.0/24 --dhcp-range 10.98.0.100,10.98.0.200 \\',
    '      --dhcp-router 10.98.0.1 --next-server 10.98.0.1 --tftp-port 69',
  ].join('\n'),
  options: serveOptions(),
  async run(args, io) {
    const flags: Partial<Record<keyof ForgeConfig, unknown>> = {};
    for (const [key, spec] of Object.entries(CONFIG_SCHEMA)) {
      const v = args.values[flagName(key)];
      if (v === undefined) continue;
      if (spec.kind === 'map' && Array.isArray(v)) flags[key as keyof ForgeConfig] = v.join(' ');
      else flags[key as keyof ForgeConfig] = v;
    }
    const file = args.values['config'];
    const config = loadConfig({ ...(typeof file === 'string' ? { file } : {}), env: io.env, flags });
    const log = createLogger(config.log_level, 'forge', undefined, config.log_format);
    // Loaded here so that other commands do not pay for express and SQLite at startup.
    const { startServer } = await import('../../main.js');
    const srv = await startServer(config, log, io.env);
    const host = config.listen === '0.0.0.0' || config.listen === '::' ? '127.0.0.1' : config.listen;
    // Handlers first, then the ready line: a SIGTERM sent as soon as a supervisor (or a test)
    // reads `forge ready` must find them installed, or the default action kills the process.
    const stopped = new Promise<void>((resolve) => {
      const stop = (sig: string): void => {
        log.info('shutting down', { signal: sig });
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        resolve();
      };
      const onTerm = (): void => stop('SIGTERM');
      const onInt = (): void => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
    });
    const { isPostgresUrl, redactUrl } = await import('../../store/postgres.js');
    io.out(`forge ${VERSION} serving (data ${isPostgresUrl(config.store) ? `PostgreSQL ${redactUrl(config.store)}, files in ${config.data_dir}` : `${config.data_dir}/forge.db`})`);
    for (const s of srv.services) io.out(`  ${s.name.padEnd(6)}${s.endpoints.join(', ')}`);
    if (!srv.services.some((s) => s.name === 'dhcp')) io.out(`  dhcp  ${config.dhcp_mode === 'off' ? 'off' : 'not started'}`);
    const { nativeStatus } = await import('../../native/index.js');
    io.out(`  native data path: ${nativeStatus.loaded ? 'in use' : `not in use, JavaScript only (${nativeStatus.reason})`}`);
    const wild = config.listen === '0.0.0.0' || config.listen === '::';
    if (config.server === '' && wild) {
      // services/origin.ts: each client is told the address it reached forge on.
      const mine = Object.values(networkInterfaces()).flatMap((l) => (l ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => `http://${a.address}:${srv.httpPort}`));
      io.out(`  base URL for installers: the address each client reaches forge on (${mine.join(', ') || 'none up yet'}); --server fixes one`);
    } else {
      io.out(`  base URL for installers: ${srv.baseUrl}`);
    }
    io.out(`forge ready: http://${host.includes(':') ? `[${host}]` : host}:${srv.httpPort}`);

    await stopped;
    await srv.close();
    io.out('forge stopped');
    // A service that leaves a handle open must not keep a stopped server alive.
    setTimeout(() => process.exit(0), 3000).unref();
    return 0;
  },
};

export const commands: CommandSpec[] = [serve];
