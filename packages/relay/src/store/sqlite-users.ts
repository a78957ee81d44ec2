// SQLite: what this backend does its own way in UserStore (the rest is users.ts): the token lookup
// (through sqlite-cache.ts) and the last-seen write.

import Database from 'better-sqlite3';
import { containsPattern, USER_COLUMNS } from './rows.ts';
import type { SqliteCache } from './sqlite-cache.ts';
import { immediate } from './sqlite-messages.ts';
import type { Sql } from './sql.ts';
import { UsersBase, type Match } from './users.ts';
import type { UserRecord, UserStore } from './types.ts';

type DB = Database.Database;

/** SQLite's LIKE folds ASCII only: fold() is JavaScript's Unicode lower-casing (registered at open). */
const folded: Match = {
  pattern: (keyword) => containsPattern(keyword.toLowerCase()),
  test: (column, param) => `fold(${column}) LIKE ${param} ESCAPE '\\'`,
};

const nameTaken = (err: unknown) =>
  err instanceof Database.SqliteError &&
  err.code === 'SQLITE_CONSTRAINT_UNIQUE' &&
  err.message.includes('users.name_key');

export class SqliteUsers extends UsersBase implements UserStore {
  private readonly userByToken: Database.Statement<[string], UserRecord>;
  private readonly touchTx: (entries: ReadonlyArray<readonly [number, number]>) => void;

  constructor(
    private readonly db: DB,
    sql: Sql,
    /** Token hash → user (sqlite-cache.ts): authenticating a request usually costs no query. */
    private readonly cache: SqliteCache,
  ) {
    super(sql, folded, nameTaken);
    this.userByToken = db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE token_hash = ?`);
    // Last-seen never goes backwards, whatever order batched entries arrive in.
    const touch = db.prepare<[number, number, number]>(
      'UPDATE users SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)',
    );
    this.touchTx = immediate(db, (entries: ReadonlyArray<readonly [number, number]>) => {
      for (const [id, at] of entries) touch.run(at, id, at);
    });
  }

  findUserByTokenHash(tokenHash: string): UserRecord | null {
    this.cache.checkThisTurn();
    // Inside a transaction the row may be one that is rolled back: answered, not kept.
    const user = this.cache.token(tokenHash, () => this.userByToken.get(tokenHash), !this.db.inTransaction);
    // A copy: callers may annotate their record; the cached one stays what the database holds.
    return user ? { ...user } : null;
  }

  async touchLastSeen(entries: ReadonlyArray<readonly [id: number, at: number]>): Promise<void> {
    if (entries.length > 0) this.touchTx(entries);
  }
}
