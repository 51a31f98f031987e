/**
 * A kickstart checker for tests (no Debian package validates kickstart;
 * pykickstart's ksvalidator is not packaged for bookworm). Rules written from
 * the Anaconda / pykickstart documentation (RHEL 8/9/10 "Kickstart commands
 * and options reference", Fedora kickstart docs):
 *  - every line outside a section is a known command (commands removed in
 *    RHEL 9 such as `install`, `autostep`, `device`, `deviceprobe`, `dmraid`,
 *    `multipath` are unknown), with balanced quotes;
 *  - sections (%packages, %pre, %pre-install, %post, %onerror, %traceback,
 *    %addon, %anaconda) are closed by %end before the next section or EOF,
 *    and %end never appears outside one;
 *  - an unattended install has lang, keyboard, timezone, rootpw (or user),
 *    an installation source, partitioning (autopart, or part/reqpart), a
 *    bootloader line and a finishing action (reboot/poweroff/shutdown/halt);
 *  - single-use commands appear once; autopart excludes part/logvol/volgroup/raid/reqpart;
 *  - a few commands have their options checked (network, autopart, rootpw,
 *    bootloader, timezone, url, sshkey, clearpart);
 *  - no template syntax is left over ({{ }}, {% %}, {# #}).
 */

export interface KsProblem {
  line: number;
  message: string;
}

const KNOWN = new Set([
  'auth', 'authconfig', 'authselect', 'autopart', 'bootloader', 'bootc', 'btrfs', 'cdrom', 'clearpart', 'cmdline',
  'driverdisk', 'eula', 'fcoe', 'firewall', 'firstboot', 'graphical', 'group', 'halt', 'harddrive', 'hmc',
  'ignoredisk', 'iscsi', 'iscsiname', 'keyboard', 'lang', 'liveimg', 'logging', 'logvol', 'mediacheck', 'module',
  'mount', 'network', 'nfs', 'nvdimm', 'ostreecontainer', 'ostreesetup', 'part', 'partition', 'poweroff', 'raid',
  'realm', 'reboot', 'repo', 'reqpart', 'rescue', 'rhsm', 'rootpw', 'selinux', 'services', 'shutdown', 'skipx',
  'snapshot', 'sshkey', 'sshpw', 'syspurpose', 'text', 'timesource', 'timezone', 'updates', 'url', 'user', 'vnc',
  'volgroup', 'xconfig', 'zerombr', 'zfcp', 'zipl', '%include', '%ksappend',
]);

const SECTIONS = new Set(['%packages', '%pre', '%pre-install', '%post', '%onerror', '%traceback', '%addon', '%anaconda']);

const ONCE = new Set([
  'lang', 'keyboard', 'timezone', 'rootpw', 'autopart', 'bootloader', 'url', 'cdrom', 'nfs', 'harddrive', 'liveimg',
  'zerombr', 'clearpart', 'text', 'graphical', 'cmdline', 'reboot', 'poweroff', 'shutdown', 'halt', 'firstboot',
  'selinux', 'firewall', 'skipx', 'ignoredisk',
]);

/** Options accepted per command (a subset of commands; others are not option-checked). */
const OPTIONS: Record<string, Set<string>> = {
  network: new Set([
    '--bootproto', '--device', '--ip', '--ipv6', '--gateway', '--ipv6gateway', '--nodefroute', '--nameserver', '--netmask',
    '--hostname', '--ethtool', '--essid', '--wepkey', '--wpakey', '--onboot', '--dhcpclass', '--mtu', '--noipv4',
    '--noipv6', '--activate', '--no-activate', '--bondslaves', '--bondopts', '--vlanid', '--interfacename',
    '--teamslaves', '--teamconfig', '--bridgeslaves', '--bridgeopts', '--bindto',
  ]),
  autopart: new Set(['--type', '--fstype', '--nolvm', '--encrypted', '--luks-version', '--passphrase', '--escrowcert', '--backuppassphrase', '--cipher', '--pbkdf', '--pbkdf-memory', '--pbkdf-time', '--pbkdf-iterations', '--nohome', '--noboot', '--noswap', '--hibernation']),
  rootpw: new Set(['--iscrypted', '--plaintext', '--lock', '--allow-ssh']),
  bootloader: new Set(['--append', '--boot-drive', '--driveorder', '--location', '--password', '--iscrypted', '--timeout', '--default', '--extlinux', '--leavebootorder', '--md5pass', '--nombr', '--disabled', '--sdboot']),
  timezone: new Set(['--utc', '--isUtc', '--nontp', '--ntpservers']),
  url: new Set(['--url', '--mirrorlist', '--metalink', '--noverifyssl', '--proxy']),
  sshkey: new Set(['--username']),
  clearpart: new Set(['--all', '--drives', '--initlabel', '--linux', '--list', '--none', '--disklabel', '--cdl']),
  keyboard: new Set(['--vckeymap', '--xlayouts', '--switch']),
  ignoredisk: new Set(['--drives', '--only-use']),
  firstboot: new Set(['--enable', '--enabled', '--disable', '--disabled', '--reconfig']),
  repo: new Set(['--name', '--baseurl', '--mirrorlist', '--metalink', '--cost', '--excludepkgs', '--includepkgs', '--proxy', '--ignoregroups', '--noverifyssl', '--install']),
};

