/**
 * forge's encoding of the Ubuntu autoinstall schema, written from
 * subiquity's published autoinstall-schema.json (github.com/canonical/subiquity,
 * autoinstall-schema.json, and doc/reference/autoinstall-reference.rst) for
 * checking what forge renders: the keys, their types and required fields.
 * Differences on purpose:
 *  - unknown top-level keys are refused (subiquity warns about and newer
 *    releases reject unrecognised top-level keys; a typo would be lost);
 *  - identity is required unless a user-data section replaces it (the
 *    reference: "identity ... required unless user-data is present");
 *  - network accepts the v2 document itself or wrapped in `network:` (both
 *    forms subiquity takes), with the v2 device maps as objects.
 * The tests validate every rendered user-data against this with
 * python3-jsonschema too.
 */
import type { Schema } from '../jsonschema.js';

const commands: Schema = { type: 'array', items: { type: ['string', 'array'], items: { type: 'string' } } };
const netv2: Schema = {
  type: 'object',
  properties: {
    version: { type: 'integer', minimum: 2, maximum: 2 },
    renderer: { type: 'string' },
    ethernets: { type: 'object' }, wifis: { type: 'object' }, bridges: { type: 'object' }, bonds: { type: 'object' },
    tunnels: { type: 'object' }, vlans: { type: 'object' },
  },
  required: ['version'],
};

export const AUTOINSTALL_SCHEMA: Schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 1 },
    'interactive-sections': { type: 'array', items: { type: 'string' } },
    'early-commands': commands,
    reporting: { type: 'object', additionalProperties: { type: 'object', properties: { type: { type: 'string' } }, required: ['type'] } },
    'error-commands': commands,
    'user-data': { type: 'object' },
    packages: { type: 'array', items: { type: 'string' } },
    'debconf-selections': { type: 'string' },
    locale: { type: 'string' },
    'refresh-installer': { type: 'object', properties: { update: { type: 'boolean' }, channel: { type: 'string' } }, additionalProperties: false },
    kernel: { type: 'object', properties: { package: { type: 'string' }, flavor: { type: 'string' } }, oneOf: [{ required: ['package'] }, { required: ['flavor'] }] },
    'kernel-crash-dumps': { type: 'object', properties: { enabled: { type: ['boolean', 'null'] } }, required: ['enabled'], additionalProperties: false },
    keyboard: { type: 'object', properties: { layout: { type: 'string' }, variant: { type: 'string' }, toggle: { type: ['string', 'null'] } }, required: ['layout'], additionalProperties: false },
    zdevs: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, enabled: { type: 'boolean' } } } },
    source: { type: 'object', properties: { search_drivers: { type: 'boolean' }, id: { type: 'string' } } },
    network: { oneOf: [netv2, { type: 'object', properties: { network: netv2 }, required: ['network'], additionalProperties: false }] },
    'ubuntu-pro': { type: 'object', properties: { token: { type: 'string', minLength: 24, pattern: '^C[1-9A-HJ-NP-Za-km-z]+$' } } },
    'ubuntu-advantage': { type: 'object', properties: { token: { type: 'string', minLength: 24, pattern: '^C[1-9A-HJ-NP-Za-km-z]+$' } } },
    proxy: { type: ['string', 'null'] },
    // subiquity types apt.sources as an object; its entries are curtin's
    // (curtin/commands/apt_config.py add_apt_sources, add_apt_key): source,
    // key (the key text), keyid + keyserver, filename.
    apt: {
      type: 'object',
      properties: {
        sources: {
          type: 'object',
          additionalProperties: {
            type: 'object',
            properties: { source: { type: 'string' }, key: { type: 'string' }, keyid: { type: 'string' }, keyserver: { type: 'string' }, filename: { type: 'string' } },
            additionalProperties: false,
          },
        },
      },
    },
    storage: { type: 'object' },
    identity: {
      type: 'object',
      properties: {
        realname: { type: 'string' }, username: { type: 'string' }, hostname: { type: 'string' }, password: { type: 'string' },
        groups: { oneOf: [{ type: 'array', items: { type: 'string' } }, { type: 'object', properties: { override: { type: 'array', items: { type: 'string' } }, append: { type: 'array', items: { type: 'string' } } } }] },
      },
      required: ['username', 'hostname', 'password'],
      additionalProperties: false,
    },
    ssh: { type: 'object', properties: { 'install-server': { type: 'boolean' }, 'authorized-keys': { type: 'array', items: { type: 'string' } }, 'allow-pw': { type: 'boolean' } } },
    snaps: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, channel: { type: 'string' }, classic: { type: 'boolean' } }, required: ['name'], additionalProperties: false } },
    'active-directory': { type: 'object', properties: { 'admin-name': { type: 'string' }, 'domain-name': { type: 'string' } }, additionalProperties: false },
    codecs: { type: 'object', properties: { install: { type: 'boolean' } } },
    drivers: { type: 'object', properties: { install: { type: 'boolean' } } },
    oem: { type: 'object', properties: { install: { oneOf: [{ type: 'boolean' }, { type: 'string', const: 'auto' }] } }, required: ['install'] },
    timezone: { type: 'string' },
    updates: { type: 'string', enum: ['security', 'all'] },
    'late-commands': commands,
    shutdown: { type: 'string', enum: ['reboot', 'poweroff'] },
  },
  required: ['version'],
  additionalProperties: false,
  anyOf: [{ required: ['identity'] }, { required: ['user-data'] }, { required: ['interactive-sections'] }],
};
