/**
 * Where the CLI's API client points and which token it sends: the server
 * (--server, FORGE_SERVER, or the default) and FORGE_TOKEN or DATA_DIR/token.
 * Requests themselves go through the shared client (server/api/client.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultDataDir } from '../config.js';
import { ApiClient } from '../api/client.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';

/** FORGE_TOKEN, else DATA_DIR/token (FORGE_DATA_DIR or the default data dir). */
export function findToken(env: NodeJS.ProcessEnv): string | undefined {
  const t = env['FORGE_TOKEN'];
  if (t !== undefined && t !== '') return t.trim();
  const dir = env['FORGE_DATA_DIR'] !== undefined && env['FORGE_DATA_DIR'] !== '' ? env['FORGE_DATA_DIR'] : defaultDataDir();
  const file = join(dir, 'token');
  try {
    if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  } catch {
    /* unreadable token file: the server will say AUTH_REQUIRED on writes */
  }
  return undefined;
}

/** The shared API client (api/client.ts) for this server, with the token found in the environment. */
export function cliClient(server: string, env: NodeJS.ProcessEnv): ApiClient {
  return new ApiClient({ server, token: findToken(env) });
}
