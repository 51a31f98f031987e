/**
 * The typed /api/v1 client: the one way the CLI (server/cli/) and forge-agent
 * (agent/api.ts) reach a forge server, typed by the same answer types as the
 * handlers (api/types.ts). A non-2xx answer becomes the ForgeError the server
 * described (its catalogue code, message and field); a server that cannot be
 * reached, or answers what is not JSON where JSON was promised, is
 * SERVER_UNAVAILABLE naming the server.
 *
 * At run time this module imports only the error catalogue (types are
 * erased), so forge-agent ships with it and nothing else of the server; the
 * boundary test (test/unit/boundaries.test.ts) keeps it so.
 */
import { ForgeError, fromBody } from '../errors.js';
import type {
  ApiTokenInfo,
  AuditEntry,
  BootInfo,
  CallbackResult,
  Created,
  Discovered,
  DistroFiles,
  ExplainReport,
  ExportDocument,
  ForgeEvent,
  Health,
  ImportAnswer,
  KindMap,
  Lease,
  LoaderStatus,
  NewEvent,
  NewToken,
  ObjectKind,
  PowerAction,
  PowerResult,
  Problem,
  Provisioned,
  RemoteFile,
  Removed,
  Rule,
  RuleTest,
  StatusAnswer,
  TemplateFile,
  TemplateLists,
  ValidateReport,
  Whoami,
} from './types.js';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface ApiClientOptions {
  /** Base URL, e.g. http://forge:8080 (a trailing / is dropped). */
  server: string;
  /** Bearer token (RFC 6750 section 2.1); without one, admin routes answer AUTH_REQUIRED. */
  token?: string | undefined;
  /** Abort a request after this long (default: no limit). */
  timeoutMs?: number;
}

const PLURAL: Record<ObjectKind, string> = { distro: 'distros', profile: 'profiles', system: 'systems', subnet: 'subnets' };
const enc = encodeURIComponent;

function parseRemoteFile(v: unknown, which: string, base: string): RemoteFile {
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    if (typeof o['url'] === 'string' && typeof o['size'] === 'number' && typeof o['sha256'] === 'string' && /^[0-9a-f]{64}$/i.test(o['sha256'])) {
      return { url: new URL(o['url'], base).toString(), size: o['size'], sha256: o['sha256'].toLowerCase() };
    }
  }
  throw new ForgeError('SERVER_UNAVAILABLE', `distro files: '${which}' needs {url, size, sha256}`);
}

/** GET /api/v1/distros/NAME/files checked: each file has url (made absolute against `base`), size and a sha256. */
export function parseDistroFiles(body: unknown, base: string): DistroFiles {
  if (typeof body !== 'object' || body === null) throw new ForgeError('SERVER_UNAVAILABLE', 'distro files answer is not an object');
  const o = body as Record<string, unknown>;
  return { kernel: parseRemoteFile(o['kernel'], 'kernel', base), initrd: parseRemoteFile(o['initrd'], 'initrd', base) };
}

export class ApiClient {
  readonly server: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number | undefined;

  constructor(opts: ApiClientOptions) {
    this.server = opts.server.replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs;
  }

