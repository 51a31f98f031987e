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
import { ForgeError, LONG_ANSWER_HEADER, fromBody } from '../errors.js';
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

  /** The HTTP exchange: token, JSON body, timeout; an unreachable server is SERVER_UNAVAILABLE. */
  private async send(method: HttpMethod, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    try {
      return await fetch(this.server + path, {
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
  }

  /**
   * One request; `path` is from the server root (`/api/v1/systems`). Answers
   * the parsed JSON, or the text of a non-JSON answer (rendered files).
   */
  async request<T = unknown>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
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
    // A long answer (services/http/limits.ts longJson) commits 200 before the work ends: a failure is in the body.
    if (res.headers.get(LONG_ANSWER_HEADER) === 'json' && typeof parsed === 'object' && parsed !== null && 'streamed_error' in parsed) {
      throw fromBody((parsed as { streamed_error: unknown }).streamed_error, 500);
    }
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
  /**
   * A listing as the server streams it (api/objects.ts streamList): `onRow`
   * gets each element as it arrives, before the last one is sent.
   */
  async listRows(kind: ObjectKind, query: Record<string, string>, onRow: (row: unknown) => void): Promise<void> {
    const path = `/api/v1/${PLURAL[kind]}?${new URLSearchParams(query).toString()}`;
    const res = await this.send('GET', path);
    if (!res.ok || res.body === null) {
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON: the status says it */
      }
      throw fromBody(parsed, res.status);
    }
    const rows = new JsonRows((t) => onRow(JSON.parse(t)));
    const dec = new TextDecoder();
    try {
      const reader = res.body.getReader();
      for (let piece = await reader.read(); !piece.done; piece = await reader.read()) rows.push(dec.decode(piece.value, { stream: true }));
      rows.push(dec.decode());
      rows.end();
    } catch (e) {
      throw new ForgeError('SERVER_UNAVAILABLE', `GET ${path}: the listing from ${this.server} was cut off or malformed: ${(e as Error).message}`, { field: 'server', cause: e });
    }
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
  /**
   * `onProgress`: asks progress lines every `everyMs` (services/http/limits.ts longProgress,
   * newline-delimited JSON) and hands each to it; the answer is the same report.
   */
  async validate(onProgress?: (done: number, total: number) => void, everyMs = 2000): Promise<ValidateReport> {
    if (onProgress === undefined) return this.request('GET', '/api/v1/validate');
    const path = `/api/v1/validate?progress=${everyMs}`;
    const res = await this.send('GET', path);
    if (!res.ok || res.body === null || res.headers.get(LONG_ANSWER_HEADER) !== 'ndjson') {
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON: the status says it */
      }
      if (!res.ok) throw fromBody(parsed, res.status);
      // A server from before progress lines answers the plain long answer (one JSON value).
      if (typeof parsed === 'object' && parsed !== null && 'streamed_error' in parsed) throw fromBody((parsed as { streamed_error: unknown }).streamed_error, 500);
      if (typeof parsed !== 'object' || parsed === null || !('checked' in parsed)) throw new ForgeError('SERVER_UNAVAILABLE', `GET ${path}: the server at ${this.server} answered no validate report (HTTP ${res.status})`);
      return parsed as ValidateReport;
    }
    let result: { ok: true; report: ValidateReport } | { ok: false; error: unknown } | undefined;
    const line = (t: string): void => {
      if (t.trim() === '') return;
      const m = JSON.parse(t) as { progress?: { done: number; total: number }; result?: ValidateReport; streamed_error?: unknown };
      if (m.progress !== undefined) onProgress(m.progress.done, m.progress.total);
      else if (m.result !== undefined) result = { ok: true, report: m.result };
      else if (m.streamed_error !== undefined) result = { ok: false, error: m.streamed_error };
    };
    const dec = new TextDecoder();
    let buf = '';
    try {
      const reader = res.body.getReader();
      for (let piece = await reader.read(); !piece.done; piece = await reader.read()) {
        buf += dec.decode(piece.value, { stream: true });
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          line(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      }
      line(buf + dec.decode());
    } catch (e) {
      throw new ForgeError('SERVER_UNAVAILABLE', `GET ${path}: the answer from ${this.server} was cut off or malformed: ${(e as Error).message}`, { field: 'server', cause: e });
    }
    if (result === undefined) throw new ForgeError('SERVER_UNAVAILABLE', `GET ${path}: the answer from ${this.server} ended without a result`, { field: 'server' });
    if (!result.ok) throw fromBody(result.error, 500);
    return result.report;
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

/**
 * Here, not in a module of its own: the client needs nothing of the server at
 * run time but the error catalogue (test/unit/boundaries.test.ts).
 *
 * Splits a JSON array arriving in pieces into its elements as each
 * completes (RFC 8259 section 5: elements separated by commas, strings
 * section 7, with backslash escapes), so `forge system list` prints the
 * first row of a streamed listing while the rest is still on the wire.
 * Each element is handed over as its text; the caller JSON.parses it. Text
 * that is not one array of complete elements is an error at `end`.
 */
export class JsonRows {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  private opened = false;
  private closed = false;

  constructor(private readonly onRow: (text: string) => void) {}

  push(piece: string): void {
    const base = this.buf.length;
    this.buf += piece;
    for (let i = base; i < this.buf.length; i++) {
      const ch = this.buf[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (ch === '\\') this.escaped = true;
        else if (ch === '"') this.inString = false;
        continue;
      }
      if (ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') continue;
      if (this.closed) throw new SyntaxError('JSON rows: text after the closing ]');
      if (!this.opened) {
        if (ch !== '[') throw new SyntaxError('JSON rows: the answer is not an array');
        this.opened = true;
        continue;
      }
      if (this.depth === 0) {
        if (ch === ',') {
          this.emit(i);
          continue;
        }
        if (ch === ']') {
          this.emit(i);
          this.closed = true;
          continue;
        }
        if (this.start < 0) this.start = i;
      }
      if (ch === '"') this.inString = true;
      else if (ch === '{' || ch === '[') this.depth++;
      else if (ch === '}' || ch === ']') this.depth--;
    }
    // Keep only the element in progress.
    const keep = this.start < 0 ? this.buf.length : this.start;
    this.buf = this.buf.slice(keep);
    if (this.start >= 0) this.start = 0;
  }

  /** Throws when the text ended inside the array (a cut connection). */
  end(): void {
    if (!this.closed) throw new SyntaxError('JSON rows: the answer ended before its closing ]');
  }

  private emit(at: number): void {
    if (this.start < 0) return;
    this.onRow(this.buf.slice(this.start, at).trim());
    this.start = -1;
  }
}
