// The embedded SQLite backend (better-sqlite3). Every statement is prepared once at open; every operation
// that reads then writes runs in one IMMEDIATE transaction, so it takes the write lock up front and other
// processes wait (busy_timeout) instead of failing a lock upgrade half-way. better-sqlite3 is synchronous:
// within a process each transaction runs to completion before any other starts, which is what makes
// concurrent send()/takeInbox() calls safe; across processes SQLite's single writer does the same.
//
// The Store is composed of one class per area (compose.ts): the shared ones (groups.ts, keys.ts) over
// SqliteSql (sql.ts) and SqliteTx (sqlite-messages.ts: this backend's side of the transaction dialect),
// and this backend's own sqlite-users.ts and sqlite-messaging.ts (send batching, read-and-clear); the whole-database operations (stats, backup, ids after a restore) are here.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { composeStore } from './compose.ts';
import { Files } from './files.ts';
import { Groups } from './groups.ts';
import { Keys } from './keys.ts';
import { Ops } from './ops.ts';
import { SqliteSql } from './sql.ts';
import { SqliteCache } from './sqlite-cache.ts';
import { SqliteTx } from './sqlite-messages.ts';
import { SqliteMessaging } from './sqlite-messaging.ts';
import { SAFETY_NET_PAGES, startCheckpointer, type Checkpointer } from './sqlite-checkpoint.ts';
import { migrateSqlite } from './sqlite-migrations.ts';
import { SqliteUsers } from './sqlite-users.ts';
import type { Store } from './types.ts';

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
    const cache = new SqliteCache(db);
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
        users: new SqliteUsers(db, sql, cache),
        messaging: new SqliteMessaging(db, sql, msgs, cache),
        // One process serves the file: a swept one goes at once; the IMMEDIATE transaction holds the quota.
        files: new Files(sql, { lockQuota: () => undefined, graceMs: null }),
        groups: new Groups(sql, (op) => sql.tx(() => op(groupTx))),
        keys: new Keys(sql),
        ops: new Ops(sql, {
          messagesTotal: `(SELECT value FROM meta WHERE key = 'total_messages')`,
          // SQLite's online backup API: a consistent snapshot, copied in steps while the relay serves.
          backup: async (file) => void (await db.backup(file)),
          // When ids were last advanced, for an operator inspecting the file (PostgreSQL has no meta).
          afterAdvance: (q) =>
            q.run(`INSERT OR REPLACE INTO meta (key, value) VALUES ('ids_advanced_at', $1)`, [Date.now()]),
        }),
      },
    );
  } catch (err) {
    db.close();
    throw err;
  }
}
