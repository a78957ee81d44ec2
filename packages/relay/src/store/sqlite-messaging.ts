// SQLite: what this backend does its own way in MessagingStore (the rest is messaging.ts). send() runs
// the skeleton of send.ts inside a CommitBatcher batch (group commit): the decision, the friendship
// change, the messages and the idempotency record commit with the batch's IMMEDIATE transaction. A
// read-and-clear or an acknowledgement records its receipts in the transaction that deletes the
// messages (a statement cannot both delete and insert here: no DML in a WITH).

import type { ReceiptView } from '@openwechat/protocol';
import type Database from 'better-sqlite3';
import { MESSAGE_SELECT, RECEIPT_COLUMNS, receiptEligible, toReceipts, type MessageRow } from './rows.ts';
import { CommitBatcher } from './sqlite-batch.ts';
import type { SqliteCache } from './sqlite-cache.ts';
import { MessagingBase, type Cleared } from './messaging.ts';
import { immediate, SqliteTx } from './sqlite-messages.ts';
import type { SqliteSql } from './sql.ts';
import { sendOp, type Decide } from './send.ts';
import { runSync } from './steps.ts';
import type { InboxPage, MessagingStore, SendOptions, SendRequest, SendResult } from './types.ts';

type DB = Database.Database;

/** Unexpired messages the retention sweep reads past, so that a few stamped out of order hold nothing back. */
export const SWEEP_LOOKAHEAD = 1000;

// No index on messages.created_at (migration 12): each message would write one more B-tree and, in a
// batch, one more WAL page. Rows are stored in rowid order, which is the order they were inserted in (a
// new rowid is one past the largest), so the oldest messages come first. The retention sweep reads from
// the oldest row up to the (SWEEP_LOOKAHEAD + 1)-th one not yet expired and deletes the expired rows
// among them: a message stamped out of order because the clock stepped (back, or forward and back) is
// expired on time while at most SWEEP_LOOKAHEAD unexpired messages were stored before it, and late,
// never early, otherwise. A sweep reads at most that many rows more than it deletes.
export const EXPIRE_SQL = `
  DELETE FROM messages
  WHERE rowid < coalesce(
          (SELECT rowid FROM messages WHERE created_at >= $1 ORDER BY rowid LIMIT 1 OFFSET ${SWEEP_LOOKAHEAD}),
          9223372036854775807)
    AND created_at < $1`;

export class SqliteMessaging extends MessagingBase implements MessagingStore {
  private readonly batch: CommitBatcher;
  private readonly sendTx: (req: SendRequest, decide: Decide | undefined, opts: SendOptions) => SendResult;
  protected readonly clear: (
    q: unknown,
    where: string,
    params: unknown[],
    at: number,
    rows: boolean,
  ) => Cleared;
  private readonly peekTx: (userId: number, limit: number) => InboxPage;
  protected override readonly expireSql = EXPIRE_SQL;

  constructor(db: DB, sql: SqliteSql, msgs: SqliteTx, cache: SqliteCache) {
    super(sql, 'rowid');
    // Messages stored by the batch's sends, added to the lifetime count once per batch (the meta row
    // would otherwise be rewritten by every send). A send counts itself after its last statement, so a
    // refused send is not counted; a batch rolled back (and run again) starts its count afresh.
    let batchTotal = 0;
    this.batch = new CommitBatcher(db, () => sql.writes, {
      begin: () => {
        batchTotal = 0;
        // Under the write lock: the batch decides on every other connection's commits.
        cache.check();
      },
      finish: () => {
        if (batchTotal > 0) msgs.countStored(batchTotal);
      },
      // What the batch cached may have been its own writes, now undone.
      rolledBack: () => cache.dropAll(),
    });

    const t = new SqliteTx(db, sql, (n) => (batchTotal += n), cache);
    this.sendTx = (req: SendRequest, decide: Decide | undefined, opts: SendOptions) =>
      runSync(sendOp(t, req, opts, decide));

    // Inside takeInbox's transaction this is a savepoint of it.
    this.clear = immediate(db, (_q: unknown, where: string, params: unknown[], at: number, rows: boolean) => {
      const inbox = `m.to_id = $1 AND ${where}`;
      const messages = rows
        ? sql.all<MessageRow>(`${MESSAGE_SELECT} WHERE ${inbox} ORDER BY m.id`, params)
        : [];
      const receipts = sql.all<ReceiptView>(
        `INSERT OR IGNORE INTO receipts (to_id, message_id, from_id, group_id, created_at, delivered_at)
         SELECT m.to_id, m.id, m.from_id, m.group_id, m.created_at, $${params.length + 1} FROM messages m
         WHERE ${inbox} AND ${receiptEligible('m', 'min', 'max')}
         RETURNING ${RECEIPT_COLUMNS}`,
        [...params, at],
      );
      const n = sql.run(`DELETE FROM messages AS m WHERE ${inbox}`, params);
      return { n, receipts: toReceipts(receipts), rows: messages };
    });

    this.peekTx = db.transaction((userId: number, limit: number) => msgs.peek(userId, limit));
  }

  // Not async: the batch's promise itself, without the extra ticks an async function's return adds.
  send(req: SendRequest, opts: SendOptions = {}, decide?: Decide): Promise<SendResult> {
    return this.batch.submit(() => this.sendTx(req, decide, opts));
  }

  async peekInbox(userId: number, limit: number): Promise<InboxPage> {
    return this.peekTx(userId, limit);
  }
}
