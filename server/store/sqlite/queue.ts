/**
 * The write queue: every mutation of the SQLite store goes through `write`,
 * so writes apply in call order and writes queued in one event-loop turn
 * share one COMMIT (group commit).
 */
import type Database from 'better-sqlite3';

interface QueuedWrite {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class WriteQueue {
  /** Writes waiting for the next group commit (see `write`). */
  private queue: QueuedWrite[] = [];
  private flushScheduled = false;
  /** Group commits done and writes they carried (for benchmarks). */
  readonly commitStats = { commits: 0, writes: 0 };
  /**
   * `fn()` in a transaction, or in a SAVEPOINT when one is open. Made once: better-sqlite3's
   * `db.transaction(fn)` builds four wrapper functions and their properties per call, which
   * showed in DHCP profiles once every ACK waited for its commit (issue 21).
   */
  private readonly tx: (fn: () => unknown) => unknown;

  constructor(
    db: Database.Database,
    private readonly groupCommit: boolean,
  ) {
    this.tx = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Runs `fn` in a transaction of its own as far as the caller can tell, but
   * writes queued in the same event-loop turn share one COMMIT: each runs in
   * a SAVEPOINT (so one failing write rolls back only itself) inside one outer
   * transaction. Promises resolve only after the COMMIT, so an acknowledged
   * write is durable. Concurrent API clients and event bursts during mass
   * boots thus cost one WAL commit per batch instead of one per write.
   */
  write<T>(fn: () => T): Promise<T> {
    if (!this.groupCommit) {
      try {
        return Promise.resolve(this.tx(fn) as T);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Whether `run` is the last write queued: a caller may then add work to it (store/sqlite/leases.ts
   * puts a turn's leases in one write) without reordering it past a later write.
   */
  isLast(run: () => unknown): boolean {
    return this.queue.length > 0 && this.queue[this.queue.length - 1]!.run === run;
  }

  /** True while writes wait for their COMMIT. */
  get pending(): boolean {
    return this.queue.length > 0;
  }

  flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const results: ({ ok: true; v: unknown } | { ok: false; e: unknown })[] = [];
    try {
      if (batch.length === 1) {
        results.push({ ok: true, v: this.tx(batch[0]!.run) });
      } else {
        this.tx(() => {
          for (const w of batch) {
            try {
              // nested = SAVEPOINT ... RELEASE / ROLLBACK TO
              results.push({ ok: true, v: this.tx(w.run) });
            } catch (e) {
              results.push({ ok: false, e });
            }
          }
        });
      }
      this.commitStats.commits++;
      this.commitStats.writes += batch.length;
    } catch (e) {
      // The single write failed, or the COMMIT itself did: nothing of this batch is stored.
      for (const w of batch) w.reject(e);
      return;
    }
    batch.forEach((w, i) => {
      const r = results[i]!;
      if (r.ok) w.resolve(r.v);
      else w.reject(r.e);
    });
  }
}
