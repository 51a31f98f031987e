/**
 * core/ipv4.ts ipToInt: the hand-written parser (the DHCP hot path) gives exactly what the
 * dotted-quad regular expression gives, on edge cases and on random strings of the characters
 * an address is made of. The reference below is the function as it was before the fast path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipToInt } from '../../server/core/ipv4.js';

function reference(ip: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip.trim());
  if (m === null) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

test('ipToInt: edge cases agree with the regular expression', () => {
  const cases = [
    '0.0.0.0', '255.255.255.255', '10.98.1.7', '010.001.000.009', ' 10.0.0.1', '10.0.0.1 ', '\t10.0.0.1\n',
    '256.0.0.1', '1.2.3.256', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.4.', '1234.1.1.1',
    '', '.', '...', 'a.b.c.d', '1.2.3.4a', '1.2.3.-4', '1.2.3.4 5', '１.2.3.4', '1.2.3.4\u00a0',
  ];
  for (const c of cases) assert.equal(ipToInt(c), reference(c), JSON.stringify(c));
  assert.equal(ipToInt('255.255.255.255'), 0xffffffff);
  assert.equal(ipToInt('10.98.1.7'), (10 << 24 | 98 << 16 | 1 << 8 | 7) >>> 0);
});

test('ipToInt: 20,000 random near-addresses agree with the regular expression', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  let valid = 0;
  for (let i = 0; i < 20_000; i++) {
    // 3-5 parts of 0-4 digits (mostly 4 parts of 1-3), now and then a blank or a letter somewhere.
    const parts = Array.from({ length: rnd(8) === 0 ? 3 + rnd(3) : 4 }, () => Array.from({ length: rnd(6) === 0 ? rnd(5) : 1 + rnd(3) }, () => String(rnd(10))).join(''));
    let s = parts.join('.');
    const k = rnd(10);
    if (k === 0) s = ` ${s}`;
    else if (k === 1) s = `${s} `;
    else if (k === 2) s = s.slice(0, rnd(s.length + 1)) + 'x' + s.slice(rnd(s.length + 1));
    if (reference(s) !== undefined) valid++;
    assert.equal(ipToInt(s), reference(s), JSON.stringify(s));
  }
  assert.ok(valid > 1000, `enough valid addresses among them (${valid})`);
});
