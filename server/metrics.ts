/**
 * Prometheus metrics at GET /metrics (text exposition format 0.0.4), built
 * with prom-client. The hot paths pay almost nothing: DHCP and TFTP already
 * count into plain objects (DhcpStats, TftpStats) and those are read only
 * when Prometheus scrapes; the per-request cost is one counter and one
 * histogram observation for HTTP and for store calls. Leases, pool sizes,
 * systems by stage and stalls are computed at scrape time too.
 *
 * Names follow https://prometheus.io/docs/practices/naming/: `forge_`
 * prefix, base units (seconds, bytes), `_total` on counters; Node's own
 * process_* and nodejs_* metrics (event-loop lag among them) come from
 * prom-client's default collectors.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { nativeStatus } from './native/index.js';
import { ACTIVE_STAGES, stageOf } from './events/lifecycle.js';
import type { ForgeEvent } from './core/model.js';
import type { DhcpHandler } from './services/dhcp/handler.js';
import type { TftpStats } from './services/tftp/server.js';
import type { Store } from './store/store.js';

/** DhcpStats key -> the message type it counts and what forge did with it. */
const DHCP_PACKETS: Record<string, { type: string; result: string }> = {
  offers: { type: 'discover', result: 'offer' },
  exhausted: { type: 'discover', result: 'no_address' },
  acks: { type: 'request', result: 'ack' },
  naks: { type: 'request', result: 'nak' },
  unrecorded: { type: 'request', result: 'not_recorded' },
  releases: { type: 'release', result: 'released' },
  declines: { type: 'decline', result: 'declined' },
  informs: { type: 'inform', result: 'ack' },
  ignored: { type: 'any', result: 'ignored' },
  malformed: { type: 'any', result: 'malformed' },
  errors: { type: 'any', result: 'error' },
};

