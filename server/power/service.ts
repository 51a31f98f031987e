/**
 * Power actions and reinstall on systems, with every step on the system's
 * timeline (the same events table the installs write). Bulk actions over a
 * name glob run at most `concurrency` drivers at once, so 200 BMCs are not
 * all asked in the same second; one failure does not stop the others.
 */
import type { System } from '../core/model.js';
import { lifecycleEvent, type EventDetails } from '../core/events.js';
import { ForgeError } from '../errors.js';
import type { Store } from '../store/store.js';
import { driverFor } from './drivers.js';
import type { DriverOptions, PowerState } from './drivers.js';

export const POWER_ACTIONS = ['on', 'off', 'reboot', 'status', 'reinstall'] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

export interface PowerResult {
  name: string;
  action: PowerAction;
  ok: boolean;
  /** Power state after the action (status, or read back where cheap). */
  state?: PowerState;
  /** Steps done, in order (reinstall: netboot, pxe_next_boot, power_reboot). */
  steps: string[];
  error?: { code: string; message: string };
}

export interface PowerDeps {
  store: Store;
  driverOptions?: DriverOptions;
}

export const DEFAULT_CONCURRENCY = 8;
export const MAX_CONCURRENCY = 64;

type PowerEvent = 'power_on' | 'power_off' | 'power_reboot' | 'power_failed' | 'pxe_next_boot' | 'reinstall_requested';

async function event(deps: PowerDeps, s: System, type: PowerEvent, detail: Omit<EventDetails[PowerEvent], 'driver'>): Promise<void> {
  await deps.store.addEvent(lifecycleEvent({ system: s.name, type, source: 'power', detail: { driver: s.power_type, ...detail } }));
}

/** One action on one system. Driver failures become a result with ok=false and a power_failed event. */
export async function powerAction(deps: PowerDeps, name: string, action: PowerAction): Promise<PowerResult> {
  const s = await deps.store.mustGet('system', name);
  const result: PowerResult = { name, action, ok: false, steps: [] };
  const drv = driverFor(s, deps.driverOptions ?? {});
  try {
    switch (action) {
      case 'status':
        result.state = await drv.status();
        break;
      case 'on':
        await drv.on();
        result.steps.push('power_on');
        await event(deps, s, 'power_on', { address: drv.address });
        break;
      case 'off':
        await drv.off();
        result.steps.push('power_off');
        await event(deps, s, 'power_off', { address: drv.address });
        break;
      case 'reboot':
        await drv.cycle();
        result.steps.push('power_reboot');
        await event(deps, s, 'power_reboot', { address: drv.address });
        break;
      case 'reinstall': {
        // 1. netboot on: forge's next boot config for this MAC is the installer.
        // A new install, a new install token (turning netboot on rotates it; when it was on already, rotate here).
        if (!s.netboot_enabled) await deps.store.update('system', name, (cur) => ({ ...cur, netboot_enabled: true }));
        else await deps.store.rotateInstallToken(name);
        result.steps.push('netboot_enabled');
        await event(deps, s, 'reinstall_requested', { netboot_enabled: true });
        // 2. PXE next boot, where the firmware can be told.
        if (drv.pxeNext !== undefined) {
          await drv.pxeNext();
          result.steps.push('pxe_next_boot');
          await event(deps, s, 'pxe_next_boot', { address: drv.address });
        }
        // 3. power cycle (or on).
        await drv.cycle();
        result.steps.push('power_reboot');
        await event(deps, s, 'power_reboot', { address: drv.address, reason: 'reinstall' });
        break;
      }
    }
    result.ok = true;
  } catch (e) {
    const fe = e instanceof ForgeError ? e : new ForgeError('POWER_FAILED', `${s.power_type} ${drv.address}: ${(e as Error).message}`);
    result.error = { code: fe.code, message: fe.message };
    await event(deps, s, 'power_failed', { action, address: drv.address, error: fe.message });
  }
  return result;
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/**
 * An action on every system whose name matches the glob (the store's glob
 * filter: * and ?). NOT_FOUND when nothing matches; systems with power_type
 * none answer POWER_NOT_CONFIGURED in their result instead of stopping the rest.
 */
export async function powerBulk(deps: PowerDeps, glob: string, action: PowerAction, concurrency = DEFAULT_CONCURRENCY): Promise<PowerResult[]> {
  const names = await deps.store.listNames('system', { name: glob });
  if (names.length === 0) throw new ForgeError('NOT_FOUND', `name: no system matches ${glob}`, { field: 'name' });
  return mapLimit(names, concurrency, async (n) => {
    try {
      return await powerAction(deps, n, action);
    } catch (e) {
      if (!(e instanceof ForgeError)) throw e;
      return { name: n, action, ok: false, steps: [], error: { code: e.code, message: e.message } };
    }
  });
}
