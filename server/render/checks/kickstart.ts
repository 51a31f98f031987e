/**
 * Structural kickstart checks, shared by `forge validate` and the tests.
 * No Debian package validates kickstart (pykickstart's ksvalidator is not
 * packaged for bookworm), so these rules are encoded from pykickstart's own
 * sources (github.com/pykickstart/pykickstart, pykickstart/commands/*.py and
 * handlers/{rhel8,rhel9,rhel10,f39..f45}.py), which ksvalidator runs with
 * KickstartParseWarning turned into errors:
 *  - duplicates (the data classes' __eq__ and the "has already been defined"
 *    warnings): network lines keyed by --device, including the empty device
 *    of a line without one (FC3_NetworkData); sshkey by --username
 *    (F22_SshKey); repo by --name (FC6_Repo); user by --name; part by
 *    mount point; volgroup by name; logvol by name within its volume group;
 *  - network: --bootproto in dhcp/bootp/static/query/ibft; --ipv4-dns-search,
 *    --ipv6-dns-search and the --ipvN-ignore-auto-dns options exist from
 *    F39_Network (RHEL 9, RHEL 10, Fedora 39+; RHEL 8 has F27_Network) and
 *    need --device; --bridgeopts needs --bridgeslaves and key=value pairs
 *    (F22_Network); --bindto=mac not on a VLAN unless it is a bond (F27);
 *    --teamslaves/--teamconfig deprecated in RHEL 10;
 *  - sshkey: --username and exactly one key; repo: --name and exactly one of
 *    --baseurl/--mirrorlist/--metalink (FC6_Repo.parse);
 * plus the Anaconda documentation's rules the old hand-written checker had:
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
 *  - no template syntax is left over ({{ }}, {% %}, {# #}).
 */
import { parseOsVersion } from '../../core/installer.js';

/** The pykickstart handler a kickstart is checked against. */
export type KsVersion = 'RHEL8' | 'RHEL9' | 'RHEL10' | 'F39+';

/** os_version -> handler; unknown versions get RHEL 8, the strictest network parser. */
export function ksVersionFor(osVersion: string): KsVersion {
  const v = parseOsVersion('redhat', osVersion);
  if (v.major === undefined) return 'RHEL8';
  if (v.family === 'fedora') return v.major >= 39 ? 'F39+' : 'RHEL8';
  return v.major >= 10 ? 'RHEL10' : v.major >= 9 ? 'RHEL9' : 'RHEL8';
}

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
    '--teamslaves', '--teamconfig', '--bridgeslaves', '--bridgeopts', '--bindto', '--ipv4-dns-search', '--ipv6-dns-search',
    '--ipv4-ignore-auto-dns', '--ipv6-ignore-auto-dns', '--nodns',
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

