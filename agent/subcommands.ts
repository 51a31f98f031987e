/**
 * The forge-agent subcommands that manage VMs after they exist (seeds 002
 * VMK and 004 VM for ALT): one table of specs, one small parser, --help for
 * every entry. Pure: the handlers live in agent/vm.ts.
 */
import { ForgeError } from '../server/errors.js';

export interface SubFlag {
  long: string;
  value: boolean;
  help: string;
}

export interface SubSpec {
  path: string[];
  /** Positional arguments; a trailing `?` marks an optional one, `...` the rest. */
  args: string[];
  flags: SubFlag[];
  summary: string;
  /** Lines after the usage: what it does, what it refuses. */
  details: string[];
}

export interface ParsedSub {
  spec: SubSpec;
  args: string[];
  flags: Map<string, string | true>;
  help: boolean;
}

const COMMON: SubFlag[] = [
  { long: 'connect', value: true, help: 'libvirt URI (default qemu:///system, env LIBVIRT_DEFAULT_URI)' },
  { long: 'server', value: true, help: 'forge server URL for events and records (env FORGE_SERVER)' },
  { long: 'token', value: true, help: 'API token (env FORGE_TOKEN)' },
  { long: 'help', value: false, help: 'this help' },
];
const SYSTEM: SubFlag = { long: 'system', value: true, help: 'the VM (domain) name, as NAME' };
const FORCE: SubFlag = { long: 'force', value: false, help: 'go ahead although data would be lost' };

