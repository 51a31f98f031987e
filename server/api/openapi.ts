/**
 * The OpenAPI 3.1 document served at /api/v1/openapi.json, generated from
 * the same field tables the validator uses, so it cannot drift from them.
 */
import { CATALOGUE } from '../errors.js';
import { FIELDS, INTERFACE_FIELDS } from '../core/validate.js';
import type { FieldSpec } from '../core/validate.js';
import { INHERIT } from '../core/model.js';
import type { ObjectKind } from '../core/model.js';

type Schema = Record<string, unknown>;

function fieldSchema(s: FieldSpec): Schema {
  let sch: Schema;
  switch (s.type) {
    case 'int':
      sch = { type: 'integer', ...(s.min !== undefined ? { minimum: s.min } : {}), ...(s.max !== undefined ? { maximum: s.max } : {}) };
      break;
    case 'number':
      sch = { type: 'number', ...(s.min !== undefined ? { minimum: s.min } : {}) };
      break;
    case 'bool':
      sch = { type: 'boolean' };
      break;
    case 'enum':
      sch = { type: 'string', enum: [...(s.values ?? [])] };
      break;
    case 'dict':
      sch = { type: 'object', additionalProperties: { type: ['string', 'null'] } };
      break;
    case 'list':
      sch = { type: 'array', items: { type: 'string' } };
      break;
    case 'name':
      sch = { type: 'string', pattern: '^[A-Za-z0-9._-]+$', maxLength: 128 };
      break;
    case 'mac':
      sch = { type: 'string', pattern: '^([0-9a-f]{2}(:[0-9a-f]{2}){5}|random|)$' };
      break;
    default:
      sch = { type: 'string' };
  }
  if (s.inherit === true) sch = { anyOf: [sch, { const: INHERIT }] };
  return { ...sch, description: s.doc, ...(s.readonly === true ? { readOnly: true } : {}) };
}

function objectSchema(kind: ObjectKind): Schema {
  const props: Record<string, Schema> = {};
  for (const [k, s] of Object.entries(FIELDS[kind])) props[k] = fieldSchema(s);
  if (kind === 'system') {
    props['interfaces'] = {
      type: 'object',
      description: 'keyed by interface name; in PATCH a null value deletes the interface',
      additionalProperties: { $ref: '#/components/schemas/Interface' },
    };
  }
  const required = Object.entries(FIELDS[kind]).filter(([, s]) => s.required === true).map(([k]) => k);
  return { type: 'object', properties: props, required, additionalProperties: false };
}

