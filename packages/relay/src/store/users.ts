// Accounts, profiles and homepages (UserStore): the statements both backends share, over sql.ts.
// What differs stays with the backend (sqlite-users.ts, postgres-users.ts): registration's name check,
// the token lookup (SQLite: an in-memory map; PostgreSQL: batched per event-loop turn), search
// (Unicode folding vs ILIKE) and the batched last-seen write.

import type { UserStatus } from '@openwechat/protocol';
import { toUser, USER_COLUMNS, type UserRow } from './rows.ts';
import type { Sql } from './sql.ts';
import type { UserRecord, UserStore } from './types.ts';

export abstract class UsersBase implements Pick<
  UserStore,
  | 'countUsers'
  | 'getUser'
  | 'setStatus'
  | 'setUserDisabled'
  | 'setTokenHash'
  | 'topActiveUsers'
  | 'setHomepage'
  | 'getHomepage'
> {
  constructor(protected readonly sql: Sql) {}

  async countUsers(): Promise<number> {
    return (await this.sql.get<{ n: number }>('SELECT count(*) AS n FROM users'))!.n;
  }

  async getUser(id: number): Promise<UserRecord | null> {
    const row = await this.sql.get<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
    return row ? toUser(row) : null;
  }

  private async update(column: string, value: unknown, id: number): Promise<UserRecord | null> {
    const row = await this.sql.get<UserRow>(
      `UPDATE users SET ${column} = $1 WHERE id = $2 RETURNING ${USER_COLUMNS}`,
      [value, id],
    );
    return row ? toUser(row) : null;
  }

  setStatus(id: number, status: UserStatus): Promise<UserRecord | null> {
    return this.update('status', status, id);
  }

  setUserDisabled(id: number, disabledAt: number | null): Promise<UserRecord | null> {
    return this.update('disabled_at', disabledAt, id);
  }

  async setTokenHash(id: number, tokenHash: string): Promise<boolean> {
    return (await this.sql.run('UPDATE users SET token_hash = $1 WHERE id = $2', [tokenHash, id])) === 1;
  }

  async topActiveUsers(limit: number): Promise<UserRecord[]> {
    const rows = await this.sql.all<UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL
       ORDER BY last_seen_at DESC NULLS LAST, id ASC LIMIT $1`,
      [limit],
    );
    return rows.map(toUser);
  }

  async setHomepage(id: number, html: string): Promise<void> {
    await this.sql.run('UPDATE users SET homepage = $1 WHERE id = $2', [this.sql.encode(html), id]);
  }

  async getHomepage(id: number): Promise<string | null | undefined> {
    const row = await this.sql.get<{ homepage: string | null }>('SELECT homepage FROM users WHERE id = $1', [
      id,
    ]);
    if (row === undefined) return undefined;
    return row.homepage === null ? null : this.sql.decode(row.homepage);
  }
}
