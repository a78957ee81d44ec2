// Accounts, profiles, discovery, homepages and the operator's user tools (UserStore), over sql.ts.
// What differs stays with the backend (sqlite-users.ts, postgres-users.ts): the token lookup (SQLite: an
// in-memory map; PostgreSQL: batched per event-loop turn), the batched last-seen write, how a search
// matches (`match`: Unicode folding vs ILIKE) and how a taken name is reported.

import { RelayError, type UserStatus } from '@openwechat/protocol';
import { matchesNothing, USER_COLUMNS } from './rows.ts';
import type { Sql } from './sql.ts';
import type { DiscoverQuery, ListUsersQuery, NewUser, UserRecord, UserStore } from './types.ts';

/** How a backend matches a search keyword against a text column. */
export interface Match {
  /** The parameter's value for `keyword`. */
  pattern(keyword: string): string;
  /** The condition "`column` contains the keyword" with the pattern in parameter `param`. */
  test(column: string, param: string): string;
}

export abstract class UsersBase implements Omit<UserStore, 'findUserByTokenHash' | 'touchLastSeen'> {
  constructor(
    protected readonly sql: Sql,
    private readonly match: Match,
    /** Whether an insert failed on the unique name (a concurrent registration of the same name). */
    private readonly nameTaken: (err: unknown) => boolean,
  ) {}

  async createUser(user: NewUser): Promise<UserRecord> {
    try {
      // A taken name inserts no row, so it does not use up an id (a PostgreSQL sequence is not rolled
      // back): ids stay gapless on both backends. Only a concurrent registration gets the violation.
      const row = await this.sql.get<UserRecord>(
        `INSERT INTO users (name, name_key, description, token_hash, status, created_at)
         SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE name_key = $2::text)
         RETURNING ${USER_COLUMNS}`,
        [user.name, user.nameKey, user.description, user.tokenHash, user.status, user.createdAt],
      );
      if (!row) throw new RelayError('name_taken');
      return row;
    } catch (err) {
      if (this.nameTaken(err)) throw new RelayError('name_taken');
      throw err;
    }
  }

  async listUsers(q: ListUsersQuery): Promise<{ total: number; users: UserRecord[] }> {
    if (matchesNothing(q.query)) return { total: 0, users: [] };
    const pattern = q.query ? this.match.pattern(q.query) : null;
    const where = `$1::text IS NULL OR ${this.match.test('name', '$1')}`;
    const rows = await this.sql.all<UserRecord & { total: number }>(
      `SELECT count(*) OVER ()::int AS total, ${USER_COLUMNS} FROM users WHERE ${where}
       ORDER BY id LIMIT $2 OFFSET $3`,
      [pattern, q.limit, q.offset],
    );
    const total =
      rows[0]?.total ??
      (await this.sql.get<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE ${where}`, [pattern]))!
        .n;
    return { total, users: rows.map(({ total: _, ...user }) => user) };
  }

  async discoverUsers(q: DiscoverQuery): Promise<{ total: number; users: UserRecord[] }> {
    if (matchesNothing(q.keyword)) return { total: 0, users: [] };
    // One statement: the total and the sample come from the same snapshot.
    const keyword = q.keyword === null || q.keyword === '' ? null : this.match.pattern(q.keyword);
    const rows = await this.sql.all<UserRecord & { total: number }>(
      `WITH matching AS (
         SELECT ${USER_COLUMNS} FROM users
         WHERE status = 'open' AND disabled_at IS NULL AND id <> $1
           AND ($2::text IS NULL OR ${this.match.test('name', '$2')} OR ${this.match.test('description', '$2')})
       )
       SELECT t.total, s.* FROM (SELECT count(*) AS total FROM matching) t
       LEFT JOIN (SELECT * FROM matching ORDER BY random() LIMIT $3) s ON true`,
      [q.excludeId, keyword, q.limit],
    );
    return {
      total: rows[0]?.total ?? 0,
      users: rows.filter((r) => r.id !== null).map(({ total: _, ...user }) => user),
    };
  }

  async countUsers(): Promise<number> {
    return (await this.sql.get<{ n: number }>('SELECT count(*) AS n FROM users'))!.n;
  }

  async getUser(id: number): Promise<UserRecord | null> {
    return (await this.sql.get<UserRecord>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id])) ?? null;
  }

  async #update(column: string, value: unknown, id: number): Promise<UserRecord | null> {
    const row = await this.sql.get<UserRecord>(
      `UPDATE users SET ${column} = $1 WHERE id = $2 RETURNING ${USER_COLUMNS}`,
      [value, id],
    );
    return row ?? null;
  }

  setStatus(id: number, status: UserStatus): Promise<UserRecord | null> {
    return this.#update('status', status, id);
  }

  setUserDisabled(id: number, disabledAt: number | null): Promise<UserRecord | null> {
    return this.#update('disabled_at', disabledAt, id);
  }

  async setTokenHash(id: number, tokenHash: string): Promise<boolean> {
    return (await this.sql.run('UPDATE users SET token_hash = $1 WHERE id = $2', [tokenHash, id])) === 1;
  }

  async topActiveUsers(limit: number): Promise<UserRecord[]> {
    return this.sql.all<UserRecord>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL
       ORDER BY last_seen_at DESC NULLS LAST, id ASC LIMIT $1`,
      [limit],
    );
  }

  async setHomepage(id: number, html: string): Promise<void> {
    // Only for an existing user, as the UPDATE of the users row did before migration 11.
    await this.sql.run(
      `INSERT INTO homepages (user_id, html) SELECT id, $2 FROM users WHERE id = $1
       ON CONFLICT (user_id) DO UPDATE SET html = EXCLUDED.html`,
      [id, this.sql.encode(html)],
    );
  }

  async getHomepage(id: number): Promise<string | null | undefined> {
    const row = await this.sql.get<{ html: string | null }>(
      'SELECT h.html FROM users u LEFT JOIN homepages h ON h.user_id = u.id WHERE u.id = $1',
      [id],
    );
    if (row === undefined) return undefined;
    return row.html === null ? null : this.sql.decode(row.html);
  }
}
