/**
 * Structural checks of cloud-init user-data, shared by `forge validate` and
 * the tests (which also run Debian's `cloud-init schema --config-file` on
 * every rendered file):
 *  - the first line is `#cloud-config` (cloud-init's user-data format
 *    header; anything else is not read as cloud-config) and the rest is one
 *    YAML mapping;
 *  - a handful of cloud-config types forge's templates use (hostname/fqdn
 *    strings, ssh_authorized_keys a list of strings, users a list,
 *    phone_home with a url, runcmd/packages lists);
 *  - an `autoinstall:` section (Ubuntu subiquity) against forge's encoding of
 *    subiquity's autoinstall schema (schemas/autoinstall.ts).
 */
import { parseDocument } from 'yaml';
import { validateSchema, type Schema } from './jsonschema.js';
import { AUTOINSTALL_SCHEMA } from './schemas/autoinstall.js';

export interface Problem {
  line: number;
  message: string;
}

const CLOUD_CONFIG_TYPES: Schema = {
  type: 'object',
  properties: {
    hostname: { type: 'string' }, fqdn: { type: 'string' }, timezone: { type: 'string' },
    ssh_authorized_keys: { type: 'array', items: { type: 'string' } },
    users: { type: 'array', items: { type: ['string', 'object'] } },
    packages: { type: 'array' }, runcmd: { type: 'array' },
    disable_root: { type: 'boolean' }, ssh_pwauth: { type: 'boolean' },
    phone_home: { type: 'object', properties: { url: { type: 'string' }, post: { type: ['string', 'array'] }, tries: { type: 'integer' } }, required: ['url'] },
    autoinstall: { type: 'object' },
  },
};

/** Parse YAML text; problems carry the line of the YAML error. */
export function parseYaml(text: string): { value: unknown; problems: Problem[] } {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const problems = doc.errors.map((e) => ({ line: (e.linePos?.[0]?.line ?? 1), message: `YAML: ${e.message.split('\n')[0]}` }));
  return { value: problems.length === 0 ? doc.toJS() : undefined, problems };
}

export function checkUserData(text: string): Problem[] {
  if (!text.startsWith('#cloud-config\n')) return [{ line: 1, message: 'user-data must start with the line #cloud-config' }];
  if (/\{\{|\{%|\{#/.test(text)) return [{ line: 1, message: 'leftover template syntax' }];
  const { value, problems } = parseYaml(text);
  if (problems.length > 0) return problems;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [{ line: 1, message: 'user-data is not a YAML mapping' }];
  const out: Problem[] = validateSchema(value, CLOUD_CONFIG_TYPES).map((p) => ({ line: 0, message: `cloud-config ${p.path}: ${p.message}` }));
  const ai = (value as Record<string, unknown>)['autoinstall'];
  if (ai !== undefined) out.push(...validateSchema(ai, AUTOINSTALL_SCHEMA, 'autoinstall').map((p) => ({ line: 0, message: `${p.path}: ${p.message}` })));
  return out;
}
