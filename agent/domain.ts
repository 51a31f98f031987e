/**
 * What `forge-agent vm` needs to know about a defined domain, read from the
 * XML libvirt gives back (`virsh dumpxml`). Pure. libvirt re-serialises the
 * document it was given (double-quoted attributes, its own indentation), so
 * these readers accept either quote and any whitespace; they read only the
 * elements forge writes itself (agent/domxml.ts), which libvirt keeps.
 * Reference: https://libvirt.org/formatdomain.html
 */
import { FORGE_NS, esc } from './domxml.js';

export interface DomainDisk {
  /** The guest device name (vda, sda, hda). */
  target: string;
  bus: string;
  /** file | block | volume | network */
  type: string;
  /** disk | cdrom */
  device: string;
  format: string;
  /** The file or device; '' for pool volumes and network disks. */
  source: string;
  /** A qcow2 overlay's backing file, when libvirt reports it. */
  backing: string;
}

export interface DomainInfo {
  name: string;
  uuid: string;
  /** Marked by forge-agent: <metadata><forge:agent> in forge's namespace. */
  forge: boolean;
  /** The forge system record named in the marker ('' when none: profile installs, foreign domains). */
  system: string;
  disks: DomainDisk[];
  macs: string[];
  /** The serial console log (virtlogd), '' when none. */
  consoleLog: string;
  /** The console's pty while running ('' otherwise). */
  consolePty: string;
  /** vnc/spice listen address and port while running (port -1 or absent when stopped). */
  graphics: { type: string; listen: string; port: number }[];
  firmware: 'uefi' | 'bios';
  machine: string;
}

function attr(tag: string, name: string): string {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(tag);
  return unescapeXml(m === null ? '' : (m[1] ?? m[2] ?? ''));
}

export function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp);/g, (_, e: string) => ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' })[e] ?? '');
}

/** Each `<name ...>...</name>` (or self-closed) element's text. */
function elements(xml: string, name: string): string[] {
  const re = new RegExp(`<${name}(?:\\s[^>]*)?(?:/>|>[\\s\\S]*?</${name}>)`, 'g');
  return xml.match(re) ?? [];
}

function first(xml: string, name: string): string {
  return elements(xml, name)[0] ?? '';
}

function openTag(el: string): string {
  const m = /^<[^>]*>/.exec(el);
  return m === null ? '' : m[0];
}

function text(el: string): string {
  const m = /^<[^>]*>([\s\S]*?)<\/[^>]*>$/.exec(el);
  return m === null ? '' : unescapeXml(m[1] ?? '').trim();
}

export function parseDomainXml(xml: string): DomainInfo {
  // The marker: any prefix bound to forge's namespace on an element named agent.
  let forge = false;
  let system = '';
  const meta = first(xml, 'metadata');
  for (const m of meta.matchAll(/<([A-Za-z_][\w.-]*):agent\s[^>]*>/g)) {
    const tag = m[0];
    if (attr(tag, `xmlns:${m[1] as string}`) === FORGE_NS) {
      forge = true;
      system = attr(tag, 'system');
    }
  }
  const devices = first(xml, 'devices');
  const disks: DomainDisk[] = elements(devices, 'disk').map((d) => {
    const open = openTag(d);
    const src = openTag(first(d, 'source'));
    const backingStore = first(d, 'backingStore');
    const backingSrc = backingStore === '' ? '' : attr(openTag(first(backingStore, 'source')), 'file');
    return {
      target: attr(openTag(first(d, 'target')), 'dev'),
      bus: attr(openTag(first(d, 'target')), 'bus'),
      type: attr(open, 'type'),
      device: attr(open, 'device') || 'disk',
      format: attr(openTag(first(d, 'driver')), 'type'),
      source: attr(src, 'file') || attr(src, 'dev'),
      backing: backingSrc,
    };
  });
  const macs = elements(devices, 'interface').map((i) => attr(openTag(first(i, 'mac')), 'address').toLowerCase()).filter((m) => m !== '');
  const serial = first(devices, 'serial');
  const consoleEl = openTag(first(devices, 'console'));
  const graphics = elements(devices, 'graphics').map((g) => {
    const open = openTag(g);
    const port = Number(attr(open, 'port') || '-1');
    return { type: attr(open, 'type'), listen: attr(open, 'listen'), port: Number.isFinite(port) ? port : -1 };
  });
  const os = first(xml, 'os');
  const osOpen = openTag(os);
  const loader = openTag(first(os, 'loader'));
  const uefi = attr(osOpen, 'firmware') === 'efi' || /OVMF|edk2|\.fd/i.test(text(first(os, 'loader'))) || attr(loader, 'type') === 'pflash';
  return {
    name: text(first(xml, 'name')),
    uuid: text(first(xml, 'uuid')),
    forge,
    system,
    disks,
    macs,
    consoleLog: attr(openTag(first(serial, 'log')), 'file'),
    consolePty: attr(consoleEl, 'tty') || attr(openTag(first(serial, 'source')), 'path'),
    graphics,
    firmware: uefi ? 'uefi' : 'bios',
    machine: attr(openTag(first(os, 'type')), 'machine'),
  };
}

