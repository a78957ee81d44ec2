// PostgreSQL: friendships, private sends and the inbox (MessagingStore).
//
// send() first locks the sender's and the recipient's user rows, in id order (no deadlock between two
// sends), with FOR NO KEY UPDATE (foreign-key checks of other inserts are not blocked). That one lock
// also settles the races: two strangers writing to each other at once (the second sees the first's
// pending row and accepts it), and two requests with the same Idempotency-Key (the second reads the
// first's committed record and replays it). Serialization failures and deadlocks are retried.
// Per-recipient message ids come from `UPDATE users SET last_msg_id = last_msg_id + 1 … RETURNING`
// inside the send transaction: the row lock on the recipient serialises every sender to that inbox
// until commit, so ids grow in commit order (a stream that has seen id n never misses an id < n).
// takeInbox locks its user row (read-and-clear readers of one inbox take turns, so `total` is exact and
// no message is returned twice) and returns only the rows its own DELETE removed.

import type { FriendView, ReceiptView } from '@openwechat/protocol';
import type { PgDb } from './postgres-connection.ts';
import { peek, PgTx } from './postgres-messages.ts';
import type { SendTx } from './dialect.ts';
import { sendOp, type Decide } from './send.ts';
import { runAsync } from './steps.ts';
import { ChatCommitter, sendChat } from './postgres-send-chat.ts';
import { decodeText } from './postgres-text.ts';
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
  type MessageRow,
  type ReceiptRow,
  type UserRow,
} from './rows.ts';
import type {
  Delivery,
  RecordedSendResult,
  FriendshipRecord,
  InboxMessage,
  InboxPage,
  MessagingStore,
  SendOptions,
  SendRequest,
  SendResult,
} from './types.ts';

/**
 * A CTE `rec` recording the receipts of the rows of CTE `gone` (messages this statement deletes) at
 * the time `$at`, returning them: the receipt is written by the same statement as the deletion.
 */
function receiptsOf(at: string): string {
  return `rec AS (
    INSERT INTO receipts (to_id, message_id, from_id, group_id, created_at, delivered_at)
    SELECT g.to_id, g.id, g.from_id, g.group_id, g.created_at, ${at}::bigint FROM gone g
    WHERE ${receiptEligible('g', 'LEAST', 'GREATEST')}
    ON CONFLICT DO NOTHING
    RETURNING ${RECEIPT_COLUMNS}
  )`;
}

/** The receipts returned by a statement whose rows are `rec`'s (the rows with to_id null are padding). */
function receiptRows(rows: ReadonlyArray<Partial<ReceiptRow>>): ReceiptView[] {
  return toReceipts(rows.filter((r): r is ReceiptRow => r.to_id != null));
}

/** The friendship reads and writes of a send (SendTx): the pair's row locked like the users'. */
class PgSendTx extends PgTx implements SendTx {
  async friendship(a: number, b: number): Promise<FriendshipRecord | null> {
    const row = (
      await this.c.query<FriendshipRow>(
        `SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at
         FROM friendships WHERE user_a = $1 AND user_b = $2 FOR NO KEY UPDATE`,
        pair(a, b),
      )
    ).rows[0];
    return row ? toFriendship(row) : null;
  }

  async insertPending(a: number, b: number, initiatedBy: number, now: number): Promise<void> {
    await this.c.query(
      `INSERT INTO friendships (user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at)
       VALUES ($1, $2, $3, 'pending', NULL, $4, $4)`,
      [a, b, initiatedBy, now],
    );
  }

  async accept(a: number, b: number, now: number): Promise<boolean> {
    const r = await this.c.query(
      `UPDATE friendships SET status = 'accepted', updated_at = $1 WHERE user_a = $2 AND user_b = $3`,
      [now, a, b],
    );
    return r.rowCount === 1;
  }
}

export class PgMessaging implements MessagingStore {
  private readonly chats: ChatCommitter;

  constructor(private readonly db: PgDb) {
    this.chats = new ChatCommitter(db.pool);
  }

  // Friendships

