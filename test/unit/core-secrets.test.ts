/** The secret set (one definition) and the masks it applies to objects and blended variables. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MASK, filterRefusal, isSecretMetaKey, nothingToRedact, redact, redactVars } from '../../server/core/secrets.js';
import { validateNew } from '../../server/core/validate.js';

test('the secret autoinstall_meta keys', () => {
  for (const k of ['root_password_hash', 'user_password', 'grub_password_hash', 'wifi_secret', 'registration_token']) assert.equal(isSecretMetaKey(k), true, k);
  for (const k of ['ssh_authorized_keys', 'ssh_key', 'password_policy', 'tokenizer', 'secretary', 'tree', 'timezone', 'root_password_hash_note']) assert.equal(isSecretMetaKey(k), false, k);
});

test('redact masks power_pass and secret meta values, keeps the rest and empty values, never mutates', () => {
  const s = { name: 'a', power_pass: 'p', autoinstall_meta: { root_password_hash: 'h', x_token: '', ssh_authorized_keys: 'ssh-ed25519 K' } };
  const r = redact('system', s);
  assert.deepEqual(r, { name: 'a', power_pass: MASK, autoinstall_meta: { root_password_hash: MASK, x_token: '', ssh_authorized_keys: 'ssh-ed25519 K' } });
  assert.equal(s.autoinstall_meta.root_password_hash, 'h');
  assert.deepEqual(redact('distro', { name: 'd', autoinstall_meta: { a_secret: 's' } }), { name: 'd', autoinstall_meta: { a_secret: MASK } });
});

test('redactVars masks promoted top-level variables and the meta dict', () => {
  const v = redactVars({ root_password_hash: 'h', tree: 't', autoinstall_meta: { root_password_hash: 'h', tree: 't' } });
  assert.deepEqual(v, { root_password_hash: MASK, tree: 't', autoinstall_meta: { root_password_hash: MASK, tree: 't' } });
});

test('filters: secret fields never, autoinstall_meta only with the token', () => {
  assert.match(filterRefusal('system', 'power_pass', true) ?? '', /secret field/);
  assert.match(filterRefusal('profile', 'autoinstall_meta', false) ?? '', /needs the token/);
  assert.equal(filterRefusal('profile', 'autoinstall_meta', true), undefined);
  assert.equal(filterRefusal('profile', 'name', false), undefined);
});

test('nothingToRedact is true exactly when the redacted copy serialises to the same JSON (the create answer sends the stored text then)', () => {
  const base = { ...validateNew('system', { name: 'r1', profile: 'p', interfaces: { eth0: { mac_address: '52:54:00:00:00:01' } } }) } as Record<string, unknown>;
  const variants: Record<string, unknown>[] = [
    base,
    { ...base, power_pass: 'hunter2' },
    { ...base, power_pass: '' },
    { ...base, autoinstall_meta: { root_password_hash: '$6$x' } },
    { ...base, autoinstall_meta: { root_password_hash: '', locale: 'C' } },
    { ...base, autoinstall_meta: { wifi_secret: 's', locale: 'C' } },
    { ...base, autoinstall_meta: { user_password: 7 } },
    { ...base, autoinstall_meta: { locale: 'C', ssh_key: 'ssh-ed25519 AAAA' } },
    { ...base, autoinstall_meta: [] },
    { ...base, autoinstall_meta: null },
  ];
  const seen = new Set<boolean>();
  for (const v of variants) {
    const same = JSON.stringify(redact('system', v)) === JSON.stringify(v);
    assert.equal(nothingToRedact('system', v), same, JSON.stringify(v).slice(0, 200));
    seen.add(same);
  }
  assert.deepEqual([...seen].sort(), [false, true], 'both outcomes covered');
  for (const kind of ['distro', 'profile', 'subnet'] as const) assert.equal(nothingToRedact(kind, { name: 'x' }), true);
  assert.equal(nothingToRedact('profile', { name: 'x', autoinstall_meta: { registration_token: 't' } }), false);
});
