/**
 * Install lifecycle: which stage a system is in, judged from its events.
 * Pure. `forge status` shows the stage and how long the system has been in
 * it; a system that sits in an active stage (booting, installing) longer than
 * stall_minutes is `stalled` (Cobbler users only found PXE loops and hung
 * installs by looking at consoles: #3329, #2015).
 */
import type { ForgeEvent } from '../core/model.js';
import { isNeutral, stageOfType, type Stage } from '../core/events.js';

export type { Stage };

/** Stages that should end on their own; sitting in one too long is a stall. */
export const ACTIVE_STAGES: ReadonlySet<Stage> = new Set(['booting', 'installing']);

export function stageOf(ev: Pick<ForgeEvent, 'type' | 'detail'>): Stage {
  // A boot config that sent the machine to its disk is not an install starting.
  if (ev.type === 'boot_config_served' && ev.detail['boot'] === 'local') return 'local';
  return stageOfType(ev.type);
}

export interface StageInfo {
  stage: Stage;
  /** ISO time the stage was entered ('' for `new`). */
  since: string;
  stalled: boolean;
  /** Whole minutes in the stage. */
  minutes: number;
  last_event: string;
}

/**
 * `events` in any order. The stage is the latest event's; it was entered at
 * the earliest event of the unbroken run of events with that stage.
 * `edited`, `vm_action` and power events do not move the stage once a system has a history.
 */
export function stageInfo(events: readonly ForgeEvent[], now: number, stallMinutes: number): StageInfo {
  const evs = [...events].sort((x, y) => x.time.localeCompare(y.time) || x.id - y.id);
  const meaningful = evs.filter((e) => !isNeutral(e.type));
  const list = meaningful.length > 0 ? meaningful : evs;
  const last = list[list.length - 1];
  if (last === undefined) return { stage: 'new', since: '', stalled: false, minutes: 0, last_event: '' };
  const stage = stageOf(last);
  let since = last.time;
  for (let i = list.length - 1; i >= 0; i--) {
    const e = list[i]!;
    if (stageOf(e) !== stage) break;
    since = e.time;
  }
  const minutes = Math.max(0, Math.floor((now - Date.parse(since)) / 60_000));
  const stalled = ACTIVE_STAGES.has(stage) && stallMinutes > 0 && minutes >= stallMinutes;
  return { stage, since, stalled, minutes, last_event: last.type };
}

/** `12m`, `3h05m`, `2d4h`: how long, compactly. */
export function formatDuration(minutes: number): string {
  if (minutes < 60) return `${minutes}m`;
  const h = Math.floor(minutes / 60);
  if (h < 48) return `${h}h${String(minutes % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${h % 24}h`;
}
