/**
 * Power drivers: libvirt (virsh), IPMI 2.0 lanplus (ipmitool) and Redfish
 * (HTTPS). Each turns a system's power_* fields into on/off/cycle/status and,
 * where the machine's firmware can be told, "PXE on next boot".
 *
 * Why ipmitool rather than an own RMCP+ client: IPMI 2.0 session setup (RAKP
 * with HMAC-SHA1/SHA256, AES-CBC-128 integrity/confidentiality, cipher suite
 * negotiation) is large and quirky across BMC vendors; ipmitool is packaged
 * in every distribution and is what operators already debug with. The
 * password goes to ipmitool through its environment (`-E` reads
 * IPMI_PASSWORD), never its argv, so `ps` does not show it.
 *
 * Every call is bounded: a child process is killed after CMD_TIMEOUT_MS,
 * an HTTP request aborted after HTTP_TIMEOUT_MS. Errors name the driver, the
 * address and the other side's own answer, and never the password.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { PowerType, System } from '../core/model.js';
import { ForgeError } from '../errors.js';

export type PowerState = 'on' | 'off' | 'unknown';

export interface PowerDriver {
  readonly type: Exclude<PowerType, 'none'>;
  /** Where it talks to, for messages: URI, host:port or URL. */
  readonly address: string;
  on(): Promise<void>;
  off(): Promise<void>;
  /** Hard reset when on; power on when off. */
  cycle(): Promise<void>;
  status(): Promise<PowerState>;
  /**
   * Make the next boot a network boot. undefined when the driver cannot (libvirt: the
   * domain's own boot order decides; forge's per-machine netboot config does the rest).
   */
  pxeNext?(): Promise<void>;
}

export const CMD_TIMEOUT_MS = 30_000;
export const HTTP_TIMEOUT_MS = 20_000;

export interface DriverOptions {
  cmdTimeoutMs?: number;
  httpTimeoutMs?: number;
}

function fail(type: string, address: string, what: string, answer: string): ForgeError {
  return new ForgeError('POWER_FAILED', `${type} ${address}: ${what}: ${answer.trim().replace(/\s+/g, ' ').slice(0, 500) || '(no answer)'}`, {
    details: { driver: type, address, answer: answer.trim().slice(0, 2000) },
  });
}

interface RunResult {
  stdout: string;
}

function run(type: string, address: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, secret = ''): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) {
        resolve({ stdout });
        return;
      }
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      let answer = `${stderr}`.trim() || `${stdout}`.trim() || e.message;
      if (secret !== '') answer = answer.split(secret).join('********');
      if (e.code === 'ENOENT') reject(fail(type, address, `${cmd} is not installed`, `apt-get install ${cmd === 'virsh' ? 'libvirt-clients' : cmd}`));
      else if (e.killed === true) reject(fail(type, address, `no answer within ${Math.round(timeoutMs / 1000)} s`, answer));
      else reject(fail(type, address, `${args.filter((a) => !a.startsWith('-')).slice(-2).join(' ')} failed`, answer));
    });
  });
}

// ---------------------------------------------------------------- libvirt

export function libvirtDriver(s: System, opts: DriverOptions = {}): PowerDriver {
  const uri = s.power_address !== '' ? s.power_address : 'qemu:///system';
  const dom = s.power_id;
  const t = opts.cmdTimeoutMs ?? CMD_TIMEOUT_MS;
  // LIBVIRT_DEFAULT_URI would otherwise override nothing, but a user's
  // VIRSH_DEFAULT_CONNECT_URI must not redirect forge to another host.
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root', LC_ALL: 'C' };
  const virsh = (...a: string[]): Promise<RunResult> => run('libvirt', `${uri} domain ${dom}`, 'virsh', ['-q', '-c', uri, ...a], env, t);
  const status = async (): Promise<PowerState> => {
    const st = (await virsh('domstate', '--', dom)).stdout.trim();
    // virsh domstate: running, idle, paused, in shutdown, shut off, crashed, pmsuspended
    if (st === 'shut off' || st === 'crashed') return 'off';
    if (st === 'running' || st === 'idle' || st === 'paused' || st === 'in shutdown' || st === 'blocked' || st === 'pmsuspended') return 'on';
    return 'unknown';
  };
  return {
    type: 'libvirt',
    address: uri,
    status,
    async on() {
      if ((await status()) === 'on') return;
      await virsh('start', '--', dom);
    },
    async off() {
      if ((await status()) === 'off') return;
      await virsh('destroy', '--', dom);
    },
    async cycle() {
      if ((await status()) === 'off') await virsh('start', '--', dom);
      else await virsh('reset', '--', dom);
    },
  };
}

