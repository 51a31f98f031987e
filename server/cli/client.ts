/**
 * The CLI's HTTP client: the one way `forge` commands reach the server.
 * Non-2xx answers become the ForgeError the server described; a server that
 * cannot be reached is SERVER_UNAVAILABLE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultDataDir } from '../config.js';
import { ForgeError, fromBody } from '../errors.js';
import type { CliIO } from './command.js';

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

export type ApiFn = CliIO['api'];

export function makeApi(server: string, token: string | undefined): ApiFn {
  const root = server.replace(/\/+$/, '');
  return async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(root + path, { method, headers, ...(payload === undefined ? {} : { body: payload }) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new ForgeError('SERVER_UNAVAILABLE', `cannot reach forge at ${root}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, {
        field: 'server',
      });
    }
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    let parsed: unknown = text;
    if (type.includes('json') && text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ForgeError('SERVER_UNAVAILABLE', `server at ${root} answered malformed JSON (HTTP ${res.status})`);
      }
    }
    if (!res.ok) throw fromBody(parsed, res.status);
    return parsed as T;
  };
}
