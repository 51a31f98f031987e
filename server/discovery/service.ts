/**
 * Discovery: a report from the discovery image becomes (or refreshes) a
 * discovered machine; the first rule by priority whose match holds, and
 * whose max is not reached, turns it into a system with the rule's profile
 * and netboot on, and tells the image to reboot (into the installer).
 * A MAC that a system already has is never touched: KNOWN_SYSTEM.
 *
 * Decisions (which rule fires, what the system looks like) are pure
 * functions over values; the service applies them under one lock so two
 * reports at once cannot fire a rule past its max.
 */
import { defaultSystem } from '../core/defaults.js';
import type { System } from '../core/model.js';
import { lifecycleEvent } from '../core/events.js';
import { isName, validateNew } from '../core/validate.js';
import { ForgeError, invalid } from '../errors.js';
import { evaluate, expandTemplate, parseMatch } from '../rules/expr.js';
import type { Store } from '../store/store.js';
import { discoveredName, factsOf } from './model.js';
import type { Discovered, Inventory, Rule } from './model.js';

export interface DiscoveryDeps {
  store: Store;
  /** Refuse new machines past this many discovered records (a flood of fake MACs). */
  maxDiscovered?: number;
}

export const MAX_DISCOVERED = 10_000;

let lock: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = lock.then(fn, fn);
  lock = next.catch(() => undefined);
  return next;
}

export interface RuleVerdict {
  rule: string;
  priority: number;
  matched: boolean;
  /** Why a matching rule does not fire (max reached). */
  exhausted: boolean;
  hostname: string;
}

/** Every rule's verdict on these facts, in priority order; `fires` is the first that would. Pure. */
export function judge(rules: readonly Rule[], d: Pick<Discovered, 'facts' | 'name'>): { verdicts: RuleVerdict[]; fires: RuleVerdict | undefined } {
  const sorted = [...rules].sort((a, b) => a.priority - b.priority || a.name.localeCompare(b.name));
  const verdicts = sorted.map((r) => {
    const matched = evaluate(parseMatch(r.match), d.facts);
    return {
      rule: r.name,
      priority: r.priority,
      matched,
      exhausted: matched && r.max > 0 && r.used >= r.max,
      hostname: r.hostname === '' ? d.name : expandTemplate(r.hostname, d.facts),
    };
  });
  return { verdicts, fires: verdicts.find((v) => v.matched && !v.exhausted) };
}

/** A rule from API input: every field checked, the match parsed, the hostname template tried. */
export function checkRule(raw: unknown, existing?: Rule): Rule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('body', 'must be a JSON object');
  const b = raw as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!['name', 'priority', 'match', 'profile', 'hostname', 'max', 'comment'].includes(k)) {
      throw new ForgeError('UNKNOWN_FIELD', `${k}: not a rule field`, { field: k });
    }
  }
  const r: Rule = existing !== undefined ? { ...existing } : { name: '', priority: 100, match: '', profile: '', hostname: '', max: 0, used: 0, comment: '' };
  const str = (k: string): string | undefined => {
    const v = b[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw invalid(k, 'must be a string');
    if (v.length > 1024) throw invalid(k, 'at most 1024 characters');
    return v;
  };
  const num = (k: string, min: number, max: number): number | undefined => {
    const v = b[k];
    if (v === undefined) return undefined;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) throw invalid(k, `must be a whole number ${min}..${max}`);
    return n;
  };
  r.name = str('name') ?? r.name;
  if (!isName(r.name)) throw new ForgeError(r.name === '' ? 'MISSING_FIELD' : 'INVALID_FIELD', `name: ${r.name === '' ? 'required' : `"${r.name}" is not a valid name`}`, { field: 'name' });
  r.priority = num('priority', 0, 1_000_000) ?? r.priority;
  r.match = str('match') ?? r.match;
  parseMatch(r.match);
  r.profile = str('profile') ?? r.profile;
  if (!isName(r.profile)) throw new ForgeError('MISSING_FIELD', 'profile: required (the profile the new system gets)', { field: 'profile' });
  r.hostname = str('hostname') ?? r.hostname;
  if (r.hostname !== '') {
    // Try the template on sample facts: unknown facts and a result that is no host name are refused now.
    const sample = expandTemplate(r.hostname, { serial: 'abc123', vendor: 'qemu', product: 'pc', uuid: 'u', mac: '52:54:00:00:00:01', cpus: 1, ram_mib: 1 });
    if (!isName(sample) || !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(sample)) throw invalid('hostname', `"${r.hostname}" does not make a host name (e.g. web-{serial})`);
  }
  r.max = num('max', 0, 1_000_000) ?? r.max;
  r.comment = str('comment') ?? r.comment;
  return r;
}

