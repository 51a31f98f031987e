/**
 * Server-sent events wire format (WHATWG HTML, "Server-sent events",
 * section 9.2.5 "Parsing an event stream"): `field: value` lines, a blank line
 * ends an event, lines starting with `:` are comments, `id` sets the last
 * event ID a client sends back as `Last-Event-ID` when it reconnects. Pure:
 * encode for the server, an incremental parser for forge's own clients (CLI,
 * agent). The browser UI uses the built-in EventSource.
 */

export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
  retry?: number;
}

/** One event as bytes on the wire. `data` may hold newlines (one `data:` line each). */
export function encodeSse(m: SseMessage): string {
  let out = '';
  if (m.event !== undefined) out += `event: ${oneLine(m.event)}\n`;
  if (m.id !== undefined) out += `id: ${oneLine(m.id)}\n`;
  if (m.retry !== undefined) out += `retry: ${Math.max(0, Math.trunc(m.retry))}\n`;
  for (const line of m.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + '\n';
}

/** A comment line: keeps proxies and idle timers from closing the stream. */
export function sseComment(text: string): string {
  return `: ${oneLine(text)}\n\n`;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n\0]/g, ' ');
}

/**
 * Incremental parser: feed text chunks as they arrive, get complete messages.
 * `lastEventId` follows the spec: it persists across events until an `id`
 * field changes it.
 */
export class SseParser {
  private buf = '';
  private data: string[] = [];
  private event: string | undefined;
  private retry: number | undefined;
  private sawId = false;
  lastEventId = '';

  push(chunk: string): SseMessage[] {
    this.buf += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (m === null) break;
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const msg = this.line(line);
      if (msg !== undefined) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = undefined;
        this.sawId = false;
        return undefined;
      }
      const msg: SseMessage = { data: this.data.join('\n') };
      if (this.event !== undefined) msg.event = this.event;
      if (this.sawId || this.lastEventId !== '') msg.id = this.lastEventId;
      if (this.retry !== undefined) msg.retry = this.retry;
      this.data = [];
      this.event = undefined;
      this.retry = undefined;
      this.sawId = false;
      return msg;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) {
      this.lastEventId = value;
      this.sawId = true;
    } else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
    return undefined;
  }
}
