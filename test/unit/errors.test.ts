/**
 * Pins the error catalogue: a code never silently changes its HTTP status or
 * CLI exit code (scripts and clients depend on them). Adding a code is fine
 * (add it here too); changing one must be deliberate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATALOGUE, EXIT, ForgeError, fromBody, invalid, isErrorCode } from '../../server/errors.js';

const PINNED: Record<string, [status: number, exit: number]> = {
  INTERNAL: [500, 1],
  USAGE: [400, 2],
  BAD_JSON: [400, 3],
  INVALID_FIELD: [400, 3],
  UNKNOWN_FIELD: [400, 3],
  MISSING_FIELD: [400, 3],
  NOT_FOUND: [404, 4],
  ROUTE_NOT_FOUND: [404, 4],
  BAD_PATH: [400, 3],
  PAYLOAD_TOO_LARGE: [413, 3],
  AUTH_REQUIRED: [401, 6],
  AUTH_INVALID: [403, 6],
  DUPLICATE_NAME: [409, 5],
  DUPLICATE_MAC: [409, 5],
  DUPLICATE_IP: [409, 5],
  REFERENCE_MISSING: [400, 3],
  REFERENCED: [409, 5],
  PARENT_CYCLE: [400, 3],
  DISTRO_XOR_PARENT: [400, 3],
  MAC_EXHAUSTED: [409, 5],
  STORAGE_FULL: [507, 7],
  STORAGE_UNAVAILABLE: [503, 7],
  DATA_DIR_LOCKED: [409, 5],
  STORE_CORRUPT: [500, 1],
  TEMPLATE_NOT_FOUND: [500, 8],
  TEMPLATE_ERROR: [500, 8],
  TEMPLATE_PATH: [400, 3],
  VALIDATION_FAILED: [422, 8],
  IMPORT_UNRECOGNISED: [400, 3],
  PATH_OUTSIDE_ROOTS: [400, 3],
  LOADER_MISSING: [404, 4],
  RANGE_NOT_SATISFIABLE: [416, 3],
  CONFIG_INVALID: [400, 2],
  DHCP_CONFLICT: [500, 5],
  DHCP_DECODE: [400, 3],
  TFTP_DECODE: [400, 3],
  TOO_MANY_STREAMS: [503, 7],
  SERVER_UNAVAILABLE: [503, 7],
  VIRT_UNAVAILABLE: [500, 9],
  VIRT_EXISTS: [409, 5],
  VIRT_FAILED: [500, 9],
  INSTALL_FAILED: [500, 9],
  DOWNLOAD_FAILED: [502, 7],
  POWER_FAILED: [502, 9],
  POWER_NOT_CONFIGURED: [409, 5],
  KNOWN_SYSTEM: [409, 5],
  RATE_LIMITED: [429, 7],
};

const PINNED_EXIT: Record<string, number> = {
  ok: 0,
  internal: 1,
  usage: 2,
  invalid: 3,
  notFound: 4,
  conflict: 5,
  auth: 6,
  unavailable: 7,
  render: 8,
  virt: 9,
  interrupted: 130,
};

test('exit codes are pinned', () => {
  assert.deepEqual({ ...EXIT }, PINNED_EXIT);
});

test('every pinned code keeps its status and exit code', () => {
  for (const [code, [status, exit]] of Object.entries(PINNED)) {
    assert.ok(isErrorCode(code), `${code} was removed from the catalogue`);
    const spec = CATALOGUE[code as keyof typeof CATALOGUE];
    assert.equal(spec.status, status, `${code} status`);
    assert.equal(spec.exit, exit, `${code} exit`);
  }
});

test('codes added later are well-formed', () => {
  const exits = new Set<number>(Object.values(EXIT));
  for (const [code, spec] of Object.entries(CATALOGUE)) {
    assert.match(code, /^[A-Z][A-Z0-9_]*$/);
    assert.ok(spec.status >= 400 && spec.status <= 599, `${code} status ${spec.status}`);
    assert.ok(exits.has(spec.exit) && (spec.exit as number) !== 0, `${code} exit ${spec.exit}`);
    assert.ok(spec.summary.length > 0);
  }
});

test('ForgeError carries code, status, exit, field; body round-trips', () => {
  const e = new ForgeError('DUPLICATE_MAC', 'interfaces.eth0.mac_address: taken', { field: 'interfaces.eth0.mac_address' });
  assert.equal(e.status, 409);
  assert.equal(e.exit, EXIT.conflict);
  const back = fromBody(JSON.parse(JSON.stringify(e.toBody())), 409);
  assert.equal(back.code, 'DUPLICATE_MAC');
  assert.equal(back.field, 'interfaces.eth0.mac_address');
  assert.equal(back.message, e.message);
  assert.equal(fromBody('<html>', 502).code, 'SERVER_UNAVAILABLE');
  const inv = invalid('virt_ram', 'must be a whole number');
  assert.equal(inv.code, 'INVALID_FIELD');
  assert.equal(inv.field, 'virt_ram');
  assert.match(inv.message, /^virt_ram: /);
});
