/**
 * `forge validate` with render workers (render/validate-pool.ts) answers exactly what the
 * in-thread path answers, on a real SQLite store and the shipped templates plus a site one:
 * every breed's installer format, systems over several pages and batches, and failures of
 * every kind (a template that does not render, a kickstart pykickstart rejects, a missing
 * template, a network config the format cannot express), in the same order. And the
 * progress counts a run reports only grow and end at what it checked.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateNew } from '../../server/core/validate.js';
import { defaults } from '../../server/config.js';
import { settingsFromConfig } from '../../server/settings-from-config.js';
import { Renderer } from '../../server/render/renderer.js';
import { shippedRoots, type RenderRoots } from '../../server/render/roots.js';
import { AutoinstallService, type ValidateReport } from '../../server/render/service.js';
import { workerCount, type WorkerFault } from '../../server/render/validate-pool.js';
import { openSqliteStore } from '../../server/store/sqlite.js';
import type { Store } from '../../server/store/store.js';

let dir: string;
let store: Store;
let roots: RenderRoots;
const SYSTEMS = 700;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'forge-validate-pool-'));
  const site = join(dir, 'site');
  mkdirSync(join(site, 'kickstart'), { recursive: true });
  // Renders only for systems (a profile has no hostname set): a failure with file:line.
  writeFileSync(join(site, 'kickstart', 'broken.ks'), 'text\n{{ no_such_variable }}\n');
  // Renders, but pykickstart rejects a second rootpw: AUTOINSTALL_INVALID.
  writeFileSync(join(site, 'kickstart', 'twice.ks'), 'text\nrootpw --plaintext a\nrootpw --plaintext b\nreboot\n');
  const shipped = shippedRoots();
  roots = { templates: [{ dir: site, origin: 'site' }, ...shipped.templates], snippets: shipped.snippets };
  store = openSqliteStore(dir);
  const distros: [string, string, string][] = [['deb', 'debian', 'bookworm'], ['rh', 'redhat', 'rhel9'], ['ub', 'ubuntu', 'noble'], ['sl', 'suse', '15.5'], ['gen', 'generic', '']];
  for (const [name, breed, os] of distros) {
    await store.create('distro', validateNew('distro', { name, breed, os_version: os, kernel: '/srv/forge/linux', initrd: '/srv/forge/initrd' }));
    await store.create('profile', validateNew('profile', { name: `p-${name}`, distro: name }));
  }
  await store.create('profile', validateNew('profile', { name: 'p-broken', distro: 'rh', autoinstall: 'kickstart/broken.ks' }));
  await store.create('profile', validateNew('profile', { name: 'p-twice', distro: 'rh', autoinstall: 'kickstart/twice.ks' }));
  await store.create('profile', validateNew('profile', { name: 'p-missing', distro: 'rh', autoinstall: 'kickstart/none-such.ks' }));
  const profiles = ['p-deb', 'p-rh', 'p-ub', 'p-sl', 'p-gen', 'p-broken', 'p-twice', 'p-missing'];
  const systems = Array.from({ length: SYSTEMS }, (_, i) => {
    const hex = (i & 0xff).toString(16).padStart(2, '0');
    const hi = ((i >> 8) & 0xff).toString(16).padStart(2, '0');
    const iface: Record<string, unknown> = { mac_address: `52:54:02:00:${hi}:${hex}` };
    if (i % 3 === 0) Object.assign(iface, { ip_address: `10.1.${i >> 8}.${i & 0xff}`, netmask: '255.255.0.0', static: true });
    // A bond on an Ubuntu system every so often: network_config has to express it.
    const interfaces: Record<string, unknown> = i % 11 === 0 ? { bond0: { interface_type: 'bond', bonding_opts: 'mode=active-backup' }, eth0: { ...iface, interface_type: 'bond_slave', interface_master: 'bond0' } } : { eth0: iface };
    return validateNew('system', { name: `s${String(i).padStart(4, '0')}`, profile: profiles[i % profiles.length], hostname: `s${i}.lab`, interfaces });
  });
  await store.bulkCreate('system', systems);
});

after(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const service = (workers: number, faults: WorkerFault[] = [], onWorkerFailure?: (e: Error) => void): AutoinstallService => {
  const config = { ...defaults(), data_dir: dir, server: '127.0.0.1' };
  return new AutoinstallService(store, settingsFromConfig(config), new Renderer(roots), {
    workers, systemCount: () => SYSTEMS, workerFaults: faults, ...(onWorkerFailure === undefined ? {} : { onWorkerFailure }),
  });
};

test('validate with 1 and 3 render workers answers exactly what the in-thread path answers', { timeout: 120_000 }, async () => {
  const here = await service(0).validate();
  assert.equal(here.checked, SYSTEMS + 8, 'every profile and system checked');
  const codes = new Set(here.errors.map((e) => e.code));
  // The dataset really exercises failures (else equality would prove little).
  for (const c of ['TEMPLATE_ERROR', 'AUTOINSTALL_INVALID', 'TEMPLATE_NOT_FOUND']) assert.ok(codes.has(c), `the in-thread run reports a ${c}: ${[...codes].join(', ')}`);
  assert.ok(here.errors.length < here.checked / 2, 'most objects pass');
  for (const n of [1, 3]) {
    const pooled = await service(n).validate();
    assert.deepEqual(pooled, here, `${n} worker(s): same report, same order`);
  }
});

// A worker that dies mid-batch (it had rendered some of the batch, answered none of it) or
// throws: its unanswered batches are rendered by the workers left or the server's thread, none
// lost, none twice (the report is the clean run's, in order; the progress ends at the number
// checked), and the failure is told once per worker (the server logs it).
const FAULTS: { what: string; workers: number; faults: WorkerFault[] }[] = [
  { what: 'the only worker exits after 120 objects: the server\'s thread renders the rest', workers: 1, faults: [{ worker: 0, after: 120, how: 'exit' }] },
  { what: 'worker 1 of 3 throws after 75 objects: the two left and the thread render the rest', workers: 3, faults: [{ worker: 1, after: 75, how: 'throw' }] },
  { what: 'both workers die (exit after 10, throw after 160)', workers: 2, faults: [{ worker: 0, after: 10, how: 'exit' }, { worker: 1, after: 160, how: 'throw' }] },
];
let cleanRun: ValidateReport | undefined;
for (const f of FAULTS) {
  test(`a render worker that fails mid-run loses and repeats nothing: ${f.what}`, { timeout: 120_000 }, async () => {
    cleanRun ??= await service(0).validate();
    const clean = cleanRun;
    const failures: Error[] = [];
    const seen: number[] = [];
    const r = await service(f.workers, f.faults, (e) => failures.push(e)).validate((done) => seen.push(done));
    assert.deepEqual(r, clean, 'same report as the clean run, same order');
    assert.equal(failures.length, f.faults.length, `one failure told per failed worker: ${failures.map((e) => e.message).join('; ')}`);
    assert.equal(seen[seen.length - 1], r.checked, 'progress counts every object once');
  });
}

test('progress counts grow one way and end at the number checked', { timeout: 120_000 }, async () => {
  const seen: [number, number][] = [];
  const r = await service(1).validate((done, total) => seen.push([done, total]));
  assert.ok(seen.length > 1, 'progress reported during the run');
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]![0] >= seen[i - 1]![0], `progress went back at ${i}: ${JSON.stringify(seen.slice(i - 1, i + 1))}`);
  assert.deepEqual(seen[seen.length - 1], [r.checked, SYSTEMS + 8]);
});

test('validate_workers auto: none on 1-2 cores (measured no faster there), one per core beyond the first from 3, at most 8', () => {
  assert.deepEqual([1, 2, 3, 4, 16].map((c) => workerCount('auto', c)), [0, 0, 2, 3, 8]);
  assert.equal(workerCount('0', 16), 0);
  assert.equal(workerCount('3', 2), 3);
});
