// Throwaway PostgreSQL schemas for tests. Test files run in parallel against one database, so every run
// creates its own schema (owc_test_<random>) and drops it afterwards; `public` and other runs' schemas
// are never touched. The relay selects a schema through the URL: pg passes the `options` query
// parameter to the server as start-up options, so `?options=-c search_path=<schema>` puts every pooled
// connection in it (and openPostgresStore creates the schema if it is missing).
//
// TEST_DATABASE_URL overrides the server (default postgres://postgres@127.0.0.1:5432/test).

import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import pg from 'pg';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Only schemas with this prefix are ever dropped by these helpers. */
const PREFIX = 'owc_test_';

let available: Promise<boolean> | null = null;

/** REQUIRE_POSTGRES=1 (CI sets it): a missing server fails the run instead of skipping its suites. */
export function requirePostgres(): boolean {
  return process.env.REQUIRE_POSTGRES === '1';
}

/**
 * Whether the test server answers (checked once per process, 3 s at most). With REQUIRE_POSTGRES=1 an
 * unreachable server is an error, so the suites that ask fail rather than skip.
 */
export function pgAvailable(): Promise<boolean> {
  available ??= (async () => {
    const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      return true;
    } catch (err) {
      if (requirePostgres())
        throw new Error(`REQUIRE_POSTGRES=1 but PostgreSQL does not answer: ${(err as Error).message}`);
      return false;
    } finally {
      await c.end().catch(() => undefined);
    }
  })();
  return available;
}

/** A fresh schema name (not created): owc_test_<tag>_<random>. */
export function schemaName(tag = 'run'): string {
  const clean = tag
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 16);
  return `${PREFIX}${clean}_${randomBytes(5).toString('hex')}`;
}

/** DATABASE_URL that selects `schema` on every connection. */
export function schemaUrl(schema: string, base = PG_URL): string {
  const u = new URL(base);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Creates a new empty schema and returns its name. */
export async function createSchema(tag?: string): Promise<string> {
  const name = schemaName(tag);
  await admin((c) => c.query(`CREATE SCHEMA ${pg.escapeIdentifier(name)}`));
  return name;
}

/** Drops schemas made by these helpers (and everything in them). Other names are refused. */
export async function dropSchemas(names: readonly string[]): Promise<void> {
  const ours = [...new Set(names)];
  for (const n of ours) if (!n.startsWith(PREFIX)) throw new Error(`refusing to drop schema ${n}`);
  if (!ours.length) return;
  await admin(async (c) => {
    for (const n of ours) await c.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(n)} CASCADE`);
  });
}

/** Runs a query with `search_path` set to the schema (inspecting what the relay stored). */
export async function querySchema<R extends pg.QueryResultRow>(
  schema: string,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  const c = new pg.Client({ connectionString: schemaUrl(schema) });
  await c.connect();
  try {
    return (await c.query<R>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** A schema for one test file: `url` for DATABASE_URL, `drop()` in afterAll. */
export async function testSchema(
  tag?: string,
): Promise<{ schema: string; url: string; drop(): Promise<void> }> {
  const schema = await createSchema(tag);
  return { schema, url: schemaUrl(schema), drop: () => dropSchemas([schema]) };
}

/** Prefix of the schemas tied to a relay data folder (schemaForDataDir). */
const DIR_PREFIX = `${PREFIX}dir_`;
let orphansSwept: Promise<unknown> | null = null;

/**
 * The schema of a test relay started on `dataDir`: the same folder always maps to the same schema, so a
 * relay restarted on its folder finds its data again (as SQLite's file in the folder would). The folder
 * is recorded as the schema's comment; schemas whose folder is gone are dropped (once per process).
 */
export async function schemaForDataDir(dataDir: string): Promise<string> {
  orphansSwept ??= dropOrphanSchemas().catch(() => 0);
  await orphansSwept;
  const name = `${DIR_PREFIX}${createHash('sha256').update(dataDir).digest('hex').slice(0, 20)}`;
  await admin(async (c) => {
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(name)}`);
    await c.query(`COMMENT ON SCHEMA ${pg.escapeIdentifier(name)} IS ${pg.escapeLiteral(dataDir)}`);
  });
  return name;
}

/** Drops data-folder schemas whose folder no longer exists (their test run is over). */
export async function dropOrphanSchemas(): Promise<number> {
  const rows = await admin(
    async (c) =>
      (
        await c.query<{ name: string; dir: string | null }>(
          `SELECT nspname AS name, obj_description(oid, 'pg_namespace') AS dir FROM pg_namespace
           WHERE starts_with(nspname, $1)`,
          [DIR_PREFIX],
        )
      ).rows,
  );
  const gone = rows.filter((r) => r.dir !== null && !existsSync(r.dir)).map((r) => r.name);
  await dropSchemas(gone);
  return gone.length;
}
