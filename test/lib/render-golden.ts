/**
 * Renders the representative cases (test/lib/render-fixtures.ts) of every
 * format with the shipped templates and the site snippet fixtures under
 * test/golden/render/site-snippets (the per-system override for odd1).
 * Shared by the golden test, the validation test and the benchmark.
 */
import { join } from 'node:path';
import { Renderer } from '../../server/render/renderer.js';
import { packageRoot, shippedRoots, type RenderRoots } from '../../server/render/roots.js';
import { templateContext } from '../../server/render/vars.js';
import { FORMATS, VARIANTS, cases, type Format } from './render-fixtures.js';

export const GOLDEN_DIR = join(packageRoot(), 'test', 'golden', 'render');
export const EXT: Record<Format, string> = {
  kickstart: 'ks', preseed: 'seed', autoyast: 'xml', autoinstall: 'yaml', 'cloud-config': 'yaml', 'network-config': 'yaml', agama: 'json',
};

export function goldenRoots(): RenderRoots {
  const shipped = shippedRoots();
  return {
    templates: shipped.templates,
    snippets: [{ dir: join(GOLDEN_DIR, 'site-snippets'), origin: 'site' }, ...shipped.snippets],
  };
}

export interface Rendered {
  format: Format;
  /** Golden directory: the format, or <format>-<variant> for another installer version. */
  dir: string;
  /** The distro's os_version (the kickstart checker picks its pykickstart handler from it). */
  os_version: string;
  id: string;
  text: string;
  snippets: string[];
}

export function renderAll(renderer: Renderer = new Renderer(goldenRoots())): Rendered[] {
  const out: Rendered[] = [];
  const all = [
    ...FORMATS.map((f) => ({ ...f, dir: f.format as string })),
    ...VARIANTS.map((v) => ({ format: v.format, template: FORMATS.find((f) => f.format === v.format)!.template, distro: v.distro, dir: v.variant })),
  ];
  for (const f of all) {
    for (const c of cases(f)) {
      const r = renderer.render(f.template, templateContext(c.vars), c.target);
      out.push({ format: f.format, dir: f.dir, os_version: f.distro.os_version, id: c.id, text: r.text, snippets: r.snippets.map((s) => `${s.name}:${s.level}:${s.origin}`) });
    }
  }
  return out;
}
