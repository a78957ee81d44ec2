// PostgreSQL: what this backend does its own way in UserStore (the rest is users.ts): the batched token
// lookup and the last-seen write.

import { isUniqueViolation, RoundTrips, type PgDb } from './postgres-connection.ts';
import type { Sql } from './sql.ts';
import { UsersBase, type Match } from './users.ts';
import { containsPattern, USER_COLUMNS } from './rows.ts';
import type { UserRecord, UserStore } from './types.ts';

// Every authenticated request looks its token up. One query per request was the PostgreSQL send path's
// largest avoidable cost (a round trip's client work and socket write per send, docs/benchmarks.md):
// the lookups of one turn of the event loop go as one statement instead. Each still reads after its
// request arrived, so a token changed or an account disabled before it is seen as on SQLite.
const TOKEN_USERS = `SELECT ${USER_COLUMNS.split(', ')
  .map((c) => `u.${c}`)
  .join(', ')} FROM unnest($1::text[]) WITH ORDINALITY AS q (h, n)
  LEFT JOIN users u ON u.token_hash = q.h ORDER BY q.n`;

const ilike: Match = {
  pattern: containsPattern,
  test: (column, param) => `${column} ILIKE ${param} ESCAPE '\\'`,
};

export class PgUsers extends UsersBase implements UserStore {
  private readonly tokenLookups: RoundTrips<string, UserRecord | null>;

  constructor(
    private readonly db: PgDb,
    sql: Sql,
  ) {
    super(sql, ilike, (err) => isUniqueViolation(err, 'users_name_key_unique'));
    this.tokenLookups = new RoundTrips(async (hashes) => {
      const { rows } = await db.pool.query<UserRecord | { id: null }>(TOKEN_USERS, [hashes]);
      return rows.map((r) => (r.id === null ? null : (r as UserRecord)));
    });
  }

  findUserByTokenHash(tokenHash: string): Promise<UserRecord | null> {
    return this.tokenLookups.submit(tokenHash);
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
}
