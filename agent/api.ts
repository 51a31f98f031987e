/**
 * What forge-agent needs of the forge server (ForgeApi: blended records,
 * distro file digests, lists, events), and its implementation over the
 * shared typed client (server/api/client.ts), which the CLI uses too. The
 * agent reaches the server through nothing else (the boundary test keeps it
 * so). Answers the flow reads are checked here before use.
 */
import { ForgeError } from '../server/errors.js';
import { ApiClient } from '../server/api/client.js';
import type { DistroFiles, RemoteFile } from '../server/api/types.js';

export type { DistroFiles, RemoteFile };
export { parseDistroFiles } from '../server/api/client.js';

export type AgentEvent = 'agent_start' | 'installer_running' | 'installer_finished' | 'disk_boot_started' | 'agent_failed' | 'vm_action'
  | 'build_started' | 'disk_ready' | 'bootstrap_done' | 'hooks_done' | 'bootloader_done';

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

export class HttpForgeApi implements ForgeApi {
  private warnedEvents = false;
  private readonly client: ApiClient;

  constructor(
    server: string,
    token: string | undefined,
    private readonly warn: (msg: string) => void,
    timeoutMs = 30_000,
  ) {
    this.client = new ApiClient({ server, token, timeoutMs });
  }

  blended(kind: 'system' | 'profile', name: string): Promise<unknown> {
    return this.client.blended(kind, name);
  }

  distroFiles(distro: string): Promise<DistroFiles> {
    return this.client.distroFiles(distro);
  }

  async list(kind: 'systems' | 'profiles'): Promise<string[]> {
    const body: unknown = await this.client.list(kind === 'systems' ? 'system' : 'profile');
    if (!Array.isArray(body)) throw new ForgeError('SERVER_UNAVAILABLE', `${kind}: the server's list is not a list`);
    return body.map((o: unknown) => (typeof o === 'object' && o !== null ? String((o as Record<string, unknown>)['name']) : String(o))).sort();
  }

  async system(name: string): Promise<Record<string, unknown> | undefined> {
    const body: unknown = await this.client.find('system', name);
    return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
  }

  async lastEvent(system: string): Promise<{ type: string; time: string } | undefined> {
    try {
      const body: unknown = await this.client.events(system, { limit: 1 });
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
    await this.client.copy('system', from, to);
    const interfaces = Object.fromEntries(Object.entries(macs).map(([ifname, mac]) => [ifname, { mac_address: mac }]));
    if (Object.keys(interfaces).length > 0) await this.client.patch('system', to, { interfaces });
  }

  async event(system: string, type: AgentEvent, detail: Record<string, unknown>): Promise<boolean> {
    try {
      await this.client.addEvent(system, { type, source: 'agent', detail });
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
