/**
 * forge's encoding of the parts of Agama's profile schema forge renders,
 * written from agama-project/agama rust/share/profile.schema.json,
 * storage.schema.json and software.schema.json (SLE 16): the top-level keys
 * (additionalProperties false), product (id required), hostname, l10n,
 * root, user (fullName/userName/password required), network.connections
 * (id required; method4/method6, bond modes, vlan id/parent), software,
 * storage (drives with partitions, volume groups with a name) and scripts
 * (name required, exactly one of body/url/content). Sections forge never
 * renders (dasd, zfcp, iscsi, security, ...) are accepted as objects.
 * The tests validate every rendered profile against this with python3-jsonschema too.
 */
import type { Schema } from '../jsonschema.js';

const strings: Schema = { type: 'array', items: { type: 'string' } };
const keys: Schema = { anyOf: [{ type: 'string' }, strings] };
const script = (extra: Record<string, Schema>): Schema => ({
  type: 'object',
  additionalProperties: false,
  properties: { name: { type: 'string' }, body: { type: 'string' }, content: { type: 'string' }, url: { type: 'string' }, ...extra },
  required: ['name'],
  oneOf: [{ required: ['body'] }, { required: ['url'] }, { required: ['content'] }],
});
const generator: Schema = { type: 'object', additionalProperties: false, required: ['generate'], properties: { generate: { enum: ['default', 'mandatory'] } } };
const partition: Schema = { anyOf: [generator, { type: 'object', properties: { generate: { type: 'object' } }, required: ['generate'] }, { type: 'object', not: { required: ['generate'] } }] };

export const AGAMA_SCHEMA: Schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    files: { type: 'array' },
    scripts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        pre: { type: 'array', items: script({}) },
        postPartitioning: { type: 'array', items: script({}) },
        post: { type: 'array', items: script({ chroot: { type: 'boolean' } }) },
        init: { type: 'array', items: script({}) },
      },
    },
    bootloader: { type: 'object', properties: { stopOnBootMenu: { type: 'boolean' }, timeout: { type: 'integer', minimum: 0 }, extraKernelParams: { type: 'string' } } },
    dasd: { type: 'object' }, zfcp: { type: 'object' }, iscsi: { type: 'object' },
    hostname: { type: 'object', properties: { static: { type: 'string' }, transient: { type: 'string' } } },
    proxy: { type: 'object' }, ntp: { type: 'object' }, security: { type: 'object' }, questions: { type: 'object' },
    product: {
      type: 'object', additionalProperties: false, required: ['id'],
      properties: { id: { type: 'string' }, mode: { type: 'string' }, registrationCode: { type: 'string' }, registrationEmail: { type: 'string' }, registrationUrl: { type: 'string' }, addons: { type: 'array' } },
    },
    network: {
      type: 'object', additionalProperties: false,
      properties: {
        state: { type: 'object' },
        connections: {
          type: 'array',
          items: {
            type: 'object', additionalProperties: false, required: ['id'],
            properties: {
              id: { type: 'string' }, interface: { type: 'string' }, customMacAddress: { type: 'string' }, macAddress: { type: 'string' },
              mtu: { type: 'integer', minimum: 0 },
              method4: { enum: ['auto', 'manual', 'link-local', 'disabled'] },
              method6: { enum: ['auto', 'manual', 'dhcp', 'link-local', 'shared', 'disabled'] },
              gateway4: { type: 'string' }, gateway6: { type: 'string' }, addresses: strings, nameservers: strings, dnsSearchList: strings,
              ignoreAutoDns: { type: 'boolean' }, status: { enum: ['up', 'down', 'keep', 'removed'] }, autoconnect: { type: 'boolean' }, persistent: { type: 'boolean' },
              wireless: { type: 'object' }, match: { type: 'object' }, 'ieee-8021x': { type: 'object' },
              bond: { type: 'object', additionalProperties: false, properties: { mode: { enum: ['balance-rr', 'active-backup', 'balance-xor', 'broadcast', '802.3ad', 'balance-tlb', 'balance-alb'] }, options: { type: 'string' }, ports: strings } },
              bridge: { type: 'object', additionalProperties: false, properties: { stp: { type: 'boolean' }, forwardDelay: { type: 'integer', minimum: 0 }, priority: { type: 'integer', minimum: 0 }, maxAge: { type: 'integer', minimum: 0 }, helloTime: { type: 'integer', minimum: 0 }, ports: strings } },
              vlan: { type: 'object', additionalProperties: false, required: ['id', 'parent'], properties: { id: { type: 'integer', minimum: 0, maximum: 4094 }, parent: { type: 'string' }, protocol: { enum: ['802.1Q', '802.1ad'] } } },
            },
          },
        },
      },
    },
    user: {
      type: 'object', additionalProperties: false, required: ['fullName', 'userName', 'password'],
      properties: { fullName: { type: 'string' }, userName: { type: 'string' }, password: { type: 'string' }, hashedPassword: { type: 'boolean' }, sshPublicKey: keys, sshPublicKeys: keys },
    },
    root: { type: 'object', additionalProperties: false, properties: { password: { type: 'string' }, hashedPassword: { type: 'boolean' }, sshPublicKey: keys, sshPublicKeys: keys } },
    l10n: { type: 'object', additionalProperties: false, properties: { locale: { type: 'string' }, keymap: { type: 'string' }, timezone: { type: 'string' } } },
    localization: { type: 'object' },
    software: {
      type: 'object',
      properties: {
        patterns: { anyOf: [strings, { type: 'object', additionalProperties: false, properties: { add: strings, remove: strings } }] },
        packages: strings,
        onlyRequired: { type: 'boolean' },
        extraRepositories: { type: 'array', items: { type: 'object', additionalProperties: false, properties: { alias: { type: 'string' }, url: { type: 'string' }, priority: { type: 'integer' }, name: { type: 'string' }, productDir: { type: 'string' }, enabled: { type: 'boolean' }, allowUnsigned: { type: 'boolean' }, gpgFingerprints: strings } } },
      },
    },
    storage: {
      type: 'object', additionalProperties: false,
      properties: {
        boot: { type: 'object', additionalProperties: false, required: ['configure'], properties: { configure: { type: 'boolean' }, device: { type: 'string' } } },
        drives: { type: 'array', items: { type: 'object', properties: { search: {}, alias: { type: 'string' }, ptableType: { type: 'string' }, partitions: { type: 'array', items: partition } } } },
        volumeGroups: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: { type: 'string' }, search: {}, extentSize: {}, physicalVolumes: { type: 'array' }, logicalVolumes: { type: 'array' } } } },
        mdRaids: { type: 'array' },
      },
    },
    legacyAutoyastStorage: { type: 'array', items: { type: 'object' } },
    access: { type: 'object' },
  },
};
