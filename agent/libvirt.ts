/**
 * The libvirt port of forge-agent and its adapter over @unraid/libvirt (the
 * maintained N-API fork of node-libvirt). The binding covers domains only (no
 * events, capabilities, storage pools or autostart): those go through
 * `virsh` (lifecycle events through a `virsh event --loop` child). The
 * binding is imported dynamically so that forge's server installs and runs
 * where libvirt-dev is missing; forge-agent then says what to install.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ForgeError } from '../server/errors.js';
import { sh } from './disk.js';

/**
 * Lifecycle events of one domain: `wait` ends at the next event or after
 * `ms`, whichever comes first, so a caller that polls the state after each
 * wait reacts at once when events flow and still every `ms` when they do not.
 */
export interface LifecycleWatch {
  wait(ms: number): Promise<'event' | 'timeout'>;
  /** Events seen so far. */
  readonly events: number;
  close(): void;
}

export interface VirtHost {
  /** libvirt's virDomainState number, or undefined when no such domain exists. */
  state(name: string): Promise<number | undefined>;
  define(xml: string): Promise<void>;
  /** Start a transient domain (virDomainCreateXML). */
  createTransient(xml: string): Promise<void>;
  start(name: string): Promise<void>;
  /** Power off at once; no error when it is not running. */
  destroy(name: string): Promise<void>;
  undefine(name: string): Promise<void>;
  autostart(name: string, on: boolean): Promise<void>;
  virsh(args: string[]): Promise<string>;
  /** Follow the lifecycle events of a defined domain; undefined when the host cannot. */
  watch?(name: string): LifecycleWatch;
  close(): Promise<void>;
}

/** `event 'lifecycle' for domain 'vm9': Stopped Shutdown` (virsh event --loop). */
export const LIFECYCLE_LINE = /^event 'lifecycle' for domain '([^']*)': (\S+)(?: (\S+))?/;

/**
 * Runs `virsh event --domain NAME --event lifecycle --loop`: the Node binding
 * has no event API (virConnectDomainEventRegisterAny), virsh does. When virsh
 * cannot start or exits, the watch degrades to a plain timer (polling).
 */
export function virshLifecycleWatch(uri: string, name: string): LifecycleWatch {
  let events = 0;
  let consumed = 0;
  let wake: (() => void) | undefined;
  const child = spawn('virsh', ['-q', '-c', uri, 'event', '--domain', name, '--event', 'lifecycle', '--loop'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  child.on('error', () => {
    /* no virsh: the caller keeps polling */
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = LIFECYCLE_LINE.exec(line);
    if (m === null || m[1] !== name) return;
    events++;
    wake?.();
  });
  return {
    get events() {
      return events;
    },
    wait(ms: number) {
      // An event that came while the caller was busy (reading the state) ends this wait at once.
      if (events > consumed) {
        consumed = events;
        return Promise.resolve('event' as const);
      }
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          wake = undefined;
          resolve('timeout');
        }, ms);
        wake = () => {
          consumed = events;
          clearTimeout(timer);
          wake = undefined;
          resolve('event');
        };
      });
    },
    close() {
      wake?.();
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}

/** The subset of @unraid/libvirt used here, so the rest of the agent never sees `any`. */
interface NativeDomain {
  getInfo(): Promise<{ state: number }>;
  getXMLDesc(flags?: number): Promise<string>;
  create(): Promise<void>;
  destroy(): Promise<void>;
  undefine(): Promise<void>;
}
interface NativeHypervisor {
  connectOpen(): Promise<void>;
  connectClose(): Promise<void>;
  domainLookupByName(name: string): Promise<NativeDomain>;
  domainDefineXML(xml: string): Promise<NativeDomain>;
  domainCreateXML(xml: string): Promise<NativeDomain>;
  connectListDefinedDomains(): Promise<string[]>;
}
interface BindingModule {
  Hypervisor: new (o: { uri: string }) => NativeHypervisor;
}

