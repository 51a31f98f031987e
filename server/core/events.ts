/**
 * Lifecycle events: the one table of event types (each with the install
 * stage it puts a system in, events/lifecycle.ts reads it) and the detail
 * each type carries. Every place that records an event (DHCP, TFTP, HTTP
 * boot, autoinstall, power, discovery) builds it as a `LifecycleEvent`, so a
 * detail field misspelt or missing is a compile error, not a timeline gap.
 * Events posted over the API (forge-agent, `POST /api/v1/systems/NAME/events`)
 * carry a free detail object: their shape is the poster's.
 * Pure: no I/O.
 */

/** Install stages, in the order an install goes through them (events/lifecycle.ts). */
export const STAGES = ['new', 'configured', 'booting', 'installing', 'installed', 'running', 'local', 'failed'] as const;
export type Stage = (typeof STAGES)[number];

interface EventSpec {
  /** The stage a system is in after this event (events/lifecycle.ts). */
  stage: Stage;
  /** Says something was done to the system, not where its install is: never moves the stage. */
  neutral?: true;
}

/** Every event type, in timeline order, with its stage. Add a type here and its detail in EventDetails. */
export const EVENTS = {
  dhcp_offer: { stage: 'booting' },
  dhcp_ack: { stage: 'booting' },
  loader_fetched: { stage: 'booting' },
  boot_config_served: { stage: 'booting' },
  kernel_fetched: { stage: 'booting' },
  initrd_fetched: { stage: 'booting' },
  autoinstall_served: { stage: 'installing' },
  autoinstall_failed: { stage: 'failed' },
  install_start: { stage: 'installing' },
  install_done: { stage: 'installed' },
  netboot_disabled: { stage: 'installed' },
  first_boot: { stage: 'running' },
  install_progress: { stage: 'installing' },
  cloud_init_done: { stage: 'running' },
  agent_start: { stage: 'booting' },
  installer_running: { stage: 'installing' },
  installer_finished: { stage: 'installed' },
  disk_boot_started: { stage: 'installed' },
  agent_failed: { stage: 'failed' },
  /** forge-agent --build debootstrap (no installer): the build's stages; the guest then reports its own first_boot. */
  build_started: { stage: 'installing' },
  disk_ready: { stage: 'installing' },
  bootstrap_done: { stage: 'installing' },
  hooks_done: { stage: 'installing' },
  bootloader_done: { stage: 'installed' },
  edited: { stage: 'configured', neutral: true },
  /** forge-agent managed the VM (detail.action: start, stop, kill, destroy, snapshot_*, clone, console, ssh_key_put, job). */
  vm_action: { stage: 'configured', neutral: true },
  /** forge's power drivers (server/power/): detail.driver, detail.address, detail.error. */
  power_on: { stage: 'configured', neutral: true },
  power_off: { stage: 'configured', neutral: true },
  power_reboot: { stage: 'configured', neutral: true },
  power_failed: { stage: 'configured', neutral: true },
  pxe_next_boot: { stage: 'configured', neutral: true },
  /** A reinstall puts the system back to configured. */
  reinstall_requested: { stage: 'configured' },
  /** A discovered machine became this system (detail.rule: the rule, '' by hand). */
  enlisted: { stage: 'configured' },
  /** Server-wide (system ''): another DHCP server answered forge's probe on a served link; never part of a system's timeline. */
  dhcp_rival: { stage: 'configured' },
  /** Server-wide (system ''): a re-probe of a rival link heard no other server; forge answers there again. */
  dhcp_rival_gone: { stage: 'configured' },
  /** An install URL of the system was refused (no, wrong or stale install token, or outside the window): not where its install is. */
  install_refused: { stage: 'configured', neutral: true },
} as const satisfies Record<string, EventSpec>;

export type EventType = keyof typeof EVENTS;
export const EVENT_TYPES = Object.keys(EVENTS) as readonly EventType[];

/** A boot file served (HTTP or TFTP): what and to whom. */
type Served = { file: string; client: string; bytes?: number; ms?: number };
/** An installer's callback. */
type Callback = { client: string; url: string };
/** Reported by forge-agent or posted over the API: the poster's own shape. */
type Posted = Record<string, unknown>;
/** forge's power drivers. */
type Power = { driver: string; address?: string; reason?: string; action?: string; error?: string; netboot_enabled?: boolean };

