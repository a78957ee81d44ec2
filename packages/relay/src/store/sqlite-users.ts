// SQLite: accounts, profiles, discovery, homepages and the operator's user tools (UserStore).

import Database from 'better-sqlite3';
import { RelayError } from '@openwechat/protocol';
import { containsPattern, matchesNothing, toUser, USER_COLUMNS, type UserRow } from './rows.ts';
import { immediate } from './sqlite-messages.ts';
import type { Sql } from './sql.ts';
import { UsersBase } from './users.ts';
import type { DiscoverQuery, ListUsersQuery, NewUser, UserRecord, UserStore } from './types.ts';

type DB = Database.Database;

/** A LIKE pattern for SQLite's fold() (JavaScript's Unicode lower-casing; SQLite's LIKE folds ASCII only). */
const foldedPattern = (keyword: string) => containsPattern(keyword.toLowerCase());

function prepare(db: DB) {
  return {
    insertUser: db.prepare<[string, string, string | null, string, string, number], UserRow>(
      `INSERT INTO users (name, name_key, description, token_hash, status, created_at)
       VALUES (?, ?, ?, ?, ?, ?) RETURNING ${USER_COLUMNS}`,
    ),
    userByToken: db.prepare<[string], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE token_hash = ?`),
    // Last-seen never goes backwards, whatever order batched entries arrive in.
    touch: db.prepare<[number, number, number]>(
      'UPDATE users SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)',
    ),
    discoverCount: db.prepare<[number], { n: number }>(
      `SELECT count(*) AS n FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ?`,
    ),
    discover: db.prepare<[number, number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ? ORDER BY random() LIMIT ?`,
    ),
    discoverKeywordCount: db.prepare<[number, string, string], { n: number }>(
      `SELECT count(*) AS n FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ?
       AND (fold(name) LIKE ? ESCAPE '\\' OR fold(description) LIKE ? ESCAPE '\\')`,
    ),
    discoverKeyword: db.prepare<[number, string, string, number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ?
       AND (fold(name) LIKE ? ESCAPE '\\' OR fold(description) LIKE ? ESCAPE '\\')
       ORDER BY random() LIMIT ?`,
    ),
    listUsersCount: db.prepare<[string | null, string | null], { n: number }>(
      `SELECT count(*) AS n FROM users WHERE ? IS NULL OR fold(name) LIKE ? ESCAPE '\\'`,
    ),
    listUsers: db.prepare<[string | null, string | null, number, number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE ? IS NULL OR fold(name) LIKE ? ESCAPE '\\'
       ORDER BY id LIMIT ? OFFSET ?`,
    ),
  };
}

function isUniqueViolation(err: unknown, column: string): boolean {
  return (
    err instanceof Database.SqliteError &&
    err.code === 'SQLITE_CONSTRAINT_UNIQUE' &&
    err.message.includes(column)
  );
}

/** Token → user records kept at most (a full cache starts over; only valid tokens are kept). */
const TOKEN_CACHE_SIZE = 10_000;

/** What a user record is made of: a write to any of these columns invalidates the token cache. */
const RECORD_COLUMNS = USER_COLUMNS.split(', ').concat('token_hash').join(', ');

export class SqliteUsers extends UsersBase implements UserStore {
  private readonly s: ReturnType<typeof prepare>;
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
  private readonly touchTx: (entries: ReadonlyArray<readonly [number, number]>) => void;
  private readonly discoverTx: (q: DiscoverQuery) => { total: number; users: UserRecord[] };

  constructor(db: DB, sql: Sql) {
    super(sql);
    const s = (this.s = prepare(db));
    this.db = db;
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
      for (const [id, at] of entries) s.touch.run(at, id, at);
    });
    this.discoverTx = db.transaction((q: DiscoverQuery) => {
      if (q.keyword === null || q.keyword === '') {
        return {
          total: s.discoverCount.get(q.excludeId)!.n,
          users: s.discover.all(q.excludeId, q.limit).map(toUser),
        };
      }
      const p = foldedPattern(q.keyword);
      return {
        total: s.discoverKeywordCount.get(q.excludeId, p, p)!.n,
        users: s.discoverKeyword.all(q.excludeId, p, p, q.limit).map(toUser),
      };
    });
  }

  async createUser(user: NewUser): Promise<UserRecord> {
    try {
      const row = this.s.insertUser.get(
        user.name,
        user.nameKey,
        user.description,
        user.tokenHash,
        user.status,
        user.createdAt,
      );
      return toUser(row!);
    } catch (err) {
      if (isUniqueViolation(err, 'users.name_key')) throw new RelayError('name_taken');
      throw err;
    }
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
    const row = this.s.userByToken.get(tokenHash);
    if (!row) return null;
    const user = toUser(row);
    // Inside a transaction the row may be one that is rolled back: answered, not kept.
    if (this.db.inTransaction) return user;
    if (this.byToken.size >= TOKEN_CACHE_SIZE) this.byToken.clear();
    this.byToken.set(tokenHash, user);
    return { ...user };
  }

  async listUsers(q: ListUsersQuery): Promise<{ total: number; users: UserRecord[] }> {
    if (matchesNothing(q.query)) return { total: 0, users: [] };
    const pattern = q.query ? foldedPattern(q.query) : null;
    return {
      total: this.s.listUsersCount.get(pattern, pattern)!.n,
      users: this.s.listUsers.all(pattern, pattern, q.limit, q.offset).map(toUser),
    };
  }

  async touchLastSeen(entries: ReadonlyArray<readonly [id: number, at: number]>): Promise<void> {
    if (entries.length > 0) this.touchTx(entries);
  }

  async discoverUsers(q: DiscoverQuery): Promise<{ total: number; users: UserRecord[] }> {
    if (matchesNothing(q.keyword)) return { total: 0, users: [] };
    return this.discoverTx(q);
  }
}
