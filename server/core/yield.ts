/**
 * Cooperative chunking for long work on the event loop that also answers
 * DHCP, TFTP and HTTP (validate, check). `await slice()` inside a loop
 * returns at once until `budgetMs` of work has run since the last yield,
 * then waits for one setImmediate, which lets pending I/O callbacks (a DHCP
 * DISCOVER, a TFTP ACK) run first. Store calls on SQLite resolve as
 * microtasks and never yield by themselves.
 */
export const SLICE_MS = 4;

export function slicer(budgetMs = SLICE_MS): () => Promise<void> {
  let last = performance.now();
  return async (): Promise<void> => {
    if (performance.now() - last < budgetMs) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
  };
}

/**
 * One run at a time for work whose result is the same for every caller:
 * callers that arrive while it runs get the same promise (twenty dashboards
 * asking for validate cost one validate).
 */
export function coalesced<T>(fn: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return (): Promise<T> => {
    running ??= fn().finally(() => {
      running = undefined;
    });
    return running;
  };
}
