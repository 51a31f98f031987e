/**
 * The API's JSON body reader (services/http/json-body.ts) against express.json, the parser it
 * stands in front of: the same raw HTTP requests (bytes on a real socket, so every header is
 * exactly as written) go to a server that parses each one twice over, once per reader, on two
 * ports; each side records what it made of the request (req.body, or the error's status, type,
 * message and limit) and the two records must be equal for every case. The test also counts
 * which requests the fast reader took itself and which it handed to express.json, so a reader
 * that quietly handed everything over (and so proved nothing) fails, as does one that took a
 * case it must not (a compressed body, another charset). Then the whole app's answers
 * (app.ts's error mapping) for the bad bodies, compared the same way.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { fastJsonBody, parseJsonBody } from '../../server/services/http/json-body.js';
import { buildApp } from '../../server/services/http/app.js';
import { jsonBody } from '../../server/services/http/limits.js';
import { memoryLogger } from '../../server/log.js';

const LIMIT = 4096;
const TYPES = ['application/json', 'application/*+json'];
type Outcome = { body: unknown } | { error: { status: unknown; type: unknown; message: unknown; limit: unknown } };

let fallbacks = 0;
const stock = express.json({ limit: LIMIT, type: TYPES });
const counted: RequestHandler = (req, res, next) => {
  fallbacks++;
  stock(req, res, next);
};

/** A server that parses with `parser` and answers 200 with the outcome as JSON. */
function recorder(parser: RequestHandler): http.Server {
  const app = express();
  app.post('/x', parser, (req, res) => {
    res.json({ body: req.body === undefined ? '(undefined)' : req.body } satisfies Outcome);
  });
  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    const e = err as Record<string, unknown>;
    res.json({ error: { status: e['status'], type: e['type'], message: e['message'], limit: e['limit'] ?? null } } satisfies Outcome);
  };
  app.use(onError);
  return http.createServer(app);
}

const servers: http.Server[] = [];
let fastPort = 0;
let stockPort = 0;
let appPortFast = 0;

async function listen(s: http.Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

before(async () => {
  fastPort = await listen(recorder(fastJsonBody(LIMIT, counted)));
  stockPort = await listen(recorder(stock));
  // The real app (its error handler) with the API's own body parser on one admin-free route.
  const api = express.Router();
  api.post('/things', jsonBody(), (req, res) => {
    res.status(201).json({ got: req.body as unknown });
  });
  appPortFast = await listen(http.createServer(buildApp({ cobbler: express.Router(), autoinstall: express.Router(), boot: express.Router(), api }, memoryLogger())));
});

after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** Write `head` then each of `parts` (a pause between them: separate TCP segments), read the whole answer. */
function raw(port: number, head: string, parts: readonly Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let got = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (got += d));
    sock.on('error', reject);
    sock.on('end', () => resolve(got));
    sock.on('connect', () => {
      sock.write(head);
      let i = 0;
      const step = (): void => {
        if (i < parts.length) {
          sock.write(parts[i++]!);
          setTimeout(step, 15);
        }
      };
      step();
    });
  });
}

function request(path: string, headers: Record<string, string>): string {
  const lines = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  return lines.join('\r\n') + '\r\n\r\n';
}

/** The answer's body (the part after the headers; chunked framing removed). */
function answerBody(answer: string): { status: string; body: string } {
  const [head, ...rest] = answer.split('\r\n\r\n');
  let body = rest.join('\r\n\r\n');
  if (/transfer-encoding: chunked/i.test(head ?? '')) {
    let out = '';
    for (;;) {
      const nl = body.indexOf('\r\n');
      const n = parseInt(body.slice(0, nl), 16);
      if (!(n > 0)) break;
      out += body.slice(nl + 2, nl + 2 + n);
      body = body.slice(nl + 2 + n + 2);
    }
    body = out;
  }
  return { status: (head ?? '').split('\r\n')[0] ?? '', body };
}

