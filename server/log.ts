/**
 * Minimal leveled logger: one line per record on stderr, as text
 * `2026-11-22T04:00:00.000Z level component: message key=value ...` or, with
 * `log_format: json`, as one JSON object per line
 * `{"time":...,"level":...,"component":...,"msg":...,"key":value,...}` with
 * the same fields (journald, Loki, Elasticsearch take it as is). Servers log
 * malformed packets here and keep going.
 */
import type { LogFormat, LogLevel } from './config.js';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** Keys a record's fields may not overwrite in JSON lines. */
const RESERVED = new Set(['time', 'level', 'component', 'msg']);

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

function jsonLine(time: string, level: LogLevel, component: string, msg: string, fields: Record<string, unknown> | undefined): string {
  const rec: Record<string, unknown> = { time, level, component, msg };
  if (fields !== undefined) {
    for (const [k, v] of Object.entries(fields)) rec[RESERVED.has(k) ? `field_${k}` : k] = v instanceof Error ? v.message : v;
  }
  try {
    return JSON.stringify(rec);
  } catch {
    // A field that does not serialise (a cycle, a BigInt) must not lose the line.
    return JSON.stringify({ time, level, component, msg, fields_error: 'unserialisable fields' });
  }
}

export function createLogger(
  level: LogLevel = 'info',
  component = 'forge',
  sink: (line: string) => void = (line) => process.stderr.write(line + '\n'),
  format: LogFormat = 'text',
): Logger {
  const min = ORDER[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < min) return;
    const time = new Date().toISOString();
    sink(format === 'json' ? jsonLine(time, lvl, component, msg, fields) : `${time} ${lvl} ${component}: ${msg}${fmt(fields)}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (c) => createLogger(level, `${component}.${c}`, sink, format),
  };
}

/** A logger that records lines in memory (tests assert on logged drops). */
export function memoryLogger(level: LogLevel = 'debug', format: LogFormat = 'text'): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = createLogger(level, 'test', (l) => lines.push(l), format);
  return Object.assign(log, { lines });
}
