/** The boot decision, table-driven: firmware x loaders x system state -> plan. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootPlan, chooseLoader, type BootClient, type BootConfig, type BootPlan, type BootSystem } from '../../server/core/bootplan.js';

const cfg: BootConfig = {
  baseUrl: 'http://10.98.0.1:8080',
  nextServer: '10.98.0.1',
  bios_loader: 'ipxe',
  uefi_loader: 'ipxe',
  dhcp_unknown: 'ignore',
  default_profile: '',
};
const MAC = '52:54:00:12:34:56';
const client = (o: Partial<BootClient>): BootClient => ({ mac: MAC, arch: undefined, userClasses: [], vendorClass: undefined, ipxeOption: false, ...o });
const sys = (o: Partial<BootSystem> = {}): BootSystem => ({ name: 'vm1', netboot_enabled: true, boot_loaders: [], ...o });
const PXE_BIOS = { arch: 0, vendorClass: 'PXEClient:Arch:00000:UNDI:002001' };
const PXE_UEFI = { arch: 7, vendorClass: 'PXEClient:Arch:00007:UNDI:003016' };
const PXE_ARM64 = { arch: 11, vendorClass: 'PXEClient:Arch:00011:UNDI:003000' };
const tftp = (file: string, loader: string, firmware: string): BootPlan => ({ kind: 'tftp', file, nextServer: '10.98.0.1', loader, firmware } as BootPlan);
const IPXE_URL: BootPlan = { kind: 'ipxe', url: `http://10.98.0.1:8080/boot/ipxe/${MAC}` };

const table: [string, BootClient, BootSystem | undefined, Partial<BootConfig>, BootPlan['kind'] | BootPlan][] = [
  ['unknown MAC ignored by default', client(PXE_BIOS), undefined, {}, 'ignore'],
  ['unknown MAC, dhcp_unknown=default without a profile: ignored', client(PXE_BIOS), undefined, { dhcp_unknown: 'default' }, 'ignore'],
  ['unknown MAC, dhcp_unknown=default: served', client(PXE_BIOS), undefined, { dhcp_unknown: 'default', default_profile: 'p' }, tftp('undionly.kpxe', 'ipxe', 'bios')],
  ['netboot disabled -> local', client(PXE_BIOS), sys({ netboot_enabled: false }), {}, 'local'],
  ['netboot disabled beats iPXE', client({ ...PXE_BIOS, userClasses: ['iPXE'] }), sys({ netboot_enabled: false }), {}, 'local'],
  ['plain DHCP client (udhcpc) -> address only', client({ vendorClass: 'udhcp 1.36.1' }), sys(), {}, 'local'],
  ['BIOS PXE -> undionly.kpxe', client(PXE_BIOS), sys(), {}, tftp('undionly.kpxe', 'ipxe', 'bios')],
  ['BIOS PXE, config pxelinux -> pxelinux.0', client(PXE_BIOS), sys(), { bios_loader: 'pxelinux' }, tftp('pxelinux.0', 'pxelinux', 'bios')],
  ['BIOS PXE, system boot_loaders [pxelinux] -> pxelinux.0', client(PXE_BIOS), sys({ boot_loaders: ['pxelinux', 'ipxe'] }), {}, tftp('pxelinux.0', 'pxelinux', 'bios')],
  ['BIOS PXE, Cobbler name "pxe" -> pxelinux.0', client(PXE_BIOS), sys({ boot_loaders: ['pxe'] }), {}, tftp('pxelinux.0', 'pxelinux', 'bios')],
  ['BIOS PXE, boot_loaders [grub, ipxe]: grub skipped on BIOS', client(PXE_BIOS), sys({ boot_loaders: ['grub', 'ipxe'] }), { bios_loader: 'pxelinux' }, tftp('undionly.kpxe', 'ipxe', 'bios')],
  ['BIOS, arch only in vendor class', client({ vendorClass: 'PXEClient:Arch:00000:UNDI:002001' }), sys(), {}, tftp('undionly.kpxe', 'ipxe', 'bios')],
  ['x64 UEFI (7) -> ipxe.efi', client(PXE_UEFI), sys(), {}, tftp('ipxe.efi', 'ipxe', 'uefi')],
  ['x64 UEFI (9) -> ipxe.efi', client({ arch: 9, vendorClass: 'PXEClient:Arch:00009:UNDI:003016' }), sys(), {}, tftp('ipxe.efi', 'ipxe', 'uefi')],
  ['x64 UEFI, config grub -> grubx64.efi', client(PXE_UEFI), sys(), { uefi_loader: 'grub' }, tftp('grubx64.efi', 'grub', 'uefi')],
  ['x64 UEFI, system [grub] -> grubx64.efi', client(PXE_UEFI), sys({ boot_loaders: ['grub'] }), {}, tftp('grubx64.efi', 'grub', 'uefi')],
  ['x64 UEFI, [pxelinux, grub]: pxelinux skipped on UEFI', client(PXE_UEFI), sys({ boot_loaders: ['pxelinux', 'grub'] }), {}, tftp('grubx64.efi', 'grub', 'uefi')],
  ['iPXE by user class -> HTTP script', client({ ...PXE_BIOS, userClasses: ['iPXE'] }), sys(), {}, IPXE_URL],
  ['iPXE by option 175 -> HTTP script', client({ ...PXE_UEFI, ipxeOption: true }), sys(), {}, IPXE_URL],
  ['iPXE ROM but system wants pxelinux -> pxelinux.0 (no loop: pxelinux is not iPXE)', client({ ...PXE_BIOS, userClasses: ['iPXE'] }), sys({ boot_loaders: ['pxelinux'] }), {}, tftp('pxelinux.0', 'pxelinux', 'bios')],
  ['iPXE on UEFI, system wants grub -> grubx64.efi', client({ ...PXE_UEFI, userClasses: ['iPXE'] }), sys({ boot_loaders: ['grub'] }), {}, tftp('grubx64.efi', 'grub', 'uefi')],
  ['UEFI HTTP boot (arch 16) -> ipxe.efi URL, HTTPClient echoed', client({ arch: 16, vendorClass: 'HTTPClient:Arch:00016:UNDI:003001' }), sys(), {}, { kind: 'http', url: 'http://10.98.0.1:8080/boot/loaders/ipxe.efi', vendorClass: 'HTTPClient', loader: 'ipxe' }],
  ['UEFI HTTP boot by vendor class only', client({ vendorClass: 'HTTPClient' }), sys(), {}, { kind: 'http', url: 'http://10.98.0.1:8080/boot/loaders/ipxe.efi', vendorClass: 'HTTPClient', loader: 'ipxe' }],
  ['x64 UEFI, config shim -> shimx64.efi (Secure Boot)', client(PXE_UEFI), sys(), { uefi_loader: 'shim' }, tftp('shimx64.efi', 'shim', 'uefi')],
  ['x64 UEFI, system [shim] -> shimx64.efi', client(PXE_UEFI), sys({ boot_loaders: ['shim'] }), {}, tftp('shimx64.efi', 'shim', 'uefi')],
  ['BIOS, system [shim]: shim is UEFI-only, the BIOS default', client(PXE_BIOS), sys({ boot_loaders: ['shim'] }), {}, tftp('undionly.kpxe', 'ipxe', 'bios')],
  ['UEFI HTTP boot, shim -> shimx64.efi URL', client({ arch: 16, vendorClass: 'HTTPClient' }), sys({ boot_loaders: ['shim'] }), {}, { kind: 'http', url: 'http://10.98.0.1:8080/boot/loaders/shimx64.efi', vendorClass: 'HTTPClient', loader: 'shim' }],
  ['UEFI HTTP boot, grub -> grubx64.efi URL', client({ arch: 16, vendorClass: 'HTTPClient' }), sys({ boot_loaders: ['grub'] }), {}, { kind: 'http', url: 'http://10.98.0.1:8080/boot/loaders/grubx64.efi', vendorClass: 'HTTPClient', loader: 'grub' }],
  // RFC 4578 s2.1 / IANA: 11 = ARM 64-bit UEFI, 19 = its HTTP-boot variant. Debian packages no iPXE for arm64.
  ['ARM64 UEFI (11), default ipxe -> grubaa64.efi over TFTP', client(PXE_ARM64), sys(), {}, tftp('grubaa64.efi', 'grub', 'arm64-uefi')],
  ['ARM64 UEFI (11), arch only in the vendor class -> grubaa64.efi', client({ vendorClass: PXE_ARM64.vendorClass }), sys(), {}, tftp('grubaa64.efi', 'grub', 'arm64-uefi')],
  ['ARM64 UEFI (11), config shim -> shimaa64.efi', client(PXE_ARM64), sys(), { uefi_loader: 'shim' }, tftp('shimaa64.efi', 'shim', 'arm64-uefi')],
  ['ARM64 UEFI (11), [ipxe, pxelinux]: neither runs there -> grubaa64.efi', client(PXE_ARM64), sys({ boot_loaders: ['ipxe', 'pxelinux'] }), {}, tftp('grubaa64.efi', 'grub', 'arm64-uefi')],
  ['ARM64 UEFI HTTP boot (19) -> grubaa64.efi URL, HTTPClient echoed', client({ arch: 19, vendorClass: 'HTTPClient:Arch:00019:UNDI:003000' }), sys(), {}, { kind: 'http', url: 'http://10.98.0.1:8080/boot/loaders/grubaa64.efi', vendorClass: 'HTTPClient', loader: 'grub' }],
  ['32-bit ARM UEFI (10): no loader -> local', client({ arch: 10, vendorClass: 'PXEClient:Arch:00010:UNDI:003000' }), sys(), {}, 'local'],
];

for (const [name, c, s, over, want] of table) {
  test(`boot plan: ${name}`, () => {
    const got = bootPlan(c, s, { ...cfg, ...over });
    if (typeof want === 'string') assert.equal(got.kind, want);
    else assert.deepEqual(got, want);
  });
}

test('chooseLoader falls back to config when nothing in the list fits the firmware', () => {
  assert.equal(chooseLoader('bios', ['grub'], { bios_loader: 'pxelinux', uefi_loader: 'ipxe' }), 'pxelinux');
  assert.equal(chooseLoader('uefi', [], { bios_loader: 'pxelinux', uefi_loader: 'grub' }), 'grub');
  assert.equal(chooseLoader('uefi', ['bogus', 'IPXE'], { bios_loader: 'pxelinux', uefi_loader: 'grub' }), 'ipxe');
});
