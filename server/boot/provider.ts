/**
 * The boot service: gathers facts from the store at request time, asks
 * target.ts for the decision, renders it with configs.ts, and records the
 * lifecycle events. Shared by the TFTP provider (files.ts) and the HTTP boot
 * routes (services/http/boot.ts), so both transports answer the same thing.
 */
import type { ForgeConfig } from '../config.js';
import type { BaseUrl, LiveLeases, RecordEvent } from '../deps.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { profileVars, systemVars } from '../catalog.js';
import type { Vars } from '../core/blend.js';
import type { Distro, EventType, Settings, System } from '../core/model.js';
import { ForgeError } from '../errors.js';
import { subnetOfIp } from '../core/subnet.js';
import { lifecycleEvent, type EventDetails, type EventSource } from '../core/events.js';
import { decideBoot, discoveryCmdline, unknownNeeds, unknownPolicy, type Decision, type InstallEntry, type SystemFacts } from '../core/bootplan.js';
import { grubConfig, grubRootConfig, ipxeScript, pxelinuxConfig, type Locator } from './configs.js';
import { bootRootsOf, whyRefused } from './confine.js';
import { isUrl, localFile, type LocalFile } from './distfiles.js';
import { discoveryDir } from '../discovery/image.js';
import { join } from 'node:path';
import { EventLimiter } from '../events/limit.js';

/** Profiles shown in a menu at most (a menu of thousands helps nobody). */
const MENU_LIMIT = 200;
/** PXE ROMs fetch a file twice (tsize probe, then the transfer): one event per window. */
const EVENT_DEDUPE_MS = 10_000;

export interface Rendered {
  text: string;
  decision: Decision;
}

/** What the boot service uses; main.ts builds it once and TFTP and HTTP share it. */
export interface BootDeps {
  store: Store;
  settings: Settings;
  config: Pick<ForgeConfig, 'unknown_boot' | 'dhcp_unknown' | 'default_profile' | 'data_dir' | 'boot_roots' | 'discovery_kernel_options'>;
  log: Logger;
  record: RecordEvent;
  baseUrl: BaseUrl;
  /**
   * The running DHCP server's in-memory lease index (managed mode). It is
   * ahead of the store, which gets leases in batches, and UEFI firmware asks
   * TFTP for its loader within milliseconds of the ACK.
   */
  liveLeases?: LiveLeases;
}

export class BootService {
  private readonly recent = new EventLimiter(EVENT_DEDUPE_MS);

  constructor(private readonly deps: BootDeps) {}

  async systemVars(s: System): Promise<{ vars: Vars; distro: Distro }> {
    return systemVars(this.deps.store, this.deps.settings, s);
  }

  async profileVars(name: string): Promise<{ vars: Vars; distro: Distro }> {
    return profileVars(this.deps.store, this.deps.settings, name);
  }

  private async systemFacts(s: System): Promise<SystemFacts> {
    const { vars, distro } = await this.systemVars(s);
    return {
      name: s.name,
      netboot_enabled: s.netboot_enabled,
      profile: s.profile,
      distro: distro.name,
      cmdline: typeof vars['kernel_cmdline'] === 'string' ? vars['kernel_cmdline'] : '',
    };
  }

  private async menuEntries(): Promise<InstallEntry[]> {
    const out: InstallEntry[] = [];
    const profiles = await this.deps.store.list('profile');
    for (const p of profiles.slice(0, MENU_LIMIT)) {
      try {
        const { vars, distro } = await this.profileVars(p.name);
        if (vars['enable_menu'] === false) continue;
        out.push({ label: p.name, distro: distro.name, cmdline: typeof vars['kernel_cmdline'] === 'string' ? vars['kernel_cmdline'] : '' });
      } catch (e) {
        this.deps.log.warn('profile left out of the boot menu', { profile: p.name, error: e });
      }
    }
    return out;
  }

