import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { OUI, isMac, normalizeMac, ouiFor, randomMac } from '../../server/core/mac.js';

test('normalizeMac accepts the usual spellings and returns lower-case colon form', () => {
  const ok: [string, string][] = [
    ['52:54:00:12:34:56', '52:54:00:12:34:56'],
    ['52-54-00-AB-CD-EF', '52:54:00:ab:cd:ef'],
    ['5254.00ab.cdef', '52:54:00:ab:cd:ef'],
    ['525400ABCDEF', '52:54:00:ab:cd:ef'],
    [' 52:54:00:12:34:56 ', '52:54:00:12:34:56'],
  ];
  for (const [i, want] of ok) assert.equal(normalizeMac(i), want, i);
  for (const bad of ['', '52:54:00:12:34', '52:54:00:12:34:56:78', '52:54-00:12:34:56', 'zz:54:00:12:34:56', '52:54:00:12:34:5', 'random']) {
    assert.equal(normalizeMac(bad), undefined, bad);
  }
});

test('ouiFor picks the platform prefix (Cobbler always used Xen)', () => {
  assert.equal(ouiFor('kvm'), '52:54:00');
  assert.equal(ouiFor('qemu'), '52:54:00');
  assert.equal(ouiFor('xenpv'), '00:16:3e');
  assert.equal(ouiFor('vmware'), '00:50:56');
  assert.equal(ouiFor(undefined), '52:54:00');
  assert.equal(ouiFor('<<inherit>>'), '52:54:00');
});

test('randomMac: valid, keeps the OUI, VMware range 00-3f', () => {
  fc.assert(
    fc.property(fc.constantFrom(...Object.values(OUI)), fc.uint8Array({ minLength: 3, maxLength: 3 }), (oui, bytes) => {
      const m = randomMac(oui, bytes);
      assert.ok(isMac(m), m);
      assert.ok(m.startsWith(oui + ':'));
      if (oui === OUI.vmware) assert.ok(parseInt(m.split(':')[3]!, 16) <= 0x3f, m);
      assert.equal(normalizeMac(m), m);
    }),
    { numRuns: 2000 },
  );
  assert.throws(() => randomMac('52:54:00', new Uint8Array(2)), RangeError);
});
