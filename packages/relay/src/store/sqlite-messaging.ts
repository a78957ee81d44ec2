// SQLite: friendships, private sends and the inbox (MessagingStore). send() runs in one IMMEDIATE
// transaction inside a CommitBatcher batch (group commit): the decision, the friendship change, the
// messages and the idempotency record are one savepoint of the batch's transaction.

import type Database from 'better-sqlite3';
import type { FriendView, ReceiptView } from '@openwechat/protocol';
import {
  MESSAGE_SELECT,
  pair,
  RECEIPT_COLUMNS,
  receiptEligible,
  toFriendship,
  toMessage,
  toPublicUser,
  toReceipt,
  toReceipts,
  type FriendshipRow,
  type IdempotencyRow,
  type MessageRow,
  type ReceiptRow,
  type UserRow,
} from './rows.ts';
import { CommitBatcher } from './sqlite-batch.ts';
import { immediate, SqliteTx } from './sqlite-messages.ts';
import { sendOp, type Decide } from './send.ts';
import { runSync } from './steps.ts';
import type { SendTx } from './dialect.ts';
import type {
  Delivery,
  FriendshipRecord,
  InboxMessage,
  InboxPage,
  MessagingStore,
  RecordedSendResult,
  SendOptions,
  SendRequest,
  SendResult,
} from './types.ts';

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
    // A recorded receipt (delivered) first, else the message still stored (accepted).
    getReceipt: db.prepare<[number, number, number, number, number, number], ReceiptRow>(
      `SELECT ${RECEIPT_COLUMNS} FROM receipts WHERE to_id = ? AND message_id = ? AND from_id = ?
       UNION ALL
       SELECT to_id, id, from_id, group_id, NULL FROM messages
       WHERE to_id = ? AND id = ? AND from_id = ? AND type <> 'system'
       LIMIT 1`,
    ),
    getIdem: db.prepare<[number, string, number], IdempotencyRow>(
      'SELECT fingerprint, result, created_at FROM idempotency_keys WHERE user_id = ? AND key = ? AND created_at > ?',
    ),
    expireReceipts: db.prepare<[number]>('DELETE FROM receipts WHERE created_at < ?'),
    getFriendship: db.prepare<[number, number], FriendshipRow>(
      'SELECT * FROM friendships WHERE user_a = ? AND user_b = ?',
    ),
    insertFriendship: db.prepare<[number, number, number, number, number]>(
      `INSERT INTO friendships (user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at)
       VALUES (?, ?, ?, 'pending', NULL, ?, ?)`,
    ),
    acceptFriendship: db.prepare<[number, number, number]>(
      `UPDATE friendships SET status = 'accepted', updated_at = ? WHERE user_a = ? AND user_b = ?`,
    ),
    // In row creation order (the rowid grows with each insert).
    listFriends: db.prepare<[number, number, number], UserRow & { since: number }>(
      `SELECT u.id, u.name, u.name_key, u.description, u.status, u.created_at, u.last_seen_at,
              f.updated_at AS since
       FROM friendships f
       JOIN users u ON u.id = CASE WHEN f.user_a = ? THEN f.user_b ELSE f.user_a END
       WHERE (f.user_a = ? OR f.user_b = ?) AND f.status = 'accepted'
       ORDER BY f.rowid`,
    ),
    block: db.prepare<[number, number, number, number]>(
      `UPDATE friendships SET status = 'blocked', blocked_by = ?, updated_at = ?
       WHERE user_a = ? AND user_b = ? AND status = 'accepted'`,
    ),
    purgeFrom: db.prepare<[number, number]>('DELETE FROM messages WHERE to_id = ? AND from_id = ?'),
    unblock: db.prepare<[number, number, number]>(
      `DELETE FROM friendships WHERE user_a = ? AND user_b = ? AND status = 'blocked' AND blocked_by = ?`,
    ),
    pruneIdem: db.prepare<[number]>('DELETE FROM idempotency_keys WHERE created_at < ?'),

    countInboxFrom: db.prepare<[number, number], { n: number }>(
      'SELECT count(*) AS n FROM messages WHERE to_id = ? AND from_id = ?',
    ),
    oldestFrom: db.prepare<[number, number, number], MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = ? AND m.from_id = ? ORDER BY m.id LIMIT ?`,
    ),
    after: db.prepare<[number, number, number], MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = ? AND m.id > ? ORDER BY m.id LIMIT ?`,
    ),
    deleteUpTo: db.prepare<[number, number]>('DELETE FROM messages WHERE to_id = ? AND id <= ?'),
    deleteFromUpTo: db.prepare<[number, number, number]>(
      'DELETE FROM messages WHERE to_id = ? AND from_id = ? AND id <= ?',
    ),
    deleteIds: db.prepare<[number, string]>(
      'DELETE FROM messages WHERE to_id = ? AND id IN (SELECT value FROM json_each(?))',
    ),
    lastMessageId: db.prepare<[number], { id: number }>('SELECT last_msg_id AS id FROM users WHERE id = ?'),
    lastMessageIds: db.prepare<[string], { id: number; last: number }>(
      'SELECT id, last_msg_id AS last FROM users WHERE id IN (SELECT value FROM json_each(?))',
    ),
    expire: db.prepare<[number]>('DELETE FROM messages WHERE created_at < ?'),
  };
}

