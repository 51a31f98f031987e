/**
 * The render workers of one `forge validate` run (worker_threads): the server's thread reads
 * and blends each object (it holds the store), a worker renders and checks it
 * (render/validate-worker.ts), so the rendering, most of validate's CPU, runs on another core
 * while the server's thread keeps answering DHCP, TFTP and HTTP. Objects go as plain data
 * (structured clone) in batches; at most DEPTH batches wait per worker, so the reading never
 * runs far ahead of the rendering (memory stays a few batches, not the site).
 *
 * A worker that fails (it threw, exited, or an object cannot be cloned) rejects its batches;
 * the caller renders those in its own thread (render/service.ts), so a run still answers
 * every object, and the pool goes on with the workers left.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { RenderRoots } from './roots.js';
import type { ValidateItem, ValidateProblem } from './validate-item.js';

export interface BatchRequest {
  id: number;
  items: ValidateItem[];
}
export interface BatchAnswer {
  id: number;
  problems: { seq: number; problem: ValidateProblem }[];
}

/** Batches waiting or rendering per worker: enough that a worker never idles while the next is cloned. */
const DEPTH = 2;

/**
 * validate_workers as configured: a number is that many (0: render in the server's thread);
 * 'auto' is none on one or two cores and one per core beyond the server's own thread from
 * three (at most 8). Why none on two: measured on 2 shared cores at 100,000 systems
 * (docs/bench/store.md), a system rendered in a worker costs 220-280 µs of CPU in all against
 * 166-169 µs in the server's thread (the clone to the worker and a render there that costs
 * about twice the in-thread one, cause not found), so one worker on the second core gains
 * no wall time; with more cores the reading thread (70-80 µs per system) is the bound and
 * workers should pay, which this 2-core machine cannot measure.
 */
export function workerCount(setting: string | number, cores = availableParallelism()): number {
  if (setting === 'auto') return cores <= 2 ? 0 : Math.min(8, cores - 1);
  return Number(setting);
}

/**
 * For tests only (test/unit/render-validate-pool.test.ts): worker number `worker` (0-based)
 * exits (`process.exit`) or throws (an uncaught error in its message handler) after it has
 * rendered `after` objects, in the middle of a batch, so the fallback is proved on a real
 * worker death. Never set by the server.
 */
export interface WorkerFault {
  worker: number;
  after: number;
  how: 'exit' | 'throw';
}

/** What a render worker gets at its start (render/validate-worker.ts). */
export interface WorkerInit {
  roots: RenderRoots;
  fault?: { after: number; how: 'exit' | 'throw' };
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (a: BatchAnswer) => void; reject: (e: Error) => void }>;
  dead: boolean;
}

export class RenderPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private waiters: (() => void)[] = [];

  constructor(count: number, roots: RenderRoots, private readonly onFailure: (e: Error) => void = () => undefined, faults: WorkerFault[] = []) {
    for (let i = 0; i < count; i++) {
      const init: WorkerInit = { roots };
      const fault = faults.find((f) => f.worker === i);
      if (fault !== undefined) init.fault = { after: fault.after, how: fault.how };
      const worker = new Worker(new URL('./validate-worker.js', import.meta.url), { workerData: init });
      const slot: Slot = { worker, pending: new Map(), dead: false };
      const fail = (e: Error): void => {
        if (slot.dead) return;
        slot.dead = true;
        this.onFailure(e);
        for (const p of slot.pending.values()) p.reject(e);
        slot.pending.clear();
        this.wake();
      };
      worker.on('message', (a: BatchAnswer) => {
        const p = slot.pending.get(a.id);
        if (p === undefined) return;
        slot.pending.delete(a.id);
        p.resolve(a);
        this.wake();
      });
      worker.on('error', fail);
      worker.on('messageerror', fail);
      worker.on('exit', (code) => fail(new Error(`render worker ${i} exited (code ${code})`)));
      this.slots.push(slot);
    }
  }

  /** Workers still running. */
  get alive(): number {
    return this.slots.filter((s) => !s.dead).length;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private leastBusy(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.slots) if (!s.dead && (best === undefined || s.pending.size < best.pending.size)) best = s;
    return best;
  }

  /** Resolves when some live worker has room for another batch (at once when none is alive: the caller renders). */
  async room(): Promise<void> {
    for (;;) {
      const s = this.leastBusy();
      if (s === undefined || s.pending.size < DEPTH) return;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Render and check `items` in a worker; rejects when no worker can (the caller renders them itself). */
  submit(items: ValidateItem[]): Promise<BatchAnswer> {
    const s = this.leastBusy();
    if (s === undefined) return Promise.reject(new Error('no render worker left'));
    const id = this.nextId++;
    return new Promise<BatchAnswer>((resolve, reject) => {
      s.pending.set(id, { resolve, reject });
      try {
        s.worker.postMessage({ id, items } satisfies BatchRequest);
      } catch (e) {
        // DataCloneError: something in the variables is not plain data. Only this batch is lost to the pool.
        s.pending.delete(id);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map(async (s) => {
      s.dead = true;
      await s.worker.terminate();
    }));
  }
}
