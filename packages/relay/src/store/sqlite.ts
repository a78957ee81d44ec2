// The embedded SQLite backend (better-sqlite3). Every statement is prepared once at open; every operation
// that reads then writes runs in one IMMEDIATE transaction, so it takes the write lock up front and other
// processes wait (busy_timeout) instead of failing a lock upgrade half-way. better-sqlite3 is synchronous:
// within a process each transaction runs to completion before any other starts, which is what makes
// concurrent send()/takeInbox() calls safe; across processes SQLite's single writer does the same.
//
// The Store is composed of one class per area (compose.ts): the shared ones (groups.ts, keys.ts) over
// SqliteSql (sql.ts) and SqliteTx (sqlite-messages.ts: this backend's side of the transaction dialect),
// and this backend's own sqlite-users.ts, sqlite-messaging.ts (send batching, read-and-clear) and
// sqlite-files.ts; the whole-database operations (stats, backup, ids after a restore) are here.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { StatsView } from '@openwechat/protocol';
import { composeStore } from './compose.ts';
import { SqliteFiles } from './sqlite-files.ts';
import { Groups } from './groups.ts';
import { Keys } from './keys.ts';
import { SqliteSql } from './sql.ts';
import { SqliteTx } from './sqlite-messages.ts';
import { SqliteMessaging } from './sqlite-messaging.ts';
import { SAFETY_NET_PAGES, startCheckpointer, type Checkpointer } from './sqlite-checkpoint.ts';
import { migrateSqlite } from './sqlite-migrations.ts';
import { SqliteUsers } from './sqlite-users.ts';
import type { OpsStore, Store } from './types.ts';

export { migrateSqlite };

type DB = Database.Database;

const BUSY_TIMEOUT_MS = 5000;

export async function openSqliteStore(opts: {
  file: string;
  /** NORMAL (default): a commit survives a process crash; FULL: also a power loss (SQLITE_SYNCHRONOUS). */
  synchronous?: 'NORMAL' | 'FULL';
}): Promise<Store> {
  const inMemory = opts.file === ':memory:' || opts.file === '';
  if (!inMemory) mkdirSync(dirname(opts.file), { recursive: true });
  const db = new Database(opts.file, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('foreign_keys = ON');
    db.function('fold', { deterministic: true }, (s: unknown) =>
      typeof s === 'string' ? s.toLowerCase() : null,
    );
    migrateSqlite(db);
    let checkpointer: Checkpointer | null = null;
    if (!inMemory) {
      db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
      checkpointer = startCheckpointer(opts.file);
    }
    const sql = new SqliteSql(db);
    const msgs = new SqliteTx(db, sql);
    const groupTx = new SqliteTx(db, sql);
    return composeStore(
      {
        kind: 'sqlite',
        async close() {
          await checkpointer?.stop();
          if (db.open) db.close();
        },
      },
      {
        users: new SqliteUsers(db, sql),
        messaging: new SqliteMessaging(db, sql, msgs),
        files: new SqliteFiles(db),
        groups: new Groups(sql, (op) => sql.tx(() => op(groupTx))),
        keys: new Keys(sql),
        ops: new SqliteOps(db),
      },
    );
  } catch (err) {
    db.close();
    throw err;
  }
}

class SqliteOps implements OpsStore {
  private readonly stats;
  private readonly one;

  constructor(private readonly db: DB) {
    this.one = db.prepare('SELECT 1');
    this.stats = db.prepare<[], StatsView>(
      `SELECT (SELECT count(*) FROM users) AS users,
              (SELECT count(*) FROM friendships WHERE status = 'accepted') AS friendships,
              (SELECT value FROM meta WHERE key = 'total_messages') AS messages`,
    );
  }

  async getStats(): Promise<StatsView> {
    return this.stats.get()!;
  }

  async ping(): Promise<void> {
    this.one.get();
  }

  async backup(file: string): Promise<void> {
    // SQLite's online backup API: a consistent snapshot, copied in steps while the relay keeps serving.
    await this.db.backup(file);
  }

  async advanceMessageIds(by: number): Promise<{ users: number; by: number }> {
    if (!Number.isSafeInteger(by) || by < 1) throw new RangeError(`by must be a positive integer, got ${by}`);
    return this.db
      .transaction(() => {
        const { max } = this.db.prepare('SELECT coalesce(max(last_msg_id), 0) AS max FROM users').get() as {
          max: number;
        };
        if (max + by > Number.MAX_SAFE_INTEGER) {
          throw new RangeError(`advancing by ${by} would take message ids past ${Number.MAX_SAFE_INTEGER}`);
        }
        const users = this.db.prepare('UPDATE users SET last_msg_id = last_msg_id + ?').run(by).changes;
        // When ids were last advanced, for an operator inspecting the file (PostgreSQL has no meta table).
        this.db
          .prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('ids_advanced_at', ?)`)
          .run(Date.now());
        return { users, by };
      })
      .immediate();
  }
}
