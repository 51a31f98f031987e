/**
 * Read a Cobbler 3.x data directory into plain records (cobbler/import.ts maps
 * them). Layout (cobbler/modules/serializers/file.py):
 *   DIR/collections/{distros,profiles,systems,repos,menus,images}/NAME.json
 * (DIR is /var/lib/cobbler on a Cobbler server; DIR/collections itself is
 * accepted too), and the settings: settings.yaml plus settings.d/*.settings
 * (files in name order, later keys win), found next to the collections or
 * given with an explicit path (/etc/cobbler/settings.yaml on a Cobbler server).
 * A file that cannot be read or parsed is reported, never skipped silently.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ForgeError } from '../errors.js';
import type { CobblerData, Rec } from './import.js';
import { parseYaml, YamlError } from './yaml.js';

const KINDS = ['distros', 'profiles', 'systems', 'repos', 'menus', 'images'] as const;

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function readCobblerDir(dir: string, settingsFile?: string): CobblerData {
  if (!isDir(dir)) throw new ForgeError('USAGE', `${dir} is not a directory`, { field: 'dir' });
  const coll = isDir(join(dir, 'collections')) ? join(dir, 'collections') : dir;
  if (!KINDS.some((k) => isDir(join(coll, k)))) {
    throw new ForgeError('USAGE', `${dir} holds no Cobbler collections (expected collections/distros, profiles, systems, ... with NAME.json files)`, { field: 'dir' });
  }
  const data: CobblerData = { distros: [], profiles: [], systems: [], repos: [], menus: [], images: [], settings: {}, readErrors: [] };
  for (const kind of KINDS) {
    const d = join(coll, kind);
    if (!isDir(d)) continue;
    for (const f of readdirSync(d).filter((n) => n.endsWith('.json')).sort()) {
      const file = join(d, f);
      try {
        const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
        const rec = v as Rec;
        // Cobbler itself refuses a file whose name differs from the object's (serializers/file.py).
        const name = f.slice(0, -'.json'.length);
        if (rec['name'] !== name) throw new Error(`names ${JSON.stringify(rec['name'])}, but the file is ${f}`);
        data[kind].push(rec);
      } catch (e) {
        data.readErrors.push({ file, message: `not imported: ${(e as Error).message}` });
      }
    }
  }
  const base = settingsFile ?? [join(dir, 'settings.yaml'), join(dirname(coll), 'settings.yaml')].find((p) => existsSync(p));
  if (base !== undefined) {
    const files = [base];
    const sd = join(dirname(base), 'settings.d');
    if (isDir(sd)) files.push(...readdirSync(sd).filter((n) => n.endsWith('.settings')).sort().map((n) => join(sd, n)));
    for (const file of files) {
      try {
        const v = parseYaml(readFileSync(file, 'utf8'));
        if (v === null) continue;
        if (typeof v !== 'object' || Array.isArray(v)) throw new Error('not a mapping of settings');
        Object.assign(data.settings, v);
      } catch (e) {
        const msg = e instanceof YamlError ? e.message : (e as Error).message;
        data.readErrors.push({ file, message: `settings not read: ${msg}` });
      }
    }
  }
  return data;
}
