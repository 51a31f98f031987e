/**
 * Writes that must apply in call order (a system's lifecycle events, a
 * MAC's lease states): queued, and each batch of what was queued meanwhile
 * written in one transaction, one batch at a time. Object writes do not use
 * this: they run concurrently on the pool and the database orders them.
 */
import type { Client, Db } from './db.js';

interface Queued<I, O> {
  item: I;
  resolve: (v: O) => void;
  reject: (e: unknown) => void;
}

export class OrderedWrites<I, O> {
  private queue: Queued<I, O>[] = [];
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    /** Writes the batch in the transaction `c`; returns one result per item, in order. */
    private readonly writeBatch: (c: Client, batch: I[]) => Promise<O[]>,
    private readonly maxBatch = 500,
    /**
     * `writeBatch` issues one statement: run it as its own transaction (no BEGIN/COMMIT round
     * trips). A function decides per batch (a batch that needs several statements gets BEGIN/COMMIT).
     */
    private readonly oneStatement: boolean | ((batch: I[]) => boolean) = false,
  ) {}

  write(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.running ??= this.run();
    });
  }

  private async run(): Promise<void> {
    // Let the rest of this event-loop turn queue its writes into the same batch.
    await new Promise((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const items = batch.map((b) => b.item);
        const one = typeof this.oneStatement === 'function' ? this.oneStatement(items) : this.oneStatement;
        const out = one ? await this.db.statement((c) => this.writeBatch(c, items)) : await this.db.tx((c) => this.writeBatch(c, items));
        batch.forEach((b, i) => b.resolve(out[i]!));
      } catch (e) {
        for (const b of batch) b.reject(e);
      }
    }
    this.running = undefined;
  }

  /** Resolves once every queued write is committed (or failed). */
  async drain(): Promise<void> {
    while (this.running !== undefined) await this.running;
  }
}
