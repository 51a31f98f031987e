/**
 * Minimal leveled logger: one line per record on stderr,
 * `2026-11-22T04:00:00.000Z level component: message key=value ...`.
 * Servers log malformed packets here and keep going.
 */
import type { LogLevel } from './config.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

function fmt(fields: Record<string, unknown> | undefined): string {
  if (fields === undefined) return '';
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    const s = typeof v === 'string' ? v : v instanceof Error ? v.message : JSON.stringify(v);
    out += ` ${k}=${s !== undefined && /[\s"]/.test(s) ? JSON.stringify(s) : String(s)}`;
  }
  return out;
}

export function createLogger(
  level: LogLevel = 'info',
  component = 'forge',
  sink: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): Logger {
  const min = ORDER[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < min) return;
    sink(`${new Date().toISOString()} ${lvl} ${component}: ${msg}${fmt(fields)}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (c) => createLogger(level, `${component}.${c}`, sink),
  };
}

/** A logger that records lines in memory (tests assert on logged drops). */
export function memoryLogger(level: LogLevel = 'debug'): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger(level, 'test', (l) => lines.push(l));
  return Object.assign(log, { lines });
}
