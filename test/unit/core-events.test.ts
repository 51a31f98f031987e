/**
 * The one event table (server/core/events.ts): every type has a stage from
 * the one stage list, lifecycle.ts judges stages from it, and recorders'
 * details are typed by their event type. The @ts-expect-error lines are the
 * type test: if a detail stopped being checked, `npm run build` fails on the
 * unused directive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENTS, EVENT_TYPES, STAGES, isNeutral, lifecycleEvent, stageOfType, type LifecycleEvent } from '../../server/core/events.js';
import { EVENT_TYPES as MODEL_EVENT_TYPES } from '../../server/core/model.js';
import { stageInfo, stageOf } from '../../server/events/lifecycle.js';

test('one event table: every type has a stage from the one stage list', () => {
  assert.equal(MODEL_EVENT_TYPES, EVENT_TYPES, 'core/model.ts re-exports the table, it keeps no list of its own');
  assert.ok(EVENT_TYPES.length >= 29, `${EVENT_TYPES.length} types`);
  assert.deepEqual([...EVENT_TYPES], Object.keys(EVENTS));
  for (const t of EVENT_TYPES) {
    assert.ok((STAGES as readonly string[]).includes(stageOfType(t)), `${t}: ${stageOfType(t)} is a stage`);
    assert.equal(stageOf({ type: t, detail: {} }), stageOfType(t), `lifecycle judges ${t} from the table`);
  }
  assert.equal(stageOf({ type: 'boot_config_served', detail: { boot: 'local' } }), 'local', 'a boot to disk is not an install');
});

test('neutral events never move the stage', () => {
  const at = (m: number): string => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
  const ev = (id: number, type: (typeof EVENT_TYPES)[number], m: number) => ({ id, system: 's', type, source: 't', time: at(m), detail: {} });
  for (const t of EVENT_TYPES.filter(isNeutral)) {
    const info = stageInfo([ev(1, 'install_start', 0), ev(2, t, 5)], Date.UTC(2026, 0, 1, 0, 10), 60);
    assert.equal(info.stage, 'installing', `${t} after install_start`);
  }
  assert.ok(!isNeutral('reinstall_requested') && isNeutral('power_on'));
});

test('recorders build events whose detail is typed by their type', () => {
  const ok: LifecycleEvent = { system: 'vm1', type: 'install_done', source: 'http', detail: { client: '10.0.0.5', url: '/x' } };
  const typed = lifecycleEvent({ system: 'vm1', type: 'dhcp_offer', source: 'dhcp', detail: { mac: 'aa:bb:cc:dd:ee:ff', ip: '', mode: 'proxy', plan: 'ipxe', arch: 7 } });
  assert.equal(ok.type, 'install_done');
  assert.equal(typed.type, 'dhcp_offer');
  // @ts-expect-error install_done carries client and url: a misspelt field does not compile
  const bad1: LifecycleEvent = { system: 'vm1', type: 'install_done', source: 'http', detail: { clinet: '10.0.0.5', url: '/x' } };
  // @ts-expect-error the option-93 architecture is a number (RFC 4578 section 2.1), not a string
  const bad2 = lifecycleEvent({ system: 'vm1', type: 'dhcp_ack', source: 'dhcp', detail: { mac: '', ip: '', mode: 'proxy', plan: 'ipxe', arch: 'x86' } });
  // @ts-expect-error no such event type
  const bad3: LifecycleEvent = { system: 'vm1', type: 'install_finished', source: 'http', detail: {} };
  assert.ok(bad1 !== undefined && bad2 !== undefined && bad3 !== undefined);
});
