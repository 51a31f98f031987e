/** koan's flags on forge-agent: translated before parsing, or refused with the forge way. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { koanCompat, mergeKopts, serverUrl } from '../../agent/koan.js';
import { FLAG_NAMES, parseOptions } from '../../agent/options.js';
import { ForgeError } from '../../server/errors.js';

const penv = (env: Record<string, string | undefined>) => ({ env, isTTY: false, isRoot: true, home: '/root' });

function parse(argv: string[], env: Record<string, string | undefined> = {}) {
  const k = koanCompat(argv, env, FLAG_NAMES);
  return parseOptions(k.argv, penv(k.env));
}

test('COBBLER_SERVER names the server when FORGE_SERVER is not set; koan --server HOST --port P', () => {
  assert.equal(parse(['--list', 'systems'], { COBBLER_SERVER: 'cobbler.lab' }).server, 'http://cobbler.lab:8080');
  assert.equal(parse(['--list', 'systems'], { COBBLER_SERVER: 'cobbler.lab', FORGE_SERVER: 'http://f:1' }).server, 'http://f:1');
  assert.equal(parse(['--list', 'systems', '--port', '80'], { COBBLER_SERVER: 'cobbler.lab' }).server, 'http://cobbler.lab:80');
  assert.equal(parse(['--server', 'forge.lab', '--port', '8081', '--list', 'profiles']).server, 'http://forge.lab:8081');
  assert.equal(parse(['-s', 'forge.lab:9000', '--list', 'profiles']).server, 'http://forge.lab:9000');
  assert.equal(parse(['--server=http://x:1', '--list', 'profiles']).server, 'http://x:1');
  assert.equal(serverUrl('10.0.0.1', undefined), 'http://10.0.0.1:8080');
  assert.throws(() => serverUrl('h', 'eighty'), ForgeError);
});

test('--kopts reaches the options and overrides the server options of the same key', () => {
  const o = parse(['--server', 'http://f:1', '--system', 'vm1', '--virt', '--kopts', 'console=ttyS1 inst.text']);
  assert.equal(o.kopts, 'console=ttyS1 inst.text');
  assert.equal(mergeKopts('inst.ks=http://f/ks console=tty0 console=ttyS0 quiet', o.kopts), 'inst.ks=http://f/ks quiet console=ttyS1 inst.text');
  assert.equal(mergeKopts('a=1 quiet', '!quiet b=2'), 'a=1 b=2');
  assert.equal(mergeKopts('a=1', undefined), 'a=1');
});

test('--qemu-machine-type maps to --machine when this forge-agent has it, else a clear refusal', () => {
  const argv = ['--server', 'http://f:1', '--system', 'vm1', '--virt', '--qemu-machine-type', 'pc-q35-8.2'];
  if (FLAG_NAMES.has('machine')) {
    assert.ok(koanCompat(argv, {}, FLAG_NAMES).argv.join(' ').includes('--machine q35'));
  } else {
    assert.throws(() => koanCompat(argv, {}, FLAG_NAMES), /qemu-machine-type pc-q35-8\.2: this forge-agent picks the machine type/);
  }
  assert.deepEqual(koanCompat(argv, {}, new Set([...FLAG_NAMES, 'machine'])).argv.slice(-2), ['--machine', 'q35']);
});

test('koan flags forge-agent does not implement are refused with the forge way', () => {
  for (const [flag, re] of [
    ['--replace-self', /forge system reinstall/],
    ['-r', /forge system reinstall/],
    ['--kexec', /forge system reinstall/],
    ['--static-interface=eth1', /--kopts "ip=IP::GW:MASK:HOST:IFACE:none/],
    ['--image=win', /no image objects/],
    ['--noreboot', /--no-wait/],
  ] as const) {
    assert.throws(() => koanCompat(['--server', 'http://f:1', flag], {}, FLAG_NAMES), (e: unknown) => e instanceof ForgeError && e.code === 'USAGE' && re.test(e.message), flag);
  }
});
