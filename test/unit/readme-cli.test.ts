/**
 * The README's CLI reference is generated from the commands themselves
 * (scripts/cli-reference.mjs); this fails when a command or flag is missing
 * from it, so the front door never documents a CLI that no longer exists.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { REGISTRY } from '../../server/cli/main.js';
import { SUBCOMMANDS } from '../../agent/subcommands.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

test('every forge command and each of its flags is in the README CLI reference', () => {
  assert.ok(REGISTRY.length > 20, 'the registry lists the commands');
  const missing: string[] = [];
  for (const spec of REGISTRY) {
    const heading = `#### forge ${spec.path.join(' ')}\n`;
    const at = readme.indexOf(heading);
    if (at < 0) {
      missing.push(`command: forge ${spec.path.join(' ')}`);
      continue;
    }
    const next = readme.indexOf('\n#### ', at + heading.length);
    const section = readme.slice(at, next < 0 ? undefined : next);
    for (const flag of Object.keys(spec.options)) {
      if (!section.includes(`--${flag}`)) missing.push(`flag: forge ${spec.path.join(' ')} --${flag}`);
    }
  }
  assert.deepEqual(missing, [], 'run `npm run build && node scripts/cli-reference.mjs` to regenerate the README reference');
});

test('the README documents forge-agent and the test command', () => {
  assert.match(readme, /### forge-agent/);
  assert.match(readme, /npm test/);
});

test('every forge-agent subcommand and each of its flags is in the README CLI reference', () => {
  const missing: string[] = [];
  for (const spec of SUBCOMMANDS) {
    const heading = `#### forge-agent ${spec.path.join(' ')}\n`;
    const at = readme.indexOf(heading);
    if (at < 0) {
      missing.push(`command: forge-agent ${spec.path.join(' ')}`);
      continue;
    }
    const next = readme.indexOf('\n#### ', at + heading.length);
    const section = readme.slice(at, next < 0 ? undefined : next);
    for (const f of spec.flags) if (!section.includes(`--${f.long}`)) missing.push(`flag: forge-agent ${spec.path.join(' ')} --${f.long}`);
  }
  assert.deepEqual(missing, [], 'run `npm run build && node scripts/cli-reference.mjs` to regenerate the README reference');
});
