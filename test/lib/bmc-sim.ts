/**
 * BMCs for the power tests, each wired to a real qemu process (TCG, paused
 * with -S: it is a machine that is on or off, and costs no CPU):
 *
 * - ipmiSim(): OpenIPMI's ipmi_sim on a loopback UDP port, with a
 *   `chassis_control` program (ipmi_sim's extcmd interface: `PROG set power 1`,
 *   `PROG get power`, `PROG set boot pxe`) that starts and stops the qemu
 *   process and records the boot device.
 * - redfishService(): a small Redfish service (DSP0266 subset: service root,
 *   Systems collection, ComputerSystem with PowerState and Boot, the
 *   ComputerSystem.Reset action) over HTTPS with a self-signed certificate
 *   made by openssl, HTTP Basic authentication.
 *
 * No packaged Redfish emulator exists in Debian 12 (DMTF's
 * Redfish-Interface-Emulator and sushy-emulator are not packaged), hence the
 * one here; redfishtool (Debian) is the independent client the tests check it with.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** A qemu process standing in for a machine: on = the process exists. */
export class QemuMachine {
  readonly name: string;
  readonly pidFile: string;
  starts = 0;

  constructor(dir: string) {
    this.name = `forge-pwr-${randomBytes(4).toString('hex')}`;
    this.pidFile = join(dir, `${this.name}.pid`);
  }

  /** The shell command line that starts it (daemonized, pid file). */
  startCommand(): string {
    return `qemu-system-x86_64 -M pc -accel tcg -m 32 -display none -nodefaults -S -name ${this.name} -daemonize -pidfile ${this.pidFile}`;
  }