export const SUBCOMMANDS: readonly SubSpec[] = [
  {
    path: ['vm', 'list'],
    args: [],
    flags: [],
    summary: 'the forge-made domains on this host: state, system record, disks, MACs, console, VNC/SPICE',
    details: ['Only domains forge-agent created (marked in their <metadata>) are listed.'],
  },
  {
    path: ['vm', 'info'],
    args: ['NAME'],
    flags: [],
    summary: 'one forge VM in detail: state, system, firmware, machine, disks, MACs, console log, graphics, snapshots',
    details: [],
  },
  {
    path: ['vm', 'start'],
    args: ['NAME'],
    flags: [],
    summary: 'start a forge VM',
    details: ['When a disk file is missing and the VM has snapshots, LAST is restored first (and said so).'],
  },
  {
    path: ['vm', 'stop'],
    args: ['NAME'],
    flags: [{ long: 'timeout', value: true, help: 'seconds to wait for the guest to power off (default 120)' }],
    summary: 'ask the guest to shut down (ACPI) and wait until it is off',
    details: [],
  },
  {
    path: ['vm', 'kill'],
    args: ['NAME'],
    flags: [FORCE],
    summary: 'power a running VM off at once (pulls the plug: needs --force)',
    details: [],
  },
  {
    path: ['vm', 'destroy'],
    args: ['NAME'],
    flags: [{ long: 'remove-disks', value: false, help: "also delete the VM's disk files and snapshots" }, FORCE],
    summary: 'remove the domain definition (and with --remove-disks its disks and snapshots); needs --force',
    details: [
      "A running VM is powered off first. --remove-disks never deletes a file another domain uses (as its disk",
      'or as the backing file of one).',
    ],
  },
  {
    path: ['snapshot', 'create'],
    args: ['NAME', 'SNAP?'],
    flags: [
      { long: 'comment', value: true, help: 'a short description kept with the snapshot' },
      { long: 'live', value: false, help: 'snapshot a running VM with its memory (it pauses while the disks are snapshotted, then resumes)' },
      { long: 'kind', value: true, help: 'auto (default): a reflink copy where the filesystem clones files (btrfs, XFS reflink=1), else a qcow2 overlay; or reflink|overlay' },
    ],
    summary: 'snapshot the disks of a stopped VM (names S0, S1, ...; LAST points at the newest)',
    details: [
      'An overlay snapshot freezes each disk file as the snapshot and moves the VM onto a new qcow2 overlay (DISK.N.qcow2 beside it); the domain XML follows.',
      'A reflink copy is kept in DIR/NAME.snapshots/SNAP beside the first disk; it shares blocks with the disk until either is written.',
    ],
  },
  {
    path: ['snapshot', 'list'],
    args: ['NAME'],
    flags: [],
    summary: 'the snapshots of a VM: name, time, comment, size (LAST marked)',
    details: [],
  },
  {
    path: ['snapshot', 'restore'],
    args: ['NAME', 'SNAP?'],
    flags: [FORCE],
    summary: "put a snapshot's disks back (default LAST); the current disks are lost, so --force (unless they are missing)",
    details: ['The VM gets a new qcow2 overlay on the snapshot (or a reflink copy of it); a live snapshot resumes the guest where it was.'],
  },
  {
    path: ['snapshot', 'delete'],
    args: ['NAME', 'SNAP'],
    flags: [FORCE],
    summary: 'delete a snapshot (needs --force); LAST moves to the newest remaining one',
    details: ["Files on the snapshot's image (the disk, later snapshots) are rebased onto its backing file (qemu-img rebase) first; an image another domain uses is refused."],
  },
  {
    path: ['snap', 'run'],
    args: ['NAME', 'SNAP?'],
    flags: [],
    summary: 'run a throwaway copy of a stopped VM on a qcow2 overlay of its disks (or of snapshot SNAP), discarded when the guest shuts down',
    details: ['The copy is the transient domain NAME-snap with new MACs; its console log is NAME-snap-console.log.'],
  },
  {
    path: ['clone'],
    args: ['NAME', 'NEWNAME'],
    flags: [],
    summary: 'copy a stopped VM: disks (reflink or sparse copy), new MACs (52:54:00), new domain, new system record',
    details: ['The forge record is copied to NEWNAME with the new MACs and no IPs (POST /api/v1/systems/NAME/copy).'],
  },
  {
    path: ['console'],
    args: ['NAME'],
    flags: [{ long: 'log', value: false, help: 'print the kept serial console log of the last boot instead of attaching' }],
    summary: 'attach to the serial console of a running VM (Ctrl-] leaves)',
    details: [],
  },
  {
    path: ['ssh-key', 'put'],
    args: ['NAME', 'KEYFILE...'],
    flags: [
      { long: 'cache-dir', value: true, help: 'where the rescue system is built (default /var/cache/forge-agent as root)' },
      { long: 'timeout', value: true, help: 'seconds the rescue VM may run (default 600)' },
    ],
    summary: "add public keys to root's authorized_keys on a stopped VM's root filesystem (default ~/.ssh/*.pub)",
    details: ['Runs the shipped add-ssh-keys job in a rescue VM with the disks attached; refused while the VM runs.'],
  },
  {
    path: ['job', 'run'],
    args: ['NAME', 'JOB'],
    flags: [
      { long: 'timeout', value: true, help: 'seconds the rescue VM may run (default 600)' },
      { long: 'mirror', value: true, help: 'a directory shared read-only as /tmp/.mirror ($MIRROR)' },
      { long: 'files', value: true, help: 'more files for /tmp/.in: a,b,...' },
      { long: 'cache-dir', value: true, help: 'where the rescue system is built (default /var/cache/forge-agent as root)' },
      { long: 'virt-type', value: true, help: 'qemu|kvm for the rescue VM (default qemu)' },
    ],
    summary: 'run JOB.job in a rescue VM with the stopped VM disks attached (JOB.pre/JOB.post run on the host)',
    details: [
      'JOB is a directory holding JOB.job and optional JOB.pre, JOB.post and files, DIR/JOB (DIR/JOB.job), or a',
      'shipped job: add-ssh-keys, post-install (runs post-install.sh from --files in a chroot of the installed',
      'system). Shares: /tmp/.in (ro, the job files), /tmp/.out (rw, results and job.log), /tmp/.mirror (ro).',
      'JOB.job sees $INDIR $OUTDIR $MNTOPTS ($MIRROR); the hooks $HOSTDIR $WORKDIR $INDIR $OUTDIR $VM $JOB.',
      'Results stay in DIR/NAME.jobs/JOB-TIME/out beside the first disk.',
    ],
  },
  {
    path: ['mount'],
    args: ['NAME?'],
    flags: [SYSTEM],
    summary: "mount a stopped VM's filesystems under /mnt/NAME (root, then its fstab's /boot, /boot/efi, ... by UUID)",
    details: ['Refuses while the VM runs. Raw files, LVs and devices go on loop devices (losetup -P); a qcow2 disk is first exported', 'as a raw file through FUSE by qemu-storage-daemon (no nbd module needed); umount stops the export.'],
  },
  {
    path: ['umount'],
    args: ['NAME?'],
    flags: [SYSTEM],
    summary: 'unmount what `forge-agent mount` mounted and release its loop devices',
    details: [],
  },
  {
    path: ['reinstall-grub'],
    args: ['NAME?'],
    flags: [SYSTEM],
    summary: "install GRUB into a stopped VM's disk again (BIOS or UEFI, as the domain boots) and regenerate grub.cfg",
    details: ['Seed 001\'s "re-install Grub": after a wiped boot sector or a broken /boot.'],
  },
  {
    path: ['config'],
    args: [],
    flags: [],
    summary: 'the agent configuration in effect, each value with the layer it came from',
    details: ['Layers: built-in defaults < /etc/forge/agent.json < ~/.config/forge/agent.json < environment < flags.'],
  },
];