  async getFriendship(a: number, b: number): Promise<FriendshipRecord | null> {
    const row = (
      await this.db.pool.query<FriendshipRow>(
        `SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at
         FROM friendships WHERE user_a = $1 AND user_b = $2`,
        pair(a, b),
      )
    ).rows[0];
    return row ? toFriendship(row) : null;
  }

  async listFriends(userId: number): Promise<FriendView[]> {
    const { rows } = await this.db.pool.query<UserRow & { since: number }>(
      `SELECT u.id, u.name, u.name_key, u.description, u.status, u.created_at, u.last_seen_at,
              f.updated_at AS since
       FROM friendships f
       JOIN users u ON u.id = CASE WHEN f.user_a = $1 THEN f.user_b ELSE f.user_a END
       WHERE (f.user_a = $1 OR f.user_b = $1) AND f.status = 'accepted'
       ORDER BY f.seq`,
      [userId],
    );
    return rows.map((row) => ({ user: toPublicUser(row), since: row.since }));
  }

  async send(req: SendRequest, opts: SendOptions = {}, decide?: Decide): Promise<SendResult> {
    // A chat between friends: two round trips (the write group-committed), no lock held across the decision.
    const chat = await sendChat(this.chats, req, decide, opts);
    if (chat) return chat;
    return this.db.tx((c) => runAsync(sendOp(new PgSendTx(c), req, opts, decide)));
  }

  async pruneIdempotency(before: number): Promise<number> {
    return (
      (await this.db.pool.query('DELETE FROM idempotency_keys WHERE created_at < $1', [before])).rowCount ?? 0
    );
  }

  async block(by: number, target: number, now: number): Promise<boolean> {
    return this.db.tx(async (c) => {
      const [a, b] = pair(by, target);
      const r = await c.query(
        `UPDATE friendships SET status = 'blocked', blocked_by = $1, updated_at = $2
         WHERE user_a = $3 AND user_b = $4 AND status = 'accepted'`,
        [by, now, a, b],
      );
      if (r.rowCount === 0) return false;
      await c.query('DELETE FROM messages WHERE to_id = $1 AND from_id = $2', [by, target]);
      return true;
    });
  }

  async unblock(by: number, target: number): Promise<boolean> {
    const [a, b] = pair(by, target);
    const r = await this.db.pool.query(
      `DELETE FROM friendships WHERE user_a = $1 AND user_b = $2 AND status = 'blocked' AND blocked_by = $3`,
      [a, b, by],
    );
    return (r.rowCount ?? 0) > 0;
  }

  // Inbox

