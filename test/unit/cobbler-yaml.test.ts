/** The YAML subset reader, on the shapes Cobbler's shipped settings.yaml uses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseYaml, YamlError } from '../../server/cobbler/yaml.js';

test('reads the constructs of Cobbler settings.yaml', () => {
  const v = parseYaml(`---
# comment
auto_migrate_settings: false
authn_pam_service: "login"
auth_token_expiration: 3600
default_virt_file_size: 5.0
build_reporting_email: [ 'root@localhost' ]
build_reporting_ignorelist: []
kernel_options: {}
mgmt_parameters:
 from_cobbler: true
cheetah_import_whitelist:
 - "random"
 - "re"
bootloaders_formats:
  arm64-efi:
    binary_name: grubaa64.efi   # trailing comment
    extra_modules:
      - efinet
  i386-pc-pxe:
    binary_name: grub.0
bootloaders_modules:
  - "true"
  - ext2
default_password_crypted: "$1$mF86/UHC$WvcIcX2t6crBz2onWxyac."
syslinux_dir: '@@syslinux_dir@@'
it's: 'a ''quoted'' value'
empty:
`);
  assert.deepEqual(v, {
    auto_migrate_settings: false,
    authn_pam_service: 'login',
    auth_token_expiration: 3600,
    default_virt_file_size: 5,
    build_reporting_email: ['root@localhost'],
    build_reporting_ignorelist: [],
    kernel_options: {},
    mgmt_parameters: { from_cobbler: true },
    cheetah_import_whitelist: ['random', 're'],
    bootloaders_formats: { 'arm64-efi': { binary_name: 'grubaa64.efi', extra_modules: ['efinet'] }, 'i386-pc-pxe': { binary_name: 'grub.0' } },
    bootloaders_modules: ['true', 'ext2'],
    default_password_crypted: '$1$mF86/UHC$WvcIcX2t6crBz2onWxyac.',
    syslinux_dir: '@@syslinux_dir@@',
    "it's": "a 'quoted' value",
    empty: null,
  });
});

test('sequence items that are mappings, and flow mappings', () => {
  assert.deepEqual(parseYaml('list:\n- a: 1\n  b: x\n- plain\nm: { a: 1, b: "two" }\n'), { list: [{ a: 1, b: 'x' }, 'plain'], m: { a: 1, b: 'two' } });
});

test('constructs outside the subset are errors naming the line', () => {
  for (const [text, line] of [['a: 1\nb: &anchor x\n', 2], ['a: |\n  text\n', 1], ['a: [1, [2]]\n', 1], ['a: 1\n---\nb: 2\n', 2], ['a: 1\n   b: 2\n', 2], ['a: "open\n', 1]] as const) {
    assert.throws(() => parseYaml(text), (e: unknown) => e instanceof YamlError && e.line === line, JSON.stringify(text));
  }
});
