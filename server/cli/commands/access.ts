/**
 * `forge token create|list|revoke` (API tokens by role) and `forge audit`
 * (writes and failed authentication). Both need an admin token.
 */
import { ForgeError } from '../../errors.js';
import type { CommandSpec, OptionSpec, ParsedArgs } from '../command.js';
import { table } from './boot.js';

const str = (a: ParsedArgs, k: string): string | undefined => (typeof a.values[k] === 'string' ? (a.values[k] as string) : undefined);
const JSON_OPT: OptionSpec = { type: 'boolean', description: 'machine-readable JSON output' };

/** `--since 2h`, `30m`, `7d` or an ISO time, as an ISO time. */
export function sinceOf(v: string, now = Date.now()): string {
  const m = /^(\d+)([smhd])$/.exec(v);
  if (m !== null) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now - Number(m[1]) * unit).toISOString();
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ForgeError('USAGE', `--since: "${v}" is not a duration (30m, 2h, 7d) or an ISO time`, { field: 'since' });
  return new Date(t).toISOString();
}

export const commands: CommandSpec[] = [
  {
    path: ['token', 'create'],
    summary: 'create an API token (printed once; only its SHA-256 is stored)',
    help: 'read tokens see everything (secrets included) and write nothing: dashboards, monitoring. DATA_DIR/token stays the bootstrap admin token.',
    options: {
      role: { type: 'string', description: 'read (default) or admin', arg: 'ROLE' },
      comment: { type: 'string', description: 'what the token is for', arg: 'TEXT' },
      json: JSON_OPT,
    },
    async run(a, io) {
      const c = str(a, 'comment');
      const r = await io.client.createToken({ role: str(a, 'role') ?? 'read', ...(c !== undefined ? { comment: c } : {}) });
      if (a.values['json'] === true) io.out(JSON.stringify(r, null, 2));
      else {
        io.out(r.token);
        io.err(`token ${r.id} (${r.role}) created; it is shown only now`);
      }
      return 0;
    },
  },
  {
    path: ['token', 'list'],
    summary: 'list API tokens (id, role, comment, created, revoked; never the token)',
    options: { json: JSON_OPT },
    async run(a, io) {
      const r = await io.client.tokens();
      if (a.values['json'] === true) io.out(JSON.stringify(r, null, 2));
      else {
        const rows = [['ID', 'ROLE', 'CREATED', 'REVOKED', 'COMMENT'], ['bootstrap', 'admin', '', '', 'DATA_DIR/token']];
        for (const t of r) rows.push([String(t.id), t.role, t.created, t.revoked ?? '', t.comment]);
        for (const l of table(rows)) io.out(l);
      }
      return 0;
    },
  },
  {
    path: ['token', 'revoke'],
    summary: 'revoke an API token by id (it stops working at once)',
    options: {},
    positionals: true,
    async run(a, io) {
      const id = a.positionals[0];
      if (id === undefined || !/^\d+$/.test(id)) throw new ForgeError('USAGE', 'give the token id (forge token list)', { field: 'id' });
      const r = await io.client.revokeToken(id);
      io.out(`token ${r.id} revoked ${r.revoked ?? ''}`.trimEnd());
      return 0;
    },
  },
  {
    path: ['audit'],
    summary: 'show the audit log: every write (who, what, when, from where) and every failed authentication',
    options: {
      since: { type: 'string', description: 'only entries since a duration ago (30m, 2h, 7d) or an ISO time', arg: 'WHEN' },
      object: { type: 'string', description: 'only entries about TYPE/NAME (system/web1), TYPE or NAME', arg: 'OBJECT' },
      limit: { type: 'string', description: 'at most N entries, the newest (default 1000)', arg: 'N' },
      json: JSON_OPT,
    },
    async run(a, io) {
      const q = new URLSearchParams();
      const since = str(a, 'since');
      if (since !== undefined) q.set('since', sinceOf(since));
      const object = str(a, 'object');
      if (object !== undefined) q.set('object', object);
      const limit = str(a, 'limit');
      if (limit !== undefined) q.set('limit', limit);
      const r = await io.client.audit(q);
      if (a.values['json'] === true) io.out(JSON.stringify(r, null, 2));
      else {
        const rows = [['TIME', 'WHO', 'FROM', 'ACTION', 'OBJECT', 'DETAIL']];
        for (const e of r) {
          const who = e.actor === 'anonymous' ? 'anonymous' : `token ${e.actor} (${e.role})`;
          const obj = e.object_type !== '' ? `${e.object_type}${e.object !== '' ? `/${e.object}` : ''}` : e.object;
          rows.push([e.time, who, e.client, e.action, obj, Object.entries(e.detail).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ')]);
        }
        for (const l of table(rows)) io.out(l);
      }
      return 0;
    },
  },
];
