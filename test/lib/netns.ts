/**
 * Test LANs in network namespaces. A Lan is one namespace holding a bridge
 * (br0, 10.98.0.1/24 by default) where the servers under test run; clients
 * are further namespaces joined to the bridge by veth pairs, and VMs attach
 * through tap devices on the bridge. Traffic never leaves these namespaces.
 * Needs root (and iproute2).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Run a command to completion (bounded by timeoutMs, default 60 s). */
export function run(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stderr += `\n[killed after ${opts.timeoutMs ?? 60000} ms]`;
    }, opts.timeoutMs ?? 60000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Like run() but throws with the command's stderr when it exits non-zero. */
export async function must(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const rand = (n = 3): string => randomBytes(n).toString('hex');

export interface Host {
  /** Namespace name. */
  ns: string;
  exec(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  must(cmd: string, args: string[], opts?: ExecOptions): Promise<string>;
  /** Start a long-running process inside the namespace; the Lan kills it on destroy(). */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
}

export interface LanClient extends Host {
  /** Interface inside the client namespace (eth0). */
  ifname: string;
  mac: string;
}

export interface Lan extends Host {
  bridge: string;
  serverIp: string;
  /** e.g. 10.98.0.0/24 */
  subnet: string;
  prefixLen: number;
  /** Another namespace with one veth (eth0) on the bridge, no address configured. */
  addClient(opts?: { mac?: string }): Promise<LanClient>;
  /**
   * A management NIC `mgmt0` (or `ifname`) in the Lan namespace (address/prefixLen) to a namespace
   * of its own (gateway), with the Lan namespace's default route through it: a two-NIC host, or a
   * router's upstream link (the far namespace is then the upstream host).
   */
  addUplink(opts: { address: string; gateway: string; prefixLen: number; ifname?: string }): Promise<Host>;
  /** Another bridge in the Lan namespace holding address/prefixLen (a second segment behind a router). */
  addBridge(name: string, address: string, prefixLen: number): Promise<void>;
  /** A tap device on the bridge (default br0) in the Lan namespace, for `qemu -netdev tap,ifname=...` run via lan.spawn. */
  addTap(bridge?: string): Promise<string>;
  /** Kill every process started through spawn() and in the namespaces, delete them. Idempotent. */
  destroy(): Promise<void>;
}

function makeHost(ns: string, children: ChildProcess[]): Host {
  return {
    ns,
    exec: (cmd, args, opts) => run('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    must: (cmd, args, opts) => must('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    spawn: (cmd, args, opts) => {
      const c = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      children.push(c);
      return c;
    },
  };
}

async function killNamespace(ns: string): Promise<void> {
  const r = await run('ip', ['netns', 'pids', ns]);
  for (const pid of r.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  await run('ip', ['netns', 'del', ns]);
}

/**
 * Create a LAN namespace `${prefix}-${random}` with br0 = serverIp/prefixLen.
 * prefix: a short area tag (letters/digits, <= 8 chars), e.g. `fgdhcp`.
 */
export async function createLan(prefix: string, opts: { serverIp?: string; prefixLen?: number } = {}): Promise<Lan> {
  const serverIp = opts.serverIp ?? '10.98.0.1';
  const prefixLen = opts.prefixLen ?? 24;
  const ns = `${prefix}-${rand()}`;
  const children: ChildProcess[] = [];
  const extraNs: string[] = [];
  const host = makeHost(ns, children);
  await must('ip', ['netns', 'add', ns]);
  try {
    await host.must('ip', ['link', 'set', 'lo', 'up']);
    await host.must('ip', ['link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await host.must('ip', ['addr', 'add', `${serverIp}/${prefixLen}`, 'dev', 'br0']);
    await host.must('ip', ['link', 'set', 'br0', 'up']);
  } catch (e) {
    await killNamespace(ns);
    throw e;
  }
  const octets = serverIp.split('.').map(Number);
  const mask = prefixLen === 0 ? 0 : (~0 << (32 - prefixLen)) >>> 0;
  const ipNum = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const net = (ipNum & mask) >>> 0;
  const subnet = `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${prefixLen}`;
  let destroyed = false;

  return {
    ...host,
    bridge: 'br0',
    serverIp,
    subnet,
    prefixLen,
    async addClient(o = {}) {
      const cns = `${prefix}c-${rand()}`;
      const id = rand();
      const a = `va${id}`;
      const b = `vb${id}`;
      await must('ip', ['netns', 'add', cns]);
      extraNs.push(cns);
      await must('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
      await must('ip', ['link', 'set', a, 'netns', ns]);
      await must('ip', ['link', 'set', b, 'netns', cns]);
      await host.must('ip', ['link', 'set', a, 'master', 'br0', 'up']);
      const client = makeHost(cns, children);
      await client.must('ip', ['link', 'set', 'lo', 'up']);
      await client.must('ip', ['link', 'set', b, 'name', 'eth0']);
      if (o.mac !== undefined) await client.must('ip', ['link', 'set', 'eth0', 'address', o.mac]);
      await client.must('ip', ['link', 'set', 'eth0', 'up']);
      const show = await client.must('cat', ['/sys/class/net/eth0/address']);
      return { ...client, ifname: 'eth0', mac: show.trim() };
    },
    async addUplink(o) {
      // A management NIC: a veth to a namespace of its own standing in for the site network,
      // holding the server namespace's default route (the provisioning bridge has none).
      const uns = `${prefix}u-${rand()}`;
      const id = rand();
      const a = `ua${id}`;
      const b = `ub${id}`;
      await must('ip', ['netns', 'add', uns]);
      extraNs.push(uns);
      await must('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
      await must('ip', ['link', 'set', a, 'netns', ns]);
      await must('ip', ['link', 'set', b, 'netns', uns]);
      const up = makeHost(uns, children);
      await up.must('ip', ['link', 'set', 'lo', 'up']);
      await up.must('ip', ['addr', 'add', `${o.gateway}/${o.prefixLen}`, 'dev', b]);
      await up.must('ip', ['link', 'set', b, 'up']);
      const ifname = o.ifname ?? 'mgmt0';
      await host.must('ip', ['link', 'set', a, 'name', ifname]);
      await host.must('ip', ['addr', 'add', `${o.address}/${o.prefixLen}`, 'dev', ifname]);
      await host.must('ip', ['link', 'set', ifname, 'up']);
      await host.must('ip', ['route', 'add', 'default', 'via', o.gateway]);
      return up;
    },
    async addBridge(name, address, len) {
      await host.must('ip', ['link', 'add', name, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
      await host.must('ip', ['addr', 'add', `${address}/${len}`, 'dev', name]);
      await host.must('ip', ['link', 'set', name, 'up']);
    },
    async addTap(bridge = 'br0') {
      const tap = `tap${rand()}`;
      await host.must('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      await host.must('ip', ['link', 'set', tap, 'master', bridge, 'up']);
      return tap;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const c of children) {
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }
      for (const x of extraNs) await killNamespace(x);
      await killNamespace(ns);
    },
  };
}
