/** LOADER_FILES (what DHCP hands out) is derived from the one loader table (what is served). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LOADERS, LOADER_FILES } from '../../server/core/loaders.js';

test('the first-stage loader files come from the loader table', () => {
  assert.deepEqual(LOADER_FILES, {
    bios: { ipxe: 'undionly.kpxe', pxelinux: 'pxelinux.0' },
    uefi: { ipxe: 'ipxe.efi', grub: 'grubx64.efi', shim: 'shimx64.efi' },
    'arm64-uefi': { grub: 'grubaa64.efi', shim: 'shimaa64.efi' },
  });
  for (const [firmware, files] of Object.entries(LOADER_FILES)) {
    for (const name of Object.values(files)) {
      assert.ok(LOADERS.some((l) => l.name === name && l.firmware === firmware), `${name} is served for ${firmware}`);
    }
  }
});
