/**
 * The autoinstall renderer: nunjucks, strict.
 *
 * - Strict: `throwOnUndefined` (outputting an undefined or null value is an
 *   error), syntax errors, a missing snippet or template, an exception in a
 *   filter: every failure is a ForgeError (TEMPLATE_ERROR, TEMPLATE_NOT_FOUND
 *   or TEMPLATE_PATH) whose message and details carry the file, line and
 *   column where it happened. Rendering is synchronous and all-or-nothing:
 *   the caller gets the whole text or an error, never half a file (Cobbler
 *   serves a comment inside the file instead; the install then fails far from
 *   the cause, #2570 #2679).
 * - Snippets: `{% include "snippets/NAME" %}` looks NAME up in Cobbler's
 *   order: per_system/NAME/<system>, per_profile/NAME/<profile> (the
 *   profile, then its parents), per_distro/NAME/<distro>, then NAME; each
 *   level in the site snippets dir first, then the shipped one. Any other
 *   include/import/extends name is a template name (site templates dir, then
 *   shipped templates/).
 * - Cache: compiled templates are kept per real file path and reused while
 *   the file's mtime, size and inode are unchanged (one stat per file per
 *   render), so an edit is live at the next request without a restart.
 */
import { readFileSync, readdirSync, statSync, type Stats } from 'node:fs';
import { join, relative } from 'node:path';
import nunjucks from 'nunjucks';
import { ForgeError } from '../errors.js';
import { checkName, locate, safeSegment, type Located, type Origin, type RenderRoots, type Root } from './roots.js';
import { templateError } from './errors.js';
import { addFilters } from './filters.js';
import { SharedContextTemplate } from './include.js';


export interface RenderTarget {
  kind: 'system' | 'profile';
  /** Name of the system or profile rendered. */
  name: string;
  /** System name, '' for a profile render. */
  system: string;
  /** The profile chain, nearest first (sub-profile, then its parents). */
  profiles: string[];
  distro: string;
}

export type Level = 'template' | 'per_system' | 'per_profile' | 'per_distro' | 'shared';

export interface FileUse {
  /** Template or snippet name as written (`kickstart/default.ks`, `kickstart/network`). */
  name: string;
  /** Real path of the file in effect. */
  file: string;
  origin: Origin;
  level: Level;
  /** For per_* levels: the system/profile/distro the override is for. */
  for?: string;
}

/** A template or snippet under the roots: the file in effect and the files it shadows (GET /api/v1/templates). */
export interface TemplateEntry {
  name: string;
  file: string;
  origin: Origin;
  shadows: string[];
}

export interface RenderResult {
  text: string;
  template: FileUse;
  /** Snippets included during this render, in first-use order (deduplicated). */
  snippets: FileUse[];
}

export interface ErrorDetails {
  file: string;
  line?: number;
  column?: number;
  /** The top-level template being rendered. */
  template?: string;
}

const SNIPPET_PREFIX = 'snippets/';

/** eth2 < eth10. One collator: String#localeCompare builds one per call. */

interface CacheEntry {
  mtimeMs: number;
  size: number;
  ino: number;
  tmpl: nunjucks.Template;
}

interface RenderState {
  target: RenderTarget;
  /** Existence of per_* override directories, memoised for one render (or one RenderMemo's run). */
  dirs: Map<string, boolean>;
  used: FileUse[];
  top: string;
  memo: RenderMemo | undefined;
}

/**
 * What the file lookups found, kept for a run of many renders that is one
 * snapshot anyway (`forge validate`): each render otherwise stats and
 * realpaths every candidate of every include (a quarter of validate's time
 * in the profile). A template edited during the run is seen by the next run.
 */
export interface RenderMemo {
  located: Map<string, Located | undefined>;
  dirs: Map<string, boolean>;
  /** findSnippet's answers by snippet name and the target's lookup chain (snippetKey). */
  snippets: Map<string, { use: FileUse; stat: Stats } | undefined>;
  /** Whether some snippet root has a per_system/ directory (then a system's own name takes part in the key). */
  perSystem?: boolean;
}

export const newRenderMemo = (): RenderMemo => ({ located: new Map(), dirs: new Map(), snippets: new Map() });

