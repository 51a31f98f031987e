/**
 * The filters forge templates may use ({{ x | shquote }}, ...), added to the
 * renderer's nunjucks environment. Each either returns a value that is safe
 * where its name says, or throws (the renderer maps that to TEMPLATE_ERROR
 * with file:line, render/errors.ts).
 */
import type nunjucks from 'nunjucks';
import { bootInterface, netmaskToPrefix, optionsToString } from '../core/cmdline.js';
import { ipToInt, maskOf } from '../core/ipv4.js';

/** Natural order (eth2 before eth10). */
export const NATURAL = new Intl.Collator('en', { numeric: true }).compare;

function urlPart(v: unknown, part: 'host' | 'path' | 'scheme'): string {
  let u: URL;
  try {
    u = new URL(String(v));
  } catch {
    throw new Error(`not a URL: "${String(v)}"`);
  }
  if (part === 'host') return u.host;
  if (part === 'scheme') return u.protocol.replace(/:$/, '');
  return u.pathname.replace(/\/+$/, '') || '/';
}

/** Split on newlines, `;` or `,` outside of values that need them (keys, package lists). */
function splitList(x: unknown): string[] {
  if (Array.isArray(x)) return x.map((v) => String(v)).filter((s) => s.trim() !== '');
  if (typeof x !== 'string') return [];
  return x
    .split(/[\n;]+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function words(x: unknown): string[] {
  if (Array.isArray(x)) return x.map((v) => String(v)).filter((s) => s !== '');
  if (typeof x !== 'string') return [];
  return x.split(/[\s,]+/).filter((s) => s !== '');
}

const XML_ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

export function addFilters(env: nunjucks.Environment): void {
  // Shell single-quoting: the value is one word whatever it holds.
  env.addFilter('shquote', (v: unknown) => `'${String(v).replace(/'/g, `'\\''`)}'`);
  env.addFilter('xml', (v: unknown) => String(v).replace(/[&<>"']/g, (c) => XML_ESC[c] ?? c));
  env.addFilter('prefix', (v: unknown) => {
    const p = netmaskToPrefix(String(v));
    if (p === undefined) throw new Error(`not a netmask: "${String(v)}"`);
    return p;
  });
  env.addFilter('splitlist', splitList);
  env.addFilter('words', words);
  // Package names (and @group, @^environment, -exclusion): anything else would
  // let a value such as "%end" close the %packages section early.
  env.addFilter('pkgnames', (v: unknown) =>
    words(v).map((p) => {
      if (!/^(-|@\^?)?[A-Za-z0-9_][A-Za-z0-9_.+:*~-]*$/.test(p)) throw new Error(`not a package name: ${JSON.stringify(p)}`);
      return p;
    }),
  );
  env.addFilter('hostpart', (v: unknown) => String(v).split('.')[0] ?? '');
  env.addFilter('domainpart', (v: unknown) => {
    const s = String(v);
    const i = s.indexOf('.');
    return i > 0 ? s.slice(i + 1) : '';
  });
  // One kickstart (pykickstart shlex) word: bare when safe, else double-quoted with \ and " escaped.
  env.addFilter('ksarg', (v: unknown) => {
    const s = String(v);
    if (/[\r\n]/.test(s)) throw new Error(`value must be a single line: ${JSON.stringify(s.slice(0, 60))}`);
    if (s !== '' && /^[A-Za-z0-9_.,:/@+=%$-]+$/.test(s)) return s;
    return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  });
  // A value that must stay on one line (preseed answers, kickstart options).
  env.addFilter('oneline', (v: unknown) => {
    const s = String(v);
    if (/[\r\n]/.test(s)) throw new Error(`value must be a single line: ${JSON.stringify(s.slice(0, 60))}`);
    return s;
  });
  // An OptionDict (kernel_options_post, ...) as kernel arguments.
  env.addFilter('kopts', (v: unknown) => {
    if (typeof v !== 'object' || v === null) return '';
    const d: Record<string, string | null> = {};
    for (const [k, x] of Object.entries(v)) d[k] = x === null ? null : String(x);
    return optionsToString(d);
  });
  env.addFilter('urlhost', (v: unknown) => urlPart(v, 'host'));
  env.addFilter('urlpath', (v: unknown) => urlPart(v, 'path'));
  env.addFilter('urlscheme', (v: unknown) => urlPart(v, 'scheme'));
  // Interface names whose interface_master is the given one (bond/bridge members).
  env.addFilter('slavesof', (ifaces: unknown, master: unknown) => {
    if (typeof ifaces !== 'object' || ifaces === null) return [];
    return Object.entries(ifaces as Record<string, { interface_master?: unknown }>)
      .filter(([, i]) => typeof i === 'object' && i !== null && i.interface_master === master)
      .map(([n]) => n)
      .sort(NATURAL);
  });
  // `gw | insubnet(ip, netmask)`: is an address inside an interface's subnet?
  env.addFilter('insubnet', (addr: unknown, ip: unknown, mask: unknown) => {
    const a = ipToInt(String(addr));
    const i = ipToInt(String(ip));
    const p = netmaskToPrefix(String(mask));
    if (a === undefined || i === undefined || p === undefined) return false;
    const m = maskOf(p);
    return ((a & m) >>> 0) === ((i & m) >>> 0);
  });
  // Name of the interface the installer boots from (core/cmdline.ts rule), or ''.
  env.addFilter('bootiface', (ifaces: unknown) => bootInterface({ interfaces: ifaces })?.name ?? '');
  // The interface_type values present (e.g. to add ifenslave when a bond exists).
  env.addFilter('iftypes', (ifaces: unknown) =>
    typeof ifaces === 'object' && ifaces !== null
      ? [...new Set(Object.values(ifaces as Record<string, { interface_type?: unknown }>).map((i) => String(i?.interface_type ?? '')))]
      : [],
  );
  env.addFilter('sortkeys', (v: unknown) =>
    typeof v === 'object' && v !== null ? Object.keys(v).sort(NATURAL) : [],
  );
  // Treat "true/yes/1/on" strings (autoinstall_meta values are strings) as booleans.
  env.addFilter('truthy', (v: unknown) =>
    typeof v === 'boolean' ? v : typeof v === 'string' ? /^(1|true|yes|on)$/i.test(v.trim()) : typeof v === 'number' ? v !== 0 : false,
  );
}
