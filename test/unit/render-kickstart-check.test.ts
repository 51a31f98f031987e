/**
 * The kickstart checker must catch what it claims to (so a passing
 * kickstart test means something).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkKickstart, ksVersionFor, splitWords } from '../lib/kickstart-check.js';

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
  // pykickstart's duplicate rules (the defects forge shipped before issue 14):
  ['two network lines without --device', (s) => s.replace('network --device=52:54:00:00:00:01 --bootproto=dhcp --activate\n', 'network --bootproto=dhcp --activate\nnetwork --hostname=h1\n'), /A network device with the name  has already been defined/],
  ['two lines for one device', (s) => s.replace('--activate\n', '--activate\nnetwork --device=52:54:00:00:00:01 --mtu=9000\n'), /name 52:54:00:00:00:01 has already been defined/],
  ['two sshkey lines for root', (s) => s.replace('sshkey --username=root "ssh-ed25519 AAAA k"\n', 'sshkey --username=root "ssh-ed25519 AAAA k"\nsshkey --username=root "ssh-rsa BBBB j"\n'), /An ssh user with the name root has already been defined/],
  ['two repos of one name', (s) => s.replace('lang en_US', 'repo --name=x --baseurl=http://a/\nrepo --name=x --baseurl=http://b/\nlang en_US'), /A repo with the name x has already been defined/],
  ['repo without a URL', (s) => s.replace('lang en_US', 'repo --name=x\nlang en_US'), /exactly one of --baseurl/],
  ['dns search without --device', (s) => s.replace('--device=52:54:00:00:00:01 ', '--ipv4-dns-search=lab.example '), /--ipv4-dns-search requires --device/],
  ['bridgeopts without bridgeslaves', (s) => s.replace('--activate\n', '--activate\nnetwork --device=br0 --bridgeopts=stp=no\n'), /--bridgeopts requires --bridgeslaves/],
];

test('RHEL 8 has no --ipv4-dns-search; RHEL 9, RHEL 10 and Fedora 39+ do', () => {
  const ks = GOOD.replace('--activate', '--ipv4-dns-search=lab.example --activate');
  assert.ok(checkKickstart(ks, 'RHEL8').some((p) => /does not exist in this Anaconda/.test(p.message)));
  for (const v of ['RHEL9', 'RHEL10', 'F39+'] as const) assert.deepEqual(checkKickstart(ks, v), [], v);
  assert.equal(ksVersionFor('rhel8'), 'RHEL8');
  assert.equal(ksVersionFor('8.10'), 'RHEL8');
  assert.equal(ksVersionFor('9.4'), 'RHEL9');
  assert.equal(ksVersionFor('rhel10'), 'RHEL10');
  assert.equal(ksVersionFor('fedora38'), 'RHEL8');
  assert.equal(ksVersionFor('41'), 'F39+');
});

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