export interface RendererOptions {
  /**
   * true: includes copy every variable, as stock nunjucks does. Kept only so
   * test/unit/render-include.test.ts can hold the default path
   * (render/include.ts, no copy) to byte-equal output.
   */
  copyIncludes?: boolean;
}

/** locate(), through `memo` when there is one. */
function locateIn(memo: RenderMemo | undefined, root: Root, segs: string[], display: string): Located | undefined {
  if (memo === undefined) return locate(root, segs, display);
  const key = `${root.dir}\0${segs.join('/')}`;
  if (memo.located.has(key)) return memo.located.get(key);
  const hit = locate(root, segs, display);
  memo.located.set(key, hit);
  return hit;
}


export class Renderer {
  private readonly env: nunjucks.Environment;
  private readonly cache = new Map<string, CacheEntry>();
  private state: RenderState | undefined;
  private lastUsed: FileUse[] = [];

  private readonly Template: typeof nunjucks.Template;

  constructor(readonly roots: RenderRoots, opts: RendererOptions = {}) {
    this.Template = opts.copyIncludes === true ? nunjucks.Template : SharedContextTemplate;
    this.env = new nunjucks.Environment(null, {
      autoescape: false,
      throwOnUndefined: true,
      trimBlocks: true,
      lstripBlocks: true,
      // dev keeps nunjucks' TemplateError (with lineno/colno) instead of a bare Error.
      dev: true,
    });
    addFilters(this.env);
    // `{{ fail("why") }}`: a template refuses to produce a file that cannot work.
    this.env.addGlobal('fail', (why: unknown) => {
      throw new Error(String(why));
    });
    // Every include/import/extends goes through our resolver (confinement,
    // snippet override order, mtime cache) instead of nunjucks' loaders.
    type Cb = (err: unknown, tmpl?: nunjucks.Template) => void;
    const self = this;
    const getTemplate = function (name: unknown, eager?: unknown, parentName?: unknown, _ignoreMissing?: unknown, cb?: unknown): nunjucks.Template | undefined {
      let callback: Cb | undefined;
      for (const a of [eager, parentName, cb]) if (typeof a === 'function') callback = a as Cb;
      const parent = typeof parentName === 'string' ? parentName : undefined;
      let tmpl: nunjucks.Template;
      try {
        tmpl = name instanceof nunjucks.Template ? name : self.resolveInclude(String(name), parent);
      } catch (e) {
        if (callback !== undefined) {
          callback(e);
          return undefined;
        }
        throw e;
      }
      if (callback !== undefined) {
        callback(null, tmpl);
        return undefined;
      }
      return tmpl;
    };
    (this.env as unknown as { getTemplate: typeof getTemplate }).getTemplate = getTemplate;
  }


  // ----- resolution

  /** The template file in effect for a name (site shadows shipped). */
  resolveTemplate(name: string, memo?: RenderMemo): FileUse {
    const segs = checkName(name, 'template');
    for (const root of this.roots.templates) {
      const hit = locateIn(memo, root, segs, name);
      if (hit !== undefined) {
        this.lastStat.set(hit.file, hit.stat);
        return { name, file: hit.file, origin: hit.root.origin, level: 'template' };
      }
    }
    throw new ForgeError('TEMPLATE_NOT_FOUND', `template "${name}" not found in ${this.roots.templates.map((r) => r.dir).join(', ')}`, {
      field: 'autoinstall',
      details: { name },
    });
  }

  /** Candidate snippet locations in lookup order (for `forge template show`). */
  snippetCandidates(name: string, target: RenderTarget): { level: Level; for?: string; segs: string[] }[] {
    const segs = checkName(name, 'snippet');
    const out: { level: Level; for?: string; segs: string[] }[] = [];
    if (target.system !== '' && safeSegment(target.system)) out.push({ level: 'per_system', for: target.system, segs: ['per_system', ...segs, target.system] });
    for (const p of target.profiles) if (safeSegment(p)) out.push({ level: 'per_profile', for: p, segs: ['per_profile', ...segs, p] });
    if (target.distro !== '' && safeSegment(target.distro)) out.push({ level: 'per_distro', for: target.distro, segs: ['per_distro', ...segs, target.distro] });
    out.push({ level: 'shared', segs });
    return out;
  }

