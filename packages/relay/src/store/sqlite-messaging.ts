// SQLite: what this backend does its own way in MessagingStore (the rest is messaging.ts). send() runs
// the skeleton of send.ts in one IMMEDIATE transaction inside a CommitBatcher batch (group commit): the
// decision, the friendship change, the messages and the idempotency record are one savepoint of the
// batch's transaction. Read-and-clear and acknowledgement record their receipts in the same transaction.

import type Database from 'better-sqlite3';
import {
  MESSAGE_SELECT,
  RECEIPT_COLUMNS,
  receiptEligible,
  toMessage,
  toReceipts,
  type MessageRow,
  type ReceiptRow,
} from './rows.ts';
import { CommitBatcher } from './sqlite-batch.ts';
import { MessagingBase } from './messaging.ts';
import { immediate, SqliteTx } from './sqlite-messages.ts';
import type { SqliteSql } from './sql.ts';
import { sendOp, type Decide } from './send.ts';
import { runSync } from './steps.ts';
import type { Delivery, InboxPage, MessagingStore, SendOptions, SendRequest, SendResult } from './types.ts';

type DB = Database.Database;

/** Records the receipts of the messages selected by `where` (about to be deleted), returning them. */
const recordReceipts = (where: string) =>
  `INSERT OR IGNORE INTO receipts (to_id, message_id, from_id, group_id, created_at, delivered_at)
   SELECT m.to_id, m.id, m.from_id, m.group_id, m.created_at, ? FROM messages m
   WHERE ${where} AND ${receiptEligible('m', 'min', 'max')}
   RETURNING ${RECEIPT_COLUMNS}`;

function prepare(db: DB) {
  return {
    receiptsUpTo: db.prepare<[number, number, number], ReceiptRow>(
      recordReceipts('m.to_id = ? AND m.id <= ?'),
    ),
    receiptsFromUpTo: db.prepare<[number, number, number, number], ReceiptRow>(
      recordReceipts('m.to_id = ? AND m.from_id = ? AND m.id <= ?'),
    ),
    receiptsIds: db.prepare<[number, number, string], ReceiptRow>(
      recordReceipts('m.to_id = ? AND m.id IN (SELECT value FROM json_each(?))'),
    ),
    countInboxFrom: db.prepare<[number, number], { n: number }>(
      'SELECT count(*) AS n FROM messages WHERE to_id = ? AND from_id = ?',
    ),
    oldestFrom: db.prepare<[number, number, number], MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = ? AND m.from_id = ? ORDER BY m.id LIMIT ?`,
    ),
    deleteUpTo: db.prepare<[number, number]>('DELETE FROM messages WHERE to_id = ? AND id <= ?'),
    deleteFromUpTo: db.prepare<[number, number, number]>(
      'DELETE FROM messages WHERE to_id = ? AND from_id = ? AND id <= ?',
    ),
    deleteIds: db.prepare<[number, string]>(
      'DELETE FROM messages WHERE to_id = ? AND id IN (SELECT value FROM json_each(?))',
    ),
  };
}

export class SqliteMessaging extends MessagingBase implements MessagingStore {
  private readonly s: ReturnType<typeof prepare>;
  private readonly batch: CommitBatcher;
  private readonly sendTx: (req: SendRequest, decide: Decide | undefined, opts: SendOptions) => SendResult;
  private readonly takeTx: (
    userId: number,
    limit: number,
    fromId: number | null,
    at: number,
  ) => InboxPage & { receipts: ReceiptRow[] };
  private readonly ackTx: (userId: number, upTo: number, at: number) => [number, ReceiptRow[]];
  private readonly deleteTx: (userId: number, ids: string, at: number) => ReceiptRow[];
  private readonly peekTx: (userId: number, limit: number) => InboxPage;

  constructor(db: DB, sql: SqliteSql, msgs: SqliteTx) {
    super(sql, 'rowid');
    const s = (this.s = prepare(db));
    // Messages stored by the batch's sends, added to the lifetime count once per batch (the meta row
    // would otherwise be rewritten by every send). A send counts itself only after its last statement,
    // so a send rolled back to its savepoint is not counted; a failed COMMIT discards the batch and
    // its count together.
    let batchTotal = 0;
    this.batch = new CommitBatcher(db, () => {
      if (batchTotal > 0) msgs.s.addTotal.run(batchTotal);
      batchTotal = 0;
    });

    const t = new SqliteTx(db, sql, (n) => (batchTotal += n));
    this.sendTx = immediate(db, (req: SendRequest, decide: Decide | undefined, opts: SendOptions) =>
      runSync(sendOp(t, req, opts, decide)),
    );

    this.takeTx = immediate(db, (userId: number, limit: number, fromId: number | null, at: number) => {
      const total = (fromId === null ? msgs.s.countInbox.get(userId) : s.countInboxFrom.get(userId, fromId))!
        .n;
      const rows =
        fromId === null ? msgs.s.oldest.all(userId, limit) : s.oldestFrom.all(userId, fromId, limit);
      const last = rows.at(-1);
      let receipts: ReceiptRow[] = [];
      // The rows are the oldest matching ones, so "matching and id ≤ the last one" is exactly them.
      if (last) {
        if (fromId === null) {
          receipts = s.receiptsUpTo.all(at, userId, last.id);
          s.deleteUpTo.run(userId, last.id);
        } else {
          receipts = s.receiptsFromUpTo.all(at, userId, fromId, last.id);
          s.deleteFromUpTo.run(userId, fromId, last.id);
        }
      }
      return { total, messages: rows.map((r) => toMessage(r)), receipts };
    });

    this.ackTx = immediate(db, (userId: number, upTo: number, at: number): [number, ReceiptRow[]] => {
      const receipts = s.receiptsUpTo.all(at, userId, upTo);
      return [s.deleteUpTo.run(userId, upTo).changes, receipts];
    });

    this.deleteTx = immediate(db, (userId: number, ids: string, at: number) => {
      const receipts = s.receiptsIds.all(at, userId, ids);
      s.deleteIds.run(userId, ids);
      return receipts;
    });

    this.peekTx = db.transaction((userId: number, limit: number) => msgs.peek(userId, limit));
  }

  async send(req: SendRequest, opts: SendOptions = {}, decide?: Decide): Promise<SendResult> {
    return this.batch.submit(() => this.sendTx(req, decide, opts));
  }

  // Inbox

  async takeInbox(
    userId: number,
    opts: { limit: number; fromId: number | null },
    delivery?: Delivery,
  ): Promise<InboxPage> {
    const { total, messages, receipts } = this.takeTx(
      userId,
      opts.limit,
      opts.fromId,
      delivery?.at ?? Date.now(),
    );
    delivery?.receipts.push(...toReceipts(receipts));
    return { total, messages };
  }

  async peekInbox(userId: number, limit: number): Promise<InboxPage> {
    return this.peekTx(userId, limit);
  }

  async ackInbox(userId: number, upTo: number, delivery?: Delivery): Promise<number> {
    const [n, receipts] = this.ackTx(userId, upTo, delivery?.at ?? Date.now());
    delivery?.receipts.push(...toReceipts(receipts));
    return n;
  }

  async deleteMessages(userId: number, ids: readonly number[], delivery?: Delivery): Promise<void> {
    if (ids.length === 0) return;
    const receipts = this.deleteTx(userId, JSON.stringify(ids), delivery?.at ?? Date.now());
    delivery?.receipts.push(...toReceipts(receipts));
  }
}
