/**
 * The PostgreSQL schema, as versioned migrations: the same tables as
 * store/sqlite/migrations.ts, with the referential rules as constraints
 * (foreign keys, unique indexes, a trigger against parent cycles) so that
 * they hold whichever server writes. Append only: never edit a released
 * migration, add the next version. A table added to SQLite gets its
 * PostgreSQL migration here in the same change.
 *
 * Names sort byte-wise (COLLATE "C"), as SQLite's do, so listings come out
 * in the same order from either backend whatever the database's locale.
 */
import type { Client, Db } from './db.js';

export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

/** Advisory lock keys (pg_advisory_xact_lock): one per thing serialised across servers. */
export const LOCKS = {
  migrate: 4_207_001,
  /** Re-parenting a profile: the cycle check must see every other re-parenting committed. */
  profileParent: 4_207_002,
  /** Event inserts: ids are then handed out in commit order, so `id > last` never skips one. */
  events: 4_207_003,
} as const;

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'objects, interfaces, events, leases, discovery',
    sql: `
      CREATE TABLE distros (
        name TEXT COLLATE "C" PRIMARY KEY,
        data TEXT NOT NULL
      );
      -- distro/parent are NULL when unset ('' in the document).
      CREATE TABLE profiles (
        name TEXT COLLATE "C" PRIMARY KEY,
        distro TEXT COLLATE "C" REFERENCES distros(name) ON UPDATE CASCADE,
        parent TEXT COLLATE "C" REFERENCES profiles(name) ON UPDATE CASCADE,
        data TEXT NOT NULL
      );
      CREATE INDEX profiles_distro ON profiles(distro);
      CREATE INDEX profiles_parent ON profiles(parent);
      CREATE TABLE systems (
        name TEXT COLLATE "C" PRIMARY KEY,
        profile TEXT COLLATE "C" NOT NULL REFERENCES profiles(name) ON UPDATE CASCADE,
        data TEXT NOT NULL
      );
      CREATE INDEX systems_profile ON systems(profile);
      CREATE TABLE interfaces (
        system TEXT COLLATE "C" NOT NULL REFERENCES systems(name) ON DELETE CASCADE ON UPDATE CASCADE,
        ifname TEXT COLLATE "C" NOT NULL,
        mac TEXT COLLATE "C",
        ip TEXT COLLATE "C",
        PRIMARY KEY (system, ifname),
        CONSTRAINT interfaces_mac UNIQUE (mac),
        CONSTRAINT interfaces_ip UNIQUE (ip)
      );
      CREATE TABLE events (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        system TEXT COLLATE "C" NOT NULL,
        type TEXT NOT NULL,
        source TEXT NOT NULL,
        time TEXT NOT NULL,
        detail TEXT NOT NULL
      );
      CREATE INDEX events_system ON events(system, id);
      CREATE TABLE leases (
        mac TEXT COLLATE "C" PRIMARY KEY,
        ip TEXT COLLATE "C" NOT NULL,
        state TEXT NOT NULL,
        expires BIGINT NOT NULL,
        hostname TEXT NOT NULL,
        system TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX leases_ip ON leases(ip);
      CREATE TABLE discovered (
        name TEXT COLLATE "C" PRIMARY KEY,
        mac TEXT COLLATE "C" NOT NULL UNIQUE,
        data TEXT NOT NULL
      );
      CREATE TABLE rules (
        name TEXT COLLATE "C" PRIMARY KEY,
        priority INTEGER NOT NULL,
        data TEXT NOT NULL
      );
      CREATE INDEX rules_priority ON rules(priority, name);

      -- No parent cycles, decided in the database: re-parenting takes one
      -- advisory lock, so of two transactions that would close a cycle
      -- together (A under B, B under A) the second waits for the first's
      -- COMMIT and its check (a new snapshot under READ COMMITTED) sees it.
      CREATE FUNCTION forge_profile_no_cycle() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        PERFORM pg_advisory_xact_lock(${LOCKS.profileParent});
        IF EXISTS (
          WITH RECURSIVE up(name, parent) AS (
            SELECT p.name, p.parent FROM profiles p WHERE p.name = NEW.parent
            UNION
            SELECT p.name, p.parent FROM profiles p JOIN up ON p.name = up.parent
          )
          SELECT 1 FROM up WHERE up.name = NEW.name
        ) THEN
          RAISE EXCEPTION 'parent: % descends from %; parents would form a cycle', NEW.parent, NEW.name
            USING ERRCODE = 'check_violation', CONSTRAINT = 'profiles_no_parent_cycle';
        END IF;
        RETURN NEW;
      END
      $fn$;
      CREATE TRIGGER profiles_no_parent_cycle BEFORE UPDATE OF parent ON profiles
        FOR EACH ROW WHEN (NEW.parent IS NOT NULL AND NEW.parent IS DISTINCT FROM OLD.parent)
        EXECUTE FUNCTION forge_profile_no_cycle();
    `,
  },
  {
    // Dynamic addresses taken in the database (Store.claimAddress): the primary key is the
    // address, so of two servers offering one address to two clients only one row can hold it.
    version: 2,
    name: 'lease_claims: one holder per dynamic address across servers',
    sql: `
      CREATE TABLE lease_claims (
        ip TEXT COLLATE "C" PRIMARY KEY,
        mac TEXT COLLATE "C" NOT NULL,
        expires BIGINT NOT NULL
      );
      CREATE INDEX lease_claims_mac ON lease_claims(mac);
    `,
  },
  {
    // SQLite migration 4. Two subnets never share an address, whichever
    // server writes: an exclusion constraint on the address range (GiST
    // supports range overlap without an extension).
    version: 3,
    name: 'subnets',
    sql: `
      CREATE TABLE subnets (
        name TEXT COLLATE "C" PRIMARY KEY,
        network BIGINT NOT NULL,
        broadcast BIGINT NOT NULL,
        data TEXT NOT NULL,
        CONSTRAINT subnets_no_overlap EXCLUDE USING gist (int8range(network, broadcast, '[]') WITH &&)
      );
    `,
  },
  {
    // As SQLite's migration 5 (store/sqlite/migrations.ts): per-install tokens,
    // API tokens by role (SHA-256 digests only), the audit log.
    version: 4,
    name: 'install windows, API tokens, audit log',
    sql: `
      CREATE TABLE install_windows (
        system TEXT COLLATE "C" PRIMARY KEY REFERENCES systems(name) ON DELETE CASCADE ON UPDATE CASCADE,
        token TEXT NOT NULL,
        opened TEXT NOT NULL,
        closed TEXT
      );
      INSERT INTO install_windows (system, token, opened, closed)
        SELECT name, md5(random()::text || clock_timestamp()::text || name), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), NULL
        FROM systems WHERE (data::jsonb ->> 'netboot_enabled') = 'true';
      CREATE TABLE api_tokens (
        id SERIAL PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('read', 'admin')),
        comment TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL,
        revoked TEXT
      );
      CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
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
    // SQLite migration 6: a subnet names the servers that answer it; rows written before name
    // nobody. Text, not jsonb, so the document keeps its key order (exports stay byte for byte
    // those of SQLite).
    version: 5,
    name: 'subnets: servers',
    sql: `
      UPDATE subnets SET data = regexp_replace(data, '}\\s*$', ',"servers":[]}') WHERE NOT (data::jsonb ? 'servers');
    `,
  },
  {
    // Issue 19 (scale): every systems row written NOTIFYs its name (old and new on a rename;
    // ON UPDATE CASCADE from a profile rename fires it too), delivered at commit in commit order,
    // so each server's in-process index (store/index.ts) follows every server's writes. No SQLite
    // counterpart: one process owns a SQLite store and sees its own writes.
    version: 6,
    name: 'systems: change notifications',
    sql: `
      CREATE FUNCTION forge_systems_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('forge_systems', OLD.name); END IF;
        IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.name <> OLD.name OR NEW.data <> OLD.data OR NEW.profile <> OLD.profile) THEN
          PERFORM pg_notify('forge_systems', NEW.name);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER systems_notify AFTER INSERT OR UPDATE OR DELETE ON systems FOR EACH ROW EXECUTE FUNCTION forge_systems_notify();
    `,
  },
  {
    // Issue 19 (scale): distros, profiles, subnets and install windows NOTIFY 'KIND:NAME' on
    // every row written (at commit, in commit order), so each server's in-process cache of
    // them (store/cache.ts: boot configs, DHCP and validate read them per request) drops what
    // another server changed. Cascades (a profile rename rewriting its children) fire per row.
    // No SQLite counterpart: one process owns a SQLite store and sees its own writes.
    version: 7,
    name: 'objects: change notifications',
    sql: `
      CREATE FUNCTION forge_objects_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('forge_objects', TG_ARGV[0] || ':' || (to_jsonb(OLD) ->> TG_ARGV[1])); END IF;
        IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('forge_objects', TG_ARGV[0] || ':' || (to_jsonb(NEW) ->> TG_ARGV[1])); END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER distros_notify AFTER INSERT OR UPDATE OR DELETE ON distros FOR EACH ROW EXECUTE FUNCTION forge_objects_notify('distro', 'name');
      CREATE TRIGGER profiles_notify AFTER INSERT OR UPDATE OR DELETE ON profiles FOR EACH ROW EXECUTE FUNCTION forge_objects_notify('profile', 'name');
      CREATE TRIGGER subnets_notify AFTER INSERT OR UPDATE OR DELETE ON subnets FOR EACH ROW EXECUTE FUNCTION forge_objects_notify('subnet', 'name');
      CREATE TRIGGER install_windows_notify AFTER INSERT OR UPDATE OR DELETE ON install_windows FOR EACH ROW EXECUTE FUNCTION forge_objects_notify('window', 'system');
    `,
  },
  {
    // SQLite migration 7: the identity every server of this database shares, carried by the
    // DHCP start-up probe (services/dhcp/probe.ts): a server of the same database stays silent
    // to it, so servers answering one subnet are not each other's rivals.
    version: 8,
    name: 'cluster: the identity servers of one database share',
    sql: `
      CREATE TABLE cluster (id TEXT COLLATE "C" PRIMARY KEY);
      INSERT INTO cluster (id) VALUES (replace(gen_random_uuid()::text, '-', ''));
    `,
  },
];

/**
 * Applies every migration not yet recorded, all in one transaction under
 * an advisory lock: two servers starting at once on one database migrate it
 * once, and a failing migration leaves the schema as it was.
 */
export async function migratePg(db: Db): Promise<void> {
  await db.tx(async (c: Client) => {
    await c.query(`SELECT pg_advisory_xact_lock(${LOCKS.migrate})`);
    await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)');
    const done = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    for (const m of PG_MIGRATIONS) {
      if (done.has(m.version)) continue;
      await c.query('SAVEPOINT m');
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)', [m.version, m.name, new Date().toISOString()]);
      await c.query('RELEASE SAVEPOINT m');
    }
  });
}

export async function pgSchemaVersion(db: Db): Promise<number> {
  const rows = await db.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
  return rows[0]?.v ?? 0;
}
