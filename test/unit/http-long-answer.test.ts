/**
 * Long answers (services/http/limits.ts longJson: GET /api/v1/validate and
 * /api/v1/check) on a real HTTP server and the CLI's own client (ApiClient,
 * Node's fetch): the status and headers arrive while the work is still
 * running, whitespace keeps coming until the JSON, and the client parses the
 * result or turns a failure after the headers back into its ForgeError.
 * "While the work runs" is by construction, not by timing: the work is a
 * promise the test settles only after it has seen the headers and two
 * heartbeat bytes. Before this, the answer's first byte came only when the
 * work ended, and Node's fetch gives up after 300 s without headers.
 * The progress form (longProgress, `forge validate`'s ?progress=MS): each count the work
 * reports reaches ApiClient.validate's callback before the work ends, then the report or the error.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { ApiClient } from '../../server/api/client.js';
import { ForgeError, LONG_ANSWER_HEADER } from '../../server/errors.js';
import { longJson, longProgress } from '../../server/services/http/limits.js';
import { memoryLogger } from '../../server/log.js';

interface Gate {
  promise: Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}
const gate = (): Gate => {
  let resolve!: (v: unknown) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<unknown>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
};

let server: http.Server;
let base: string;
let pending: Gate[] = [];
let progressOf: (done: number, total: number) => void = () => undefined;
const log = memoryLogger();

before(async () => {
  const app = express();
  app.get('/long', async (req, res) => {
    const g = gate();
    pending.push(g);
    await longJson(req, res, () => g.promise, log, 20);
  });
  // What GET /api/v1/validate?progress=MS answers (render/routes.ts), with the gate as the work.
  app.get('/api/v1/validate', async (req, res) => {
    const g = gate();
    pending.push(g);
    await longProgress(req, res, (progress) => {
      progressOf = progress;
      return g.promise;
    }, log, 20);
  });
  server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

/** The next work the server started (it starts when the request arrives). */
async function nextWork(): Promise<Gate> {
  while (pending.length === 0) await new Promise((r) => setImmediate(r));
  return pending.shift()!;
}

test('headers and whitespace arrive while the work runs; the JSON follows them', { timeout: 60_000 }, async () => {
  pending = [];
  const res = await new Promise<IncomingMessage>((resolve, reject) => http.get(`${base}/long`, resolve).on('error', reject));
  const work = await nextWork();
  // The work has not ended (the test has not settled it), yet the status and headers are here.
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers[LONG_ANSWER_HEADER.toLowerCase()], 'json');
  assert.match(String(res.headers['content-type']), /^application\/json/);
  let body = '';
  res.setEncoding('utf8');
  await new Promise<void>((resolve) => {
    const on = (chunk: string): void => {
      body += chunk;
      if (body.length >= 2) {
        res.off('data', on);
        resolve();
      }
    };
    res.on('data', on);
  });
  assert.match(body, /^ {2,}$/, 'only heartbeat whitespace before the work ends');
  const report = { ok: false, checked: 3, errors: [{ kind: 'system', name: 'a', code: 'TEMPLATE_ERROR', message: 'x' }] };
  work.resolve(report);
  for await (const chunk of res) body += String(chunk);
  assert.deepEqual(JSON.parse(body), report, 'leading whitespace is valid JSON (RFC 8259 s2)');
});

test("the CLI's client returns the result of a long answer", async () => {
  pending = [];
  const c = new ApiClient({ server: base });
  const answer = c.request('GET', '/long');
  (await nextWork()).resolve({ problems: [] });
  assert.deepEqual(await answer, { problems: [] });
});

test("a failure after the headers reaches the CLI's client as the ForgeError, and an unexpected one as INTERNAL (logged)", async () => {
  pending = [];
  const c = new ApiClient({ server: base });
  const first = c.request('GET', '/long');
  (await nextWork()).reject(new ForgeError('STORAGE_UNAVAILABLE', 'the database went away', { field: 'store' }));
  await assert.rejects(first, (e: unknown) => e instanceof ForgeError && e.code === 'STORAGE_UNAVAILABLE' && e.message === 'the database went away' && e.field === 'store');
  const second = c.request('GET', '/long');
  (await nextWork()).reject(new TypeError('boom'));
  await assert.rejects(second, (e: unknown) => e instanceof ForgeError && e.code === 'INTERNAL' && !e.message.includes('boom'));
  assert.ok(log.lines.some((l) => l.includes('internal error') && l.includes('boom')), log.lines.join('\n'));
});

test("progress lines (ndjson) reach the CLI's client in order while the work runs, then the report", { timeout: 60_000 }, async () => {
  pending = [];
  const c = new ApiClient({ server: base });
  const seen: [number, number][] = [];
  let wake: () => void = () => undefined;
  const answer = c.validate((done, total) => {
    seen.push([done, total]);
    wake();
  }, 100);
  const work = await nextWork();
  // The client sees each count the work reports while it still runs (the test settles the work only after).
  for (const n of [1, 5, 9]) {
    progressOf(n, 10);
    while (seen[seen.length - 1]?.[0] !== n) await new Promise<void>((r) => (wake = r));
  }
  const report = { ok: true, checked: 10, errors: [] };
  work.resolve(report);
  assert.deepEqual(await answer, report);
  assert.deepEqual([...new Set(seen.map((s) => s[0]))], [1, 5, 9], 'counts in order, none invented');
  assert.ok(seen.every((s) => s[1] === 10));
});

test("a failure after progress lines reaches the CLI's client as the ForgeError", { timeout: 60_000 }, async () => {
  pending = [];
  const c = new ApiClient({ server: base });
  const answer = c.validate(() => undefined, 100);
  (await nextWork()).reject(new ForgeError('STORAGE_UNAVAILABLE', 'the database went away', { field: 'store' }));
  await assert.rejects(answer, (e: unknown) => e instanceof ForgeError && e.code === 'STORAGE_UNAVAILABLE' && e.field === 'store');
});
