/**
 * Golden files: the rendered kickstart, preseed and AutoYaST of the
 * representative systems (single NIC DHCP, static multi-NIC with a bond,
 * sub-profile overrides, per-system snippet override, and a profile render)
 * must match test/golden/render/<format>/<case>.<ext> byte for byte.
 * Regenerate on purpose only: UPDATE_GOLDEN=1 npm run test:unit
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXT, GOLDEN_DIR, renderAll } from '../lib/render-golden.js';
import { OVERRIDDEN_SNIPPET } from '../lib/render-fixtures.js';

const update = process.env['UPDATE_GOLDEN'] === '1';

for (const r of renderAll()) {
  test(`golden ${r.dir}/${r.id}`, () => {
    const file = join(GOLDEN_DIR, r.dir, `${r.id}.${EXT[r.format]}`);
    if (update) {
      mkdirSync(join(GOLDEN_DIR, r.dir), { recursive: true });
      writeFileSync(file, r.text);
    }
    assert.ok(existsSync(file), `${file} is missing: run UPDATE_GOLDEN=1 to create it`);
    assert.equal(r.text, readFileSync(file, 'utf8'), `${file} differs (UPDATE_GOLDEN=1 regenerates it on purpose)`);
  });
}

test('the per-system override is used for odd1 only, the shared snippet elsewhere', () => {
  for (const r of renderAll()) {
    const name = OVERRIDDEN_SNIPPET[r.format];
    if (name === '') continue;
    const part = r.snippets.find((s) => s.startsWith(`${name}:`));
    assert.ok(part !== undefined, `${r.format}/${r.id} used no ${name} snippet`);
    assert.equal(part, `${name}:${r.id === 'per-system-snippet' ? 'per_system:site' : 'shared:shipped'}`);
    if (r.id === 'per-system-snippet') assert.match(r.text, /per-system (partitioning|storage|packages) for odd1 \(site override\)/);
  }
});

test('sub-profile overrides reach the output (timezone, packages, removed keys)', () => {
  for (const r of renderAll().filter((x) => x.id === 'sub-profile' && x.format !== 'network-config')) {
    assert.match(r.text, /America\/New_York/, r.format);
    assert.match(r.text, /nginx/, r.format);
    assert.doesNotMatch(r.text, /ssh-ed25519/, `${r.format}: !ssh_authorized_keys must remove the keys`);
    assert.doesNotMatch(r.text, /Europe\/Paris/, r.format);
  }
});

test('static multi-NIC output carries every address and the bond', () => {
  // cloud-config carries no network (its seed's network-config does).
  for (const r of renderAll().filter((x) => x.id === 'static-multi-nic' && x.format !== 'cloud-config')) {
    assert.match(r.text, /10\.98\.0\.12/, r.format);
    assert.match(r.text, /192\.168\.50\.12/, r.format);
    assert.match(r.text, /eth1/, r.format);
  }
});