export const BINDING = '@unraid/libvirt';

export async function loadBinding(): Promise<BindingModule> {
  try {
    const spec: string = BINDING; // a variable keeps bundlers and tsc from requiring it at build time
    return (await import(spec)) as BindingModule;
  } catch (e) {
    throw new ForgeError(
      'VIRT_UNAVAILABLE',
      `the libvirt binding ${BINDING} is not installed or did not load (${(e as Error).message}); ` +
        `install libvirt-dev (Debian) and then \`npm install ${BINDING}\``,
      { cause: e },
    );
  }
}

function notFound(e: unknown): boolean {
  return /not found|no domain with matching/i.test((e as Error).message ?? '');
}

function failed(what: string, e: unknown): ForgeError {
  return new ForgeError('VIRT_FAILED', `${what}: ${(e as Error).message}`, { cause: e });
}

export class LibvirtHost implements VirtHost {
  private constructor(
    private readonly uri: string,
    private readonly hv: NativeHypervisor,
  ) {}

  static async open(uri: string): Promise<LibvirtHost> {
    const mod = await loadBinding();
    const hv = new mod.Hypervisor({ uri });
    try {
      await hv.connectOpen();
    } catch (e) {
      throw new ForgeError('VIRT_UNAVAILABLE', `cannot connect to libvirt at ${uri}: ${(e as Error).message} (is libvirtd running?)`, { cause: e });
    }
    return new LibvirtHost(uri, hv);
  }

  private async lookup(name: string): Promise<NativeDomain | undefined> {
    try {
      return await this.hv.domainLookupByName(name);
    } catch (e) {
      if (notFound(e)) return undefined;
      throw failed(`lookup of domain ${name}`, e);
    }
  }

  async state(name: string): Promise<number | undefined> {
    const d = await this.lookup(name);
    if (d === undefined) return undefined;
    try {
      return (await d.getInfo()).state;
    } catch (e) {
      // A transient domain can vanish between lookup and getInfo.
      if (notFound(e)) return undefined;
      throw failed(`state of domain ${name}`, e);
    }
  }

  async define(xml: string): Promise<void> {
    try {
      await this.hv.domainDefineXML(xml);
    } catch (e) {
      throw failed('define domain', e);
    }
  }

  async createTransient(xml: string): Promise<void> {
    try {
      await this.hv.domainCreateXML(xml);
    } catch (e) {
      throw failed('start installer domain', e);
    }
  }

  async start(name: string): Promise<void> {
    const d = await this.lookup(name);
    if (d === undefined) throw new ForgeError('VIRT_FAILED', `domain ${name} is not defined`);
    try {
      await d.create();
    } catch (e) {
      throw failed(`start domain ${name}`, e);
    }
  }

  async destroy(name: string): Promise<void> {
    const d = await this.lookup(name);
    if (d === undefined) return;
    try {
      await d.destroy();
    } catch (e) {
      if (!/not running|is not active|not found/i.test((e as Error).message)) throw failed(`destroy domain ${name}`, e);
    }
  }

  async undefine(name: string): Promise<void> {
    const d = await this.lookup(name);
    if (d === undefined) return;
    try {
      await d.undefine();
    } catch (e) {
      if (!notFound(e) && !/transient/i.test((e as Error).message)) throw failed(`undefine domain ${name}`, e);
    }
  }

  async autostart(name: string, on: boolean): Promise<void> {
    await this.virsh(on ? ['autostart', name] : ['autostart', '--disable', name]);
  }

  virsh(args: string[]): Promise<string> {
    return sh('virsh', ['-q', '-c', this.uri, ...args]);
  }

  watch(name: string): LifecycleWatch {
    return virshLifecycleWatch(this.uri, name);
  }

  async close(): Promise<void> {
    try {
      await this.hv.connectClose();
    } catch {
      // closing a connection that libvirtd dropped is not worth an error
    }
  }
}
