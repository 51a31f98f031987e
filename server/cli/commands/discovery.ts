/**
 * `forge discovered list|report|remove|provision` and
 * `forge rule add|edit|list|report|remove|test`: machines that booted the
 * discovery image, and the rules that enlist them.
 */
import { ForgeError } from '../../errors.js';
import type { Discovered } from '../../discovery/model.js';
import type { CommandSpec, OptionSpec, ParsedArgs } from '../command.js';
import { table } from './boot.js';
import { join } from 'node:path';
import { defaultDataDir } from '../../config.js';
import { buildDiscoveryImage } from '../../discovery/image.js';

const str = (a: ParsedArgs, k: string): string | undefined => (typeof a.values[k] === 'string' ? (a.values[k] as string) : undefined);
const must = (a: ParsedArgs, k: string): string => {
  const v = str(a, k);
  if (v === undefined || v === '') throw new ForgeError('USAGE', `--${k} is required`, { field: k });
  return v;
};
const JSON_OPT: OptionSpec = { type: 'boolean', description: 'machine-readable JSON output' };
const NAME: OptionSpec = { type: 'string', description: 'name', arg: 'NAME' };

function discoveredReport(d: Discovered): string[] {
  const i = d.inventory;
  const rows: [string, string][] = [
    ['Name', d.name],
    ['MAC', d.mac],
    ['Status', d.status + (d.system !== '' ? ` (system ${d.system}${d.rule !== '' ? `, rule ${d.rule}` : ''})` : '')],
    ['Next action', d.instruction],
    ['Vendor', i.vendor],
    ['Product', i.product],
    ['Serial', i.serial],
    ['UUID', i.uuid],
    ['Firmware', i.firmware],
    ['Arch', i.arch],
    ['CPUs', `${i.cpus}${i.cpu_model !== '' ? ` x ${i.cpu_model}` : ''}`],
    ['RAM MiB', String(i.ram_mib)],
    ...i.disks.map((x): [string, string] => [`Disk ${x.name}`, [`${x.size_gib} GiB`, x.model, x.rotational ? '(rotational)' : ''].filter((w) => w !== '').join(' ')]),
    ...i.interfaces.map((n): [string, string] => [`NIC ${n.name}`, `${n.mac} link ${n.link ? 'up' : 'down'}`]),
    ['First seen', d.first_seen],
    ['Last seen', d.last_seen],
    ['Reports', String(d.reports)],
  ];
  return rows.map(([k, v]) => `${k.padEnd(16)}: ${v}`);
}

const RULE_FIELDS: Record<string, OptionSpec> = {
  priority: { type: 'string', description: 'lower runs first (default 100)', arg: 'N' },
  match: { type: 'string', description: 'condition on facts, e.g. \'ram_mib>=4096 && disks.count>=1 && product~"Standard PC*"\'', arg: 'EXPR' },
  profile: { type: 'string', description: 'profile of the system the rule makes', arg: 'PROFILE' },
  hostname: { type: 'string', description: 'system and host name template from facts, e.g. web-{serial} (default: the discovered name)', arg: 'TEMPLATE' },
  max: { type: 'string', description: 'fire at most N times (0: no limit)', arg: 'N' },
  comment: { type: 'string', description: 'free-form comment', arg: 'TEXT' },
};

function ruleBody(a: ParsedArgs): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  for (const k of Object.keys(RULE_FIELDS)) {
    const v = str(a, k);
    if (v !== undefined) b[k] = k === 'priority' || k === 'max' ? (/^\d+$/.test(v) ? Number(v) : v) : v;
  }
  return b;
}

