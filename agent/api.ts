/**
 * The agent's view of the forge HTTP API (/api/v1): blended records, distro
 * file digests, lists, and events. Answers are `unknown` until validated.
 */
import { ForgeError, fromBody } from '../server/errors.js';

export interface RemoteFile {
  url: string;
  size: number;
  sha256: string;
}

export interface DistroFiles {
  kernel: RemoteFile;
  initrd: RemoteFile;
}

export type AgentEvent = 'agent_start' | 'installer_running' | 'installer_finished' | 'disk_boot_started' | 'agent_failed' | 'vm_action';

export interface ForgeApi {
  blended(kind: 'system' | 'profile', name: string): Promise<unknown>;
  distroFiles(distro: string): Promise<DistroFiles>;
  list(kind: 'systems' | 'profiles'): Promise<string[]>;
  /** Records an event on the system; resolves false (and never throws) when it could not. */
  event(system: string, type: AgentEvent, detail: Record<string, unknown>): Promise<boolean>;
  /** The stored system record (GET /api/v1/systems/NAME), undefined when there is none. */
  system?(name: string): Promise<Record<string, unknown> | undefined>;
  /** Copies a system record (POST .../copy: MACs and IPs cleared), then sets the MAC of each named interface. */
  copySystem?(from: string, to: string, macs: Record<string, string>): Promise<void>;
  /** The system's newest event (what forge saw of the install: autoinstall_served, install_start...). */
  lastEvent?(system: string): Promise<{ type: string; time: string } | undefined>;
}

function parseRemoteFile(v: unknown, which: string, base: string): RemoteFile {
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (typeof o['url'] === 'string' && typeof o['size'] === 'number' && typeof o['sha256'] === 'string' && /^[0-9a-f]{64}$/i.test(o['sha256'])) {
      return { url: new URL(o['url'], base).toString(), size: o['size'], sha256: o['sha256'].toLowerCase() };
    }
  }
  throw new ForgeError('SERVER_UNAVAILABLE', `distro files: '${which}' needs {url, size, sha256}`);
}

export function parseDistroFiles(body: unknown, base: string): DistroFiles {
  if (typeof body !== 'object' || body === null) throw new ForgeError('SERVER_UNAVAILABLE', 'distro files answer is not an object');
  const o = body as Record<string, unknown>;
  return { kernel: parseRemoteFile(o['kernel'], 'kernel', base), initrd: parseRemoteFile(o['initrd'], 'initrd', base) };
}

export class HttpForgeApi implements ForgeApi {
  private warnedEvents = false;

  constructor(
    private readonly server: string,
    private readonly token: string | undefined,
    private readonly warn: (msg: string) => void,
    private readonly timeoutMs = 30_000,
  ) {}

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new ForgeError('SERVER_UNAVAILABLE', `cannot reach forge at ${this.server}: ${(e as Error).message}`, { cause: e });
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new ForgeError('SERVER_UNAVAILABLE', `${method} ${path}: HTTP ${res.status}, not JSON`);
    }
    if (!res.ok) throw fromBody(json, res.status);
    return json;
  }

  blended(kind: 'system' | 'profile', name: string): Promise<unknown> {
    return this.request('GET', `/api/v1/${kind}s/${encodeURIComponent(name)}/blended`);
  }

  async distroFiles(distro: string): Promise<DistroFiles> {
    return parseDistroFiles(await this.request('GET', `/api/v1/distros/${encodeURIComponent(distro)}/files`), this.server);
  }

  async list(kind: 'systems' | 'profiles'): Promise<string[]> {
    const body = await this.request('GET', `/api/v1/${kind}`);
    const arr = Array.isArray(body) ? body : typeof body === 'object' && body !== null && Array.isArray((body as Record<string, unknown>)['items']) ? ((body as Record<string, unknown>)['items'] as unknown[]) : undefined;
    if (arr === undefined) throw new ForgeError('SERVER_UNAVAILABLE', `GET /api/v1/${kind}: not a list`);
    return arr.map((o) => (typeof o === 'string' ? o : typeof o === 'object' && o !== null ? String((o as Record<string, unknown>)['name']) : String(o))).sort();
  }

  async system(name: string): Promise<Record<string, unknown> | undefined> {
    try {
      const body = await this.request('GET', `/api/v1/systems/${encodeURIComponent(name)}`);
      return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
    } catch (e) {
      if (e instanceof ForgeError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }

  async lastEvent(system: string): Promise<{ type: string; time: string } | undefined> {
    try {
      const body = await this.request('GET', `/api/v1/systems/${encodeURIComponent(system)}/events?limit=1`);
      const last = Array.isArray(body) ? (body[body.length - 1] as unknown) : undefined;
      if (typeof last !== 'object' || last === null) return undefined;
      const e = last as Record<string, unknown>;
      return typeof e['type'] === 'string' && typeof e['time'] === 'string' ? { type: e['type'], time: e['time'] } : undefined;
    } catch {
      // Progress display only: the install goes on without it.
      return undefined;
    }
  }

  async copySystem(from: string, to: string, macs: Record<string, string>): Promise<void> {
    await this.request('POST', `/api/v1/systems/${encodeURIComponent(from)}/copy`, { new_name: to });
    const interfaces = Object.fromEntries(Object.entries(macs).map(([ifname, mac]) => [ifname, { mac_address: mac }]));
    if (Object.keys(interfaces).length > 0) await this.request('PATCH', `/api/v1/systems/${encodeURIComponent(to)}`, { interfaces });
  }

  async event(system: string, type: AgentEvent, detail: Record<string, unknown>): Promise<boolean> {
    try {
      await this.request('POST', `/api/v1/systems/${encodeURIComponent(system)}/events`, { type, source: 'agent', detail });
      return true;
    } catch (e) {
      // Reporting is best effort: an install must not fail because the timeline could not be written.
      if (!this.warnedEvents) {
        this.warnedEvents = true;
        this.warn(`cannot record events on ${system} (${(e as Error).message}); set FORGE_TOKEN or --token`);
      }
      return false;
    }
  }
}