// ---------------------------------------------------------------- IPMI

/**
 * RMCP+ cipher suites, strongest first: 17 (HMAC-SHA256, HMAC-SHA256-128,
 * AES-CBC-128), then 3 (HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128), the suite
 * every IPMI 2.0 BMC supports. The one a BMC accepted is remembered.
 */
const CIPHER_SUITES = ['17', '3'] as const;
const SUITES = new Map<string, string>();

export function ipmiDriver(s: System, opts: DriverOptions = {}): PowerDriver {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(s.power_address);
  const host = (m?.[1] ?? s.power_address).replace(/^\[|\]$/g, '');
  const port = m?.[2] ?? '623';
  const t = opts.cmdTimeoutMs ?? CMD_TIMEOUT_MS;
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LC_ALL: 'C', IPMI_PASSWORD: s.power_pass };
  const address = `${host}:${port}`;
  // -N 2 -R 3: ipmitool's own per-try timeout and retries stay well inside CMD_TIMEOUT_MS.
  const base = ['-I', 'lanplus', '-H', host, '-p', port, '-U', s.power_user, '-E', '-N', '2', '-R', '3'];
  // An explicit cipher suite: without -C, ipmitool first asks Get Channel Cipher Suites,
  // which BMCs without it (ipmi_sim among them) let time out for ~10 s on every call.
  const ipmi = async (...a: string[]): Promise<RunResult> => {
    const known = SUITES.get(address);
    for (const suite of known !== undefined ? [known] : CIPHER_SUITES) {
      try {
        const r = await run('ipmi', address, 'ipmitool', [...base, '-C', suite, ...a], env, t, s.power_pass);
        SUITES.set(address, suite);
        return r;
      } catch (e) {
        // Suite refused at RMCP+ Open Session (IPMI 2.0 section 13.17): try the next one.
        const refused = e instanceof ForgeError && /invalid (authentication|integrity|confidentiality) algorithm|no matching cipher suite/i.test(e.message);
        if (!refused || known !== undefined) throw e;
      }
    }
    throw fail('ipmi', address, 'no cipher suite accepted', `tried ${CIPHER_SUITES.join(', ')}`);
  };
  const status = async (): Promise<PowerState> => {
    const out = (await ipmi('chassis', 'power', 'status')).stdout;
    if (/Chassis Power is on/i.test(out)) return 'on';
    if (/Chassis Power is off/i.test(out)) return 'off';
    return 'unknown';
  };
  return {
    type: 'ipmi',
    address,
    status,
    async on() {
      await ipmi('chassis', 'power', 'on');
    },
    async off() {
      await ipmi('chassis', 'power', 'off');
    },
    async cycle() {
      // "power cycle" is refused by a BMC whose chassis is off (IPMI 2.0 section 28.3).
      if ((await status()) === 'off') await ipmi('chassis', 'power', 'on');
      else await ipmi('chassis', 'power', 'cycle');
    },
    async pxeNext() {
      // Set System Boot Options, boot flags parameter 5: force PXE, valid for the next boot only.
      await ipmi('chassis', 'bootdev', 'pxe');
    },
  };
}

// ---------------------------------------------------------------- Redfish

interface HttpAnswer {
  status: number;
  body: string;
}