const TFTP_TRANSFERS: Partial<Record<keyof TftpStats, string>> = { completed: 'completed', failed: 'failed', aborted: 'aborted', probes: 'probe' };
const TFTP_ERRORS: Partial<Record<keyof TftpStats, string>> = {
  notFound: 'not_found',
  refused: 'access_violation',
  busy: 'busy',
  writeRefused: 'write_refused',
  malformed: 'malformed',
  wrongTid: 'unknown_tid',
};

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly tftpBytes: Counter;
  readonly storeDuration: Histogram<'op'>;
  private readonly events: Counter<'type'>;
  private readonly renders: Counter<'result'>;
  private dhcp: DhcpHandler | undefined;
  private tftp: TftpStats | undefined;
  private index: { stats(): { ready: boolean; systems: number } } | undefined;
  private cache: { stats(): { windowTable: { kept: boolean; ready: boolean; windows: number } } } | undefined;

  constructor(opts: { store?: Store; stallMinutes?: number } = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    this.httpRequests = new Counter({ name: 'forge_http_requests_total', help: 'HTTP requests by route pattern and status', labelNames: ['method', 'route', 'status'], registers });
    this.httpDuration = new Histogram({
      name: 'forge_http_request_duration_seconds',
      help: 'HTTP request latency (until the response is sent) by route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    });
    this.tftpBytes = new Counter({ name: 'forge_tftp_sent_bytes_total', help: 'bytes of completed TFTP transfers', registers });
    this.storeDuration = new Histogram({
      name: 'forge_store_operation_duration_seconds',
      help: 'store (SQLite) call latency by operation',
      labelNames: ['op'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.events = new Counter({ name: 'forge_events_total', help: 'lifecycle events recorded, by type (installs by stage)', labelNames: ['type'], registers });
    this.renders = new Counter({ name: 'forge_autoinstall_renders_total', help: 'autoinstall files rendered for installers, by result', labelNames: ['result'], registers });

    const self = this;
    new Counter({
      name: 'forge_dhcp_packets_total',
      help: 'DHCP packets received, by message type and what forge did (offer, ack, nak, ignored, ...)',
      labelNames: ['type', 'result'],
      registers,
      collect() {
        this.reset();
        const st = self.dhcp?.stats as unknown as Record<string, number> | undefined;
        if (st === undefined) return;
        for (const [k, l] of Object.entries(DHCP_PACKETS)) this.inc(l, st[k] ?? 0);
      },
    });
    new Counter({
      name: 'forge_dhcp_received_packets_total',
      help: 'DHCP datagrams received',
      registers,
      collect() {
        this.reset();
        if (self.dhcp !== undefined) this.inc(self.dhcp.stats.received);
      },
    });
    new Gauge({
      name: 'forge_dhcp_leases',
      help: 'addresses held (offered or bound, not expired) per subnet',
      labelNames: ['subnet'],
      registers,
      collect() {
        this.reset();
        for (const [subnet, u] of self.poolUse()) this.set({ subnet }, u.held);
      },
    });
    new Gauge({
      name: 'forge_dhcp_pool_addresses',
      help: 'addresses in the dynamic pools per subnet',
      labelNames: ['subnet'],
      registers,
      collect() {
        this.reset();
        for (const [subnet, u] of self.poolUse()) this.set({ subnet }, u.size);
      },
    });
    new Gauge({
      name: 'forge_native_loaded',
      help: 'the optional native data path (binding.gyp) is in use (1) or forge runs on its JavaScript path only (0; the start log says why)',
      registers,
      collect() {
        this.set(nativeStatus.loaded ? 1 : 0);
      },
    });
    new Gauge({
      name: 'forge_system_index_ready',
      help: 'the in-process system index is loaded (1) or still loading after a start (0): until then lookups by MAC/IP go to the store',
      registers,
      collect() {
        if (self.index !== undefined) this.set(self.index.stats().ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'forge_system_index_systems',
      help: 'systems in the in-process system index',
      registers,
      collect() {
        if (self.index !== undefined) this.set(self.index.stats().systems);
      },
    });
    new Gauge({
      name: 'forge_install_windows_cached',
      help: 'install windows held whole in memory (PostgreSQL: every window, once loaded; -1 while the table is loading or out of use and reads go to the store; SQLite: 0, read per name)',
      registers,
      collect() {
        if (self.cache !== undefined) {
          const t = self.cache.stats().windowTable;
          this.set(!t.kept ? 0 : t.ready ? t.windows : -1);
        }
      },
    });
    new Counter({
      name: 'forge_tftp_requests_total',
      help: 'TFTP read requests',
      registers,
      collect() {
        this.reset();
        if (self.tftp !== undefined) this.inc(self.tftp.requests);
      },
    });
    new Counter({
      name: 'forge_tftp_transfers_total',
      help: 'TFTP transfers by outcome (probe: the PXE tsize probe a ROM aborts on purpose)',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const st = self.tftp;
        if (st !== undefined) for (const [k, result] of Object.entries(TFTP_TRANSFERS)) this.inc({ result }, st[k as keyof TftpStats]);
      },
    });
    new Counter({
      name: 'forge_tftp_errors_total',
      help: 'TFTP requests answered with an error or dropped, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        const st = self.tftp;
        if (st !== undefined) for (const [k, reason] of Object.entries(TFTP_ERRORS)) this.inc({ reason }, st[k as keyof TftpStats]);
      },
    });
    new Counter({
      name: 'forge_tftp_retransmits_total',
      help: 'TFTP blocks sent again after a timeout',
      registers,
      collect() {
        this.reset();
        if (self.tftp !== undefined) this.inc(self.tftp.retransmits);
      },
    });
    const store = opts.store;
    if (store !== undefined) {
      const stall = opts.stallMinutes ?? 60;
      let last: { at: number; latest: ForgeEvent[] } | undefined;
      // One store read serves both gauges of a scrape.
      const latest = async (): Promise<ForgeEvent[]> => {
        const now = Date.now();
        if (last === undefined || now - last.at > 1000) last = { at: now, latest: await store.latestEvents() };
        return last.latest;
      };
      new Gauge({
        name: 'forge_systems',
        help: 'systems by install stage (from their latest event; systems with no event are not counted)',
        labelNames: ['stage'],
        registers,
        async collect() {
          this.reset();
          for (const ev of await latest()) this.inc({ stage: stageOf(ev) });
        },
      });
      new Gauge({
        name: 'forge_systems_stalled',
        help: 'systems in an active stage (booting, installing) with no event for stall_minutes',
        registers,
        async collect() {
          const now = Date.now();
          this.set((await latest()).filter((ev) => ACTIVE_STAGES.has(stageOf(ev)) && stall > 0 && now - Date.parse(ev.time) >= stall * 60_000).length);
        },
      });
    }
  }

  /** The running DHCP server (managed or proxy): its counters and lease table. */
  watchDhcp(handler: DhcpHandler): void {
    this.dhcp = handler;
  }

  watchTftp(stats: TftpStats): void {
    this.tftp = stats;
  }

  /** The in-process system index (store/index.ts): loaded or not, and how many systems it holds. */
  watchIndex(index: { stats(): { ready: boolean; systems: number } }): void {
    this.index = index;
  }

  /** The object cache (store/cache.ts): whether its whole-table install windows answer (shared stores). */
  watchCache(cache: { stats(): { windowTable: { kept: boolean; ready: boolean; windows: number } } }): void {
    this.cache = cache;
  }

  /** Every stored event (EventHub subscriber). */
  countEvent(ev: ForgeEvent): void {
    this.events.inc({ type: ev.type });
    if (ev.type === 'autoinstall_served') this.renders.inc({ result: 'ok' });
    else if (ev.type === 'autoinstall_failed') this.renders.inc({ result: 'error' });
  }

  private poolUse(): Map<string, { held: number; size: number }> {
    const out = new Map<string, { held: number; size: number }>();
    const h = this.dhcp;
    if (h === undefined) return out;
    const pools = h.settings.pools;
    for (const p of pools) {
      const u = out.get(p.subnet.cidr) ?? { held: 0, size: 0 };
      u.size += p.last - p.first + 1;
      out.set(p.subnet.cidr, u);
    }
    for (const e of h.leases.held(Date.now())) {
      const p = pools.find((x) => e.ip >= x.first && e.ip <= x.last);
      // Reservations outside the pools do not use the pool.
      if (p !== undefined) out.get(p.subnet.cidr)!.held++;
    }
    return out;
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * The store with every async call timed into forge_store_operation_duration_seconds.
 * A Proxy so that new Store methods are timed without listing them here.
 */
export function timedStore<S extends object>(store: S, hist: Histogram<'op'>): S {
  // One wrapper per method, made once (a closure per call showed in DHCP profiles), and the
  // caller awaits the store's own promise: the timing is observed beside it, not in its chain.
  const wrapped = new Map<string, (...a: unknown[]) => unknown>();
  return new Proxy(store, {
    get(target, prop, receiver) {
      // The made wrapper first: reading the method again each time went through the store's
      // layers (store/overlay.ts), which bind a function per read (issue 21 DHCP profile).
      let w = typeof prop === 'string' ? wrapped.get(prop) : undefined;
      if (w !== undefined) return w;
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || typeof prop !== 'string' || prop === 'constructor') return v;
      const fn = v as (...a: unknown[]) => unknown;
      // The labelled series found once: observe(labels, v) hashes the labels on every call.
      const series = hist.labels({ op: prop });
      w = (...args: unknown[]): unknown => {
        const t0 = performance.now();
        const r = fn.apply(target, args);
        if (r instanceof Promise) {
          const done = (): void => series.observe((performance.now() - t0) / 1000);
          r.then(done, done);
        }
        return r;
      };
      wrapped.set(prop, w);
      return w;
    },
  });
}
