/**
 * The server address a request is handled under (services/origin.ts): atServerAddress, the
 * synchronous form the DHCP handler uses per packet instead of an AsyncLocalStorage context,
 * wins inside its call, restores what was there after (also on a throw), and the boot URL in a
 * DHCP answer is built from the address facing the client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { atServerAddress, requestServerAddress, withServerAddress } from '../../server/services/origin.js';
import { createDhcpHandler } from '../../server/services/dhcp.js';
import { decode } from '../../server/protocol/dhcp4/index.js';
import { fixture } from './dhcp-fixtures.js';

test('origin: atServerAddress sets the address for its call only, nested in a request context or not', async () => {
  assert.equal(requestServerAddress(), undefined);
  assert.equal(atServerAddress('10.1.0.1', () => requestServerAddress()), '10.1.0.1');
  assert.equal(requestServerAddress(), undefined);
  await withServerAddress('10.2.0.1', async () => {
    await Promise.resolve();
    assert.equal(atServerAddress('10.1.0.1', () => requestServerAddress()), '10.1.0.1');
    assert.equal(atServerAddress('10.3.0.1', () => atServerAddress('10.4.0.1', () => requestServerAddress()) + ' ' + requestServerAddress()), '10.4.0.1 10.3.0.1');
    assert.equal(requestServerAddress(), '10.2.0.1');
  });
  assert.throws(() => atServerAddress('10.5.0.1', () => {
    throw new Error('boom');
  }));
  assert.equal(requestServerAddress(), undefined, 'restored after a throw');
});

test('origin: a DHCP answer\'s boot URL carries the address facing the client, read through requestServerAddress', async () => {
  const f = await fixture();
  try {
    await f.addSystem('vm1', '52:54:00:f0:9e:01', '10.98.0.22');
    const h = await createDhcpHandler({ ...f.ctx, baseUrl: () => `http://${requestServerAddress() ?? 'none'}:8080` });
    const golden = Buffer.from(readFileSync(fileURLToPath(new URL('../../../test/golden/dhcp/ipxe-bios-discover.hex', import.meta.url)), 'utf8').replace(/\s+/g, ''), 'hex');
    const out = await h.handle({ data: golden, address: '0.0.0.0', port: 68, localPort: 67 });
    assert.ok(out);
    assert.equal(decode(out.data).file, 'http://10.98.0.1:8080/boot/ipxe/52:54:00:f0:9e:01');
    assert.equal(requestServerAddress(), undefined, 'nothing left set after the packet');
  } finally {
    await f.cleanup();
  }
});