export function redfishDriver(s: System, opts: DriverOptions = {}): PowerDriver {
  const base = new URL(/^[a-z]+:\/\//i.test(s.power_address) ? s.power_address : `https://${s.power_address}`);
  const root = `${base.protocol}//${base.host}`;
  const t = opts.httpTimeoutMs ?? HTTP_TIMEOUT_MS;
  let ca: Buffer | undefined;
  const auth = `Basic ${Buffer.from(`${s.power_user}:${s.power_pass}`).toString('base64')}`;
  let systemPath: string | undefined = s.power_id !== '' ? `/redfish/v1/Systems/${encodeURIComponent(s.power_id)}` : undefined;

  const call = (method: string, path: string, body?: unknown): Promise<HttpAnswer> => {
    if (s.power_ca !== '' && ca === undefined) {
      try {
        ca = readFileSync(s.power_ca);
      } catch (e) {
        return Promise.reject(fail('redfish', root, `cannot read power_ca ${s.power_ca}`, (e as Error).message));
      }
    }
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string> = { accept: 'application/json', authorization: auth, 'odata-version': '4.0' };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(payload));
      }
      const reqFn = base.protocol === 'https:' ? httpsRequest : httpRequest;
      // rejectUnauthorized stays true: a BMC with a self-signed certificate needs power_ca.
      const req = reqFn(
        `${root}${path}`,
        { method, headers, timeout: t, ...(base.protocol === 'https:' ? { rejectUnauthorized: true, ...(ca !== undefined ? { ca } : {}) } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            // A Redfish resource is a few kB; a BMC streaming more is broken.
            if (size > 4 * 1024 * 1024) req.destroy(new Error('answer larger than 4 MB'));
            else chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (e) => reject(fail('redfish', root, `${method} ${path}`, e.message)));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${Math.round(t / 1000)} s`)));
      req.on('error', (e) => {
        const code = (e as NodeJS.ErrnoException).code;
        const hint = code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
          ? ' (set power_ca to the BMC certificate or its CA)'
          : '';
        reject(fail('redfish', root, `${method} ${path}`, `${code ?? ''} ${e.message}${hint}`));
      });
      req.end(payload);
    });
  };

  const mustOk = (a: HttpAnswer, what: string): HttpAnswer => {
    if (a.status >= 200 && a.status < 300) return a;
    // A Redfish error body is {"error":{"message":..., "@Message.ExtendedInfo":[{"Message":...}]}} (DSP0266 9.7).
    let msg = a.body;
    try {
      const j = JSON.parse(a.body) as { error?: { message?: string; '@Message.ExtendedInfo'?: { Message?: string }[] } };
      const ext = j.error?.['@Message.ExtendedInfo']?.map((x) => x.Message).filter((x) => x !== undefined) ?? [];
      msg = [j.error?.message, ...ext].filter((x) => x !== undefined && x !== '').join('; ') || a.body;
    } catch {
      /* not JSON: show it as it came */
    }
    throw fail('redfish', root, `${what}: HTTP ${a.status}`, msg);
  };

  const json = (a: HttpAnswer, what: string): Record<string, unknown> => {
    try {
      const v = JSON.parse(a.body) as unknown;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      /* fall through */
    }
    throw fail('redfish', root, `${what}: not a JSON object`, a.body.slice(0, 200));
  };

  const system = async (): Promise<string> => {
    if (systemPath !== undefined) return systemPath;
    const coll = json(mustOk(await call('GET', '/redfish/v1/Systems'), 'GET /redfish/v1/Systems'), 'Systems');
    const members = Array.isArray(coll['Members']) ? (coll['Members'] as { '@odata.id'?: unknown }[]) : [];
    const ids = members.map((m) => m['@odata.id']).filter((x): x is string => typeof x === 'string');
    if (ids.length !== 1) {
      throw fail('redfish', root, 'power_id is empty and the service does not have exactly one system', `members: ${ids.join(', ') || '(none)'}`);
    }
    systemPath = ids[0]!;
    return systemPath;
  };

  const reset = async (type: string): Promise<void> => {
    const p = `${await system()}/Actions/ComputerSystem.Reset`;
    mustOk(await call('POST', p, { ResetType: type }), `POST ${p} ResetType=${type}`);
  };

  const status = async (): Promise<PowerState> => {
    const p = await system();
    const st = json(mustOk(await call('GET', p), `GET ${p}`), p)['PowerState'];
    // PowerState: On, Off, PoweringOn, PoweringOff, Paused (Redfish ComputerSystem schema)
    if (st === 'On' || st === 'PoweringOn' || st === 'Paused') return 'on';
    if (st === 'Off' || st === 'PoweringOff') return 'off';
    return 'unknown';
  };

  return {
    type: 'redfish',
    address: root,
    status,
    // Many BMCs answer 409 to On when on (and ForceOff when off): ask first.
    async on() {
      if ((await status()) !== 'on') await reset('On');
    },
    async off() {
      if ((await status()) !== 'off') await reset('ForceOff');
    },
    async cycle() {
      if ((await status()) === 'off') await reset('On');
      else await reset('ForceRestart');
    },
    async pxeNext() {
      const p = await system();
      mustOk(
        await call('PATCH', p, { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' } }),
        `PATCH ${p} Boot.BootSourceOverrideTarget=Pxe`,
      );
    },
  };
}

/** The driver of a system, or POWER_NOT_CONFIGURED. */
export function driverFor(s: System, opts: DriverOptions = {}): PowerDriver {
  switch (s.power_type ?? 'none') {
    case 'libvirt':
      return libvirtDriver(s, opts);
    case 'ipmi':
      return ipmiDriver(s, opts);
    case 'redfish':
      return redfishDriver(s, opts);
    case 'none':
      throw new ForgeError('POWER_NOT_CONFIGURED', `${s.name}: power_type is none; set --power-type libvirt|ipmi|redfish and its power fields`, {
        field: 'power_type',
      });
  }
}
