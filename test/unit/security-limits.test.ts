/**
 * The HTTP bounds as values: which routes take big bodies, JSON depth
 * counted without recursion, and the socket timeouts applied to a real
 * http.Server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { BODY_LIMIT_BULK, BODY_LIMIT_DEFAULT, HTTP_TIMEOUTS, applyTimeouts, bodyLimitFor, jsonDepth } from '../../server/services/http/limits.js';

test('only bulk create and import take large bodies', () => {
  assert.equal(bodyLimitFor('/systems/bulk'), BODY_LIMIT_BULK);
  assert.equal(bodyLimitFor('/profiles/bulk'), BODY_LIMIT_BULK);
  assert.equal(bodyLimitFor('/import'), BODY_LIMIT_BULK);
  for (const p of ['/systems', '/systems/bulkx', '/systems/vm1', '/systems/bulk/rename', '/systems/vm1/events', '/import/x']) {
    assert.equal(bodyLimitFor(p), BODY_LIMIT_DEFAULT, p);
  }
  assert.ok(BODY_LIMIT_DEFAULT <= 1024 * 1024);
});

test('jsonDepth counts nesting iteratively and stops early', () => {
  assert.equal(jsonDepth(1), 0);
  assert.equal(jsonDepth({}), 1);
  assert.equal(jsonDepth({ a: [{ b: 1 }] }), 3);
  let deep: unknown = 1;
  for (let i = 0; i < 200_000; i++) deep = { a: deep };
  assert.ok(jsonDepth(deep) > 32, 'deep value flagged without a stack overflow');
});

test('header, request and idle socket timeouts are set on the server', () => {
  const s = createServer();
  applyTimeouts(s);
  assert.equal(s.headersTimeout, HTTP_TIMEOUTS.headersMs);
  assert.equal(s.requestTimeout, HTTP_TIMEOUTS.requestMs);
  assert.equal(s.keepAliveTimeout, HTTP_TIMEOUTS.keepAliveMs);
  assert.equal(s.timeout, HTTP_TIMEOUTS.idleSocketMs);
  assert.ok(HTTP_TIMEOUTS.headersMs <= 30_000 && HTTP_TIMEOUTS.headersMs > 0);
});