/** The friendship reads and writes of a send (SendTx). */
class SqliteSendTx extends SqliteTx implements SendTx {
  constructor(
    db: DB,
    private readonly f: ReturnType<typeof prepare>,
    count: (n: number) => void,
  ) {
    super(db, count);
  }

  friendship(a: number, b: number): FriendshipRecord | null {
    const row = this.f.getFriendship.get(...pair(a, b));
    return row ? toFriendship(row) : null;
  }

  insertPending(a: number, b: number, initiatedBy: number, now: number): void {
    this.f.insertFriendship.run(a, b, initiatedBy, now, now);
  }

  accept(a: number, b: number, now: number): boolean {
    return this.f.acceptFriendship.run(now, a, b).changes === 1;
  }
}

export class SqliteMessaging implements MessagingStore {
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
  private readonly blockTx: (by: number, target: number, now: number) => boolean;

  constructor(db: DB, msgs: SqliteTx) {
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

    const t = new SqliteSendTx(db, s, (n) => (batchTotal += n));
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

    this.blockTx = immediate(db, (by: number, target: number, now: number) => {
      const [a, b] = pair(by, target);
      if (s.block.run(by, now, a, b).changes === 0) return false;
      s.purgeFrom.run(by, target);
      return true;
    });
  }

  // Friendships

  async getFriendship(a: number, b: number): Promise<FriendshipRecord | null> {
    const row = this.s.getFriendship.get(...pair(a, b));
    return row ? toFriendship(row) : null;
  }

  async listFriends(userId: number): Promise<FriendView[]> {
    return this.s.listFriends
      .all(userId, userId, userId)
      .map((row) => ({ user: toPublicUser(row), since: row.since }));
  }

  async send(req: SendRequest, opts: SendOptions = {}, decide?: Decide): Promise<SendResult> {
    return this.batch.submit(() => this.sendTx(req, decide, opts));
  }

  async pruneIdempotency(before: number): Promise<number> {
    return this.s.pruneIdem.run(before).changes;
  }

  async block(by: number, target: number, now: number): Promise<boolean> {
    return this.blockTx(by, target, now);
  }

  async unblock(by: number, target: number): Promise<boolean> {
    const [a, b] = pair(by, target);
    return this.s.unblock.run(a, b, by).changes > 0;
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

  async listInbox(userId: number, afterId: number, limit: number): Promise<InboxMessage[]> {
    return this.s.after.all(userId, afterId, limit).map((r) => toMessage(r));
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

  async lastMessageId(userId: number): Promise<number> {
    return this.s.lastMessageId.get(userId)?.id ?? 0;
  }

  async lastMessageIds(userIds: readonly number[]): Promise<Map<number, number>> {
    const rows = this.s.lastMessageIds.all(JSON.stringify(userIds));
    return new Map(rows.map((r) => [r.id, r.last]));
  }

  async expireMessages(before: number): Promise<number> {
    this.s.expireReceipts.run(before);
    return this.s.expire.run(before).changes;
  }

  // Receipts

  async getReceipt(fromId: number, toId: number, messageId: number): Promise<ReceiptView | null> {
    const row = this.s.getReceipt.get(toId, messageId, fromId, toId, messageId, fromId);
    return row ? toReceipt(row) : null;
  }

  async getIdempotentSend(
    userId: number,
    key: string,
    since: number,
  ): Promise<{ result: RecordedSendResult; createdAt: number } | null> {
    const row = this.s.getIdem.get(userId, key, since);
    return row ? { result: JSON.parse(row.result) as RecordedSendResult, createdAt: row.created_at } : null;
  }
}
