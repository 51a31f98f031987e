/**
 * Rival servers the bench runs that cannot (or should not) be installed as
 * Debian packages beside the ones the tests use: atftpd conflicts with
 * tftpd-hpa (both provide the tftp server), and installing nginx starts a
 * system-wide web server on port 80. Each is fetched once with
 * `apt-get download` and unpacked with `dpkg -x` into a cache directory
 * (FORGE_BENCH_CACHE, default ~/.cache/forge-bench/debs), and its binary is
 * run from there. Their shared-library dependencies are ordinary packages
 * already on a Debian 12 machine (libc, libwrap, libpcre2, libssl, zlib).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const CACHE = process.env['FORGE_BENCH_CACHE'] ?? join(homedir(), '.cache', 'forge-bench', 'debs');

/** Path of `rel` (e.g. usr/sbin/atftpd) inside Debian package `pkg`, unpacked into the cache on first use. */
export function debBinary(pkg: string, rel: string): string {
  const dir = join(CACHE, pkg);
  const bin = join(dir, rel);
  if (existsSync(bin)) return bin;
  mkdirSync(CACHE, { recursive: true });
  const tmp = mkdtempSync(join(CACHE, `${pkg}.tmp-`));
  try {
    try {
      execFileSync('apt-get', ['download', pkg], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = String((e as { stderr?: unknown }).stderr ?? e);
      throw new Error(`apt-get download ${pkg} failed (run 'apt-get update' first?): ${err.trim()}`);
    }
    const deb = readdirSync(tmp).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (deb === undefined) throw new Error(`apt-get download ${pkg} left no .deb in ${tmp}`);
    execFileSync('dpkg', ['-x', join(tmp, deb), join(tmp, 'root')]);
    if (!existsSync(join(tmp, 'root', rel))) throw new Error(`${pkg} has no ${rel}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(tmp, 'root'), dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

/** `pkg`'s version as `dpkg-deb` would say it, from the cached unpack (or '?'). */
export function debVersion(bin: string, args: string[], re: RegExp): string {
  try {
    const out = execFileSync('sh', ['-c', '"$0" "$@" 2>&1', bin, ...args], { encoding: 'utf8' });
    return re.exec(out)?.[1] ?? '?';
  } catch (e) {
    const out = String((e as { stdout?: unknown }).stdout ?? '');
    return re.exec(out)?.[1] ?? '?';
  }
}
