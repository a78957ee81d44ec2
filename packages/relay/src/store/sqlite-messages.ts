// What every SQLite transaction that stores messages shares (private sends, group sends, group notices):
// the per-recipient id counter, the insert of one message or of a fan-out run, the inbox preview, the
// idempotency records and the user lookup (MessageTx, dialect.ts). Statements are prepared once at open.

import type Database from 'better-sqlite3';
import { fanOutRuns, runRows } from './fan-out.ts';
import { fieldParams, MESSAGE_SELECT, toMessage, type MessageRow, type StoredMessageRow } from './rows.ts';
import type { SqliteSql } from './sql.ts';
import { SqlTx } from './tx.ts';
import type { SqliteCache } from './sqlite-cache.ts';
import type { FriendshipRecord, InboxPage, NewMessage, UserRecord } from './types.ts';

type DB = Database.Database;

/** A transaction that takes the write lock at BEGIN (read-then-write operations). */
export function immediate<A extends unknown[], R>(db: DB, fn: (...args: A) => R): (...args: A) => R {
  const tx = db.transaction(fn);
  return (...args: A) => tx.immediate(...args);
}

type Bind = string | number | null;
const row14 = (r: StoredMessageRow): Bind[] => [
  r.to_id,
  r.id,
  ...fieldParams(r),
  r.group_id,
  r.mentioned ? 1 : 0,
  r.e2e,
];

function prepare(db: DB) {
  return {
    nextMessageId: db.prepare<[number], { id: number }>(
      'UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id = ? RETURNING last_msg_id AS id',
    ),
    insertMessage: db.prepare<Bind[]>(
      `INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                             file_type, file_expires_at, created_at, group_id, mentioned, e2e)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    addTotal: db.prepare<[number]>(`UPDATE meta SET value = value + ? WHERE key = 'total_messages'`),
    // Fan-out (fanOutRuns): every recipient's next id in one statement, then every copy in one more.
    advanceIds: db.prepare<[string], { to_id: number; id: number }>(
      `UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id IN (SELECT value FROM json_each(?))
       RETURNING id AS to_id, last_msg_id AS id`,
    ),
    insertCopies: db.prepare<Bind[]>(
      `INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                             file_type, file_expires_at, created_at, group_id, mentioned, e2e)
       SELECT value ->> 0, value ->> 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, value ->> 2, ? FROM json_each(?)`,
    ),
    countInbox: db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM messages WHERE to_id = ?'),
    oldest: db.prepare<[number, number], MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = ? ORDER BY m.id LIMIT ?`,
    ),
  };
}

/**
 * The SQLite side of the transaction dialect (dialect.ts), over the statements both backends share
 * (tx.ts): "locking" a user is reading it (the transaction holds SQLite's single write lock). `count`
 * takes the lifetime total: at once, or added up per batch by the caller (the send path's CommitBatcher).
 */
export class SqliteTx extends SqlTx {
  protected readonly locksRows = false;
  readonly s: ReturnType<typeof prepare>;

  constructor(
    db: DB,
    private readonly sql: SqliteSql,
    private readonly count?: (n: number) => void,
    /** The send path's: its recipient and friendship usually come from memory (sqlite-cache.ts). */
    private readonly cache?: SqliteCache,
  ) {
    super(sql);
    this.s = prepare(db);
  }

  override lockUsers(ids: readonly number[], known?: UserRecord): Map<number, UserRecord> {
    const cache = this.cache;
    if (!cache) return super.lockUsers(ids, known) as Map<number, UserRecord>;
    const out = new Map<number, UserRecord>();
    if (known) out.set(known.id, known);
    for (const id of ids) {
      if (out.has(id) || !Number.isSafeInteger(id)) continue;
      const user = cache.user(id, () => this.user(id) as UserRecord | null);
      if (user) out.set(id, user);
    }
    return out;
  }

  override friendship(a: number, b: number): FriendshipRecord | null {
    const read = () => super.friendship(a, b) as FriendshipRecord | null;
    return this.cache ? this.cache.friendship(a, b, read) : read();
  }

  peek(userId: number, limit: number): InboxPage {
    const total = this.s.countInbox.get(userId)!.n;
    // Most senders' inboxes are empty: no second read then.
    return { total, messages: total > 0 ? this.s.oldest.all(userId, limit).map((r) => toMessage(r)) : [] };
  }

  insert(m: NewMessage): StoredMessageRow {
    this.sql.writes++;
    const next = this.s.nextMessageId.get(m.toId);
    const row = runRows([m], new Map(next ? [[m.toId, next.id]] : []))[0]!;
    this.s.insertMessage.run(...row14(row));
    return row;
  }

  fanOut(messages: readonly NewMessage[]): StoredMessageRow[] {
    const out: StoredMessageRow[] = [];
    for (const run of fanOutRuns(messages)) {
      if (run.length === 1) {
        out.push(this.insert(run[0]!));
        continue;
      }
      this.sql.writes++;
      const next = this.s.advanceIds.all(JSON.stringify(run.map((m) => m.toId)));
      const rows = runRows(run, new Map(next.map((r) => [r.to_id, r.id])));
      this.s.insertCopies.run(
        ...row14(rows[0]!).slice(2, 12),
        rows[0]!.e2e,
        JSON.stringify(rows.map((r) => [r.to_id, r.id, r.mentioned ? 1 : 0])),
      );
      out.push(...rows);
    }
    return out;
  }

  countStored(n: number): void {
    if (n === 0) return;
    if (this.count) return this.count(n);
    this.sql.writes++;
    this.s.addTotal.run(n);
  }
}