function usage(msg: string, field?: string): ForgeError {
  return new ForgeError('USAGE', msg, field === undefined ? {} : { field });
}

/** The spec whose path starts argv, longest first; undefined when argv is not a subcommand. */
export function findSub(argv: readonly string[]): SubSpec | undefined {
  const hits = SUBCOMMANDS.filter((s) => s.path.every((w, i) => argv[i] === w)).sort((a, b) => b.path.length - a.path.length);
  return hits[0];
}

/** The first words that make argv a subcommand (`vm`, `snapshot`, ...). */
export const SUB_WORDS: ReadonlySet<string> = new Set(SUBCOMMANDS.map((s) => s.path[0] as string));

export function parseSub(argv: readonly string[]): ParsedSub {
  const spec = findSub(argv);
  if (spec === undefined) {
    const group = SUBCOMMANDS.filter((s) => s.path[0] === argv[0]).map((s) => s.path.join(' '));
    const wantsHelp = argv.includes('--help') || argv.includes('-h');
    throw usage(`${wantsHelp ? '' : `unknown command '${argv.slice(0, 2).join(' ')}'; `}commands: ${group.join(', ')}`);
  }
  const flagsAll = [...spec.flags, ...COMMON];
  const flags = new Map<string, string | true>();
  const args: string[] = [];
  for (let i = spec.path.length; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-h') {
      flags.set('help', true);
      continue;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      const f = flagsAll.find((x) => x.long === name);
      if (f === undefined) throw usage(`${spec.path.join(' ')}: unknown option --${name} (see --help)`, name);
      if (f.value) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw usage(`--${name} needs a value`, name);
        flags.set(name, v);
      } else {
        if (eq >= 0) throw usage(`--${name} takes no value`, name);
        flags.set(name, true);
      }
      continue;
    }
    args.push(a);
  }
  const help = flags.get('help') === true;
  if (!help) {
    const required = spec.args.filter((x) => !x.endsWith('?') && !x.endsWith('...'));
    const rest = spec.args.some((x) => x.endsWith('...'));
    if (args.length < required.length) throw usage(`${spec.path.join(' ')}: missing ${required.slice(args.length).join(' ')} (see --help)`, required[args.length]);
    if (!rest && args.length > spec.args.length) throw usage(`${spec.path.join(' ')}: unexpected argument '${args[spec.args.length] as string}'`);
  }
  return { spec, args, flags, help };
}

export function subHelp(spec: SubSpec): string {
  const argText = spec.args.map((a) => (a.endsWith('?') ? `[${a.slice(0, -1)}]` : a.endsWith('...') ? `[${a}]` : a)).join(' ');
  const lines = [`usage: forge-agent ${spec.path.join(' ')}${argText === '' ? '' : ` ${argText}`} [options]`, '', spec.summary];
  if (spec.details.length > 0) lines.push(...spec.details);
  lines.push('');
  for (const f of [...spec.flags, ...COMMON]) lines.push(`  ${`--${f.long}${f.value ? ' V' : ''}`.padEnd(22)} ${f.help}`);
  return lines.join('\n') + '\n';
}

/** The subcommand list for `forge-agent --help`. */
export function subSummary(): string {
  const lines = ['', 'VM management (forge-made domains only; `forge-agent COMMAND --help` for each):'];
  for (const s of SUBCOMMANDS) {
    const argText = s.args.map((a) => (a.endsWith('?') ? `[${a.slice(0, -1)}]` : a.endsWith('...') ? `[${a}]` : a)).join(' ');
    lines.push(`  ${`${s.path.join(' ')} ${argText}`.padEnd(30)} ${s.summary}`);
  }
  return lines.join('\n') + '\n';
}
