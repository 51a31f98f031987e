/** Process figures the benches read from /proc (proc(5)), and the machine's load beside each figure. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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

/** The parent pid of a process (proc(5) field 4), NaN once it is gone. */
function ppidOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return NaN;
  }
}

/**
 * CPU milliseconds of a process and every child it has now (its children that exited are in its
 * cutime/cstime): a PostgreSQL postmaster and its backends, checkpointer and WAL writer.
 */
export function treeCpuMs(pid: number): number {
  let total = procCpuMs(pid);
  for (const name of readdirSync('/proc')) {
    const child = Number(name);
    if (Number.isInteger(child) && child !== pid && ppidOf(child) === pid) {
      const own = procUserSysMs(child);
      if (!Number.isNaN(own.user)) total += own.user + own.sys;
    }
  }
  return total;
}

/**
 * Where a process's threads spent their time so far, from /proc/PID/task/TID/schedstat
 * (sched-stats.rst: nanoseconds on the CPU, nanoseconds runnable but waiting for a CPU) and
 * /proc/PID/task/TID/status (context switches), summed over the threads alive now. Waiting
 * for a CPU while runnable is the scheduler's share; a server that waits on the network or a
 * timer shows it as neither. Threads that already exited are not counted. NaN once gone.
 */
export function procSched(pid: number | undefined): { runMs: number; waitMs: number; voluntary: number; involuntary: number } {
  const out = { runMs: 0, waitMs: 0, voluntary: 0, involuntary: 0 };
  try {
    if (pid === undefined) throw new Error('no pid');
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ');
      out.runMs += Number(run) / 1e6;
      out.waitMs += Number(wait) / 1e6;
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      out.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
      out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
    }
    return out;
  } catch {
    return { runMs: NaN, waitMs: NaN, voluntary: NaN, involuntary: NaN };
  }
}

/**
 * The main thread of a process alone (/proc/PID/task/PID/schedstat, sched-stats.rst): nanoseconds
 * on a CPU and runnable-but-waiting, as ms. For Node the thread that runs JavaScript, without V8's
 * GC and compiler threads: a single-threaded server is saturated when this nears one core. NaN once gone.
 */
export function procMainThread(pid: number | undefined): { runMs: number; waitMs: number } {
  try {
    if (pid === undefined) throw new Error('no pid');
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ');
    return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
  } catch {
    return { runMs: NaN, waitMs: NaN };
  }
}