/** The detail each event type carries. */
export type EventDetails = {
  dhcp_offer: Dhcp;
  dhcp_ack: Dhcp;
  loader_fetched: Served;
  /** boot: the boot target kind the config sent the machine to (`local` = its disk). */
  boot_config_served: Served & { boot?: string };
  kernel_fetched: DistroFetch;
  initrd_fetched: DistroFetch;
  autoinstall_served: {
    template: string;
    snippets: number;
    /** Which overrides shaped this file (per_system/per_profile/per_distro or a site copy). */
    overrides: string[];
    bytes: number;
    client: string;
    /** forge's address the installer used (the provisioning NIC on a multi-homed host). */
    server?: string;
    url: string;
    /** A cloud-init seed file (user-data, meta-data, ...). */
    file?: string;
  };
  autoinstall_failed: { code: string; message: string; client: string; url: string; where?: unknown; file?: string };
  install_start: Callback;
  install_done: Callback;
  netboot_disabled: { reason: 'pxe_just_once'; client: string };
  /** forge-agent --build's guests add what they see: host name, kernel, root's authorized_keys fingerprints, disks, network (addresses, MTU, default route, DNS). */
  first_boot: Callback & { hostname?: string; kernel?: string; authorized_keys?: string; disks?: string; network?: string };
  /** subiquity's webhook reporter: its event's fields, each at most 300 characters. */
  install_progress: { client: string; event_type?: string; name?: string; result?: string; description?: string; origin?: string; level?: string };
  cloud_init_done: Callback & { instance_id?: string; hostname?: string; fqdn?: string };
  agent_start: Posted;
  installer_running: Posted;
  installer_finished: Posted;
  disk_boot_started: Posted;
  agent_failed: Posted;
  build_started: Posted;
  disk_ready: Posted;
  bootstrap_done: Posted;
  hooks_done: Posted;
  bootloader_done: Posted;
  edited: Posted;
  vm_action: Posted;
  power_on: Power;
  power_off: Power;
  power_reboot: Power;
  power_failed: Power;
  pxe_next_boot: Power;
  reinstall_requested: Power;
  enlisted: { discovered: string; mac: string; rule: string; profile: string; serial: string };
  /** servers: each answer to the probe (its source address, server identifier and the address it offered). */
  dhcp_rival: { interface: string; subnet: string; servers: { from: string; serverId: string | undefined; yiaddr: string }[]; answering: boolean };
  /** servers: the answers heard before the link went quiet. */
  dhcp_rival_gone: { interface: string; subnet: string; servers: { from: string; serverId: string | undefined; yiaddr: string }[] };
  /** reason: no_token, wrong_token (stale: an earlier install's) or window_closed; url with the token masked. */
  install_refused: { reason: 'no_token' | 'wrong_token' | 'window_closed'; client: string; url: string };
};

/** arch: the client system architecture type (option 93, RFC 4578 section 2.1); relay: giaddr (RFC 2131 section 4.1). */
type Dhcp = { mac: string; ip: string; mode: string; plan: string; arch?: number; boot_file?: string; relay?: string };
type DistroFetch = Served & { distro: string; size: number };

/** Where an event came from. */
export type EventSource = 'dhcp' | 'tftp' | 'http' | 'https' | 'api' | 'agent' | 'cli' | 'power' | 'discovery' | (string & {});

/** One event of type T as a recorder builds it. */
export type EventOf<T extends EventType> = { system: string; type: T; source: EventSource; detail: EventDetails[T]; time?: string };

/** An event as forge's own recorders build it: the detail typed by its type. */
export type LifecycleEvent = { [T in EventType]: EventOf<T> }[EventType];

/**
 * One event of a type known only as a type parameter, as the union recorders
 * take (TypeScript does not narrow a generic to the union's member itself).
 */
export function lifecycleEvent<T extends EventType>(ev: EventOf<T>): LifecycleEvent {
  return ev as LifecycleEvent;
}

/** The stage an event type puts a system in. */
export function stageOfType(type: EventType): Stage {
  return EVENTS[type].stage;
}

/** Whether an event type never moves the stage. */
export function isNeutral(type: EventType): boolean {
  return 'neutral' in EVENTS[type];
}
