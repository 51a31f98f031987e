/**
 * Event dedupe: one event per key per window (PXE ROMs fetch files twice,
 * installers retry, a scanner repeats). Bounded: past `maxKeys` the table
 * starts over, which can let one duplicate through, never grow without end.
 */
export class EventLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = 10_000,
  ) {}

  /** True (and remembered) when `key` had no event in the last window. */
  allow(key: string, now = Date.now()): boolean {
    const t = this.last.get(key);
    if (t !== undefined && now - t < this.windowMs) return false;
    if (this.last.size >= this.maxKeys) this.last.clear();
    this.last.set(key, now);
    return true;
  }
}