export interface Retarget {
  name: string;
  uuid: string;
  /** Old disk file -> new file (and format: a snap-run overlay is qcow2 over a raw disk too). */
  disks: Map<string, { file: string; format: string }>;
  /** Old MAC -> new MAC; MACs not in the map stay. */
  macs: Map<string, string>;
  consoleLog: string;
  /** The marker's system attribute ('' drops it) and its text (persistent, snap-run). */
  system: string;
  role: string;
  /** Drop the per-VM NVRAM path (libvirt makes a fresh copy from the template). */
  dropNvram?: boolean;
}

function setAttr(tag: string, name: string, value: string): string {
  const re = new RegExp(`(\\s${name}\\s*=\\s*)(?:"[^"]*"|'[^']*')`);
  return re.test(tag) ? tag.replace(re, `$1'${esc(value)}'`) : tag.replace(/\s*(\/?)>$/, ` ${name}='${esc(value)}'$1>`);
}

/**
 * The same domain with some disks in other files (a snapshot's overlay, a
 * restored disk): each <disk> whose source file is a key gets the new file
 * and driver type. The <backingStore> chain libvirt reported is dropped: it
 * probes the new file's chain itself when the domain starts
 * (https://libvirt.org/kbase/backing_chains.html). Pure.
 */
export function moveDisks(xml: string, disks: ReadonlyMap<string, { file: string; format: string }>): string {
  return xml.replace(/<disk(?:\s[^>]*)?>[\s\S]*?<\/disk>/g, (d) => {
    const src = attr(openTag(first(d, 'source')), 'file');
    const to = disks.get(src);
    if (to === undefined) return d;
    return d
      .replace(/<source(\s[^>]*)?\/?>/, (t) => setAttr(t, 'file', to.file))
      .replace(/<driver(\s[^>]*)?\/?>/, (t) => setAttr(t, 'type', to.format))
      .replace(/\s*<backingStore(?:\s[^>]*)?(?:\/>|>[\s\S]*?<\/backingStore>)/g, '');
  });
}

/**
 * The inactive XML of a domain (virsh dumpxml --inactive) made into another
 * domain's: a clone, or a snap-run throwaway. Pure. Everything that names the
 * source (name, uuid, disk files, MACs, console log, marker) is replaced;
 * libvirt's own per-domain state (backingStore chains it reports, NVRAM
 * path) is dropped so libvirt derives it again for the new domain.
 */
export function retargetDomainXml(xml: string, r: Retarget): string {
  let out = xml.replace(/<name>[^<]*<\/name>/, `<name>${esc(r.name)}</name>`).replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${esc(r.uuid)}</uuid>`);
  out = moveDisks(out, r.disks);
  out = out.replace(/<mac(\s[^>]*)?\/>/g, (t) => {
    const to = r.macs.get(attr(t, 'address').toLowerCase());
    return to === undefined ? t : setAttr(t, 'address', to);
  });
  out = out.replace(/<log(\s[^>]*)?\/>/g, (t) => setAttr(t, 'file', r.consoleLog));
  out = out.replace(/<([A-Za-z_][\w.-]*):agent(\s[^>]*)?>[^<]*<\/\1:agent>/g, (el, prefix: string) => {
    let tag = openTag(el).replace(/\ssystem\s*=\s*(?:"[^"]*"|'[^']*')/, '');
    if (r.system !== '') tag = setAttr(tag, 'system', r.system);
    return `${tag}${esc(r.role)}</${prefix}:agent>`;
  });
  if (r.dropNvram === true) out = out.replace(/\s*<nvram(?:\s[^>]*)?(?:\/>|>[^<]*<\/nvram>)/, '');
  return out;
}