export function openapiDocument(version: string): Schema {
  const paths: Record<string, Schema> = {};
  const err = { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  const sec = [{ bearer: [] }];
  for (const [kind, plural] of [['distro', 'distros'], ['profile', 'profiles'], ['system', 'systems']] as const) {
    const ref = { $ref: `#/components/schemas/${kind[0]!.toUpperCase()}${kind.slice(1)}` };
    const one = { content: { 'application/json': { schema: ref } } };
    const name = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
    const newName = { content: { 'application/json': { schema: { type: 'object', properties: { new_name: { type: 'string' } }, required: ['new_name'] } } } };
    paths[`/api/v1/${plural}`] = {
      get: { summary: `list ${plural}; query parameters filter by field (globs * ?)`, responses: { 200: { description: 'objects', content: { 'application/json': { schema: { type: 'array', items: ref } } } }, 400: err } },
      post: { summary: `create a ${kind}`, security: sec, requestBody: one, responses: { 201: { description: 'created', ...one }, 400: err, 401: err, 403: err, 409: err } },
    };
    paths[`/api/v1/${plural}/bulk`] = {
      post: { summary: `create many ${plural}, all or nothing`, security: sec, requestBody: { content: { 'application/json': { schema: { type: 'array', items: ref } } } }, responses: { 201: { description: '{created: n}' }, 400: err, 409: err } },
    };
    paths[`/api/v1/${plural}/{name}`] = {
      parameters: [name],
      get: { summary: `get a ${kind}`, responses: { 200: { description: 'object', ...one }, 404: err } },
      patch: { summary: `partial update of a ${kind}`, security: sec, requestBody: one, responses: { 200: { description: 'updated', ...one }, 400: err, 404: err, 409: err } },
      delete: { summary: `remove a ${kind} (recursive=true also removes what references it)`, security: sec, parameters: [{ name: 'recursive', in: 'query', schema: { type: 'boolean' } }], responses: { 200: { description: '{removed: [..]}' }, 404: err, 409: err } },
    };
    paths[`/api/v1/${plural}/{name}/rename`] = { parameters: [name], post: { summary: 'rename, updating references', security: sec, requestBody: newName, responses: { 200: { description: 'renamed', ...one }, 409: err } } };
    paths[`/api/v1/${plural}/{name}/copy`] = { parameters: [name], post: { summary: 'copy (systems lose MACs and IPs)', security: sec, requestBody: newName, responses: { 201: { description: 'copy', ...one }, 409: err } } };
    if (kind !== 'distro') {
      paths[`/api/v1/${plural}/{name}/blended`] = { parameters: [name], get: { summary: 'blended variables (dumpvars)', responses: { 200: { description: 'variables', content: { 'application/json': { schema: { type: 'object' } } } }, 404: err } } };
    }
  }
  paths['/api/v1/systems/{name}/events'] = {
    parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
    get: { summary: 'event timeline of a system', responses: { 200: { description: 'events' }, 404: err } },
    post: { summary: 'record an event', security: sec, responses: { 201: { description: 'event' }, 400: err } },
  };
  paths['/api/v1/whoami'] = { get: { summary: 'the role of the bearer token sent (anonymous without one): what the web UI may show', responses: { 200: { description: 'role' }, 403: err } } };
  paths['/api/v1/leases'] = { get: { summary: 'DHCP leases as stored', responses: { 200: { description: 'leases' } } } };
  paths['/api/v1/events/stream'] = {
    get: {
      summary: 'live events as server-sent events (text/event-stream); ?system=GLOB&type=a,b*, resume with Last-Event-ID or ?since_id=N',
      responses: { 200: { description: 'event stream' }, 400: err, 503: err },
    },
  };
  paths['/api/v1/events/latest'] = { get: { summary: 'latest event of every system', responses: { 200: { description: 'events' } } } };
  paths['/api/v1/export'] = { get: { summary: 'every object as one JSON document', security: sec, responses: { 200: { description: 'export document' } } } };
  paths['/api/v1/import'] = { post: { summary: 'import an export document, all or nothing (replace=true overwrites)', security: sec, responses: { 200: { description: 'counts' }, 400: err, 409: err } } };
  paths['/api/v1/check'] = { get: { summary: 'configuration problems', responses: { 200: { description: '{problems: [...]}' } } } };
  paths['/api/v1/health'] = { get: { summary: 'liveness and version', responses: { 200: { description: 'ok' } } } };
  const sysParam = [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }];
  paths['/api/v1/systems/{name}/power'] = {
    parameters: sysParam,
    get: { summary: 'power state through the system\'s power driver', security: sec, responses: { 200: { description: 'state' }, 404: err, 502: err } },
    post: { summary: 'power action {"action": "on|off|reboot|status|reinstall"}', security: sec, responses: { 200: { description: 'result' }, 400: err, 404: err, 502: err } },
  };
  paths['/api/v1/systems/{name}/reinstall'] = { parameters: sysParam, post: { summary: 'netboot on, PXE next boot, power cycle', security: sec, responses: { 200: { description: 'result' }, 404: err, 502: err } } };
  const nameParam = [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }];
  paths['/api/v1/discover'] = {
    post: { summary: 'discovery image report (public: 64 kB, schema-checked, rate-limited; a known system\'s MAC is 409 KNOWN_SYSTEM)', responses: { 200: { description: 'refreshed' }, 201: { description: 'new; {name, action, system?, rule?}' }, 400: err, 409: err, 413: err, 429: err } },
  };
  paths['/api/v1/discover/{mac}'] = {
    parameters: [{ name: 'mac', in: 'path', required: true, schema: { type: 'string' } }],
    get: { summary: 'what the discovery image does next {action: wait|reboot|kexec|poweroff} (public, rate-limited)', responses: { 200: { description: 'instruction' }, 400: err, 429: err } },
  };
  paths['/api/v1/discovered'] = { get: { summary: 'discovered machines with their facts', responses: { 200: { description: 'list' } } } };
  paths['/api/v1/discovered/{name}'] = {
    parameters: nameParam,
    get: { summary: 'one discovered machine', responses: { 200: { description: 'discovered' }, 404: err } },
    delete: { summary: 'forget a discovered machine', security: sec, responses: { 200: { description: 'removed' }, 404: err } },
  };
  paths['/api/v1/discovered/{name}/provision'] = {
    parameters: nameParam,
    post: { summary: 'make a system from it {profile, hostname?}', security: sec, responses: { 201: { description: '{discovered, system}' }, 400: err, 404: err, 409: err } },
  };
  paths['/api/v1/rules'] = {
    get: { summary: 'discovery rules by priority', responses: { 200: { description: 'rules' } } },
    post: { summary: 'add a rule {name, priority, match, profile, hostname, max, comment}', security: sec, responses: { 201: { description: 'rule' }, 400: err, 409: err } },
  };
  paths['/api/v1/rules/test'] = {
    get: { summary: 'every rule\'s verdict on ?discovered=NAME and the one that would fire', responses: { 200: { description: 'verdicts' }, 400: err, 404: err } },
  };
  paths['/api/v1/rules/{name}'] = {
    parameters: nameParam,
    get: { summary: 'one rule', responses: { 200: { description: 'rule' }, 404: err } },
    patch: { summary: 'change fields of a rule', security: sec, responses: { 200: { description: 'rule' }, 400: err, 404: err } },
    delete: { summary: 'remove a rule', security: sec, responses: { 200: { description: 'removed' }, 404: err } },
  };
  paths['/api/v1/power'] = { post: { summary: 'power action on every system matching {"name": GLOB}, one result each', security: sec, responses: { 200: { description: '{results: [...]}' }, 400: err } } };

  // Routes served by the autoinstall and boot modules (same server, same error bodies).
  const text = { description: 'text', content: { 'text/plain': { schema: { type: 'string' } } } };
  const kindName = [
    { name: 'kind', in: 'path', required: true, schema: { type: 'string', enum: ['system', 'profile'] } },
    { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
  ];
  const sysName = [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }];
  paths['/autoinstall/{kind}/{name}'] = { parameters: kindName, get: { summary: 'rendered kickstart/preseed/AutoYaST (installers fetch this)', responses: { 200: text, 404: err, 500: err } } };
  paths['/cblr/svc/op/autoinstall/{kind}/{name}'] = { parameters: kindName, get: { summary: 'Cobbler alias of /autoinstall', responses: { 200: text } } };
  paths['/cblr/svc/op/ks/{kind}/{name}'] = { parameters: kindName, get: { summary: 'Cobbler (koan) alias of /autoinstall', responses: { 200: text } } };
  for (const cb of ['install/start', 'install/done', 'firstboot']) {
    paths[`/api/v1/systems/{name}/${cb}`] = {
      parameters: sysName,
      get: { summary: `install callback ${cb} (no token: installers cannot hold one)`, responses: { 200: { description: 'recorded' }, 404: err } },
      post: { summary: `install callback ${cb}`, responses: { 200: { description: 'recorded' }, 404: err } },
    };
  }
  paths['/api/v1/systems/{name}/install/report'] = {
    parameters: sysName,
    post: { summary: 'subiquity webhook reporter (autoinstall reporting): one JSON install event -> install_progress', responses: { 200: { description: 'recorded' }, 404: err, 413: err } },
  };
  paths['/api/v1/systems/{name}/cloud-init/done'] = {
    parameters: sysName,
    get: { summary: 'cloud-init phone_home -> cloud_init_done (no token)', responses: { 200: { description: 'recorded' }, 404: err } },
    post: { summary: 'cloud-init phone_home (form: instance_id, hostname, fqdn) -> cloud_init_done', responses: { 200: { description: 'recorded' }, 404: err } },
  };
  paths['/cloud-init/{kind}/{name}/{file}'] = {
    parameters: [...kindName, { name: 'file', in: 'path', required: true, schema: { type: 'string', enum: ['user-data', 'meta-data', 'vendor-data', 'network-config'] } }],
    get: { summary: 'cloud-init NoCloud seed file, rendered at request time (Ubuntu autoinstall reads user-data here)', responses: { 200: text, 404: err, 500: err } },
  };
  paths['/autoinstall/{kind}/{name}/repo-key/{file}'] = {
    parameters: [...kindName, { name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
    get: { summary: 'an inline armoured repository key (autoinstall_meta repo_key_NAME) as NAME.asc', responses: { 200: text, 404: err } },
  };
  paths['/cblr/svc/op/nopxe/system/{name}'] = { parameters: sysName, get: { summary: 'Cobbler alias of install/done', responses: { 200: { description: 'recorded' } } } };
  paths['/api/v1/systems/{name}/autoinstall'] = { parameters: sysName, get: { summary: 'rendered autoinstall (preview, no event)', responses: { 200: text, 500: err } } };
  paths['/api/v1/profiles/{name}/autoinstall'] = { parameters: sysName, get: { summary: 'rendered autoinstall (preview)', responses: { 200: text, 500: err } } };
  paths['/api/v1/validate'] = { get: { summary: 'render every profile and system, list every error', responses: { 200: { description: '{ok, checked, errors}' } } } };
  paths['/api/v1/templates'] = { get: { summary: 'templates and snippets with what shadows what', responses: { 200: { description: 'lists' } } } };
  paths['/api/v1/templates/effective'] = { get: { summary: 'template and snippet files in effect for ?system=N or ?profile=N', responses: { 200: { description: 'report' } } } };
  paths['/api/v1/templates/file'] = { get: { summary: 'one template or snippet (?name=N[&snippet=1])', responses: { 200: { description: 'file in effect and content' } } } };
  paths['/boot/ipxe/{mac}'] = { parameters: [{ name: 'mac', in: 'path', required: true, schema: { type: 'string' } }], get: { summary: 'iPXE script for a MAC (aa:bb:.. or aa-bb-..)', responses: { 200: text } } };
  paths['/boot/ipxe/default'] = { get: { summary: 'iPXE script for unknown machines', responses: { 200: text } } };
  paths['/boot/loaders/{file}'] = { parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }], get: { summary: 'boot loader file (undionly.kpxe, ipxe.efi, pxelinux.0, ...)', responses: { 200: { description: 'file' }, 404: err } } };
  paths['/boot/distro/{name}/{which}'] = {
    parameters: [...sysName, { name: 'which', in: 'path', required: true, schema: { type: 'string', enum: ['kernel', 'initrd'] } }],
    get: { summary: 'kernel or initrd (HEAD and single Range supported)', responses: { 200: { description: 'file' }, 206: { description: 'range' }, 416: err } },
  };
  paths['/api/v1/distros/{name}/files'] = { parameters: sysName, get: { summary: 'kernel/initrd URL, size and sha256', responses: { 200: { description: '{kernel, initrd}' }, 404: err } } };
  paths['/api/v1/loaders'] = { get: { summary: 'boot loaders found and missing', responses: { 200: { description: 'loaders' } } } };
  paths['/api/v1/boot/info'] = { get: { summary: 'base URL, loaders, unknown-machine policy and stall threshold', responses: { 200: { description: 'boot settings' } } } };
  paths['/api/v1/status'] = { get: { summary: 'install stage of every system', responses: { 200: { description: 'stages' } } } };

  const ifaceProps: Record<string, Schema> = {};
  for (const [k, s] of Object.entries(INTERFACE_FIELDS)) ifaceProps[k] = fieldSchema(s);
  return {
    openapi: '3.1.0',
    info: { title: 'forge', version, description: 'Network install server API. Writes need Authorization: Bearer TOKEN.' },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Distro: objectSchema('distro'),
        Profile: objectSchema('profile'),
        System: objectSchema('system'),
        Interface: { type: 'object', properties: ifaceProps, additionalProperties: false },
        Error: {
          type: 'object',
          properties: { code: { type: 'string', enum: Object.keys(CATALOGUE) }, message: { type: 'string' }, field: { type: 'string' }, details: {} },
          required: ['code', 'message'],
        },
      },
    },
  };
}