  pid(): number | undefined {
    if (!existsSync(this.pidFile)) return undefined;
    const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
      // A reused pid would not carry our unique -name.
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmd.includes(this.name) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  running(): boolean {
    return this.pid() !== undefined;
  }

  on(): void {
    if (this.running()) return;
    execFileSync('sh', ['-c', this.startCommand()], { stdio: 'ignore', timeout: 30_000 });
    this.starts++;
  }

  off(): void {
    const pid = this.pid();
    if (pid === undefined) return;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && this.running(); i++) execFileSync('sleep', ['0.05']);
    rmSync(this.pidFile, { force: true });
  }
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface IpmiSim {
  host: string;
  port: number;
  user: string;
  pass: string;
  machine: QemuMachine;
  /** Run the real ipmitool against it (independent client); returns stdout. */
  ipmitool(args: string[]): string;
  /** Boot device the chassis program was last told (pxe, none, ...). */
  bootDevice(): string;
  stop(): Promise<void>;
}

export async function ipmiSim(): Promise<IpmiSim> {
  const dir = mkdtempSync(join(tmpdir(), 'forge-ipmi-'));
  const machine = new QemuMachine(dir);
  const port = await freeUdpPort();
  const user = 'forgeadm';
  const pass = `pw-${randomBytes(6).toString('hex')}`;
  const script = join(dir, 'chassis.sh');
  // ipmi_sim runs `PROG get power boot` and `PROG set power "1"` (lanserv/extcmd.c) and
  // reads `name:value` lines back.
  writeFileSync(
    script,
    `#!/bin/sh
D=${dir}
running() { [ -f ${machine.pidFile} ] && kill -0 "$(cat ${machine.pidFile})" 2>/dev/null; }
op=$1; shift
while [ $# -gt 0 ]; do
  k=$1
  if [ "$op" = get ]; then
    case $k in
      power) if running; then echo power:1; else echo power:0; fi ;;
      boot) echo "boot:$(cat $D/boot 2>/dev/null || echo default)" ;;
    esac
    shift
  else
    v=$2
    case $k in
      power) if [ "$v" = 1 ]; then running || ${machine.startCommand()}; echo on >> $D/starts;
             else running && kill -9 "$(cat ${machine.pidFile})"; rm -f ${machine.pidFile}; fi ;;
      boot) echo "$v" > $D/boot ;;
    esac
    shift 2
  fi
done
exit 0
`,
  );
  chmodSync(script, 0o755);
  writeFileSync(
    join(dir, 'lan.conf'),
    `name "forgetest"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 ${port}
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid ${randomBytes(16).toString('hex')}
  endlan
  chassis_control "${script}"
  user 2 true "${user}" "${pass}" admin 10 md5
`,
  );
  writeFileSync(
    join(dir, 'bmc.emu'),
    'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nsel_enable 0x20 1000 0x0a\nmc_enable 0x20\n',
  );
  mkdirSync(join(dir, 'state'));
  const proc: ChildProcess = spawn('ipmi_sim', ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'bmc.emu'), '-s', join(dir, 'state'), '-n'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const ipmitool = (args: string[]): string =>
    execFileSync('ipmitool', ['-I', 'lanplus', '-C', '3', '-H', '127.0.0.1', '-p', String(port), '-U', user, '-E', ...args], {
      env: { ...process.env, IPMI_PASSWORD: pass },
      encoding: 'utf8',
      timeout: 30_000,
    });
  // Ready when it answers a real client.
  let ready = false;
  for (let i = 0; i < 50 && !ready; i++) {
    try {
      ready = /Chassis Power is/.test(ipmitool(['chassis', 'power', 'status']));
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  if (!ready) {
    proc.kill('SIGKILL');
    throw new Error(`ipmi_sim did not answer on 127.0.0.1:${port}: ${out}`);
  }
  return {
    host: '127.0.0.1',
    port,
    user,
    pass,
    machine,
    ipmitool,
    bootDevice: () => (existsSync(join(dir, 'boot')) ? readFileSync(join(dir, 'boot'), 'utf8').trim() : 'default'),
    async stop() {
      machine.off();
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await done;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- Redfish

export interface RedfishService {
  url: string;
  port: number;
  user: string;
  pass: string;
  /** PEM of the self-signed certificate (what power_ca points to). */
  certFile: string;
  machine: QemuMachine;
  /** Boot override as last PATCHed. */
  boot: { BootSourceOverrideEnabled: string; BootSourceOverrideTarget: string };
  /** Every request: method and path. */
  requests: { method: string; path: string; auth: boolean }[];
  /**
   * Run redfishtool against it (independent client); returns stdout. Async: the
   * service runs in this process, a synchronous child would block its answers.
   */
  redfishtool(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function redfishService(opts: { systemId?: string } = {}): Promise<RedfishService> {
  const dir = mkdtempSync(join(tmpdir(), 'forge-redfish-'));
  const machine = new QemuMachine(dir);
  const id = opts.systemId ?? 'System.Embedded.1';
  const user = 'root';
  const pass = `rf-${randomBytes(6).toString('hex')}`;
  const certFile = join(dir, 'bmc.pem');
  const keyFile = join(dir, 'bmc.key');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore', timeout: 60_000 },
  );
  const boot = { BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'None' };
  const requests: RedfishService['requests'] = [];
  const sysPath = `/redfish/v1/Systems/${id}`;
  const expected = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

  const server: Server = createServer({ key: readFileSync(keyFile), cert: readFileSync(certFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
      const method = req.method ?? 'GET';
      const authed = req.headers['authorization'] === expected;
      requests.push({ method, path, auth: authed });
      const send = (status: number, body: unknown): void => {
        const text = JSON.stringify(body);
        res.writeHead(status, { 'content-type': 'application/json', 'odata-version': '4.0' });
        res.end(text);
      };
      const error = (status: number, message: string): void =>
        send(status, { error: { code: 'Base.1.8.GeneralError', message, '@Message.ExtendedInfo': [{ Message: message }] } });
      if (path === '/redfish') return send(200, { v1: '/redfish/v1/' });
      if (path === '/redfish/v1') {
        return send(200, { '@odata.id': '/redfish/v1/', Id: 'RootService', RedfishVersion: '1.6.0', Systems: { '@odata.id': '/redfish/v1/Systems' } });
      }
      if (!authed) {
        res.setHeader('www-authenticate', 'Basic realm="forge-test-bmc"');
        return error(401, 'Authentication failed: wrong user name or password');
      }
      let body: Record<string, unknown> = {};
      if (chunks.length > 0) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        } catch {
          return error(400, 'The request body is not valid JSON');
        }
      }
      if (path === '/redfish/v1/Systems' && method === 'GET') {
        return send(200, { '@odata.id': '/redfish/v1/Systems', 'Members@odata.count': 1, Members: [{ '@odata.id': sysPath }] });
      }
      if (path === sysPath && method === 'GET') {
        return send(200, {
          '@odata.id': sysPath,
          '@odata.type': '#ComputerSystem.v1_10_0.ComputerSystem',
          Id: id,
          Name: 'forge test system',
          PowerState: machine.running() ? 'On' : 'Off',
          Boot: { ...boot, 'BootSourceOverrideTarget@Redfish.AllowableValues': ['None', 'Pxe', 'Hdd', 'Cd'] },
          Actions: {
            '#ComputerSystem.Reset': {
              target: `${sysPath}/Actions/ComputerSystem.Reset`,
              'ResetType@Redfish.AllowableValues': ['On', 'ForceOff', 'ForceRestart', 'GracefulShutdown'],
            },
          },
        });
      }
      if (path === sysPath && method === 'PATCH') {
        const b = body['Boot'] as Record<string, unknown> | undefined;
        if (b === undefined) return error(400, 'only Boot can be patched here');
        if (typeof b['BootSourceOverrideTarget'] === 'string') {
          if (!['None', 'Pxe', 'Hdd', 'Cd'].includes(b['BootSourceOverrideTarget'])) return error(400, 'unsupported BootSourceOverrideTarget');
          boot.BootSourceOverrideTarget = b['BootSourceOverrideTarget'];
        }
        if (typeof b['BootSourceOverrideEnabled'] === 'string') boot.BootSourceOverrideEnabled = b['BootSourceOverrideEnabled'];
        res.writeHead(204);
        return res.end();
      }
      if (path === `${sysPath}/Actions/ComputerSystem.Reset` && method === 'POST') {
        const t = body['ResetType'];
        if (t === 'On') {
          if (machine.running()) return error(409, 'The system is already powered on');
          machine.on();
        } else if (t === 'ForceOff' || t === 'GracefulShutdown') machine.off();
        else if (t === 'ForceRestart') {
          machine.off();
          machine.on();
        } else return error(400, `ResetType ${String(t)} is not supported`);
        res.writeHead(204);
        return res.end();
      }
      return error(404, `no resource ${path}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    user,
    pass,
    certFile,
    machine,
    boot,
    requests,
    redfishtool: (args: string[]) =>
      new Promise<string>((resolve, reject) => {
        execFile(
          'redfishtool',
          ['-r', `127.0.0.1:${port}`, '-u', user, '-p', pass, '-S', 'Always', '-A', 'Basic', ...args],
          // python-requests verifies TLS too; it trusts the test BMC's certificate only through this.
          { env: { ...process.env, REQUESTS_CA_BUNDLE: certFile }, encoding: 'utf8', timeout: 60_000 },
          (err, stdout, stderr) => (err === null ? resolve(stdout) : reject(new Error(`redfishtool ${args.join(' ')}: ${stderr || err.message}`))),
        );
      }),
    async stop() {
      machine.off();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
