/**
 * Where templates and snippets live, and the confinement rules for names.
 *
 * Two roots per kind, searched in order: the site directory from config
 * (templates_dir / snippets_dir, default under /etc/forge) shadows the
 * shipped templates/ and snippets/ of the package, so a site never edits
 * shipped files. A name is always relative to a root; it may not be absolute,
 * contain `..`, `.`, empty segments, backslashes or NUL, and the real path of
 * the file it names (after following symlinks) must stay inside the real path
 * of its root. Anything else is TEMPLATE_PATH, never a silent fallback.
 */
import { existsSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ForgeError } from '../errors.js';

export type Origin = 'site' | 'shipped';

export interface Root {
  dir: string;
  origin: Origin;
}

export interface RenderRoots {
  /** Site first, then shipped. */
  templates: Root[];
  snippets: Root[];
}

/**
 * The package root: the nearest ancestor of this module holding package.json
 * and templates/. Works from the sources and from dist/ (dist/server/render/
 * -> the repository root, not dist/).
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'templates'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new ForgeError('INTERNAL', 'cannot find the forge package root (templates/ next to package.json)');
    dir = up;
  }
}

export function shippedRoots(): RenderRoots {
  const pkg = packageRoot();
  return {
    templates: [{ dir: join(pkg, 'templates'), origin: 'shipped' }],
    snippets: [{ dir: join(pkg, 'snippets'), origin: 'shipped' }],
  };
}

/** Site dirs (when set) shadow the shipped ones. */
export function rootsFor(cfg: { templates_dir: string; snippets_dir: string }): RenderRoots {
  const shipped = shippedRoots();
  const site = (dir: string): Root[] => (dir === '' ? [] : [{ dir, origin: 'site' }]);
  return {
    templates: [...site(cfg.templates_dir), ...shipped.templates],
    snippets: [...site(cfg.snippets_dir), ...shipped.snippets],
  };
}

/** Split a root-relative name into checked segments, or throw TEMPLATE_PATH. */
export function checkName(name: string, what = 'template'): string[] {
  const refuse = (why: string): ForgeError =>
    new ForgeError('TEMPLATE_PATH', `${what} name "${name.replace(/\0/g, '\\0')}" refused: ${why}`, { field: 'autoinstall' });
  if (name === '') throw refuse('empty');
  if (name.includes('\0')) throw refuse('contains NUL');
  if (name.includes('\\')) throw refuse('contains a backslash');
  // Control characters have no business in a file name served to installers.
  if (/[\x00-\x1f\x7f]/.test(name)) throw refuse('contains control characters');
  if (name.startsWith('/')) throw refuse('absolute paths are not allowed');
  const segs = name.split('/');
  for (const s of segs) {
    if (s === '..') throw refuse('".." leaves the template root');
    if (s === '' || s === '.') throw refuse('empty or "." path segment');
  }
  return segs;
}

/** A path segment built from an object name (system/profile/distro) is safe to join. */
export function safeSegment(s: string): boolean {
  return s !== '' && s !== '.' && s !== '..' && !/[/\\\0\x00-\x1f\x7f]/.test(s);
}

const realRoots = new Map<string, string>();

function realRoot(dir: string): string | undefined {
  const hit = realRoots.get(dir);
  if (hit !== undefined) return hit;
  if (!existsSync(dir)) return undefined;
  const real = realpathSync(dir);
  realRoots.set(dir, real);
  return real;
}

export interface Located {
  /** Real path of the file. */
  file: string;
  root: Root;
  /** stat of the file (followed symlinks), for the cache check. */
  stat: Stats;
}

/**
 * Find `segs` under `root`: undefined when absent (or when the root does not
 * exist), the real path when present and confined, TEMPLATE_PATH when a
 * symlink leads out of the root.
 */
export function locate(root: Root, segs: string[], display: string): Located | undefined {
  const rr = realRoot(root.dir);
  if (rr === undefined) return undefined;
  const candidate = join(root.dir, ...segs);
  // Most candidates (per_system/per_profile/per_distro levels) do not exist:
  // a non-throwing stat keeps a miss cheap (an ENOENT exception costs ~50 us).
  const st = statSync(candidate, { throwIfNoEntry: false });
  if (st === undefined || !st.isFile()) return undefined;
  let real: string;
  try {
    // native: one realpath(3) call instead of an lstat per path component.
    real = realpathSync.native(candidate);
  } catch {
    return undefined;
  }
  if (!real.startsWith(rr + sep)) {
    throw new ForgeError('TEMPLATE_PATH', `"${display}" resolves to ${real}, outside its root ${root.dir}`, {
      field: 'autoinstall',
    });
  }
  return { file: real, root, stat: st };
}

/**
 * Site templates are code that runs with the server's rights (nunjucks is
 * not a sandbox), so, like sshd's StrictModes, forge refuses to start when
 * templates_dir or snippets_dir, or anything in them, is writable by group
 * or other or owned by someone other than root or the service user. Returns
 * the first problem with its path; a directory that does not exist is fine.
 */
export function untrustedSitePath(dir: string, uid: number = process.getuid?.() ?? 0, limit = 100_000): string | undefined {
  if (dir === '' || !existsSync(dir)) return undefined;
  const stack = [dir];
  let seen = 0;
  while (stack.length > 0) {
    const p = stack.pop()!;
    if (++seen > limit) return `${dir}: more than ${limit} entries`;
    // stat follows a symlink: what matters is the file that would be read.
    const st = statSync(p, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if ((st.mode & 0o022) !== 0) return `${p} is writable by ${(st.mode & 0o020) !== 0 ? 'group' : 'other'} (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')})`;
    if (st.uid !== 0 && st.uid !== uid) return `${p} is owned by uid ${st.uid}, not root or the service user (uid ${uid})`;
    if (st.isDirectory()) for (const e of readdirSync(p)) stack.push(join(p, e));
  }
  return undefined;
}

/** Startup check of templates_dir and snippets_dir: CONFIG_INVALID naming the key and the path. */
export function checkSiteTrust(cfg: { templates_dir: string; snippets_dir: string }): void {
  for (const key of ['templates_dir', 'snippets_dir'] as const) {
    const why = untrustedSitePath(cfg[key]);
    if (why !== undefined) {
      throw new ForgeError('CONFIG_INVALID', `${key}: ${why}: site templates run as code with forge's rights; fix with chown root and chmod go-w`, { field: key });
    }
  }
}