/** Build the system a discovered machine becomes. Pure. */
export function systemFor(d: Discovered, profile: string, hostname: string): System {
  const name = hostname;
  if (!isName(name)) throw invalid('hostname', `"${hostname}" is not a valid system name`);
  const s = validateNew('system', {
    ...defaultSystem(name),
    profile,
    hostname: name,
    netboot_enabled: true,
    comment: `enlisted from ${d.name} (${d.inventory.vendor} ${d.inventory.product} ${d.inventory.serial})`.trim(),
    interfaces: { eth0: { mac_address: d.mac } },
    ctime: undefined,
    mtime: undefined,
  });
  return s;
}

async function provisionLocked(deps: DiscoveryDeps, d: Discovered, profile: string, hostname: string, rule: Rule | undefined): Promise<{ discovered: Discovered; system: System }> {
  await deps.store.mustGet('profile', profile);
  const sys = await deps.store.create('system', systemFor(d, profile, hostname));
  if (rule !== undefined) await deps.store.putRule({ ...rule, used: rule.used + 1 }, false);
  const updated: Discovered = { ...d, status: 'provisioned', system: sys.name, rule: rule?.name ?? '', instruction: 'reboot' };
  await deps.store.putDiscovered(updated);
  await deps.store.addEvent(
    lifecycleEvent({
      system: sys.name,
      type: 'enlisted',
      source: 'discovery',
      detail: { discovered: d.name, mac: d.mac, rule: rule?.name ?? '', profile, serial: d.inventory.serial },
    }),
  );
  return { discovered: updated, system: sys };
}

export interface ReportResult {
  discovered: Discovered;
  /** The system a rule made, if one fired. */
  system?: string;
  rule?: string;
}

/** A report from the discovery image (already schema-checked). */
export function report(deps: DiscoveryDeps, inv: Inventory): Promise<ReportResult> {
  return serial(async () => {
    const known = await deps.store.findSystemByMac(inv.mac);
    if (known !== undefined) {
      throw new ForgeError('KNOWN_SYSTEM', `mac: ${inv.mac} belongs to system ${known.name}; discovery never changes a known system`, { field: 'mac' });
    }
    const now = new Date().toISOString();
    const prev = await deps.store.getDiscoveredByMac(inv.mac);
    if (prev === undefined && (await deps.store.countDiscovered()) >= (deps.maxDiscovered ?? MAX_DISCOVERED)) {
      throw new ForgeError('RATE_LIMITED', `discovery holds ${deps.maxDiscovered ?? MAX_DISCOVERED} machines; remove or provision some first`);
    }
    const d: Discovered = {
      name: prev?.name ?? discoveredName(inv.mac),
      mac: inv.mac,
      status: prev?.status ?? 'discovered',
      inventory: inv,
      facts: factsOf(inv),
      first_seen: prev?.first_seen ?? now,
      last_seen: now,
      reports: (prev?.reports ?? 0) + 1,
      instruction: prev?.instruction ?? 'wait',
      system: prev?.system ?? '',
      rule: prev?.rule ?? '',
    };
    await deps.store.putDiscovered(d);
    if (d.status !== 'discovered') return { discovered: d };
    const rules = await deps.store.listRules();
    const { fires } = judge(rules, d);
    if (fires === undefined) return { discovered: d };
    const rule = rules.find((r) => r.name === fires.rule)!;
    const out = await provisionLocked(deps, d, rule.profile, fires.hostname, rule);
    return { discovered: out.discovered, system: out.system.name, rule: rule.name };
  });
}

/** `forge discovered provision --name X --profile P [--hostname H]`. */
export function provision(deps: DiscoveryDeps, name: string, profile: string, hostname: string | undefined): Promise<{ discovered: Discovered; system: System }> {
  return serial(async () => {
    const d = await deps.store.getDiscovered(name);
    if (d === undefined) throw new ForgeError('NOT_FOUND', `discovered ${name}: no such machine`, { field: 'name' });
    if (d.status === 'provisioned') throw new ForgeError('DUPLICATE_NAME', `discovered ${name} is already system ${d.system}`, { field: 'name' });
    return provisionLocked(deps, d, profile, hostname ?? d.name, undefined);
  });
}

/** What the image should do at its poll; `wait` for an unknown MAC too (it may report again). */
export async function instructionFor(deps: DiscoveryDeps, mac: string): Promise<{ action: Discovered['instruction']; system: string }> {
  const d = await deps.store.getDiscoveredByMac(mac);
  return { action: d?.instruction ?? 'wait', system: d?.system ?? '' };
}