  async takeInbox(
    userId: number,
    opts: { limit: number; fromId: number | null },
    delivery?: Delivery,
  ): Promise<InboxPage> {
    const at = delivery?.at ?? Date.now();
    const page = await this.db.tx(async (c) => {
      // Readers of one inbox take turns; senders to it wait for the (short) read.
      await c.query('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [userId]);
      const byFrom = opts.fromId !== null;
      const total = (
        await c.query<{ n: number }>(
          `SELECT count(*) AS n FROM messages WHERE to_id = $1 ${byFrom ? 'AND from_id = $2' : ''}`,
          byFrom ? [userId, opts.fromId] : [userId],
        )
      ).rows[0]!.n;
      // Only what this DELETE removed is returned: a row acknowledged meanwhile is not handed out again.
      const { rows } = await c.query<MessageRow & { receipts: ReceiptRow[] | null }>(
        `WITH gone AS (
           DELETE FROM messages WHERE to_id = $1 AND id IN (
             SELECT id FROM messages WHERE to_id = $1 ${byFrom ? 'AND from_id = $4' : ''} ORDER BY id LIMIT $2
           ) RETURNING *
         ), ${receiptsOf('$3')}
         SELECT g.to_id, g.id, g.from_id, g.type, g.content, g.attachment_name, g.file_id, g.file_size,
                g.file_type, g.file_expires_at, g.created_at, g.group_id, g.mentioned, g.e2e,
                u.name AS from_name, u.description AS from_description, gr.name AS group_name,
                (SELECT json_agg(rec) FROM rec) AS receipts
         FROM gone g LEFT JOIN users u ON u.id = g.from_id LEFT JOIN groups gr ON gr.id = g.group_id
         ORDER BY g.id`,
        byFrom ? [userId, opts.limit, at, opts.fromId] : [userId, opts.limit, at],
      );
      return {
        total,
        messages: rows.map((r) => toMessage(r, decodeText)),
        receipts: receiptRows(rows[0]?.receipts ?? []), // json_agg: bigints are JSON numbers,
      };
    });
    delivery?.receipts.push(...page.receipts);
    return { total: page.total, messages: page.messages };
  }

  async peekInbox(userId: number, limit: number): Promise<InboxPage> {
    return peek(this.db.pool, userId, limit);
  }

  async listInbox(userId: number, afterId: number, limit: number): Promise<InboxMessage[]> {
    const { rows } = await this.db.pool.query<MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3`,
      [userId, afterId, limit],
    );
    return rows.map((r) => toMessage(r, decodeText));
  }

  async ackInbox(userId: number, upTo: number, delivery?: Delivery): Promise<number> {
    return this.deleteWithReceipts('id <= $2', [userId, upTo], delivery);
  }

  async deleteMessages(userId: number, ids: readonly number[], delivery?: Delivery): Promise<void> {
    if (ids.length === 0) return;
    await this.deleteWithReceipts('id = ANY($2::bigint[])', [userId, ids], delivery);
  }

  /**
   * Deletes the messages of inbox $1 matching `where` and records their receipts, in one statement;
   * returns how many were deleted. One row per receipt (or one padding row with a null receipt).
   */
  private async deleteWithReceipts(where: string, params: unknown[], delivery?: Delivery): Promise<number> {
    const { rows } = await this.db.pool.query<Partial<ReceiptRow> & { acked: number }>(
      `WITH gone AS (DELETE FROM messages WHERE to_id = $1 AND ${where} RETURNING *), ${receiptsOf('$3')}
       SELECT (SELECT count(*) FROM gone)::int AS acked, rec.* FROM (SELECT 1) one LEFT JOIN rec ON true`,
      [...params, delivery?.at ?? Date.now()],
    );
    delivery?.receipts.push(...receiptRows(rows));
    return rows[0]?.acked ?? 0;
  }

  async lastMessageId(userId: number): Promise<number> {
    const row = (
      await this.db.pool.query<{ id: number }>('SELECT last_msg_id AS id FROM users WHERE id = $1', [userId])
    ).rows[0];
    return row?.id ?? 0;
  }

  async lastMessageIds(userIds: readonly number[]): Promise<Map<number, number>> {
    if (userIds.length === 0) return new Map();
    const { rows } = await this.db.pool.query<{ id: number; last: number }>(
      'SELECT id, last_msg_id AS last FROM users WHERE id = ANY($1::bigint[])',
      [userIds],
    );
    return new Map(rows.map((r) => [r.id, r.last]));
  }

  async expireMessages(before: number): Promise<number> {
    await this.db.pool.query('DELETE FROM receipts WHERE created_at < $1', [before]);
    return (await this.db.pool.query('DELETE FROM messages WHERE created_at < $1', [before])).rowCount ?? 0;
  }

  // Receipts

  async getReceipt(fromId: number, toId: number, messageId: number): Promise<ReceiptView | null> {
    const row = (
      await this.db.pool.query<ReceiptRow>(
        `SELECT ${RECEIPT_COLUMNS} FROM receipts WHERE to_id = $1 AND message_id = $2 AND from_id = $3
         UNION ALL
         SELECT to_id, id, from_id, group_id, NULL FROM messages
         WHERE to_id = $1 AND id = $2 AND from_id = $3 AND type <> 'system'
         LIMIT 1`,
        [toId, messageId, fromId],
      )
    ).rows[0];
    return row ? toReceipt(row) : null;
  }

  async getIdempotentSend(
    userId: number,
    key: string,
    since: number,
  ): Promise<{ result: RecordedSendResult; createdAt: number } | null> {
    const row = (
      await this.db.pool.query<{ result: string; created_at: number }>(
        'SELECT result, created_at FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at > $3',
        [userId, key, since],
      )
    ).rows[0];
    return row ? { result: JSON.parse(row.result) as RecordedSendResult, createdAt: row.created_at } : null;
  }
}
