/**
 * One policy for machines forge has no system for, read by both decisions
 * (core/bootplan.ts): the DHCP stage (answer with a loader, or not at all)
 * and the boot-config stage (the `default` system, a menu, or the local disk).
 * Table-driven: configuration x (system `default` exists) -> both answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootPlan, decideBoot, needsMenu, unknownPolicy, type BootConfig, type SystemFacts } from '../../server/core/bootplan.js';

const PXE_BIOS = { mac: '52:54:00:00:00:99', arch: 0, userClasses: [], vendorClass: 'PXEClient:Arch:00000:UNDI:002001', ipxeOption: false };
const base: BootConfig = { baseUrl: 'http://10.0.0.1:8080', nextServer: '10.0.0.1', bios_loader: 'ipxe', uefi_loader: 'ipxe', dhcp_unknown: 'ignore', default_profile: '' };
const dflt: SystemFacts = { name: 'default', netboot_enabled: true, profile: 'p', distro: 'd', cmdline: '' };
const entry = { label: 'p', distro: 'd', cmdline: '' };

type Row = [
  name: string,
  cfg: { dhcp_unknown: 'ignore' | 'default'; default_profile: string; unknown_boot: 'local' | 'menu' },
  defaultSystem: boolean,
  dhcp: 'ignore' | 'tftp',
  config: { kind: 'install' | 'local' | 'menu'; matched: 'default' | 'none' },
];

const table: Row[] = [
  ['defaults: DHCP silent, config local', { dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'local' }, false, 'ignore', { kind: 'local', matched: 'none' }],
  ['dhcp_unknown=default without a profile stays silent', { dhcp_unknown: 'default', default_profile: '', unknown_boot: 'local' }, false, 'ignore', { kind: 'local', matched: 'none' }],
  ['dhcp_unknown=default with a profile: a loader', { dhcp_unknown: 'default', default_profile: 'p', unknown_boot: 'local' }, false, 'tftp', { kind: 'local', matched: 'none' }],
  ['a profile alone does not make DHCP answer', { dhcp_unknown: 'ignore', default_profile: 'p', unknown_boot: 'local' }, false, 'ignore', { kind: 'local', matched: 'none' }],
  ['unknown_boot=menu: a menu of profiles', { dhcp_unknown: 'default', default_profile: 'p', unknown_boot: 'menu' }, false, 'tftp', { kind: 'menu', matched: 'none' }],
  ['the system named default wins over the menu', { dhcp_unknown: 'default', default_profile: 'p', unknown_boot: 'menu' }, true, 'tftp', { kind: 'install', matched: 'default' }],
  ['the system named default, DHCP silent', { dhcp_unknown: 'ignore', default_profile: '', unknown_boot: 'local' }, true, 'ignore', { kind: 'install', matched: 'default' }],
];

test('unknown machines: one policy, both stages', () => {
  for (const [name, cfg, hasDefault, dhcp, config] of table) {
    const policy = unknownPolicy(cfg);
    const plan = bootPlan(PXE_BIOS, undefined, { ...base, dhcp_unknown: cfg.dhcp_unknown, default_profile: cfg.default_profile });
    assert.equal(plan.kind, dhcp, `${name}: DHCP stage`);
    assert.equal(policy.dhcpProfile !== undefined, dhcp === 'tftp', `${name}: policy`);
    const facts = { system: undefined, defaultSystem: hasDefault ? dflt : undefined, unknownBoot: policy.config };
    const d = decideBoot({ ...facts, menu: needsMenu(facts) ? [entry] : [] });
    assert.deepEqual({ kind: d.target.kind, matched: d.matched }, config, `${name}: config stage`);
  }
});
