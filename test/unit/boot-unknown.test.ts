/**
 * One policy for machines forge has no system for (core/bootplan.ts), read by
 * both decisions: the DHCP stage (a loader, or no answer) and the boot-config
 * stage (the discovery image, the `default` system, a menu, default_profile,
 * or the local disk). Table of every combination: mode (global, and a subnet
 * setting that wins over it) x default_profile x unknown_boot x `default`
 * system x known/unknown machine x firmware, both stages each time, and the
 * rule that they never disagree: a loader is never followed by "local", and
 * `discover` is discover in both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bootPlan, decideBoot, discoveryCmdline, unknownNeeds, unknownPolicy, UNKNOWN_MODES,
  type BootClient, type BootConfig, type SystemFacts, type UnknownMode,
} from '../../server/core/bootplan.js';

const MAC = '52:54:00:00:00:99';
const CLIENTS: Record<string, BootClient> = {
  'bios pxe': { mac: MAC, arch: 0, userClasses: [], vendorClass: 'PXEClient:Arch:00000:UNDI:002001', ipxeOption: false },
  'uefi pxe': { mac: MAC, arch: 7, userClasses: [], vendorClass: 'PXEClient:Arch:00007:UNDI:003016', ipxeOption: false },
  'ipxe': { mac: MAC, arch: 0, userClasses: ['iPXE'], vendorClass: 'PXEClient:Arch:00000:UNDI:002001', ipxeOption: true },
  'uefi http': { mac: MAC, arch: 16, userClasses: [], vendorClass: 'HTTPClient:Arch:00016:UNDI:003016', ipxeOption: false },
  'arm64 uefi pxe': { mac: MAC, arch: 11, userClasses: [], vendorClass: 'PXEClient:Arch:00011:UNDI:003000', ipxeOption: false },
};
const base: Omit<BootConfig, 'dhcp_unknown' | 'default_profile'> = { baseUrl: 'http://10.0.0.1:8080', nextServer: '10.0.0.1', bios_loader: 'ipxe', uefi_loader: 'ipxe' };
const dflt: SystemFacts = { name: 'default', netboot_enabled: true, profile: 'p', distro: 'd', cmdline: 'dflt=1' };
const known: SystemFacts = { name: 'vm1', netboot_enabled: true, profile: 'p', distro: 'd', cmdline: 'k=1' };
const entry = { label: 'p', distro: 'd', cmdline: 'menu=1' };
const profileEntry = { label: 'p', distro: 'd', cmdline: 'profile=1' };

type Config = 'discover' | 'install' | 'menu' | 'local';
/** What the config stage must give an unknown machine, by effective mode; written out, not computed by the code under test. */
function expected(mode: UnknownMode, profile: string, unknownBoot: 'local' | 'menu', hasDefault: boolean, fw: string): { dhcp: boolean; config: Config; matched: 'default' | 'none' } {
  // The discovery image is x86-64: an arm64 machine gets no loader that would lead it there.
  if (mode === 'discover') return { dhcp: !fw.startsWith('arm64'), config: 'discover', matched: 'none' };
  const dhcp = mode === 'default' && profile !== '';
  if (hasDefault) return { dhcp, config: 'install', matched: 'default' };
  if (unknownBoot === 'menu') return { dhcp, config: 'menu', matched: 'none' };
  if (dhcp) return { dhcp, config: 'install', matched: 'none' };
  return { dhcp, config: 'local', matched: 'none' };
}

