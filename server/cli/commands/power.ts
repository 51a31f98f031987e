/**
 * `forge system poweron|poweroff|reboot|powerstatus|reinstall --name X`
 * (Cobbler's verbs). A name with * or ? acts on every matching system, at
 * most --concurrency at a time (the server runs them: POST /api/v1/power).
 */
import { ForgeError } from '../../errors.js';
import type { CommandSpec, ParsedArgs } from '../command.js';
import type { PowerAction, PowerResult } from '../../power/service.js';

const VERBS: { verb: string; action: PowerAction; summary: string }[] = [
  { verb: 'poweron', action: 'on', summary: 'power a system on (libvirt, IPMI or Redfish, from its power_* fields)' },
  { verb: 'poweroff', action: 'off', summary: 'power a system off (hard: virsh destroy, chassis power off, ForceOff)' },
  { verb: 'reboot', action: 'reboot', summary: 'power-cycle a system (reset when on, power on when off)' },
  { verb: 'powerstatus', action: 'status', summary: 'show whether a system is powered on or off' },
  {
    verb: 'reinstall',
    action: 'reinstall',
    summary: 'reinstall a system: netboot on, PXE next boot where the driver can (IPMI, Redfish), power cycle',
  },
];

const str = (a: ParsedArgs, k: string): string | undefined => (typeof a.values[k] === 'string' ? (a.values[k] as string) : undefined);

function line(r: PowerResult): string {
  if (!r.ok) return `${r.name}: FAILED: ${r.error?.message ?? 'unknown error'}`;
  if (r.action === 'status') return `${r.name}: ${r.state ?? 'unknown'}`;
  return `${r.name}: ${r.steps.join(', ')}`;
}

export const commands: CommandSpec[] = VERBS.map(({ verb, action, summary }) => ({
  path: ['system', verb],
  summary,
  options: {
    name: { type: 'string', description: "system name, or a glob ('web*') for every matching system", arg: 'NAME' },
    concurrency: { type: 'string', description: 'with a glob: at most N systems at once (default 8, at most 64)', arg: 'N' },
    json: { type: 'boolean', description: 'machine-readable JSON output' },
  },
  help: `example: forge system ${verb} --name vm9\n         forge system ${verb} --name 'web*' --concurrency 4`,
  async run(args, io) {
    const name = str(args, 'name');
    if (name === undefined || name === '') throw new ForgeError('USAGE', '--name is required', { field: 'name' });
    const cs = str(args, 'concurrency');
    let results: PowerResult[];
    if (/[*?[]/.test(name)) {
      const concurrency = cs === undefined ? undefined : Number(cs);
      if (concurrency !== undefined && !Number.isInteger(concurrency)) throw new ForgeError('USAGE', '--concurrency must be a whole number', { field: 'concurrency' });
      const r = await io.client.powerBulk(name, action, concurrency);
      results = r.results;
    } else {
      if (cs !== undefined) throw new ForgeError('USAGE', '--concurrency applies to a glob --name only', { field: 'concurrency' });
      results = [await io.client.power(name, action)];
    }
    if (args.values['json'] === true) io.out(JSON.stringify(results.length === 1 && !/[*?[]/.test(name) ? results[0] : results, null, 2));
    else for (const r of results) io.out(line(r));
    const failed = results.filter((r) => !r.ok);
    if (failed.length > 0) throw new ForgeError('POWER_FAILED', `${failed.length} of ${results.length} systems failed`);
    return 0;
  },
}));
