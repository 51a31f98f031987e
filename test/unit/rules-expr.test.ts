/**
 * The discovery rule language: parse errors name the field and column, types
 * are checked at parse time, evaluation follows the operators' meaning, and
 * random input never throws anything but a ForgeError (no eval, bounded).
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { ForgeError } from '../../server/errors.js';
import { evaluate, expandTemplate, globMatch, parseMatch, MAX_DEPTH } from '../../server/rules/expr.js';
import type { Facts } from '../../server/rules/expr.js';

const FACTS: Facts = {
  ram_mib: 4096, cpus: 2, product: 'Standard PC (i440FX + PIIX, 1996)', vendor: 'QEMU', serial: 'WEB-0042',
  firmware: 'bios', 'disks.count': 1, 'disks.total_gib': 8, 'nics.count': 1, 'nics.up': 1,
};
const m = (src: string, f: Facts = FACTS): boolean => evaluate(parseMatch(src), f);

test('the issue example matches a 4 GiB QEMU PC with a disk, and not a smaller one', () => {
  const src = 'ram_mib>=4096 && disks.count>=1 && product~"Standard PC*"';
  assert.equal(m(src), true);
  assert.equal(m(src, { ...FACTS, ram_mib: 2048 }), false);
  assert.equal(m(src, { ...FACTS, 'disks.count': 0 }), false);
  assert.equal(m(src, { ...FACTS, product: 'PowerEdge R650' }), false);
});

test('operators, precedence (&& binds tighter than ||), ! and parentheses', () => {
  assert.equal(m('cpus == 2'), true);
  assert.equal(m('cpus != 2'), false);
  assert.equal(m('cpus < 2 || cpus > 1 && ram_mib == 4096'), true);
  assert.equal(m('(cpus < 2 || cpus > 1) && ram_mib == 1'), false);
  assert.equal(m('!(cpus < 2)'), true);
  assert.equal(m('vendor ~ "qemu"'), true, 'globs are case-insensitive');
  assert.equal(m('serial !~ "WEB-*"'), false);
  assert.equal(m("firmware == 'bios'"), true);
  assert.equal(m('uuid == "x"'), false, 'a missing fact never equals');
  assert.equal(m('uuid != "x"'), true);
});

test('errors name the field and the column; types are checked before any machine is seen', () => {
  const bad: [string, RegExp][] = [
    ['ram_mib >= "4096"', /compares numbers/],
    ['product ~ 42', /glob/],
    ['ram_gb > 4', /unknown fact "ram_gb"/],
    ['ram_mib > ', /ends too early/],
    ['ram_mib > 4 &&', /ends too early/],
    ['ram_mib > 4 ram_mib', /unexpected "ram_mib"/],
    ['product == "x', /unterminated string/],
    ['ram_mib', /must be a condition/],
    ['ram_mib && cpus', /joins conditions/],
    ['process.exit(1)', /unknown fact|unexpected/],
    ['ram_mib > 4; rm', /unexpected character ";"/],
    ['', /empty/],
    ['constructor == 1', /unknown fact "constructor"/],
    ['__proto__ == 1', /unknown fact "__proto__"/],
  ];
  for (const [src, re] of bad) {
    assert.throws(() => parseMatch(src), (e: unknown) => e instanceof ForgeError && e.field === 'match' && re.test(e.message), src);
  }
  assert.throws(() => parseMatch('ram_mib > 4 &&  cpus <'), /column 23/);
  assert.throws(() => parseMatch('('.repeat(MAX_DEPTH + 1) + 'cpus>1' + ')'.repeat(MAX_DEPTH + 1)), /nested deeper/);
  assert.throws(() => parseMatch('cpus>1 && '.repeat(200) + 'cpus>1'), /at most 1024/);
});

test('glob matching: * and ?, anchored, no catastrophic backtracking', () => {
  assert.equal(globMatch('Standard PC*', 'Standard PC (Q35 + ICH9, 2009)'), true);
  assert.equal(globMatch('a?c', 'abc'), true);
  assert.equal(globMatch('a?c', 'abbc'), false);
  assert.equal(globMatch('*x', 'abc'), false);
  assert.equal(globMatch('', ''), true);
  const t0 = process.hrtime.bigint();
  assert.equal(globMatch('*a*a*a*a*a*a*a*a*b', 'a'.repeat(5000)), false);
  assert.ok(process.hrtime.bigint() - t0 < 5_000_000_000n);
});

test('hostname templates take facts only, reduced to host name characters', () => {
  assert.equal(expandTemplate('web-{serial}', FACTS), 'web-web-0042');
  assert.equal(expandTemplate('n-{product}', FACTS), 'n-standard-pc-i440fx-piix-1996');
  assert.throws(() => expandTemplate('web-{constructor}', FACTS), /unknown fact/);
  assert.throws(() => expandTemplate('web-{serial', FACTS), /unbalanced/);
});

test('fuzz: any input either parses (and evaluates to a boolean) or throws a ForgeError naming match', () => {
  const alphabet = fc.constantFrom(...'ram_mib cpus product disks.count "x" \'y\' 12 3.5 && || ! ( ) == != < <= > >= ~ !~ * ? ; \\ '.split(' '));
  fc.assert(
    fc.property(fc.array(alphabet, { maxLength: 40 }).map((a) => a.join(' ')), fc.string({ maxLength: 60 }), (a, b) => {
      for (const src of [a, b]) {
        try {
          assert.equal(typeof evaluate(parseMatch(src), FACTS), 'boolean');
        } catch (e) {
          assert.ok(e instanceof ForgeError, `${JSON.stringify(src)}: ${String(e)}`);
          assert.equal(e.field, 'match');
        }
      }
    }),
    { numRuns: 3000 },
  );
});
