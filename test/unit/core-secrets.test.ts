/** The secret set (one definition) and the masks it applies to objects and blended variables. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MASK, filterRefusal, isSecretMetaKey, redact, redactVars } from '../../server/core/secrets.js';

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
