// PostgreSQL: what this backend does its own way in MessagingStore (the rest is messaging.ts): the send's
// batched chat path and its locked transaction (the skeleton of send.ts), read-and-clear, acknowledgement.
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

import type { ReceiptView } from '@openwechat/protocol';
import type { PgDb } from './postgres-connection.ts';
import { MessagingBase } from './messaging.ts';
import { peek, PgTx } from './postgres-messages.ts';
import type { PgSql } from './sql.ts';
import { sendOp, type Decide } from './send.ts';
import { runAsync } from './steps.ts';
import { ChatCommitter, sendChat } from './postgres-send-chat.ts';
import { decodeText } from './postgres-text.ts';
import {
  RECEIPT_COLUMNS,
  receiptEligible,
  toMessage,
  toReceipts,
  type MessageRow,
  type ReceiptRow,
} from './rows.ts';
import type { Delivery, InboxPage, MessagingStore, SendOptions, SendRequest, SendResult } from './types.ts';

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

export class PgMessaging extends MessagingBase implements MessagingStore {
  private readonly chats: ChatCommitter;

  constructor(
    private readonly db: PgDb,
    sql: PgSql,
  ) {
    super(sql, 'seq');
    this.chats = new ChatCommitter(db.pool);
  }

  async send(req: SendRequest, opts: SendOptions = {}, decide?: Decide): Promise<SendResult> {
    // A chat between friends: two round trips (the write group-committed), no lock held across the decision.
    const chat = await sendChat(this.chats, req, decide, opts);
    if (chat) return chat;
    return this.db.tx((c) => runAsync(sendOp(new PgTx(c, this.db), req, opts, decide)));
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
}
