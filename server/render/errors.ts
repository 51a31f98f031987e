/**
 * Error mapping of the renderer: whatever nunjucks threw becomes the
 * catalogue's TEMPLATE_ERROR naming file:line:column and, for an undefined
 * value, the expression.
 */
import { ForgeError } from '../errors.js';
import type { ErrorDetails } from './renderer.js';

/**
 * Turn whatever nunjucks threw into one ForgeError with file:line:col.
 * nunjucks wraps errors once per template level; the innermost
 * "(path) [Line L, Column C]" is where it happened. A ForgeError of ours
 * (missing snippet, path refused, syntax error of an included file) travels
 * as the `cause` and is returned as it is.
 */
export function templateError(e: unknown, topFile: string, sources: ReadonlyMap<string, string>): ForgeError {
  for (let c: unknown = e, i = 0; c !== undefined && c !== null && i < 10; i++) {
    if (c instanceof ForgeError) {
      if (c.code === 'INTERNAL') break;
      return c;
    }
    c = (c as { cause?: unknown }).cause;
  }
  const err = e as { message?: unknown; lineno?: unknown; colno?: unknown; cause?: unknown };
  const raw = typeof err.message === 'string' ? err.message : String(e);
  // nunjucks prefixes one "(path)" line per template level, outermost
  // first; the last one is the file where the error happened.
  const lines = raw.split('\n');
  let file = topFile;
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^\s*\(([^()]*)\)(?: \[Line \d+(?:, Column \d+)?\])?\s*$/.exec(lines[i] ?? '');
    if (m === null) break;
    if (m[1] !== undefined && m[1] !== 'unknown path') file = m[1];
  }
  // Runtime errors wrapped by nunjucks' handleError (a JS error as `cause`)
  // carry the compiler's 0-based position; its own TemplateErrors
  // (ensureDefined, the parser) are 1-based.
  const zeroBased = err.cause instanceof Error;
  let line = typeof err.lineno === 'number' ? err.lineno + (zeroBased ? 1 : 0) : undefined;
  let column = typeof err.colno === 'number' ? err.colno + (zeroBased ? 1 : 0) : undefined;
  if (line === 0) line = undefined;
  if (column === 0) column = undefined;
  if (line === undefined && /end of file/.test(raw)) {
    // An unclosed block: nunjucks knows no position; the end of the file is where it noticed.
    const src = sources.get(file);
    if (src !== undefined) line = src.replace(/\n$/, '').split('\n').length;
  }
  let msg = lines
    .slice(i)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ')
    .replace(/^(Template render error: )+/, '')
    .replace(/^Error: /, '');
  if (/attempted to output null or undefined value/.test(msg)) {
    const expr = line !== undefined && column !== undefined ? exprAt(sources, file, line, column) : undefined;
    msg = `undefined variable or value${expr !== undefined ? ` in ${expr}` : ''} (define it, e.g. in autoinstall_meta, or guard it with "is defined" / "| default(...)")`;
  }
  const details: ErrorDetails = { file, template: topFile };
  if (line !== undefined) details.line = line;
  if (column !== undefined) details.column = column;
  const where = `${file}${line !== undefined ? `:${line}` : ''}${column !== undefined ? `:${column}` : ''}`;
  return new ForgeError('TEMPLATE_ERROR', `${where}: ${msg}`, { field: 'autoinstall', details, cause: e });
}

/** The `{{ ... }}` expression around line/column of a file, for undefined-value errors. */
function exprAt(sources: ReadonlyMap<string, string>, file: string, line: number, column: number): string | undefined {
  const src = sources.get(file);
  if (src === undefined) return undefined;
  const l = src.split('\n')[line - 1];
  if (l === undefined) return undefined;
  const start = l.lastIndexOf('{{', Math.max(0, column));
  const end = l.indexOf('}}', Math.max(start, 0));
  if (start === -1 || end === -1) return undefined;
  return l.slice(start, end + 2);
}