  /**
   * The boot decision for a MAC (undefined: the machine did not say, e.g. pxelinux.cfg/default).
   * `clientIp`: the address the request came from; for an unknown machine the stored subnet
   * holding it decides the unknown-machine policy (its `unknown`, else dhcp_unknown), as DHCP did.
   */
  async decide(mac: string | undefined, clientIp?: string): Promise<Decision> {
    const system = mac !== undefined ? await this.deps.store.findSystemByMac(mac) : undefined;
    const ip = clientIp?.replace(/^::ffff:/, '');
    const subnet = system === undefined && ip !== undefined ? subnetOfIp(await this.deps.store.list('subnet'), ip) : undefined;
    const unknown = unknownPolicy(this.deps.config, subnet?.unknown);
    const dflt = system === undefined && unknown.mode !== 'discover' ? await this.deps.store.get('system', 'default') : undefined;
    const facts = {
      system: system !== undefined ? await this.systemFacts(system) : undefined,
      defaultSystem: dflt !== undefined ? await this.systemFacts(dflt) : undefined,
      unknown,
    };
    const need = unknownNeeds(facts);
    return decideBoot({
      ...facts,
      menu: need === 'menu' ? await this.menuEntries() : [],
      ...(need === 'profile' ? { defaultProfile: await this.profileEntry(unknown.defaultProfile!) } : {}),
      ...(need === 'discovery' ? { discoveryCmdline: discoveryCmdline(this.deps.baseUrl(), mac, this.deps.config.discovery_kernel_options) } : {}),
    });
  }

  private async profileEntry(name: string): Promise<InstallEntry> {
    const { vars, distro } = await this.profileVars(name);
    return { label: name, distro: distro.name, cmdline: typeof vars['kernel_cmdline'] === 'string' ? vars['kernel_cmdline'] : '' };
  }

  /**
   * What the discovery image kexecs into for an enlisted system, when its
   * blended variables allow it (`discovery_kexec`, e.g. the profile's
   * autoinstall_meta): the same kernel, initrd and command line its PXE boot
   * would get, over HTTP with its MAC (so the fetches are on its timeline).
   */
  async kexecTarget(systemName: string, mac: string): Promise<{ kernel: string; initrd: string; cmdline: string } | undefined> {
    const s = await this.deps.store.get('system', systemName);
    if (s === undefined || !s.netboot_enabled) return undefined;
    const { vars, distro } = await this.systemVars(s);
    const allow = vars['discovery_kexec'];
    if (!(allow === true || (typeof allow === 'string' && /^(1|true|yes|on)$/i.test(allow)))) return undefined;
    if (distro.kernel === '' || distro.initrd === '') return undefined;
    const loc = this.httpLocator(mac);
    return { kernel: loc.kernel(distro.name), initrd: loc.initrd(distro.name), cmdline: typeof vars['kernel_cmdline'] === 'string' ? vars['kernel_cmdline'] : '' };
  }

  /** The discovery image's kernel or initrd (built into DATA_DIR/discovery by `forge discovery image` or at serve start). */
  async discoveryFile(which: 'kernel' | 'initrd'): Promise<LocalFile> {
    const path = join(discoveryDir(this.deps.config.data_dir), which === 'kernel' ? 'linux' : 'initrd.gz');
    try {
      return await localFile(path, this.deps.config.data_dir);
    } catch {
      throw new ForgeError('NOT_FOUND', `the discovery image has no ${which}: build it with forge discovery image (forge serve does when dhcp_unknown=discover)`);
    }
  }

  /** Kernel/initrd over HTTP; the MAC in the query lets the HTTP side record events without a lease. */
  httpLocator(mac: string | undefined): Locator {
    const q = mac !== undefined ? `?mac=${mac}` : '';
    const base = `${this.deps.baseUrl()}/boot/distro`;
    return {
      kernel: (d) => `${base}/${encodeURIComponent(d)}/kernel${q}`,
      initrd: (d) => `${base}/${encodeURIComponent(d)}/initrd${q}`,
      discovery: { kernel: `${this.deps.baseUrl()}/boot/discovery/kernel`, initrd: `${this.deps.baseUrl()}/boot/discovery/initrd` },
    };
  }

