/**
 * Token buckets for the public discovery endpoints: per client address and
 * in all. A bucket holds `burst` tokens and refills `perMinute` a minute; a
 * request takes one or is refused. The per-address table is bounded (the
 * stalest entries go first), so a flood from spoofed sources cannot grow it.
 */
export interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly all: Bucket;

  constructor(
    private readonly opts: { perMinute: number; burst: number; totalPerMinute: number; maxClients?: number },
    private readonly now: () => number = Date.now,
  ) {
    this.all = { tokens: opts.totalPerMinute, at: now() };
  }

  private take(b: Bucket, perMinute: number, burst: number): boolean {
    const t = this.now();
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 60_000) * perMinute);
    b.at = t;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** True when `client` may make a request now. */
  allow(client: string): boolean {
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= (this.opts.maxClients ?? 10_000)) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
      b = { tokens: this.opts.burst, at: this.now() };
    } else this.buckets.delete(client);
    this.buckets.set(client, b); // most recent last
    if (!this.take(b, this.opts.perMinute, this.opts.burst)) return false;
    return this.take(this.all, this.opts.totalPerMinute, this.opts.totalPerMinute);
  }
}