interface Case {
  name: string;
  body: Buffer;
  type?: string;
  headers?: Record<string, string>;
  /** Send the body in these many pieces. */
  split?: number;
  /** The fast reader must take it (true) or hand it to express.json (false). */
  fast: boolean;
}

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const CASES: Case[] = [
  { name: 'object', body: b('{"name":"s1","interfaces":{"eth0":{"mac_address":"52:54:00:00:00:01"}}}'), fast: true },
  { name: 'array', body: b('[1,2,{"a":null}]'), fast: true },
  { name: 'empty body is {}', body: b(''), fast: true },
  { name: 'leading blanks', body: b(' \t\r\n{"a":1}'), fast: true },
  { name: 'byte order mark', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b('{"a":1}')]), fast: true },
  { name: 'string at top level', body: b('"just a string"'), fast: true },
  { name: 'number after blanks', body: b('   12'), fast: true },
  { name: 'null', body: b('null'), fast: true },
  { name: 'only blanks', body: b('   '), fast: true },
  { name: 'truncated object', body: b('{"name": "j-d", '), fast: true },
  { name: 'truncated array', body: b('[1,2'), fast: true },
  { name: 'bad literal', body: b('{"a":tru}'), fast: true },
  { name: 'trailing garbage', body: b('{"a":1} x'), fast: true },
  { name: 'invalid UTF-8 inside a string', body: Buffer.concat([b('{"a":"'), Buffer.from([0xff, 0xc3]), b('"}')]), fast: true },
  { name: 'multi-byte characters split across segments', body: b('{"comment":"żółć ☃ 𝄞 ąę"}'), split: 7, fast: true },
  { name: 'body in many segments', body: b(JSON.stringify({ list: Array.from({ length: 200 }, (_, i) => `item-${i}`) })), split: 5, fast: true },
  { name: 'charset utf-8', body: b('{"a":1}'), type: 'application/json; charset=utf-8', fast: true },
  { name: 'upper case type', body: b('{"a":1}'), type: 'Application/JSON; Charset=UTF-8', fast: true },
  { name: 'no space before charset', body: b('{"a":1}'), type: 'application/json;charset=utf-8', fast: true },
  { name: 'exactly the limit', body: b(`{"a":"${'x'.repeat(LIMIT - 8)}"}`), fast: true },
  // Handed to express.json: its answers, whatever they are, are the reference.
  { name: 'over the limit', body: b(`{"a":"${'x'.repeat(LIMIT)}"}`), fast: false },
  { name: 'latin1 charset', body: b('{"a":1}'), type: 'application/json; charset=latin1', fast: false },
  { name: 'utf-16 charset', body: Buffer.from('{"a":1}', 'utf16le'), type: 'application/json; charset=utf-16le', fast: false },
  { name: 'quoted charset', body: b('{"a":1}'), type: 'application/json; charset="utf-8"', fast: false },
  { name: '+json suffix', body: b('{"a":1}'), type: 'application/merge-patch+json', fast: false },
  { name: 'text/plain is not parsed', body: b('{"a":1}'), type: 'text/plain', fast: false },
  { name: 'no content type', body: b('{"a":1}'), type: '', fast: false },
  { name: 'gzip', body: gzipSync(b('{"a":"zipped"}')), headers: { 'content-encoding': 'gzip' }, fast: false },
  { name: 'unknown encoding', body: b('{"a":1}'), headers: { 'content-encoding': 'x-nope' }, fast: false },
  { name: 'chunked', body: b('{"a":"chunked"}'), headers: { 'transfer-encoding': 'chunked' }, fast: false },
];

function wire(c: Case): { head: string; parts: Buffer[] } {
  const headers: Record<string, string> = {};
  if (c.type !== '') headers['Content-Type'] = c.type ?? 'application/json';
  Object.assign(headers, c.headers ?? {});
  let payload = c.body;
  if (c.headers?.['transfer-encoding'] === 'chunked') {
    payload = Buffer.concat([b(`${c.body.length.toString(16)}\r\n`), c.body, b('\r\n0\r\n\r\n')]);
  } else {
    headers['Content-Length'] = String(c.body.length);
  }
  const n = c.split ?? 1;
  const size = Math.ceil(payload.length / n) || 1;
  const parts: Buffer[] = [];
  for (let i = 0; i < payload.length; i += size) parts.push(payload.subarray(i, i + size));
  return { head: request('/x', headers), parts };
}

