/**
 * A render worker of `forge validate` (render/validate-pool.ts): its own Renderer (its own
 * nunjucks environment and compiled templates) over the server's template roots, and one
 * RenderMemo for its life, which is one validate run (one snapshot of the template files,
 * as in the server's thread). Gets batches of prepared objects, answers their problems.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Renderer, newRenderMemo } from './renderer.js';
import { renderAndCheck, type ValidateItem } from './validate-item.js';
import type { BatchAnswer, BatchRequest, WorkerInit } from './validate-pool.js';

const port = parentPort;
if (port === null) throw new Error('render/validate-worker.js runs only as a worker thread');
const init = workerData as WorkerInit;
const renderer = new Renderer(init.roots);
const memo = newRenderMemo();
/** Objects rendered so far (the test fault's clock: render/validate-pool.ts WorkerFault). */
let rendered = 0;

port.on('message', (m: BatchRequest) => {
  const answer: BatchAnswer = { id: m.id, problems: [] };
  for (const it of m.items as ValidateItem[]) {
    if (init.fault !== undefined && rendered++ === init.fault.after) {
      if (init.fault.how === 'exit') process.exit(3);
      throw new Error(`render worker: test fault after ${init.fault.after} objects`);
    }
    const p = renderAndCheck(renderer, memo, it);
    if (p !== undefined) answer.problems.push({ seq: it.seq, problem: p });
  }
  port.postMessage(answer);
});