const SOURCES = ['url', 'cdrom', 'nfs', 'harddrive', 'liveimg', 'ostreesetup', 'ostreecontainer', 'bootc'];
const FINISH = ['reboot', 'poweroff', 'shutdown', 'halt'];
const BOOTPROTO = new Set(['dhcp', 'static', 'bootp', 'ibft', 'query']);
const AUTOPART_TYPES = new Set(['lvm', 'btrfs', 'plain', 'thinp']);

/** shlex-like split: whitespace separated, single and double quotes, backslash escapes in double quotes. */
export function splitWords(line: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let q: '"' | "'" | '' = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q !== '') {
      if (c === q) q = '';
      else if (c === '\\' && q === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      q = c;
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (q !== '') return undefined;
  if (inWord) out.push(cur);
  return out;
}

export function checkKickstart(text: string): KsProblem[] {
  const problems: KsProblem[] = [];
  const p = (line: number, message: string): void => {
    problems.push({ line, message });
  };
  const seen = new Map<string, number>();
  let section: { name: string; line: number } | undefined;
  const lines = text.split('\n');
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    if (/\{\{|\}\}|\{%|%\}|\{#|#\}/.test(raw)) p(n, `leftover template syntax: ${raw.trim()}`);
    const line = raw.trim();
    if (section !== undefined) {
      if (line === '%end') {
        section = undefined;
        return;
      }
      const word = line.split(/\s+/)[0] ?? '';
      if (SECTIONS.has(word)) p(n, `${word} opened before ${section.name} (line ${section.line}) was closed with %end`);
      return;
    }
    if (line === '' || line.startsWith('#')) return;
    const words = splitWords(line);
    if (words === undefined) {
      p(n, `unbalanced quotes: ${line}`);
      return;
    }
    const cmd = words[0]!;
    if (cmd === '%end') {
      p(n, '%end outside a section');
      return;
    }
    if (SECTIONS.has(cmd)) {
      section = { name: cmd, line: n };
      seen.set(cmd, (seen.get(cmd) ?? 0) + 1);
      return;
    }
    if (cmd.startsWith('%')) {
      p(n, `unknown section or directive ${cmd}`);
      return;
    }
    if (!KNOWN.has(cmd)) {
      p(n, `unknown kickstart command "${cmd}"`);
      return;
    }
    seen.set(cmd, (seen.get(cmd) ?? 0) + 1);
    if (ONCE.has(cmd) && seen.get(cmd)! > 1) p(n, `${cmd} given more than once`);
    const opts = new Map<string, string | undefined>();
    for (const w of words.slice(1)) {
      if (!w.startsWith('--')) continue;
      const eq = w.indexOf('=');
      opts.set(eq === -1 ? w : w.slice(0, eq), eq === -1 ? undefined : w.slice(eq + 1));
    }
    const allowed = OPTIONS[cmd];
    if (allowed !== undefined) for (const o of opts.keys()) if (!allowed.has(o)) p(n, `${cmd}: unknown option ${o}`);
    if (cmd === 'network') {
      const bp = opts.get('--bootproto');
      if (bp !== undefined && !BOOTPROTO.has(bp)) p(n, `network: bad --bootproto ${bp}`);
      if (bp === 'static' && (opts.get('--ip') === undefined || opts.get('--netmask') === undefined)) p(n, 'network: static needs --ip and --netmask');
      if (opts.size === 0) p(n, 'network: no options');
    }
    if (cmd === 'autopart') {
      const t = opts.get('--type');
      if (t !== undefined && !AUTOPART_TYPES.has(t)) p(n, `autopart: bad --type ${t}`);
    }
    if (cmd === 'rootpw') {
      const positional = words.slice(1).filter((w) => !w.startsWith('--'));
      if (!opts.has('--lock') && positional.length !== 1) p(n, 'rootpw: needs a password (or --lock)');
      if (opts.has('--iscrypted') && positional.length === 1 && !/^\$(1|5|6|y|2[aby]|gy|7)\$/.test(positional[0]!)) p(n, 'rootpw --iscrypted: not a crypt(3) hash');
    }
    if (cmd === 'url' && (opts.get('--url') ?? opts.get('--mirrorlist') ?? opts.get('--metalink') ?? '') === '') p(n, 'url: empty --url');
    if (cmd === 'timezone' && words.slice(1).filter((w) => !w.startsWith('--')).length !== 1) p(n, 'timezone: needs one zone name');
    if (cmd === 'sshkey' && (opts.get('--username') === undefined || words.slice(1).filter((w) => !w.startsWith('--')).length !== 1)) {
      p(n, 'sshkey: needs --username and one quoted key');
    }
  });
  if (section !== undefined) p(section.line, `${section.name} is not closed with %end`);
  const end = lines.length;
  const has = (c: string): boolean => (seen.get(c) ?? 0) > 0;
  for (const c of ['lang', 'timezone', 'keyboard', 'bootloader']) if (!has(c)) p(end, `required command ${c} missing`);
  if (!has('rootpw') && !has('user')) p(end, 'required command rootpw (or user) missing');
  if (!SOURCES.some(has)) p(end, `no installation source (${SOURCES.join('/')})`);
  if (!has('autopart') && !has('part') && !has('partition') && !has('reqpart')) p(end, 'no partitioning (autopart or part)');
  if (has('autopart') && ['part', 'partition', 'logvol', 'volgroup', 'raid', 'reqpart'].some(has)) p(end, 'autopart cannot be combined with part/logvol/volgroup/raid/reqpart');
  if (!FINISH.some(has)) p(end, 'no reboot/poweroff/shutdown/halt: the install would wait for a key press');
  if (!has('%packages')) p(end, 'no %packages section');
  return problems;
}
