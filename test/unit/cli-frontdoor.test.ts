/**
 * The front door: bash completion is generated from the command table (and
 * really completes in bash), the help formatter keeps long value lists out of
 * the description column, each edit verb shows its own example, and
 * forge-agent answers --version.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REGISTRY, commandHelp } from '../../server/cli/main.js';
import { bashCompletion } from '../../server/cli/completion.js';
import { VERSION } from '../../server/core/version.js';

const agentMain = new URL('../../agent/main.js', import.meta.url).pathname;

function complete(script: string, words: string[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'forge-comp-'));
  try {
    const f = join(dir, 'forge.bash');
    writeFileSync(f, script);
    const arr = words.map((w) => `'${w}'`).join(' ');
    const out = execFileSync('bash', ['-c', `source '${f}'; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _forge; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      encoding: 'utf8',
    });
    return out.split('\n').filter((l) => l !== '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('bash completion completes subjects, verbs, flags and value lists from the registry', () => {
  const script = bashCompletion(REGISTRY);
  const subjects = [...new Set(REGISTRY.map((c) => c.path[0]!))];
  assert.deepEqual(complete(script, ['forge', '']).sort(), [...subjects, '--help', '--version'].sort());
  const systemVerbs = REGISTRY.filter((c) => c.path[0] === 'system').map((c) => c.path[1]!);
  assert.deepEqual(complete(script, ['forge', 'system', '']).sort(), systemVerbs.sort());
  // Every flag of every command, as --help lists it.
  for (const spec of REGISTRY) {
    const words = ['forge', ...spec.path, '--'];
    const got = new Set(complete(script, words));
    for (const flag of Object.keys(spec.options)) assert.ok(got.has(`--${flag}`), `forge ${spec.path.join(' ')} --${flag} completes`);
  }
  assert.deepEqual(complete(script, ['forge', 'distro', 'add', '--arch', '']), ['x86_64', 'i386', 'aarch64', 'ppc64le', 's390x']);
  assert.deepEqual(complete(script, ['forge', 'system', 'add', '--ma']).sort(), ['--mac', '--mac-address']);
});

test('forge completion bash prints the same script', async () => {
  const { runCli } = await import('../../server/cli/main.js');
  const lines: string[] = [];
  assert.equal(await runCli(['completion', 'bash'], { out: (l) => lines.push(l), err: () => undefined, env: {} }), 0);
  assert.equal(lines.join('\n'), bashCompletion(REGISTRY).trimEnd());
  assert.equal(await runCli(['completion', 'zsh'], { out: () => undefined, err: () => undefined, env: {} }), 2);
});

test('help keeps long value lists out of the description column', () => {
  for (const spec of REGISTRY) {
    const help = commandHelp(spec);
    for (const [name, o] of Object.entries(spec.options)) {
      // The description never starts on the same word as the metavariable.
      if (o.arg !== undefined) assert.ok(!help.includes(`--${name} ${o.arg}${o.description.slice(0, 5)}`), `forge ${spec.path.join(' ')} --${name}`);
    }
  }
  const arch = commandHelp(REGISTRY.find((c) => c.path.join(' ') === 'distro add')!);
  assert.match(arch, /^ {2}--arch x86_64\|i386\|aarch64\|ppc64le\|s390x\n {38}architecture$/m);
});

test('each edit verb shows an example of its own kind', () => {
  for (const kind of ['distro', 'profile', 'system']) {
    const help = commandHelp(REGISTRY.find((c) => c.path.join(' ') === `${kind} edit`)!);
    assert.match(help, new RegExp(`example: forge ${kind} edit --name`));
  }
});

test('forge-agent --version', () => {
  assert.equal(execFileSync(process.execPath, [agentMain, '--version'], { encoding: 'utf8' }).trim(), `forge-agent ${VERSION}`);
});
