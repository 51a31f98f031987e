/**
 * A chain blended once for many systems (core/blend.ts blendChainOnce, what
 * `forge validate` does per profile) gives each system exactly the
 * variables blendSystem computes alone: same keys in the same order, same
 * values (compared as JSON text), for the store bench's systems under every
 * breed and for rich systems (a sub-profile with `!key` removals, list and
 * dict layers, system overrides, several interfaces, a subnet's defaults, an
 * install token). And no system's variables share a top-level dict or list
 * with another's or with the chain blend: writing one changes neither.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blendChainOnce, blendSystem } from '../../server/core/blend.js';
import { BREEDS } from '../../server/core/model.js';
import type { Profile, System } from '../../server/core/model.js';
import { validateNew } from '../../server/core/validate.js';
import { defaults } from '../../server/config.js';
import { settingsFromConfig } from '../../server/settings-from-config.js';
import { system as benchSystem } from '../../bench/core.js';

const settings = { ...settingsFromConfig(defaults()), kernel_options: { quiet: null, mitigations: 'off' }, autoinstall_meta: { timezone: 'UTC', extra: 'x' }, default_name_servers: ['10.0.0.53'] };

test("the bench's systems: a chain blended once gives each the variables blendSystem gives it alone", () => {
  for (const breed of BREEDS) {
    const d = validateNew('distro', { name: 'd', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed });
    const p = validateNew('profile', { name: 'p', distro: 'd', kernel_options: 'console=ttyS0' });
    const once = blendChainOnce([p], d, settings);
    const before = JSON.stringify(once);
    for (const n of [0, 1, 2, 4097, 999_999]) {
      const s = validateNew('system', benchSystem(n));
      assert.equal(JSON.stringify(blendSystem(s, [p], d, settings, [], undefined, once)), JSON.stringify(blendSystem(s, [p], d, settings)), `${breed} sys${n}`);
    }
    assert.equal(JSON.stringify(once), before, 'the chain blend was written');
  }
});

test('rich systems under a sub-profile, with a subnet and an install token: the same variables', () => {
  const d = validateNew('distro', { name: 'deb', kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd', breed: 'debian', os_version: 'bookworm', kernel_options: 'nomodeset', autoinstall_meta: 'tree=http://mirror/debian' });
  const base: Profile = validateNew('profile', { name: 'base', distro: 'deb', kernel_options: 'console=ttyS0,115200 quiet', autoinstall_meta: 'timezone=Europe/Paris packages=vim', name_servers: ['10.1.0.53'], boot_loaders: ['grub', 'ipxe'] });
  const web: Profile = validateNew('profile', { name: 'web', parent: 'base', kernel_options: '!console net.ifnames=0', autoinstall_meta: '!timezone packages=nginx disk=vdb', name_servers: ['10.1.0.54', '10.1.0.53'] });
  const subnet = validateNew('subnet', { name: 'lab', cidr: '10.98.0.0/24', router: '10.98.0.1', dns: ['10.98.0.2'], domain: 'lab.example', mtu: 9000 });
  const chain = [web, base];
  const once = blendChainOnce(chain, d, settings);
  const systems: System[] = [
    validateNew('system', { name: 'a', profile: 'web', hostname: 'a.lab', interfaces: { eth0: { mac_address: '52:54:00:aa:00:01', ip_address: '10.98.0.12', static: true } } }),
    validateNew('system', {
      name: 'b', profile: 'web', gateway: '10.98.0.254', name_servers: ['9.9.9.9'], kernel_options: 'console=ttyS1 !quiet', autoinstall_meta: 'packages=httpd owner=ops',
      interfaces: { eth0: { mac_address: '52:54:00:aa:00:02', interface_type: 'bond_slave', interface_master: 'bond0' }, bond0: { ip_address: '10.98.0.13', netmask: '255.255.255.0', static: true, interface_type: 'bond', bonding_opts: 'mode=1' } },
    }),
    validateNew('system', { name: 'c', profile: 'web' }),
  ];
  const token = '0123456789abcdef0123456789abcdef';
  const results = systems.map((s) => {
    const shared = blendSystem(s, chain, d, settings, [subnet], token, once);
    assert.equal(JSON.stringify(shared), JSON.stringify(blendSystem(s, chain, d, settings, [subnet], token)), s.name);
    return shared;
  });
  // No top-level dict or list is shared: writing one system's leaves the next and the chain blend alone.
  const [a, b] = results as [Record<string, unknown>, Record<string, unknown>];
  for (const [k, v] of Object.entries(a)) {
    if (Array.isArray(v) || (typeof v === 'object' && v !== null)) {
      assert.notEqual(v, b[k], `${k} is shared between two systems`);
      assert.notEqual(v, once[k], `${k} is shared with the chain blend`);
    }
  }
  (a['kernel_options'] as Record<string, unknown>)['injected'] = 'x';
  (a['name_servers'] as unknown[]).push('6.6.6.6');
  assert.equal(JSON.stringify(blendSystem(systems[2]!, chain, d, settings, [subnet], token, once)), JSON.stringify(blendSystem(systems[2]!, chain, d, settings, [subnet], token)));
});