  /** The snippet file in effect for a name and target, or undefined. */
  findSnippet(name: string, target: RenderTarget, dirs: Map<string, boolean> = new Map(), memo?: RenderMemo): FileUse | undefined {
    let found: { use: FileUse; stat: Stats } | undefined;
    if (memo === undefined) found = this.searchSnippet(name, target, dirs, memo);
    else {
      // Within one snapshot the answer depends on the name and the target's lookup chain only
      // (most systems of a profile share it: no per_system override directory).
      memo.perSystem ??= this.roots.snippets.some((root) => this.dirPresent(join(root.dir, 'per_system'), dirs));
      const key = `${name}\0${memo.perSystem && target.system !== '' ? target.system : ''}\0${target.profiles.join('/')}\0${target.distro}`;
      if (memo.snippets.has(key)) found = memo.snippets.get(key);
      else {
        found = this.searchSnippet(name, target, dirs, memo);
        memo.snippets.set(key, found);
      }
    }
    if (found === undefined) return undefined;
    // load() reuses the stat locate() took instead of a second syscall.
    this.lastStat.set(found.use.file, found.stat);
    return { ...found.use };
  }

  private dirPresent(d: string, dirs: Map<string, boolean>): boolean {
    let present = dirs.get(d);
    if (present === undefined) {
      present = statSync(d, { throwIfNoEntry: false })?.isDirectory() === true;
      dirs.set(d, present);
    }
    return present;
  }

  private searchSnippet(name: string, target: RenderTarget, dirs: Map<string, boolean>, memo: RenderMemo | undefined): { use: FileUse; stat: Stats } | undefined {
    for (const c of this.snippetCandidates(name, target)) {
      for (const root of this.roots.snippets) {
        // Skip a whole override level when its directory (per_system, ...) does
        // not exist in this root: the common case, one stat per render instead
        // of one per snippet. Memoised per render only, so new dirs are seen.
        if (c.level !== 'shared' && !this.dirPresent(join(root.dir, c.segs[0]!), dirs)) continue;
        const hit: Located | undefined = locateIn(memo, root, c.segs, `${SNIPPET_PREFIX}${name}`);
        if (hit !== undefined) {
          const use: FileUse = { name, file: hit.file, origin: hit.root.origin, level: c.level };
          if (c.for !== undefined) use.for = c.for;
          return { use, stat: hit.stat };
        }
      }
    }
    return undefined;
  }

  private resolveInclude(name: string, parent: string | undefined): nunjucks.Template {
    const st = this.state;
    if (name.startsWith(SNIPPET_PREFIX)) {
      const snip = name.slice(SNIPPET_PREFIX.length);
      if (st === undefined) throw new ForgeError('INTERNAL', 'snippet include outside a render');
      const use = this.findSnippet(snip, st.target, st.dirs, st.memo);
      if (use === undefined) {
        const where = parent !== undefined ? this.lineOf(parent, name) : undefined;
        const loc = parent !== undefined ? `${parent}${where !== undefined ? `:${where}` : ''}: ` : '';
        const details: ErrorDetails = { file: parent ?? '', template: st.top };
        if (where !== undefined) details.line = where;
        throw new ForgeError(
          'TEMPLATE_NOT_FOUND',
          `${loc}snippet "${snip}" not found (looked in per_system, per_profile, per_distro and shared under ${this.roots.snippets.map((r) => r.dir).join(', ')})`,
          { field: 'autoinstall', details },
        );
      }
      if (!st.used.some((u) => u.file === use.file && u.name === use.name)) st.used.push(use);
      return this.load(use.file);
    }
    const use = this.resolveTemplate(name, st?.memo);
    return this.load(use.file);
  }

  /** Line (1-based) where `needle` first appears in a cached file, for errors. */
  private lineOf(file: string, needle: string): number | undefined {
    const src = this.sources.get(file);
    if (src === undefined) return undefined;
    const idx = src.indexOf(needle);
    if (idx === -1) return undefined;
    return src.slice(0, idx).split('\n').length;
  }

