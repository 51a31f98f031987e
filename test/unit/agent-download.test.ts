/**
 * The download progress bar: drawn only on a terminal, one redraw per
 * percent, ends with a newline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { progressBar } from '../../agent/download.js';
import { withMac } from '../../agent/flow.js';

function fakeStream(isTTY: boolean): { s: NodeJS.WriteStream; out: string[] } {
  const out: string[] = [];
  const s = { isTTY, write: (c: string) => out.push(c) > 0 } as unknown as NodeJS.WriteStream;
  return { s, out };
}

test('progress bar: terminal only, redrawn per percent', () => {
  const tty = fakeStream(true);
  const bar = progressBar('kernel', tty.s);
  for (let i = 0; i <= 1000; i++) bar.tick(i * 1048, 1048000);
  bar.end();
  assert.equal(tty.out.length, 102, '101 redraws (0..100 %) and a newline');
  assert.match(tty.out[100] ?? '', /^\rkernel\s+\[#{30}\] 100% 1\.0\/1\.0 MiB$/);
  assert.equal(tty.out.at(-1), '\n');
  const pipe = fakeStream(false);
  const quiet = progressBar('kernel', pipe.s);
  quiet.tick(1, 2);
  quiet.end();
  assert.deepEqual(pipe.out, []);
});

test('downloads carry the MAC so forge can attribute them', () => {
  assert.equal(withMac('http://f:1/boot/distro/d/kernel', '52:54:00:00:00:01'), 'http://f:1/boot/distro/d/kernel?mac=52%3A54%3A00%3A00%3A00%3A01');
  assert.equal(withMac('http://f:1/k', undefined), 'http://f:1/k');
});
