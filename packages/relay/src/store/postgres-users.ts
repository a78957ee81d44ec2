// PostgreSQL: accounts, profiles, discovery, homepages and the operator's user tools (UserStore).

import { RelayError } from '@openwechat/protocol';
import { isUniqueViolation, RoundTrips, type PgDb } from './postgres-connection.ts';
import type { Sql } from './sql.ts';
import { UsersBase } from './users.ts';
import { containsPattern, matchesNothing, toUser, USER_COLUMNS, type UserRow } from './rows.ts';
import type { DiscoverQuery, ListUsersQuery, NewUser, UserRecord, UserStore } from './types.ts';

// Every authenticated request looks its token up. One query per request was the PostgreSQL send path's
// largest avoidable cost (a round trip's client work and socket write per send, docs/benchmarks.md):
// the lookups of one turn of the event loop go as one statement instead. Each still reads after its
// request arrived, so a token changed or an account disabled before it is seen as on SQLite.
const TOKEN_USERS = `SELECT ${USER_COLUMNS.split(', ')
  .map((c) => `u.${c}`)
  .join(', ')} FROM unnest($1::text[]) WITH ORDINALITY AS q (h, n)
  LEFT JOIN users u ON u.token_hash = q.h ORDER BY q.n`;

export class PgUsers extends UsersBase implements UserStore {
  private readonly tokenLookups: RoundTrips<string, UserRecord | null>;

  constructor(
    private readonly db: PgDb,
    sql: Sql,
  ) {
    super(sql);
    this.tokenLookups = new RoundTrips(async (hashes) => {
      const { rows } = await db.pool.query<UserRow | { id: null }>(TOKEN_USERS, [hashes]);
      return rows.map((r) => (r.id === null ? null : toUser(r as UserRow)));
    });
  }

  async createUser(user: NewUser): Promise<UserRecord> {
    try {
      // A taken name inserts no row, so it does not use up an id (a sequence is not rolled back): ids
      // stay gapless like SQLite's. Only a concurrent registration of the same name gets the violation.
      const { rows } = await this.db.pool.query<UserRow>(
        `INSERT INTO users (name, name_key, description, token_hash, status, created_at)
         SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE name_key = $2::text)
         RETURNING ${USER_COLUMNS}`,
        [user.name, user.nameKey, user.description, user.tokenHash, user.status, user.createdAt],
      );
      if (!rows[0]) throw new RelayError('name_taken');
      return toUser(rows[0]);
    } catch (err) {
      if (isUniqueViolation(err, 'users_name_key_unique')) throw new RelayError('name_taken');
      throw err;
    }
  }

  findUserByTokenHash(tokenHash: string): Promise<UserRecord | null> {
    return this.tokenLookups.submit(tokenHash);
  }

  async listUsers(q: ListUsersQuery): Promise<{ total: number; users: UserRecord[] }> {
    if (matchesNothing(q.query)) return { total: 0, users: [] };
    const pattern = q.query ? containsPattern(q.query) : null;
    const { rows } = await this.db.pool.query<UserRow & { total: number }>(
      `SELECT count(*) OVER ()::int AS total, ${USER_COLUMNS} FROM users
       WHERE $1::text IS NULL OR name ILIKE $1 ESCAPE '\\'
       ORDER BY id LIMIT $2 OFFSET $3`,
      [pattern, q.limit, q.offset],
    );
    const total =
      rows[0]?.total ??
      (
        await this.db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM users WHERE $1::text IS NULL OR name ILIKE $1 ESCAPE '\\'`,
          [pattern],
        )
      ).rows[0]!.n;
    return { total, users: rows.map(toUser) };
  }

  async touchLastSeen(entries: ReadonlyArray<readonly [id: number, at: number]>): Promise<void> {
    if (entries.length === 0) return;
    // The latest time per user; rows locked in id order like send() does, so the two never deadlock.
    const latest = new Map<number, number>();
    for (const [id, at] of entries) latest.set(id, Math.max(at, latest.get(id) ?? at));
    const ids = [...latest.keys()].sort((a, b) => a - b);
    const ats = ids.map((id) => latest.get(id)!);
    await this.db.tx(async (c) => {
      await c.query('SELECT 1 FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
      await c.query(
        `UPDATE users u SET last_seen_at = v.at
         FROM unnest($1::bigint[], $2::bigint[]) AS v (id, at)
         WHERE u.id = v.id AND (u.last_seen_at IS NULL OR u.last_seen_at < v.at)`,
        [ids, ats],
      );
    });
  }

  async discoverUsers(q: DiscoverQuery): Promise<{ total: number; users: UserRecord[] }> {
    if (matchesNothing(q.keyword)) return { total: 0, users: [] };
    // One statement: the total and the sample come from the same snapshot.
    const keyword = q.keyword === null || q.keyword === '' ? null : containsPattern(q.keyword);
    const { rows } = await this.db.pool.query<UserRow & { total: number }>(
      `WITH matching AS (
         SELECT ${USER_COLUMNS} FROM users
         WHERE status = 'open' AND disabled_at IS NULL AND id <> $1
           AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\' OR description ILIKE $2 ESCAPE '\\')
       )
       SELECT t.total, s.* FROM (SELECT count(*) AS total FROM matching) t
       LEFT JOIN LATERAL (SELECT * FROM matching ORDER BY random() LIMIT $3) s ON true`,
      [q.excludeId, keyword, q.limit],
    );
    return {
      total: rows[0]?.total ?? 0,
      users: rows.filter((r) => r.id !== null).map(toUser),
    };
  }
}