  /**
   * One request; `path` is from the server root (`/api/v1/systems`). Answers
   * the parsed JSON, or the text of a non-JSON answer (rendered files).
   */
  async request<T = unknown>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(this.server + path, {
        method,
        headers,
        ...(payload === undefined ? {} : { body: payload }),
        ...(this.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(this.timeoutMs) }),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new ForgeError('SERVER_UNAVAILABLE', `cannot reach forge at ${this.server}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, {
        field: 'server',
        cause: e,
      });
    }
    const text = await res.text();
    const type = res.headers.get('content-type') ?? '';
    let parsed: unknown = text;
    if (type.includes('json') && text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new ForgeError('SERVER_UNAVAILABLE', `${method} ${path}: the server at ${this.server} answered malformed JSON (HTTP ${res.status})`);
      }
    }
    if (!res.ok) throw fromBody(parsed, res.status);
    return parsed as T;
  }

  // ----- the server
  health(): Promise<Health> {
    return this.request('GET', '/api/v1/health');
  }
  whoami(): Promise<Whoami> {
    return this.request('GET', '/api/v1/whoami');
  }

  // ----- distros, profiles, systems
  /** `query` filters by field (globs), `fields=a,b` picks fields. */
  list<K extends ObjectKind>(kind: K, query?: URLSearchParams | Record<string, string>): Promise<KindMap[K][]> {
    const q = query === undefined ? '' : new URLSearchParams(query).toString();
    return this.request('GET', `/api/v1/${PLURAL[kind]}${q === '' ? '' : `?${q}`}`);
  }
  async names(kind: ObjectKind, query?: Record<string, string>): Promise<string[]> {
    const rows = await this.request<{ name: string }[]>('GET', `/api/v1/${PLURAL[kind]}?${new URLSearchParams({ ...query, fields: 'name' }).toString()}`);
    return rows.map((r) => r.name);
  }
  get<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K]> {
    return this.request('GET', `/api/v1/${PLURAL[kind]}/${enc(name)}`);
  }
  /** The object, or undefined when there is none (NOT_FOUND). */
  async find<K extends ObjectKind>(kind: K, name: string): Promise<KindMap[K] | undefined> {
    try {
      return await this.get(kind, name);
    } catch (e) {
      if (e instanceof ForgeError && e.code === 'NOT_FOUND') return undefined;
      throw e;
    }
  }
  create<K extends ObjectKind>(kind: K, obj: Record<string, unknown>): Promise<KindMap[K]> {
    return this.request('POST', `/api/v1/${PLURAL[kind]}`, obj);
  }
  bulkCreate(kind: ObjectKind, objs: readonly Record<string, unknown>[]): Promise<Created> {
    return this.request('POST', `/api/v1/${PLURAL[kind]}/bulk`, objs);
  }
  patch<K extends ObjectKind>(kind: K, name: string, patch: Record<string, unknown>): Promise<KindMap[K]> {
    return this.request('PATCH', `/api/v1/${PLURAL[kind]}/${enc(name)}`, patch);
  }
  copy<K extends ObjectKind>(kind: K, name: string, newName: string): Promise<KindMap[K]> {
    return this.request('POST', `/api/v1/${PLURAL[kind]}/${enc(name)}/copy`, { new_name: newName });
  }
  rename<K extends ObjectKind>(kind: K, name: string, newName: string): Promise<KindMap[K]> {
    return this.request('POST', `/api/v1/${PLURAL[kind]}/${enc(name)}/rename`, { new_name: newName });
  }
  remove(kind: ObjectKind, name: string, recursive = false): Promise<Removed> {
    return this.request('DELETE', `/api/v1/${PLURAL[kind]}/${enc(name)}${recursive ? '?recursive=true' : ''}`);
  }
  /** Blended variables (dumpvars) of a profile or system. */
  blended(kind: 'profile' | 'system', name: string): Promise<Record<string, unknown>> {
    return this.request('GET', `/api/v1/${PLURAL[kind]}/${enc(name)}/blended`);
  }
  /** The rendered autoinstall file (text), no event recorded. */
  autoinstall(kind: 'profile' | 'system', name: string): Promise<string> {
    return this.request('GET', `/api/v1/${PLURAL[kind]}/${enc(name)}/autoinstall`);
  }

  // ----- events
  events(system: string, opts: { since?: string; limit?: number } = {}): Promise<ForgeEvent[]> {
    const q = new URLSearchParams();
    if (opts.since !== undefined) q.set('since', opts.since);
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    const qs = q.toString();
    return this.request('GET', `/api/v1/systems/${enc(system)}/events${qs === '' ? '' : `?${qs}`}`);
  }
  addEvent(system: string, ev: NewEvent): Promise<ForgeEvent> {
    return this.request('POST', `/api/v1/systems/${enc(system)}/events`, ev);
  }
  latestEvents(): Promise<ForgeEvent[]> {
    return this.request('GET', '/api/v1/events/latest');
  }
  /** An install callback as an installer sends it (no token needed). */
  callback(system: string, which: 'install/start' | 'install/done' | 'firstboot'): Promise<CallbackResult> {
    return this.request('POST', `/api/v1/systems/${enc(system)}/${which}`);
  }

  // ----- the boot area
  async distroFiles(distro: string): Promise<DistroFiles> {
    return parseDistroFiles(await this.request('GET', `/api/v1/distros/${enc(distro)}/files`), this.server);
  }
  loaders(): Promise<LoaderStatus[]> {
    return this.request('GET', '/api/v1/loaders');
  }
  bootInfo(): Promise<BootInfo> {
    return this.request('GET', '/api/v1/boot/info');
  }
  status(): Promise<StatusAnswer> {
    return this.request('GET', '/api/v1/status');
  }

  // ----- checks
  validate(): Promise<ValidateReport> {
    return this.request('GET', '/api/v1/validate');
  }
  check(): Promise<{ problems: Problem[] }> {
    return this.request('GET', '/api/v1/check');
  }

  // ----- power
  power(system: string, action: PowerAction): Promise<PowerResult> {
    return action === 'reinstall' ? this.request('POST', `/api/v1/systems/${enc(system)}/reinstall`) : this.request('POST', `/api/v1/systems/${enc(system)}/power`, { action });
  }
  powerBulk(glob: string, action: PowerAction, concurrency?: number): Promise<{ results: PowerResult[]; failed: number }> {
    return this.request('POST', '/api/v1/power', { name: glob, action, ...(concurrency === undefined ? {} : { concurrency }) });
  }

  // ----- DHCP
  leases(): Promise<Lease[]> {
    return this.request('GET', '/api/v1/leases');
  }

  // ----- export and import
  exportAll(): Promise<ExportDocument> {
    return this.request('GET', '/api/v1/export');
  }
  /** All or nothing; `replace` overwrites objects of the same name. */
  importAll(doc: unknown, replace = false): Promise<ImportAnswer> {
    return this.request('POST', `/api/v1/import${replace ? '?replace=true' : ''}`, doc);
  }

  // ----- templates
  templates(): Promise<TemplateLists> {
    return this.request('GET', '/api/v1/templates');
  }
  templateFile(name: string, snippet = false): Promise<TemplateFile> {
    return this.request('GET', `/api/v1/templates/file?name=${enc(name)}${snippet ? '&snippet=1' : ''}`);
  }
  /** The template and snippet files in effect for a system or profile. */
  effectiveTemplates(kind: 'profile' | 'system', name: string): Promise<ExplainReport> {
    return this.request('GET', `/api/v1/templates/effective?${kind}=${enc(name)}`);
  }

  // ----- discovery
  discovered(): Promise<Discovered[]> {
    return this.request('GET', '/api/v1/discovered');
  }
  getDiscovered(name: string): Promise<Discovered> {
    return this.request('GET', `/api/v1/discovered/${enc(name)}`);
  }
  forgetDiscovered(name: string): Promise<Removed> {
    return this.request('DELETE', `/api/v1/discovered/${enc(name)}`);
  }
  provision(name: string, body: { profile: string; hostname?: string }): Promise<Provisioned> {
    return this.request('POST', `/api/v1/discovered/${enc(name)}/provision`, body);
  }
  rules(): Promise<Rule[]> {
    return this.request('GET', '/api/v1/rules');
  }
  addRule(rule: Record<string, unknown>): Promise<Rule> {
    return this.request('POST', '/api/v1/rules', rule);
  }
  editRule(name: string, patch: Record<string, unknown>): Promise<Rule> {
    return this.request('PATCH', `/api/v1/rules/${enc(name)}`, patch);
  }
  removeRule(name: string): Promise<Removed> {
    return this.request('DELETE', `/api/v1/rules/${enc(name)}`);
  }
  testRules(discovered: string): Promise<RuleTest> {
    return this.request('GET', `/api/v1/rules/test?discovered=${enc(discovered)}`);
  }

  // ----- tokens and audit
  createToken(body: { role: string; comment?: string }): Promise<NewToken> {
    return this.request('POST', '/api/v1/tokens', body);
  }
  tokens(): Promise<ApiTokenInfo[]> {
    return this.request('GET', '/api/v1/tokens');
  }
  revokeToken(id: number | string): Promise<ApiTokenInfo> {
    return this.request('DELETE', `/api/v1/tokens/${enc(String(id))}`);
  }
  audit(query?: URLSearchParams | Record<string, string>): Promise<AuditEntry[]> {
    const q = query === undefined ? '' : new URLSearchParams(query).toString();
    return this.request('GET', `/api/v1/audit${q === '' ? '' : `?${q}`}`);
  }
}
