/**
 * Secrets: which fields and autoinstall_meta keys hold one, and the copies
 * anonymous reads, blended variables and anonymous renders get. Pure.
 */
import { FIELDS } from './fields.js';
import type { ObjectKind } from './model.js';

/*
 * The secret set, defined here only (REST, XML-RPC and the UI's reads all go
 * through `redact`/`redactVars`): fields whose spec says `secret: true`
 * (power_pass), and autoinstall_meta keys that name a credential
 * (`isSecretMetaKey`). ssh public keys are not secrets: they are published
 * by design (authorized_keys, the rendered files).
 */

const SECRET_FIELDS = new Map<ObjectKind, readonly string[]>();

/** Names of the secret fields of a kind (worked out once per kind: every redacted row asks). */
export function secretFields(kind: ObjectKind): readonly string[] {
  let f = SECRET_FIELDS.get(kind);
  if (f === undefined) {
    f = Object.freeze(Object.entries(FIELDS[kind]).filter(([, s]) => s.secret === true).map(([k]) => k));
    SECRET_FIELDS.set(kind, f);
  }
  return f;
}

/**
 * True for an autoinstall_meta key that holds a secret: root_password_hash
 * (the Cobbler default_password_crypted), and any key ending in _password,
 * _password_hash, _secret or _token (user_password, grub_password_hash,
 * wifi_secret, registration_token).
 */
export function isSecretMetaKey(key: string): boolean {
  return key === 'root_password_hash' || /_(password|password_hash|secret|token)$/.test(key);
}

/** The value secret fields show in anonymous reads. */
export const MASK = '********';

function masked(v: unknown): unknown {
  return typeof v === 'string' && v !== '' ? MASK : v;
}

/** A copy of an autoinstall_meta dict with its secret values masked. */
function redactMeta(meta: unknown): unknown {
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return meta;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta as Record<string, unknown>)) out[k] = isSecretMetaKey(k) ? masked(v) : v;
  return out;
}

/**
 * True when `redact` would mask nothing in the object (no secret field or secret
 * autoinstall_meta value holds a non-empty string): its redacted copy serialises to the same
 * JSON as the object itself, so an answer may send the object's stored text (api/objects.ts).
 */
export function nothingToRedact(kind: ObjectKind, obj: object): boolean {
  const o = obj as Record<string, unknown>;
  for (const k of secretFields(kind)) if (masked(o[k]) !== o[k]) return false;
  const meta = o['autoinstall_meta'];
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) return true;
  for (const [k, v] of Object.entries(meta as Record<string, unknown>)) if (isSecretMetaKey(k) && masked(v) !== v) return false;
  return true;
}

/** A copy of the object with every non-empty secret field and secret autoinstall_meta value masked. */
export function redact<T>(kind: ObjectKind, obj: T): T {
  const out = { ...(obj as Record<string, unknown>) };
  for (const k of secretFields(kind)) out[k] = masked(out[k]);
  if ('autoinstall_meta' in out) out['autoinstall_meta'] = redactMeta(out['autoinstall_meta']);
  return out as T;
}

/**
 * A copy of blended variables (dumpvars) with secrets masked: the blend
 * promotes autoinstall_meta keys to the top level, so both places are masked.
 */
export function redactVars<T extends Record<string, unknown>>(vars: T): T {
  const out: Record<string, unknown> = { ...vars };
  for (const k of Object.keys(out)) {
    if (isSecretMetaKey(k) || k === 'power_pass') out[k] = masked(out[k]);
    else if (typeof out[k] === 'string') out[k] = maskInstallTokens(out[k]);
  }
  if ('autoinstall_meta' in out) out['autoinstall_meta'] = redactMeta(out['autoinstall_meta']);
  return out as T;
}

/** An install token inside a URL (core/access.ts: BASE/i/TOKEN/...). */
const INSTALL_TOKEN_IN_URL = /\/i\/[0-9a-f]{32}(?=\/|$)/g;

/** A string with any install token in it masked (anonymous reads of blended URLs and kernel command lines). */
export function maskInstallTokens(v: string): string {
  return v.replace(INSTALL_TOKEN_IN_URL, `/i/${MASK}`);
}

/**
 * Blended variables with every secret value emptied (not masked): what an
 * anonymous profile render gets (templates treat '' as "not set": root
 * password locked, no token).
 */
export function withoutSecrets<T extends Record<string, unknown>>(vars: T): T {
  const out: Record<string, unknown> = { ...vars };
  for (const k of Object.keys(out)) if ((isSecretMetaKey(k) || k === 'power_pass') && typeof out[k] === 'string') out[k] = '';
  const meta = out['autoinstall_meta'];
  if (meta !== null && typeof meta === 'object' && !Array.isArray(meta)) {
    out['autoinstall_meta'] = Object.fromEntries(Object.entries(meta as Record<string, unknown>).map(([k, v]) => [k, isSecretMetaKey(k) && typeof v === 'string' ? '' : v]));
  }
  return out as T;
}

/**
 * Why an anonymous (or any) caller may not filter on a field, or undefined
 * when it may. Secret fields are never filterable (a glob would guess them
 * one request at a time); autoinstall_meta is filterable only with the token,
 * because it may hold secret values.
 */
export function filterRefusal(kind: ObjectKind, field: string, authenticated: boolean): string | undefined {
  if (secretFields(kind).includes(field)) return 'a secret field cannot be filtered on';
  if (field === 'autoinstall_meta' && !authenticated) return 'filtering on autoinstall_meta needs the token (it may hold secrets: root_password_hash, *_password, *_secret, *_token)';
  return undefined;
}
