// SQLite: what this backend does its own way in UserStore (the rest is users.ts): the token cache and
// the last-seen write.

import Database from 'better-sqlite3';
import { containsPattern, USER_COLUMNS } from './rows.ts';
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

/** Token → user records kept at most (a full cache starts over; only valid tokens are kept). */
const TOKEN_CACHE_SIZE = 10_000;

/** What a user record is made of: a write to any of these columns invalidates the token cache. */
const RECORD_COLUMNS = `${USER_COLUMNS.replace(/ AS "\w+"/g, '')}, token_hash`;

export class SqliteUsers extends UsersBase implements UserStore {
  /**
   * Token hash → user, so authenticating a request usually costs no query (issue 26: the lookup was
   * the largest single statement of a send after the insert). Cleared by any write to a user record:
   * through this connection a TEMP trigger reports it as it happens (sends only advance last_msg_id,
   * which fires nothing); any other connection (the admin CLI, another process) bumps
   * `PRAGMA data_version`, checked before every cached answer. So a disabled account or a reset token
   * is refused at once, as before.
   */
  private readonly byToken = new Map<string, UserRecord>();
  private readonly dataVersion: Database.Statement<[], number>;
  private seenVersion = -1;
  private readonly db: DB;
  private readonly userByToken: Database.Statement<[string], UserRecord>;
  private readonly touchTx: (entries: ReadonlyArray<readonly [number, number]>) => void;

  constructor(db: DB, sql: Sql) {
    super(sql, folded, nameTaken);
    this.db = db;
    this.userByToken = db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE token_hash = ?`);
    // Last-seen never goes backwards, whatever order batched entries arrive in.
    const touch = db.prepare<[number, number, number]>(
      'UPDATE users SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)',
    );
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    db.function('owc_users_changed', () => {
      this.byToken.clear();
      return null;
    });
    // TEMP: on this connection only, never in the database file (nothing to migrate).
    db.exec(`
      CREATE TEMP TRIGGER IF NOT EXISTS owc_users_insert AFTER INSERT ON users
        BEGIN SELECT owc_users_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS owc_users_update AFTER UPDATE OF ${RECORD_COLUMNS} ON users
        BEGIN SELECT owc_users_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS owc_users_delete AFTER DELETE ON users
        BEGIN SELECT owc_users_changed(); END;
    `);
    this.touchTx = immediate(db, (entries: ReadonlyArray<readonly [number, number]>) => {
      for (const [id, at] of entries) touch.run(at, id, at);
    });
  }

  async findUserByTokenHash(tokenHash: string): Promise<UserRecord | null> {
    const version = this.dataVersion.get()!;
    if (version !== this.seenVersion) {
      this.byToken.clear();
      this.seenVersion = version;
    }
    const cached = this.byToken.get(tokenHash);
    // A copy: callers may annotate their record; the cached one stays what the database holds.
    if (cached) return { ...cached };
    const user = this.userByToken.get(tokenHash);
    if (!user) return null;
    // Inside a transaction the row may be one that is rolled back: answered, not kept.
    if (this.db.inTransaction) return user;
    if (this.byToken.size >= TOKEN_CACHE_SIZE) this.byToken.clear();
    this.byToken.set(tokenHash, user);
    return { ...user };
  }

  async touchLastSeen(entries: ReadonlyArray<readonly [id: number, at: number]>): Promise<void> {
    if (entries.length > 0) this.touchTx(entries);
  }
}
