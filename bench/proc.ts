/** Process figures the benches read from /proc (proc(5)), and the machine's load beside each figure. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

const TICK_MS = (() => {
  try {
    return 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  } catch {
    return 10;
  }
})();

/**
 * CPU milliseconds of a process so far: utime + stime (all its threads: atftpd and Kea's
 * threads count) + cutime + cstime (children it waited for). NaN once it is gone.
 */
export function procCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14-17 of proc(5), counted after the command name: indexes 11-14 here.
    return [11, 12, 13, 14].reduce((a, i) => a + Number(fields[i]), 0) * TICK_MS;
  } catch {
    return NaN;
  }
}

/** The 1-minute load average now, one decimal. */
export function load1(): string {
  return (loadavg()[0] ?? NaN).toFixed(1);
}

/** User and system CPU milliseconds of a process so far (utime and stime, its own threads only), NaN once gone. */
export function procUserSysMs(pid: number | undefined): { user: number; sys: number } {
  try {
    if (pid === undefined) throw new Error('no pid');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) * TICK_MS, sys: Number(fields[12]) * TICK_MS };
  } catch {
    return { user: NaN, sys: NaN };
  }
}
