/**
 * The start-up probe's cluster marker (services/dhcp/probe.ts): a probe is a peer's only when
 * its vendor class is forge-probe and option 43 sub-option 1 (RFC 2132 s8.4) carries this
 * store's cluster id, after a round trip through the real codec. And the id itself, on real
 * SQLite stores: made by the migration, the same when the file is opened again, different for
 * another file (PostgreSQL's: store-postgres-claims.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageType, Opt, Options, decode, encode } from '../../server/protocol/dhcp4/index.js';
import { PROBE_VENDOR_CLASS, isPeerProbe, probeVendorInfo } from '../../server/services/dhcp/probe.js';
import { openSqliteStore } from '../../server/store/sqlite.js';
import { bootRequest } from '../lib/dhcp-request.js';

const ID = '0123456789abcdef0123456789abcdef';

function probe(vendorClass: string | undefined, info: Buffer | undefined) {
  const o = new Options().setUint8(Opt.MessageType, MessageType.DISCOVER);
  if (vendorClass !== undefined) o.setString(Opt.VendorClass, vendorClass);
  if (info !== undefined) o.set(Opt.VendorSpecific, info);
  return decode(encode(bootRequest({ mac: '02:00:00:00:00:01', xid: 1, options: o, flags: 0x8000 })));
}

test('a probe is a peer\'s only with forge-probe and this cluster id in option 43', () => {
  assert.equal(isPeerProbe(probe(PROBE_VENDOR_CLASS, probeVendorInfo(ID)), ID), true);
  assert.equal(isPeerProbe(probe(PROBE_VENDOR_CLASS, probeVendorInfo('ffffffffffffffffffffffffffffffff')), ID), false, 'another store');
  assert.equal(isPeerProbe(probe(PROBE_VENDOR_CLASS, undefined), ID), false, 'an older forge: no id');
  assert.equal(isPeerProbe(probe('PXEClient:Arch:00000:UNDI:002001', probeVendorInfo(ID)), ID), false, 'option 43 means nothing under another vendor class');
  assert.equal(isPeerProbe(probe(undefined, undefined), ID), false, 'a client');
  assert.equal(isPeerProbe(probe(PROBE_VENDOR_CLASS, Buffer.of(1, 40, 1)), ID), false, 'a malformed option 43');
  assert.equal(isPeerProbe(probe(PROBE_VENDOR_CLASS, probeVendorInfo('')), ''), false, 'no id read yet: nobody is a peer');
  assert.deepEqual([...probeVendorInfo(ID).subarray(0, 2)], [1, 32], 'sub-option 1, 32 octets');
});

test('a SQLite store has one cluster id, kept across opens, another file another', async () => {
  const a = mkdtempSync(join(tmpdir(), 'fg-cluster-a-'));
  const b = mkdtempSync(join(tmpdir(), 'fg-cluster-b-'));
  try {
    const s1 = openSqliteStore(a);
    const id = await s1.clusterId();
    await s1.close();
    assert.match(id, /^[0-9a-f]{32}$/);
    const s2 = openSqliteStore(a);
    assert.equal(await s2.clusterId(), id, 'the same file, the same id');
    await s2.close();
    const s3 = openSqliteStore(b);
    assert.notEqual(await s3.clusterId(), id, 'another file, another id');
    await s3.close();
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});
