/**
 * One retransmission clock per TFTP engine instead of a timer per transfer (issue 21).
 *
 * A per-transfer Node timer is re-armed on every window: `Timeout.refresh()` reads libuv's
 * clock and moves the timer in its list, a C++ crossing and list surgery per DATA window on
 * the hot path. Here a window only stores an integer deadline (`after()`), and one interval
 * timer, running only while transfers exist, checks every transfer once per tick.
 *
 * Precision: a deadline fires no earlier than asked and, on a loop that is not busy, at most
 * one tick late (a per-transfer timer is no more punctual on a busy loop). RFC 1350
 * section 2 and RFC 2349 ask for a retransmission timeout, not an exact one; the tick is a
 * tenth of the engine's base timeout (5-50 ms), well below the 1 s minimum a client may
 * negotiate (RFC 2349: timeout 1-255 s).
 */

/** What the clock calls once per tick. */
export interface Ticking {
  onTick(tick: number): void;
}

export class RetransmitClock {
  /** Ticks of real time since the clock was made (read from the monotonic clock once per tick). */
  tick = 0;
  readonly tickMs: number;
  private readonly origin = performance.now();
  private readonly members = new Set<Ticking>();
  private timer: NodeJS.Timeout | undefined;

  constructor(baseTimeoutMs: number) {
    this.tickMs = Math.max(5, Math.min(50, Math.floor(baseTimeoutMs / 10)));
  }

  /**
   * The tick at which `ms` have certainly passed: read from the monotonic clock (the interval
   * may be late on a busy loop, or not running yet), and one more than ms/tickMs as the
   * current tick may be nearly over. Checked with `tick >= deadline`.
   */
  after(ms: number): number {
    return this.now() + Math.ceil(ms / this.tickMs) + 1;
  }

  private now(): number {
    return Math.floor((performance.now() - this.origin) / this.tickMs);
  }

  /** Milliseconds, to tick precision, since `tick` (for the stall bound). */
  since(tick: number): number {
    return (this.tick - tick) * this.tickMs;
  }

  /** True while the interval runs (only while members exist). */
  get running(): boolean {
    return this.timer !== undefined;
  }

  add(t: Ticking): void {
    this.members.add(t);
    if (this.timer === undefined) {
      // Idle until now: `tick` is stale, and progress marks taken from it must not be.
      this.tick = this.now();
      this.timer = setInterval(() => this.onInterval(), this.tickMs);
    }
  }

  delete(t: Ticking): void {
    this.members.delete(t);
    if (this.members.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private onInterval(): void {
    // From the clock, not a count of intervals: a busy loop delays intervals, and the stall
    // bound must hold in real time.
    const now = Math.max(this.tick, this.now());
    this.tick = now;
    // A member may end (and delete itself) inside onTick; iterating a Set while deleting the
    // visited entry is well defined in JavaScript.
    for (const t of this.members) t.onTick(now);
  }
}
