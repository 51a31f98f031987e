/** fillBareValues: bare true|false flags get their value before parseArgs sees them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fillBareValues } from '../../server/cli/main.js';
import type { OptionSpec } from '../../server/cli/command.js';

const options: Record<string, OptionSpec> = {
  'dhcp-force': { type: 'string', description: 'x', bare: 'true' },
  'dhcp-mode': { type: 'string', description: 'x' },
  help: { type: 'boolean', description: 'x' },
};

test('a bare flag at the end or before another option gets its bare value', () => {
  assert.deepEqual(fillBareValues(['--dhcp-force'], options), ['--dhcp-force', 'true']);
  assert.deepEqual(fillBareValues(['--dhcp-force', '--dhcp-mode', 'proxy'], options), ['--dhcp-force', 'true', '--dhcp-mode', 'proxy']);
  assert.deepEqual(fillBareValues(['--dhcp-force', '-h'], options), ['--dhcp-force', 'true', '-h']);
});

test('a given value, an = value, options without bare and words after -- are left alone', () => {
  assert.deepEqual(fillBareValues(['--dhcp-force', 'false'], options), ['--dhcp-force', 'false']);
  assert.deepEqual(fillBareValues(['--dhcp-force=no'], options), ['--dhcp-force=no']);
  assert.deepEqual(fillBareValues(['--dhcp-mode', '--dhcp-force'], options), ['--dhcp-mode', '--dhcp-force', 'true']);
  assert.deepEqual(fillBareValues(['--', '--dhcp-force'], options), ['--', '--dhcp-force']);
  assert.deepEqual(fillBareValues(['--unknown'], options), ['--unknown']);
});
