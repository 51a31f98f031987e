#!/usr/bin/env node
// Regenerates the CLI reference in README.md from the commands' own --help
// (the CommandSpec registry and forge-agent --help), so the README cannot
// drift from the code. Run after `npm run build`:  node scripts/cli-reference.mjs
// test/unit/readme-cli.test.ts fails when the README is out of date.
import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const root = new URL('../', import.meta.url).pathname;
const { REGISTRY, commandHelp, globalHelp } = await import(`${root}dist/server/cli/main.js`);
const { SUBCOMMANDS, subHelp } = await import(`${root}dist/agent/subcommands.js`);

export function cliReference() {
  const out = ['## CLI reference', '', 'Generated from the commands\' own `--help` by `node scripts/cli-reference.mjs`.', ''];
  out.push('### forge', '', '```', globalHelp(REGISTRY).trimEnd(), '```', '');
  const sorted = [...REGISTRY].sort((a, b) => a.path.join(' ').localeCompare(b.path.join(' ')));
  for (const spec of sorted) {
    out.push(`#### forge ${spec.path.join(' ')}`, '', '```', commandHelp(spec).trimEnd(), '```', '');
  }
  const agentHelp = execFileSync(process.execPath, [`${root}dist/agent/main.js`, '--help'], { encoding: 'utf8' });
  out.push('### forge-agent', '', '```', agentHelp.trimEnd(), '```', '');
  for (const spec of SUBCOMMANDS) out.push(`#### forge-agent ${spec.path.join(' ')}`, '', '```', subHelp(spec).trimEnd(), '```', '');
  return out.join('\n');
}

const START = '<!-- CLI-REFERENCE -->';
const END = '<!-- /CLI-REFERENCE -->';
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const s = readme.indexOf(START);
  if (s < 0) throw new Error(`README.md has no ${START} marker`);
  const e = readme.indexOf(END);
  const tail = e >= 0 ? readme.slice(e + END.length) : '\n';
  writeFileSync(`${root}README.md`, `${readme.slice(0, s)}${START}\n${cliReference()}\n${END}${tail}`);
  console.log('README.md CLI reference updated');
}