  /** Kernel/initrd over TFTP, relative to the TFTP root (PXELINUX, GRUB). */
  readonly tftpLocator: Locator = {
    kernel: (d) => `/distro/${d}/kernel`,
    initrd: (d) => `/distro/${d}/initrd`,
    discovery: { kernel: '/discovery/kernel', initrd: '/discovery/initrd' },
  };

  async ipxe(mac: string | undefined, clientIp?: string): Promise<Rendered> {
    const decision = await this.decide(mac, clientIp);
    return { text: ipxeScript(decision.target, this.httpLocator(decision.matched === 'mac' ? mac : undefined)), decision };
  }

  async pxelinux(mac: string | undefined, clientIp?: string): Promise<Rendered> {
    const decision = await this.decide(mac, clientIp);
    // pxelinux.0 resolves relative names against its own directory: give it root-relative ones.
    const loc: Locator = {
      kernel: (d) => this.tftpLocator.kernel(d).slice(1),
      initrd: (d) => this.tftpLocator.initrd(d).slice(1),
      discovery: { kernel: this.tftpLocator.discovery.kernel.slice(1), initrd: this.tftpLocator.discovery.initrd.slice(1) },
    };
    return { text: pxelinuxConfig(decision.target, loc), decision };
  }

  async grub(mac: string | undefined, clientIp?: string): Promise<Rendered> {
    const decision = await this.decide(mac, clientIp);
    return { text: grubConfig(decision.target, this.tftpLocator), decision };
  }

  grubRoot(): string {
    return grubRootConfig();
  }

  /** Local file for a distro's kernel or initrd (URLs fetched into the cache). */
  async distroFile(name: string, which: 'kernel' | 'initrd'): Promise<LocalFile> {
    const d = await this.deps.store.get('distro', name);
    if (d === undefined) throw new ForgeError('NOT_FOUND', `distro ${name} does not exist`);
    const loc = d[which];
    if (loc === '') throw new ForgeError('NOT_FOUND', `distro ${name} has no ${which}`);
    if (!isUrl(loc)) {
      // Also refused at write time; this catches objects stored before boot_roots (forge check lists them).
      const why = whyRefused(loc, bootRootsOf(this.deps.config));
      if (why !== undefined) {
        this.deps.log.warn('distro file outside the boot roots not served', { distro: name, field: which, path: loc, why });
        throw new ForgeError('NOT_FOUND', `distro ${name} has no servable ${which} (outside the boot roots; see forge check)`);
      }
    }
    return localFile(loc, this.deps.config.data_dir);
  }

  /** The system behind a client address, via forge's DHCP lease table. */
  async systemByAddress(address: string): Promise<string | undefined> {
    const ip = address.replace(/^::ffff:/, '');
    try {
      const lease = this.deps.liveLeases?.byAddress(ip) ?? (await this.deps.store.getLeaseByIp(ip));
      if (lease !== undefined) {
        if (lease.system !== '') return lease.system;
        return (await this.deps.store.findSystemByMac(lease.mac))?.name;
      }
      return (await this.deps.store.findSystemByIp(ip))?.name;
    } catch {
      return undefined;
    }
  }

  async systemByMac(mac: string | undefined): Promise<string | undefined> {
    if (mac === undefined) return undefined;
    try {
      return (await this.deps.store.findSystemByMac(mac))?.name;
    } catch {
      return undefined;
    }
  }

  /** Record an event, once per (system, type, file) per window. */
  record<T extends EventType>(system: string | undefined, type: T, source: EventSource, detail: EventDetails[T]): void {
    if (system === undefined) return;
    if (!this.recent.allow(`${system}\0${type}\0${String((detail as { file?: unknown }).file ?? '')}`)) return;
    this.deps.record(lifecycleEvent({ system, type, source, detail }));
  }
}