export function checkKickstart(text: string, version: KsVersion = 'RHEL9'): KsProblem[] {
  const problems: KsProblem[] = [];
  const p = (line: number, message: string): void => {
    problems.push({ line, message });
  };
  const seen = new Map<string, number>();
  /** command -> key -> first line: pykickstart's per-command duplicate rules. */
  const keys = new Map<string, Map<string, number>>();
  const dup = (n: number, cmd: string, key: string, message: string): void => {
    const m = keys.get(cmd) ?? new Map<string, number>();
    keys.set(cmd, m);
    const first = m.get(key);
    if (first !== undefined) p(n, `${message} (first at line ${first})`);
    else m.set(key, n);
  };
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
    // %include / %ksappend are pykickstart directives (KNOWN), not sections.
    if (cmd.startsWith('%') && !KNOWN.has(cmd)) {
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
    const positional = words.slice(1).filter((w) => !w.startsWith('-'));
    if (cmd === 'network') {
      const device = opts.get('--device') ?? '';
      dup(n, 'network', device, `network: A network device with the name ${device} has already been defined`);
      for (const o of ['--ipv4-dns-search', '--ipv6-dns-search', '--ipv4-ignore-auto-dns', '--ipv6-ignore-auto-dns']) {
        if (!opts.has(o)) continue;
        if (version === 'RHEL8') p(n, `network: ${o} does not exist in this Anaconda (pykickstart F27_Network, RHEL 8; from F39/RHEL 9)`);
        else if (device === '') p(n, `network: Option ${o} requires --device to be specified`);
      }
      if (opts.has('--bridgeopts')) {
        if (opts.get('--bridgeslaves') === undefined) p(n, 'network: Option --bridgeopts requires --bridgeslaves to be specified');
        for (const kv of (opts.get('--bridgeopts') ?? '').split(',')) {
          const eq = kv.indexOf('=');
          if (eq <= 0 || kv.slice(eq + 1) === '' || kv.slice(eq + 1).includes('=')) p(n, "network: Bad format of --bridgeopts, expecting key=value options separated by ','");
        }
      }
      if (opts.get('--bindto') === 'mac' && opts.has('--vlanid') && !opts.has('--bondopts')) p(n, 'network: --bindto=mac is not supported for this type of device');
      if (version === 'RHEL10' && (opts.has('--teamslaves') || opts.has('--teamconfig'))) p(n, 'network: --teamslaves/--teamconfig are deprecated in RHEL 10');
      if (opts.has('--vlanid') && !/^\d+$/.test(opts.get('--vlanid') ?? '')) p(n, 'network: --vlanid needs a number');
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
      if (!opts.has('--lock') && positional.length !== 1) p(n, 'rootpw: needs a password (or --lock)');
      if (opts.has('--iscrypted') && positional.length === 1 && !/^\$(1|5|6|y|2[aby]|gy|7)\$/.test(positional[0]!)) p(n, 'rootpw --iscrypted: not a crypt(3) hash');
    }
    if (cmd === 'url' && (opts.get('--url') ?? opts.get('--mirrorlist') ?? opts.get('--metalink') ?? '') === '') p(n, 'url: empty --url');
    if (cmd === 'timezone' && positional.length !== 1) p(n, 'timezone: needs one zone name');
    if (cmd === 'sshkey') {
      const user = opts.get('--username');
      if (user === undefined || positional.length !== 1) p(n, 'sshkey: needs --username and one quoted key');
      if (user !== undefined) dup(n, 'sshkey', user, `sshkey: An ssh user with the name ${user} has already been defined`);
    }
    if (cmd === 'repo') {
      const name = opts.get('--name');
      if (name === undefined || name === '') p(n, 'repo: --name is required');
      else dup(n, 'repo', name, `repo: A repo with the name ${name} has already been defined`);
      const urls = ['--baseurl', '--mirrorlist', '--metalink'].filter((o) => opts.has(o));
      if (urls.length !== 1) p(n, 'repo: exactly one of --baseurl, --mirrorlist, --metalink must be specified');
    }
    if (cmd === 'user') {
      const name = opts.get('--name');
      if (name === undefined || name === '') p(n, 'user: --name is required');
      else dup(n, 'user', name, `user: A user with the name ${name} has already been defined`);
    }
    if ((cmd === 'part' || cmd === 'partition') && positional[0] !== undefined) {
      dup(n, 'part', positional[0], `${cmd}: A partition with the mountpoint ${positional[0]} has already been defined`);
    }
    if (cmd === 'volgroup' && positional[0] !== undefined) dup(n, 'volgroup', positional[0], `volgroup: A volgroup with the name ${positional[0]} has already been defined`);
    if (cmd === 'logvol') {
      const lv = `${opts.get('--vgname') ?? ''}/${opts.get('--name') ?? ''}`;
      dup(n, 'logvol', lv, `logvol: A logical volume with the name ${opts.get('--name') ?? ''} has already been defined in volume group ${opts.get('--vgname') ?? ''}`);
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
