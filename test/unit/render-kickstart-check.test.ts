/**
 * The kickstart checker must catch what it claims to (so a passing
 * kickstart test means something).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkKickstart, splitWords } from '../lib/kickstart-check.js';

const GOOD = `text
url --url="http://m/rocky9"
lang en_US.UTF-8
keyboard --xlayouts='us'
timezone Etc/UTC --utc
network --device=52:54:00:00:00:01 --bootproto=dhcp --activate
rootpw --lock
sshkey --username=root "ssh-ed25519 AAAA k"
zerombr
clearpart --all --initlabel
autopart --type=lvm
bootloader --location=mbr --append="console=ttyS0,115200"
reboot
%packages
@^minimal-environment
%end
%post
echo hi
%end
`;

test('a complete kickstart passes', () => {
  assert.deepEqual(checkKickstart(GOOD), []);
});

const BAD: [string, (s: string) => string, RegExp][] = [
  ['unclosed %packages', (s) => s.replace('@^minimal-environment\n%end\n', '@^minimal-environment\n'), /%packages .*(closed|opened)/],
  ['%end outside a section', (s) => s + '%end\n', /%end outside a section/],
  ['unknown command', (s) => s.replace('text\n', 'install\ntext\n'), /unknown kickstart command "install"/],
  ['missing lang', (s) => s.replace('lang en_US.UTF-8\n', ''), /required command lang missing/],
  ['missing rootpw', (s) => s.replace('rootpw --lock\n', ''), /rootpw/],
  ['missing source', (s) => s.replace('url --url="http://m/rocky9"\n', ''), /no installation source/],
  ['missing reboot', (s) => s.replace('reboot\n', ''), /no reboot/],
  ['leftover template', (s) => s.replace('lang en_US.UTF-8', 'lang {{ lang }}'), /leftover template syntax/],
  ['unbalanced quote', (s) => s.replace(`--xlayouts='us'`, `--xlayouts='us`), /unbalanced quotes/],
  ['static without ip', (s) => s.replace('--bootproto=dhcp', '--bootproto=static'), /static needs --ip/],
  ['unknown network option', (s) => s.replace('--activate', '--actvate'), /unknown option --actvate/],
  ['autopart with part', (s) => s.replace('autopart --type=lvm\n', 'autopart --type=lvm\npart / --size=1 --grow\n'), /autopart cannot be combined/],
  ['twice lang', (s) => s.replace('lang en_US.UTF-8\n', 'lang en_US.UTF-8\nlang de_DE.UTF-8\n'), /lang given more than once/],
  ['bad crypt hash', (s) => s.replace('rootpw --lock', 'rootpw --iscrypted hunter2'), /not a crypt/],
];

for (const [name, mutate, want] of BAD) {
  test(`the checker reports: ${name}`, () => {
    const problems = checkKickstart(mutate(GOOD));
    assert.ok(problems.some((p) => want.test(p.message)), `expected ${want}, got ${JSON.stringify(problems)}`);
  });
}

test('splitWords handles quotes', () => {
  assert.deepEqual(splitWords(`a "b c" 'd e' f"g h"`), ['a', 'b c', 'd e', 'fg h']);
  assert.equal(splitWords(`a "b`), undefined);
});
