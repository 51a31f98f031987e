/**
 * Who may do what, as values (pure): install windows and their tokens, API
 * token roles, audit entries. The store keeps them (store/sqlite/access.ts);
 * the HTTP side asks these functions for decisions.
 *
 * Install window (as Foreman's token_duration): a system's rendered
 * autoinstall file and its install callbacks are served only while it is
 * being installed: netboot enabled, or at most `install_grace_minutes` after
 * netboot was turned off (the installed system's first-boot callback comes
 * after install_done). Each install gets a fresh random token (rotated when
 * netboot turns on and on reinstall) that forge writes into every URL it
 * generates for that install, as a leading path segment `/i/TOKEN/...`
 * (a path segment, not a query: cloud-init appends file names to its seed
 * URL, and GRUB/iPXE/PXELINUX pass it through unquoted).
 */

/** One system's current install token and window, as stored. */
export interface InstallWindow {
  system: string;
  /** 128 random bits, hex. */
  token: string;
  /** When netboot was turned on (ISO time). */
  opened: string;
  /** When netboot was turned off (ISO time), or null while it is on. */
  closed: string | null;
}

/** The path prefix every tokenised install URL starts with. */
export const INSTALL_PREFIX = '/i';

/** Where the HTTP side keeps the token of an /i/TOKEN request (Express res.locals key). */
export const INSTALL_TOKEN_LOCAL = 'installToken';

/** `BASE/i/TOKEN` (or BASE when there is no open window to put in URLs). */
export function installBaseUrl(baseUrl: string, token: string | undefined): string {
  return token === undefined ? baseUrl : `${baseUrl}${INSTALL_PREFIX}/${token}`;
}

/** True while the window admits installers: netboot on, or closed less than grace minutes ago. */
export function windowOpen(w: InstallWindow | undefined, nowMs: number, graceMinutes: number): boolean {
  if (w === undefined) return false;
  if (w.closed === null) return true;
  return nowMs - Date.parse(w.closed) < graceMinutes * 60_000;
}

export type InstallVerdict = { ok: true } | { ok: false; reason: 'no_token' | 'wrong_token' | 'window_closed' };

/**
 * Whether an anonymous request carrying `given` (undefined: no /i/TOKEN
 * prefix) may fetch a system's install URLs now. A token that was right for
 * an earlier install is `wrong_token` (stale): rotation replaced it.
 */
export function installVerdict(w: InstallWindow | undefined, given: string | undefined, nowMs: number, graceMinutes: number): InstallVerdict {
  if (given === undefined || given === '') return { ok: false, reason: 'no_token' };
  if (w === undefined || !sameToken(w.token, given)) return { ok: false, reason: 'wrong_token' };
  if (!windowOpen(w, nowMs, graceMinutes)) return { ok: false, reason: 'window_closed' };
  return { ok: true };
}

/** Constant-time for equal lengths (the tokens are fixed-length hex). */
function sameToken(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

// ---------------------------------------------------------------- API tokens

/** read: every read, secrets included, no write. admin: everything. */
export const ROLES = ['read', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who made a request. The bootstrap token (DATA_DIR/token) is admin with id `bootstrap`. */
export type TokenPrincipal = { kind: 'token'; id: string; role: Role };
export type Principal = { kind: 'anonymous' } | TokenPrincipal;

export const ANONYMOUS: Principal = { kind: 'anonymous' };

/** True when `p` may do what `need` allows (admin includes read). */
export function allows(p: Principal, need: Role): boolean {
  if (p.kind !== 'token') return false;
  return need === 'read' || p.role === 'admin';
}

/** An API token as listed (its secret is never stored, only a digest). */
export interface ApiTokenInfo {
  id: number;
  role: Role;
  comment: string;
  created: string;
  revoked: string | null;
}

// ---------------------------------------------------------------- audit

/** One audit entry: a write or a failed authentication. */
export interface AuditEntry {
  id: number;
  time: string;
  /** token id (`bootstrap`, `7`) or `anonymous` for failed authentication. */
  actor: string;
  role: Role | 'anonymous';
  /** Client address. */
  client: string;
  /** e.g. `PATCH /api/v1/systems/web1`, `xmlrpc modify_system`, `auth_failed`. */
  action: string;
  /** system, profile, distro, rule, token, data, ... ('' when none). */
  object_type: string;
  object: string;
  /** fields changed, status, reason. */
  detail: Record<string, unknown>;
}

export type NewAudit = Omit<AuditEntry, 'id' | 'time'> & { time?: string };