test('every case: the fast reader records what express.json records, and takes exactly the plain cases', async () => {
  for (const c of CASES) {
    const { head, parts } = wire(c);
    const before = fallbacks;
    const fast = answerBody(await raw(fastPort, head, parts));
    const handedOver = fallbacks - before;
    const ref = answerBody(await raw(stockPort, head, parts));
    assert.equal(fast.status, ref.status, `${c.name}: status line`);
    assert.deepEqual(JSON.parse(fast.body), JSON.parse(ref.body), `${c.name}: outcome`);
    assert.equal(handedOver, c.fast ? 0 : 1, `${c.name}: ${c.fast ? 'read by the fast reader' : 'handed to express.json'}`);
  }
});

test('the cases exercise both outcomes (a body and an error) on the fast path', async () => {
  const kinds = new Set<string>();
  for (const c of CASES.filter((x) => x.fast)) {
    const { head, parts } = wire(c);
    kinds.add(Object.keys(JSON.parse(answerBody(await raw(fastPort, head, parts)).body) as object)[0]!);
  }
  assert.deepEqual([...kinds].sort(), ['body', 'error']);
});

test('a client that leaves mid-body: the fast reader reports request.aborted, as raw-body does, and the server keeps answering', async () => {
  const seen: unknown[] = [];
  const app = express();
  app.post('/x', fastJsonBody(LIMIT, counted), (_req, res) => res.end());
  const onError: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    seen.push({ status: (err as { status?: unknown }).status, type: (err as { type?: unknown }).type, message: (err as Error).message });
    res.end();
  };
  app.use(onError);
  const s = http.createServer(app);
  const port = await listen(s);
  await new Promise<void>((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(request('/x', { 'Content-Type': 'application/json', 'Content-Length': '100' }) + '{"a":');
      setTimeout(() => {
        sock.destroy();
        resolve();
      }, 50);
    });
  });
  for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, [{ status: 400, type: 'request.aborted', message: 'request aborted' }]);
  const ok = answerBody(await raw(fastPort, wire(CASES[0]!).head, wire(CASES[0]!).parts));
  assert.match(ok.status, / 200 /);
});

test('the app answers bad bodies read by the fast reader with the catalogue codes and the messages express.json gave', async () => {
  const cases: [string, string, number, RegExp][] = [
    ['{"name": "j-d", ', 'BAD_JSON', 400, /^request body is not valid JSON: /],
    ['[1,2', 'BAD_JSON', 400, /^request body is not valid JSON: /],
    ['"x"', 'BAD_JSON', 400, /^request body is not valid JSON: Unexpected token/],
  ];
  for (const [text, code, status, msg] of cases) {
    const body = b(text);
    const answer = answerBody(await raw(appPortFast, request('/api/v1/things', { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }), [body]));
    assert.match(answer.status, new RegExp(` ${status} `), text);
    const got = JSON.parse(answer.body) as Record<string, unknown>;
    assert.equal(got['code'], code, text);
    assert.equal(got['field'], 'body', text);
    assert.match(String(got['message']), msg, text);
    // The message is exactly express.json's for the same bytes.
    const ref = JSON.parse(answerBody(await raw(stockPort, request('/x', { 'Content-Type': 'application/json', 'Content-Length': String(body.length) }), [body])).body) as { error: { message: string } };
    assert.equal(got['message'], `request body is not valid JSON: ${ref.error.message}`, text);
  }
  const ok = b('{"a":[1,2]}');
  const good = answerBody(await raw(appPortFast, request('/api/v1/things', { 'Content-Type': 'application/json', 'Content-Length': String(ok.length) }), [ok]));
  assert.match(good.status, / 201 /);
  assert.deepEqual(JSON.parse(good.body), { got: { a: [1, 2] } });
});

test('parseJsonBody: strict top level, empty is {}, the masked-message rule', () => {
  assert.deepEqual(parseJsonBody(''), {});
  assert.deepEqual(parseJsonBody('  [1]'), [1]);
  assert.throws(() => parseJsonBody('  true'), (e: Error) => /Unexpected token 't', "  true" is not valid JSON/.test(e.message));
  assert.throws(() => parseJsonBody(' '), (e: Error & { type?: string }) => e.type === 'entity.parse.failed');
});
