/**
 * JsonRows (api/client.ts): the elements of a JSON array split out as they complete,
 * whatever the pieces the network cuts it into (every cut point tried),
 * strings holding brackets, commas, quotes and escapes included; a cut-off
 * or non-array answer is an error, never a short list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JsonRows } from '../../server/api/client.js';

const rowsOf = (pieces: string[]): unknown[] => {
  const out: unknown[] = [];
  const p = new JsonRows((t) => out.push(JSON.parse(t)));
  for (const x of pieces) p.push(x);
  p.end();
  return out;
};

const value = [{ name: 'a', s: 'x],[{"y\\\\' }, { n: [1, [2, {}]], e: '\\"' }, 'plain, "quoted"', 3.5, null, true, [], {}];

test('every cut of the text into two and three pieces gives the same elements', () => {
  for (const text of [JSON.stringify(value), JSON.stringify(value, null, 2), '[]', ' [ ] ', JSON.stringify([{ a: 1 }])]) {
    const want = JSON.parse(text) as unknown[];
    for (let i = 0; i <= text.length; i++) {
      assert.deepEqual(rowsOf([text.slice(0, i), text.slice(i)]), want, `cut at ${i} of ${text}`);
      const j = Math.min(text.length, i + 3);
      assert.deepEqual(rowsOf([text.slice(0, i), text.slice(i, j), text.slice(j)]), want);
    }
  }
});

test('elements are handed over as soon as they complete', () => {
  const seen: unknown[] = [];
  const p = new JsonRows((t) => seen.push(JSON.parse(t)));
  p.push('[{"name":"first"},');
  assert.deepEqual(seen, [{ name: 'first' }]);
  p.push('{"name":"sec');
  assert.equal(seen.length, 1);
  p.push('ond"}]');
  p.end();
  assert.deepEqual(seen, [{ name: 'first' }, { name: 'second' }]);
});

test('a cut-off answer, or one that is not an array, is an error', () => {
  assert.throws(() => rowsOf(['[{"a":1},{"b"']), /ended before its closing/);
  assert.throws(() => rowsOf(['[{"a":1}']), /ended before its closing/);
  assert.throws(() => rowsOf(['{"a":1}']), /not an array/);
  assert.throws(() => rowsOf(['[1] 2']), /after the closing/);
});