test('unknown machines: every combination, both stages, never disagreeing', () => {
  let rows = 0;
  for (const global of UNKNOWN_MODES) {
    for (const subnet of ['', ...UNKNOWN_MODES] as const) {
      for (const profile of ['', 'p']) {
        for (const unknownBoot of ['local', 'menu'] as const) {
          for (const hasDefault of [false, true]) {
            for (const [fw, client] of Object.entries(CLIENTS)) {
              for (const isKnown of [false, true]) {
                rows++;
                const name = `global=${global} subnet=${subnet || '-'} profile=${profile || '-'} unknown_boot=${unknownBoot} default=${hasDefault} ${fw} ${isKnown ? 'known' : 'unknown'}`;
                const cfg = { dhcp_unknown: global, default_profile: profile, unknown_boot: unknownBoot };
                const policy = unknownPolicy(cfg, subnet);
                const mode = subnet !== '' ? subnet : global;
                assert.equal(policy.mode, mode, `${name}: the subnet setting wins`);

                // Stage 1: DHCP.
                const plan = bootPlan(
                  client,
                  isKnown ? { name: 'vm1', netboot_enabled: true, boot_loaders: [] } : undefined,
                  { ...base, dhcp_unknown: global, default_profile: profile, subnet_unknown: subnet },
                );
                // Stage 2: the boot config the loader then asks for.
                const facts = { system: isKnown ? known : undefined, defaultSystem: hasDefault ? dflt : undefined, unknown: policy };
                const need = unknownNeeds(facts);
                const d = decideBoot({
                  ...facts,
                  menu: need === 'menu' ? [entry] : [],
                  ...(need === 'profile' ? { defaultProfile: profileEntry } : {}),
                  ...(need === 'discovery' ? { discoveryCmdline: discoveryCmdline(base.baseUrl, MAC, 'console=ttyS0') } : {}),
                });

                if (isKnown) {
                  assert.notEqual(plan.kind, 'ignore', `${name}: a known machine is always answered`);
                  assert.equal(d.target.kind, 'install', `${name}: config`);
                  assert.equal(d.matched, 'mac', `${name}: matched`);
                  continue;
                }
                const want = expected(mode, profile, unknownBoot, hasDefault, fw);
                const answered = plan.kind !== 'ignore' && plan.kind !== 'local';
                assert.equal(answered, want.dhcp, `${name}: DHCP stage (${plan.kind})`);
                assert.equal(d.target.kind, want.config, `${name}: config stage`);
                assert.equal(d.matched, want.matched, `${name}: matched`);
                // The two stages never disagree.
                if (answered) assert.notEqual(d.target.kind, 'local', `${name}: a loader followed by local boot`);
                assert.equal(mode === 'discover', d.target.kind === 'discover', `${name}: discover in both stages`);
                if (d.target.kind === 'discover') {
                  assert.equal(d.target.cmdline, `console=ttyS0 forge.url=http://10.0.0.1:8080 forge.mac=${MAC}`, `${name}: discovery command line`);
                  assert.equal(d.target.image, 'discovery');
                }
                if (d.target.kind === 'install' && d.matched === 'none') assert.equal(d.target.cmdline, 'profile=1', `${name}: default_profile's entry`);
                // The loader for an unknown machine is the configured default for its firmware.
                if (answered && fw === 'bios pxe') assert.deepEqual(plan, { kind: 'tftp', file: 'undionly.kpxe', nextServer: '10.0.0.1', loader: 'ipxe', firmware: 'bios' }, name);
                if (answered && fw === 'uefi pxe') assert.equal(plan.kind === 'tftp' && plan.file, 'ipxe.efi', name);
                if (answered && fw === 'ipxe') assert.deepEqual(plan, { kind: 'ipxe', url: `http://10.0.0.1:8080/boot/ipxe/${MAC}` }, name);
                if (answered && fw === 'uefi http') assert.equal(plan.kind, 'http', name);
                if (answered && fw === 'arm64 uefi pxe') assert.equal(plan.kind === 'tftp' && plan.firmware, 'arm64-uefi', name);
              }
            }
          }
        }
      }
    }
  }
  assert.equal(rows, 3 * 4 * 2 * 2 * 2 * Object.keys(CLIENTS).length * 2);
});

test('discovery command line: the boot NIC only when the loader named it', () => {
  assert.equal(discoveryCmdline('http://10.0.0.1:8080', undefined, ' console=tty0 console=ttyS0 '), 'console=tty0 console=ttyS0 forge.url=http://10.0.0.1:8080');
  assert.equal(discoveryCmdline('http://10.0.0.1:8080', 'aa:bb:cc:dd:ee:ff', ''), 'forge.url=http://10.0.0.1:8080 forge.mac=aa:bb:cc:dd:ee:ff');
});