export const commands: CommandSpec[] = [
  {
    path: ['discovery', 'image'],
    summary: "build the discovery image on this host from Debian packages (linux-image kernel + its NIC and disk modules, busybox-static initramfs, kexec-tools' kexec when installed)",
    options: {
      out: { type: 'string', description: 'directory for linux and initrd.gz (default DATA_DIR/discovery)', arg: 'DIR' },
      'kernel-dir': { type: 'string', description: "linux-image root (boot/vmlinuz-VER, lib/modules/VER; / for the installed one); default Debian's linux-image-amd64, downloaded once with apt into OUT/kernel", arg: 'DIR' },
    },
    help: 'boot it with: linux forge.url=http://SERVER:8080 [forge.mac=MAC] [forge.poll=5]; initrd initrd.gz',
    async run(a, io) {
      const out = str(a, 'out') ?? join(io.env['FORGE_DATA_DIR'] !== undefined && io.env['FORGE_DATA_DIR'] !== '' ? io.env['FORGE_DATA_DIR'] : defaultDataDir(), 'discovery');
      const kernelDir = str(a, 'kernel-dir');
      const img = await buildDiscoveryImage(out, { ...(kernelDir !== undefined ? { kernelDir } : {}), progress: (m) => io.err(m) });
      io.out(`kernel  ${img.kernel} (${img.version})`);
      io.out(`initrd  ${img.initrd} (modules: ${img.modules.join(' ') || 'none'})`);
      io.out(`kexec   ${img.kexec ? 'yes (kexec-tools)' : 'no (apt-get install kexec-tools; the image reboots instead)'}`);
      return 0;
    },
  },
  {
    path: ['discovered', 'list'],
    summary: 'list machines that booted the discovery image (unknown MACs) with their facts',
    options: { json: JSON_OPT },
    async run(a, io) {
      const ds = await io.client.discovered();
      if (a.values['json'] === true) {
        io.out(JSON.stringify(ds, null, 2));
        return 0;
      }
      const rows = [['NAME', 'MAC', 'STATUS', 'VENDOR', 'PRODUCT', 'SERIAL', 'CPUS', 'RAM_MIB', 'DISKS', 'SYSTEM']];
      for (const d of ds) {
        const i = d.inventory;
        rows.push([d.name, d.mac, d.status, i.vendor, i.product, i.serial, String(i.cpus), String(i.ram_mib), String(i.disks.length), d.system || '-']);
      }
      for (const l of table(rows)) io.out(l);
      return 0;
    },
  },
  {
    path: ['discovered', 'report'],
    summary: 'show a discovered machine in full (all with no --name)',
    options: { name: NAME, json: JSON_OPT },
    async run(a, io) {
      const n = str(a, 'name');
      const ds = n !== undefined ? [await io.client.getDiscovered(n)] : await io.client.discovered();
      if (a.values['json'] === true) io.out(JSON.stringify(n !== undefined ? ds[0] : ds, null, 2));
      else ds.forEach((d, i) => {
        if (i > 0) io.out('');
        for (const l of discoveredReport(d)) io.out(l);
      });
      return 0;
    },
  },
  {
    path: ['discovered', 'remove'],
    summary: 'forget a discovered machine (it is discovered again at its next report)',
    options: { name: NAME },
    async run(a, io) {
      await io.client.forgetDiscovered(must(a, 'name'));
      return 0;
    },
  },
  {
    path: ['discovered', 'provision'],
    summary: 'turn a discovered machine into a system with a profile (netboot on; the image reboots it into the installer)',
    options: {
      name: NAME,
      profile: { type: 'string', description: 'profile of the new system', arg: 'PROFILE' },
      hostname: { type: 'string', description: 'system and host name (default: the discovered name)', arg: 'NAME' },
      json: JSON_OPT,
    },
    help: 'example: forge discovered provision --name disc-525400123456 --profile deb12-web --hostname web07',
    async run(a, io) {
      const h = str(a, 'hostname');
      const r = await io.client.provision(must(a, 'name'), { profile: must(a, 'profile'), ...(h !== undefined ? { hostname: h } : {}) });
      if (a.values['json'] === true) io.out(JSON.stringify(r, null, 2));
      else io.out(`system ${r.system} created; it installs at its next boot`);
      return 0;
    },
  },
  {
    path: ['rule', 'add'],
    summary: 'add a discovery rule: the first matching rule (by priority) enlists a discovered machine',
    options: { name: NAME, ...RULE_FIELDS, json: JSON_OPT },
    help: `example: forge rule add --name web --priority 10 --match 'ram_mib>=4096 && disks.count>=1 && product~"Standard PC*"' \\
           --profile deb12-web --hostname 'web-{serial}' --max 20
facts: ram_mib cpus cpu_model arch vendor product serial uuid firmware mac disks.count disks.total_gib
       disks.largest_gib disks.rotational nics.count nics.up
operators: == != < <= > >= ~ !~ (glob: * ?, case-insensitive) && || ! ( )`,
    async run(a, io) {
      const r = await io.client.addRule({ name: must(a, 'name'), ...ruleBody(a) });
      if (a.values['json'] === true) io.out(JSON.stringify(r, null, 2));
      return 0;
    },
  },
  {
    path: ['rule', 'edit'],
    summary: 'change fields of a discovery rule (only the flags given)',
    options: { name: NAME, ...RULE_FIELDS, json: JSON_OPT },
    async run(a, io) {
      const body = ruleBody(a);
      if (Object.keys(body).length === 0) throw new ForgeError('USAGE', 'nothing to change: give at least one field flag');
      const r = await io.client.editRule(must(a, 'name'), body);
      if (a.values['json'] === true) io.out(JSON.stringify(r, null, 2));
      return 0;
    },
  },
  {
    path: ['rule', 'list'],
    summary: 'list discovery rules in the order they are tried',
    options: { json: JSON_OPT },
    async run(a, io) {
      const rules = await io.client.rules();
      if (a.values['json'] === true) {
        io.out(JSON.stringify(rules, null, 2));
        return 0;
      }
      const rows = [['PRIORITY', 'NAME', 'PROFILE', 'USED/MAX', 'HOSTNAME', 'MATCH']];
      for (const r of rules) rows.push([String(r.priority), r.name, r.profile, `${r.used}/${r.max === 0 ? '-' : r.max}`, r.hostname || '-', r.match]);
      for (const l of table(rows)) io.out(l);
      return 0;
    },
  },
  {
    path: ['rule', 'remove'],
    summary: 'remove a discovery rule',
    options: { name: NAME },
    async run(a, io) {
      await io.client.removeRule(must(a, 'name'));
      return 0;
    },
  },
  {
    path: ['rule', 'test'],
    summary: 'show which rules match a discovered machine and which one would fire (changes nothing)',
    options: { discovered: { type: 'string', description: 'discovered machine name', arg: 'NAME' }, json: JSON_OPT },
    help: 'example: forge rule test --discovered disc-525400123456',
    async run(a, io) {
      const r = await io.client.testRules(must(a, 'discovered'));
      if (a.values['json'] === true) {
        io.out(JSON.stringify(r, null, 2));
        return 0;
      }
      const rows = [['PRIORITY', 'RULE', 'MATCHES', 'HOSTNAME']];
      for (const v of r.rules) rows.push([String(v.priority), v.rule, v.matched ? (v.exhausted ? 'yes (max reached)' : 'yes') : 'no', v.hostname]);
      for (const l of table(rows)) io.out(l);
      io.out(r.fires === null ? 'no rule fires' : `fires: ${r.fires} -> system ${r.hostname ?? ''}`);
      return 0;
    },
  },
];
