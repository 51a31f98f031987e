/**
 * Ubuntu autoinstall, cloud-config and Agama files pass the other side's tools:
 *  - every rendered user-data (autoinstall and cloud-image) passes Debian's
 *    `cloud-init schema --config-file` (package cloud-init);
 *  - the autoinstall section validates against forge's encoding of
 *    subiquity's autoinstall schema with python3-jsonschema, and every Agama
 *    profile against forge's encoding of Agama's profile schema;
 *  - forge's own checker (what `forge validate` runs) agrees on the good
 *    files and on broken ones;
 *  - each tool really rejects a broken file (the checks can fail).
 * Over the golden cases of test/lib/render-fixtures.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { need } from '../lib/env.js';
import { renderAll } from '../lib/render-golden.js';
import { AUTOINSTALL_SCHEMA } from '../../server/render/checks/schemas/autoinstall.js';
import { AGAMA_SCHEMA } from '../../server/render/checks/schemas/agama.js';
import { checkUserData } from '../../server/render/checks/userdata.js';
import { checkAgama } from '../../server/render/checks/agama.js';
import { validateSchema, type Schema } from '../../server/render/checks/jsonschema.js';

const all = renderAll();

function withDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'fgci-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function cloudInitSchema(text: string): { ok: boolean; out: string } {
  return withDir((dir) => {
    const p = join(dir, 'user-data');
    writeFileSync(p, text);
    const r = spawnSync('cloud-init', ['schema', '--config-file', p], { encoding: 'utf8' });
    return { ok: r.status === 0 && /Valid cloud-config/.test(r.stdout), out: r.stdout + r.stderr };
  });
}

const PY = `
import json, sys, jsonschema
schema = json.load(open(sys.argv[1])); doc = json.load(open(sys.argv[2]))
errs = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errs: print("/".join(map(str, e.path)) + ": " + e.message)
sys.exit(1 if errs else 0)
`;

function pyJsonschema(schema: Schema, doc: unknown): { ok: boolean; out: string } {
  return withDir((dir) => {
    writeFileSync(join(dir, 's.json'), JSON.stringify(schema));
    writeFileSync(join(dir, 'd.json'), JSON.stringify(doc));
    const r = spawnSync('python3', ['-c', PY, join(dir, 's.json'), join(dir, 'd.json')], { encoding: 'utf8' });
    if (r.status !== 0 && r.status !== 1) throw new Error(`python3 jsonschema: ${r.stderr}`);
    return { ok: r.status === 0, out: r.stdout + r.stderr };
  });
}

const userData = all.filter((r) => r.format === 'autoinstall' || r.format === 'cloud-config');
assert.ok(userData.length >= 14);

for (const r of userData) {
  test(`${r.format} ${r.id} passes cloud-init schema --config-file and forge's checker`, (t) => {
    if (need(t, { commands: ['cloud-init'] }) !== undefined) return;
    const v = cloudInitSchema(r.text);
    assert.ok(v.ok, v.out);
    assert.deepEqual(checkUserData(r.text), []);
  });
}

test('cloud-init schema really rejects a broken cloud-config, and so does forge', (t) => {
  if (need(t, { commands: ['cloud-init'] }) !== undefined) return;
  const bad = '#cloud-config\nssh_authorized_keys: 5\nphone_home: {tries: "x"}\n';
  assert.equal(cloudInitSchema(bad).ok, false);
  const msgs = checkUserData(bad).map((p) => p.message).join('\n');
  assert.match(msgs, /ssh_authorized_keys: is integer, must be array/);
  assert.match(msgs, /phone_home: missing required "url"/);
  assert.match(checkUserData('hostname: x\n')[0]!.message, /#cloud-config/);
});

for (const r of all.filter((x) => x.format === 'autoinstall')) {
  test(`autoinstall ${r.id}: the autoinstall section validates against the subiquity schema encoding (python3-jsonschema and forge)`, (t) => {
    if (need(t, { commands: ['python3'] }) !== undefined) return;
    const ai = (parse(r.text) as { autoinstall: unknown }).autoinstall;
    const v = pyJsonschema(AUTOINSTALL_SCHEMA, ai);
    assert.ok(v.ok, v.out);
    assert.deepEqual(validateSchema(ai, AUTOINSTALL_SCHEMA), []);
  });
}

test('the autoinstall schema encoding rejects what subiquity rejects (python3-jsonschema and forge agree)', (t) => {
  if (need(t, { commands: ['python3'] }) !== undefined) return;
  const good = (parse(all.find((r) => r.format === 'autoinstall' && r.id === 'single-nic-dhcp')!.text) as { autoinstall: Record<string, unknown> }).autoinstall;
  const id = good['identity'] as Record<string, unknown>;
  const broken: [string, Record<string, unknown>][] = [
    ['no version', { ...good, version: undefined }],
    ['version 2', { ...good, version: 2 }],
    ['identity without password', { ...good, identity: { ...id, password: undefined } }],
    ['shutdown halt', { ...good, shutdown: 'halt' }],
    ['unknown top-level key', { ...good, 'late-comands': [] }],
    ['keyboard without layout', { ...good, keyboard: {} }],
    ['no identity nor user-data', { ...good, identity: undefined }],
  ];
  for (const [what, doc] of broken) {
    const clean = JSON.parse(JSON.stringify(doc)) as unknown;
    assert.equal(pyJsonschema(AUTOINSTALL_SCHEMA, clean).ok, false, `python3-jsonschema accepted: ${what}`);
    assert.ok(validateSchema(clean, AUTOINSTALL_SCHEMA).length > 0, `forge accepted: ${what}`);
  }
});

for (const r of all.filter((x) => x.format === 'agama')) {
  test(`agama ${r.id} validates against the Agama profile schema encoding (python3-jsonschema and forge)`, (t) => {
    if (need(t, { commands: ['python3'] }) !== undefined) return;
    const doc = JSON.parse(r.text) as unknown;
    const v = pyJsonschema(AGAMA_SCHEMA, doc);
    assert.ok(v.ok, v.out);
    assert.deepEqual(checkAgama(r.text), []);
  });
}

test('the Agama schema encoding rejects broken profiles (python3-jsonschema and forge agree)', (t) => {
  if (need(t, { commands: ['python3'] }) !== undefined) return;
  const good = JSON.parse(all.find((r) => r.format === 'agama' && r.id === 'static-multi-nic')!.text) as Record<string, unknown>;
  const net = good['network'] as { connections: Record<string, unknown>[] };
  const broken: [string, Record<string, unknown>][] = [
    ['product without id', { ...good, product: {} }],
    ['unknown key', { ...good, produkt: { id: 'SLES' } }],
    ['bad method4', { ...good, network: { connections: [{ ...net.connections[0], method4: 'dhcp' }] } }],
    ['script with no content', { ...good, scripts: { pre: [{ name: 'x' }] } }],
    ['vlan id too large', { ...good, network: { connections: [{ id: 'v', vlan: { id: 5000, parent: 'eth0' } }] } }],
  ];
  for (const [what, doc] of broken) {
    assert.equal(pyJsonschema(AGAMA_SCHEMA, doc).ok, false, `python3-jsonschema accepted: ${what}`);
    assert.ok(validateSchema(doc, AGAMA_SCHEMA).length > 0, `forge accepted: ${what}`);
  }
  assert.match(checkAgama('{"product":')[0]!.message, /not JSON/);
});

for (const r of all.filter((x) => x.format === 'network-config')) {
  test(`network-config ${r.id} is a version 2 document whose devices carry the system's addresses`, () => {
    const doc = parse(r.text) as Record<string, unknown>;
    assert.equal(doc['version'], 2);
    assert.ok(['ethernets', 'bonds', 'bridges', 'vlans'].some((k) => typeof doc[k] === 'object'));
    if (r.id === 'static-multi-nic') {
      assert.deepEqual((doc['bonds'] as Record<string, { interfaces: string[]; parameters: unknown }>)['bond0']!.interfaces, ['eth1', 'eth2']);
      assert.deepEqual((doc['bonds'] as Record<string, { parameters: unknown }>)['bond0']!.parameters, { mode: 'active-backup', 'mii-monitor-interval': 100 });
    }
    if (r.id === 'bridge-vlan') {
      assert.deepEqual((doc['vlans'] as Record<string, unknown>)['eth2.100'], { id: 100, link: 'eth2', dhcp4: false, addresses: ['172.16.100.21/24'], nameservers: { addresses: ['10.98.0.1'], search: ['lab.example'] } });
    }
  });
}
