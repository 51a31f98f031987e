/**
 * The setup of the unit tests of what only SqliteStore has (core-store,
 * security-store): temporary data dirs removed after the file's tests, and a
 * store on a fresh SQLite file seeded with distro `d` and profile `p` (so a
 * test can add systems at once).
 */
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateNew } from '../../server/core/validate.js';
import { openSqliteStore, type SqliteStore } from '../../server/store/sqlite.js';

export interface SqliteFixture {
  /** A new empty directory, removed after the tests. */
  tmp(): string;
  /** A store in a new directory holding distro d and profile p (on distro d). */
  seeded(): Promise<SqliteStore>;
}

export function sqliteFixture(prefix: string): SqliteFixture {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  return {
    tmp,
    async seeded() {
      const st = openSqliteStore(tmp());
      await st.create('distro', validateNew('distro', { name: 'd', kernel: '/k', initrd: '/i' }));
      await st.create('profile', validateNew('profile', { name: 'p', distro: 'd' }));
      return st;
    },
  };
}
