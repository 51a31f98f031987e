/**
 * The systems insert's documents column as one text[] literal (store/postgres/objects.ts
 * textArrayLiteral) against the pg driver's own quoting of the same array (pg/lib/utils
 * prepareValue, what it sends when given the array): equal for JSON documents and tricky
 * strings (quotes, backslashes, escaped control characters, non-ASCII, commas and braces); the
 * array itself handed back (for the driver to quote) when an item has a raw control character or
 * a surrogate. The literal reaching PostgreSQL and coming back equal is store-contract's part.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { textArrayLiteral } from '../../server/store/postgres/objects.js';

const pgUtils = createRequire(import.meta.url)('pg/lib/utils') as { prepareValue(v: unknown): unknown };

test('textArrayLiteral: the literal the pg driver makes, for documents and tricky strings', () => {
  const doc = JSON.stringify({ name: 'sys1', comment: 'say "hi" \\ back\\slash\nnew line\ttab', kernel_options: { 'a=b': 'c,d{e}' }, owner: 'żółć ☃', empty: '' });
  const cases: string[][] = [
    [doc],
    [doc, JSON.stringify({ name: 'sys2', interfaces: { eth0: { mac_address: '52:54:00:00:00:02' } } })],
    ['', 'a', '"', '\\', '\\"', '{}', '{"a":1}', ',', 'NULL', 'null', ' lead and trail ', 'é'],
    [],
  ];
  for (const c of cases) {
    const mine = textArrayLiteral(c);
    assert.equal(typeof mine, 'string', JSON.stringify(c).slice(0, 80));
    assert.equal(mine, pgUtils.prepareValue(c), JSON.stringify(c).slice(0, 80));
  }
});

test('textArrayLiteral: raw control characters and surrogates go to the driver', () => {
  for (const bad of ['line\nbreak', 'nul\u0000', 'emoji 😀', 'lone \ud800']) {
    const items = ['fine', bad];
    assert.equal(textArrayLiteral(items), items, JSON.stringify(bad));
  }
});