  /** Compile (or reuse) the template at a real path. */
  private load(file: string): nunjucks.Template {
    // locate() just stat'ed the file: reuse that instead of a second syscall.
    const s = this.lastStat.get(file) ?? statSync(file);
    this.lastStat.delete(file);
    const hit = this.cache.get(file);
    if (hit !== undefined && hit.mtimeMs === s.mtimeMs && hit.size === s.size && hit.ino === s.ino) return hit.tmpl;
    const src = readFileSync(file, 'utf8');
    // Keep the source apart from the compiled form so errors can quote it.
    this.sources.set(file, src);
    let tmpl: nunjucks.Template;
    try {
      tmpl = new this.Template(src, this.env, file, true);
    } catch (e) {
      this.cache.delete(file);
      throw this.toForgeError(e, file);
    }
    this.cache.set(file, { mtimeMs: s.mtimeMs, size: s.size, ino: s.ino, tmpl });
    return tmpl;
  }

  private readonly sources = new Map<string, string>();
  private readonly lastStat = new Map<string, Stats>();

  // ----- rendering

  /** `memo`: a run of renders that is one snapshot (newRenderMemo; validate). */
  render(templateName: string, vars: Record<string, unknown>, target: RenderTarget, memo?: RenderMemo): RenderResult {
    const template = this.resolveTemplate(templateName, memo);
    this.state = { target, used: [], top: template.file, dirs: memo?.dirs ?? new Map(), memo };
    try {
      const tmpl = this.load(template.file);
      const text = tmpl instanceof SharedContextTemplate ? tmpl.renderVars(vars) : tmpl.render(vars);
      return { text, template, snippets: this.state.used };
    } catch (e) {
      this.lastUsed = this.state.used;
      throw this.toForgeError(e, template.file);
    } finally {
      this.state = undefined;
    }
  }

  /** Render and report only what was used (for `forge template show`), errors included. */
  explain(templateName: string, vars: Record<string, unknown>, target: RenderTarget): { template?: FileUse; snippets: FileUse[]; error?: ForgeError } {
    let template: FileUse | undefined;
    this.lastUsed = [];
    try {
      template = this.resolveTemplate(templateName);
      const r = this.render(templateName, vars, target);
      return { template: r.template, snippets: r.snippets };
    } catch (e) {
      const err = e instanceof ForgeError ? e : this.toForgeError(e, template?.file ?? templateName);
      // The snippets resolved before the failure are still worth showing.
      const out: { template?: FileUse; snippets: FileUse[]; error?: ForgeError } = { snippets: this.lastUsed, error: err };
      if (template !== undefined) out.template = template;
      return out;
    }
  }



  /** Turn whatever nunjucks threw into one ForgeError with file:line:col (render/errors.ts). */
  toForgeError(e: unknown, topFile: string): ForgeError {
    return templateError(e, topFile, this.sources);
  }

  // ----- listing

  /** Every template name under the roots, with the file in effect and what it shadows. */
  listTemplates(): TemplateEntry[] {
    return this.listTree(this.roots.templates, () => true);
  }

  /** Every snippet file (shared and per_* overrides). */
  listSnippets(): TemplateEntry[] {
    return this.listTree(this.roots.snippets, () => true);
  }

  private listTree(roots: RenderRoots['templates'], keep: (name: string) => boolean): TemplateEntry[] {
    const byName = new Map<string, TemplateEntry>();
    for (const root of roots) {
      for (const rel of walk(root.dir)) {
        if (!keep(rel)) continue;
        const file = join(root.dir, rel);
        const prev = byName.get(rel);
        if (prev === undefined) byName.set(rel, { name: rel, file, origin: root.origin, shadows: [] });
        else prev.shadows.push(file);
      }
    }
    return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Number of compiled templates held (for tests of the cache). */
  get cacheSize(): number {
    return this.cache.size;
  }
}

function walk(dir: string, base = dir, depth = 0): string[] {
  if (depth > 8) return [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    // Dot files and the README documenting a root are not templates.
    if (e.name.startsWith('.') || (depth === 0 && e.name === 'README.md')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, base, depth + 1));
    else if (e.isFile() || e.isSymbolicLink()) out.push(relative(base, p).split('\\').join('/'));
  }
  return out;
}
