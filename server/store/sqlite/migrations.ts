/**
 * The schema, as versioned migrations. Append only: never edit a released
 * migration, add the next version (a new table gets its own migration and
 * its own module beside objects.ts, events.ts and leases.ts).
 */
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Append only: never edit a released migration, add the next version. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'objects, interfaces, events, leases',
    sql: `
      CREATE TABLE distros (
        name TEXT PRIMARY KEY,
        data TEXT NOT NULL
      );
      CREATE TABLE profiles (
        name TEXT PRIMARY KEY,
        distro TEXT NOT NULL,
        parent TEXT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX profiles_distro ON profiles(distro);
      CREATE INDEX profiles_parent ON profiles(parent);
      CREATE TABLE systems (
        name TEXT PRIMARY KEY,
        profile TEXT NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX systems_profile ON systems(profile);
      CREATE TABLE interfaces (
        system TEXT NOT NULL REFERENCES systems(name) ON DELETE CASCADE ON UPDATE CASCADE,
        ifname TEXT NOT NULL,
        mac TEXT NOT NULL,
        ip TEXT NOT NULL,
        PRIMARY KEY (system, ifname)
      );
      CREATE UNIQUE INDEX interfaces_mac ON interfaces(mac) WHERE mac <> '';
      CREATE UNIQUE INDEX interfaces_ip ON interfaces(ip) WHERE ip <> '';
      CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        system TEXT NOT NULL,
        type TEXT NOT NULL,
        source TEXT NOT NULL,
        time TEXT NOT NULL,
        detail TEXT NOT NULL
      );
      CREATE INDEX events_system ON events(system, id);
      CREATE TABLE leases (
        mac TEXT PRIMARY KEY,
        ip TEXT NOT NULL,
        state TEXT NOT NULL,
        expires INTEGER NOT NULL,
        hostname TEXT NOT NULL,
        system TEXT NOT NULL
      );
      CREATE INDEX leases_ip ON leases(ip);
    `,
  },
  {
    // A partial index (WHERE mac <> '') is not used for `mac = ?` lookups
    // (SQLite only uses a partial index when the query's WHERE implies the
    // index's), so lookups by MAC scanned the table. Unset MACs/IPs are NULL
    // now, which a plain UNIQUE index allows any number of.
    version: 2,
    name: 'interfaces: NULL for unset MAC/IP, full unique indexes',
    sql: `
      CREATE TABLE interfaces_v2 (
        system TEXT NOT NULL REFERENCES systems(name) ON DELETE CASCADE ON UPDATE CASCADE,
        ifname TEXT NOT NULL,
        mac TEXT,
        ip TEXT,
        PRIMARY KEY (system, ifname)
      );
      INSERT INTO interfaces_v2 (system, ifname, mac, ip)
        SELECT system, ifname, NULLIF(mac, ''), NULLIF(ip, '') FROM interfaces;
      DROP TABLE interfaces;
      ALTER TABLE interfaces_v2 RENAME TO interfaces;
      CREATE UNIQUE INDEX interfaces_mac ON interfaces(mac);
      CREATE UNIQUE INDEX interfaces_ip ON interfaces(ip);
    `,
  },
  {
    version: 3,
    name: 'discovered machines and discovery rules',
    sql: `
      CREATE TABLE discovered (
        name TEXT PRIMARY KEY,
        mac TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL
      );
      CREATE TABLE rules (
        name TEXT PRIMARY KEY,
        priority INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX rules_priority ON rules(priority, name);
    `,
  },
  {
    // Subnets as objects: the JSON document plus the network's first and last
    // address as integers, so overlap and "which subnet holds this IP" are
    // range queries checked inside the write's transaction.
    version: 4,
    name: 'subnets',
    sql: `
      CREATE TABLE subnets (
        name TEXT PRIMARY KEY,
        network INTEGER NOT NULL,
        broadcast INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX subnets_network ON subnets(network, broadcast);
    `,
  },
  {
    // Security (issue 13): per-install tokens (one row per system, rotated when
    // netboot turns on; closed when it turns off), API tokens by role (only a
    // SHA-256 of each is kept: tokens are 256 random bits, so a slow KDF adds
    // nothing), and the audit log of writes and failed authentication.
    version: 5,
    name: 'install windows, API tokens, audit log',
    sql: `
      CREATE TABLE install_windows (
        system TEXT PRIMARY KEY REFERENCES systems(name) ON DELETE CASCADE ON UPDATE CASCADE,
        token TEXT NOT NULL,
        opened TEXT NOT NULL,
        closed TEXT
      );
      INSERT INTO install_windows (system, token, opened, closed)
        SELECT name, lower(hex(randomblob(16))), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), NULL
        FROM systems WHERE json_extract(data, '$.netboot_enabled') = 1;
      CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        role TEXT NOT NULL CHECK (role IN ('read', 'admin')),
        comment TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        revoked TEXT
      );
      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        client TEXT NOT NULL,
        action TEXT NOT NULL,
        object_type TEXT NOT NULL,
        object TEXT NOT NULL,
        detail TEXT NOT NULL
      );
      CREATE INDEX audit_time ON audit(time);
      CREATE INDEX audit_object ON audit(object_type, object, id);
      CREATE INDEX events_time ON events(time);
    `,
  },
  {
    // Issue 19: a subnet names the servers that answer it. Rows written before keep answering
    // on every server (servers = [], appended last as new documents have it).
    version: 6,
    name: 'subnets: servers',
    sql: `
      UPDATE subnets SET data = json_set(data, '$.servers', json('[]')) WHERE json_type(data, '$.servers') IS NULL;
    `,
  },
  {
    // Issue 19: the identity of the data every server of one store shares (PostgreSQL
    // migration 8). The DHCP start-up probe carries it, so a server of the same store stays
    // silent to it and every other DHCP server still answers (services/dhcp/probe.ts).
    version: 7,
    name: 'cluster: the identity servers of one store share',
    sql: `
      CREATE TABLE cluster (id TEXT PRIMARY KEY);
      INSERT INTO cluster (id) VALUES (lower(hex(randomblob(16))));
    `,
  },
];

/** Applies every migration not yet recorded, each in its own transaction. */
export function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)');
  const done = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
  for (const m of MIGRATIONS) {
    if (done.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)').run(m.version, m.name, new Date().toISOString());
    })();
  }
}

/** Schema version after migrations. */
export function schemaVersion(db: Database.Database): number {
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}
