// What the SQLite relay keeps of its own database in memory so that a send usually reads none of it
// (issue 26): user records by token hash (authentication) and by id (a send's recipient), and
// friendships by pair (a send's decision). This process is the database's only regular writer, and every
// cached answer stays exactly what the database holds:
//
// - A write through this connection clears what it touches as it happens: TEMP triggers (this
//   connection only, never in the file) call back into this process on any change to a user record's
//   columns or the token hash (a send only advances last_msg_id, which fires nothing) and on any
//   friendship change, in the statement that makes it. A rolled-back send batch clears everything
//   (dropAll), since what it read may have been its own uncommitted writes.
// - A commit by any other connection (the admin CLI, another process) bumps `PRAGMA data_version`. A
//   send batch reads it after BEGIN IMMEDIATE, so it decides on what is committed. A token lookup reads
//   it once per turn of the event loop rather than once per request: a commit elsewhere is seen by the
//   next turn. A request in the same turn as that commit was concurrent with it and may be ordered
//   before it, as it would be had it arrived a moment sooner (docs/benchmarks.md).

import type Database from 'better-sqlite3';
import { USER_COLUMNS } from './rows.ts';
import type { FriendshipRecord, UserRecord } from './types.ts';

type DB = Database.Database;

/** Entries kept per map at most (a full map starts over). */
const CACHE_SIZE = 10_000;

/** What a user record is made of: a write to any of these columns invalidates the cached ones. */
const RECORD_COLUMNS = `${USER_COLUMNS.replace(/ AS "\w+"/g, '')}, token_hash`;

export class SqliteCache {
  private readonly byToken = new Map<string, UserRecord>();
  private readonly users = new Map<number, UserRecord>();
  /** By "a,b" (the ordered pair); null: the pair has no friendship. */
  private readonly friendships = new Map<string, FriendshipRecord | null>();
  private readonly dataVersion: Database.Statement<[], number>;
  private seenVersion = -1;
  /** Whether data_version was read in this turn of the event loop. */
  private checkedThisTurn = false;

  constructor(db: DB) {
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    db.function('owc_users_changed', () => {
      this.byToken.clear();
      this.users.clear();
      return null;
    });
    db.function('owc_friendships_changed', () => {
      this.friendships.clear();
      return null;
    });
    db.exec(`
      CREATE TEMP TRIGGER IF NOT EXISTS owc_users_insert AFTER INSERT ON users
        BEGIN SELECT owc_users_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS owc_users_update AFTER UPDATE OF ${RECORD_COLUMNS} ON users
        BEGIN SELECT owc_users_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS owc_users_delete AFTER DELETE ON users
        BEGIN SELECT owc_users_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS owc_friendships_insert AFTER INSERT ON friendships
        BEGIN SELECT owc_friendships_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS owc_friendships_update AFTER UPDATE ON friendships
        BEGIN SELECT owc_friendships_changed(); END;
      CREATE TEMP TRIGGER IF NOT EXISTS owc_friendships_delete AFTER DELETE ON friendships
        BEGIN SELECT owc_friendships_changed(); END;
    `);
  }

  /** Drops what another connection's commit made stale; reads data_version at most once per turn. */
  checkThisTurn(): void {
    if (this.checkedThisTurn) return;
    this.checkedThisTurn = true;
    setImmediate(() => (this.checkedThisTurn = false));
    this.check();
  }

  /** Drops what another connection's commit made stale (inside a transaction: as of its snapshot). */
  check(): void {
    const version = this.dataVersion.get()!;
    if (version !== this.seenVersion) {
      this.dropAll();
      this.seenVersion = version;
    }
  }

  dropAll(): void {
    this.byToken.clear();
    this.users.clear();
    this.friendships.clear();
  }

  /** `mayKeep`: false when the row read may yet be rolled back. */
  token(hash: string, read: () => UserRecord | undefined, mayKeep: boolean): UserRecord | undefined {
    const cached = this.byToken.get(hash);
    if (cached) return cached;
    const user = read();
    if (user && mayKeep) keep(this.byToken, hash, user);
    return user;
  }

  user(id: number, read: () => UserRecord | null): UserRecord | null {
    const cached = this.users.get(id);
    if (cached) return cached;
    const user = read();
    if (user) keep(this.users, id, user);
    return user;
  }

  friendship(a: number, b: number, read: () => FriendshipRecord | null): FriendshipRecord | null {
    const key = a < b ? `${a},${b}` : `${b},${a}`;
    const cached = this.friendships.get(key);
    if (cached !== undefined) return cached;
    const f = read();
    keep(this.friendships, key, f);
    return f;
  }
}

function keep<K, V>(map: Map<K, V>, key: K, value: V): void {
  if (map.size >= CACHE_SIZE) map.clear();
  map.set(key, value);
}
