// PostgreSQL: what this backend does its own way in MessagingStore (the rest is messaging.ts): the send's
// batched chat path and its locked transaction (the skeleton of send.ts), the deletion that records its
// receipts in the same statement (`clear`), the preview read. How a send's locks order its ids and
// settle its races: postgres.ts.

import type { ReceiptView } from '@openwechat/protocol';
import type { PgDb } from './postgres-connection.ts';
import { MessagingBase, type Cleared } from './messaging.ts';
import { peek, PgTx } from './postgres-messages.ts';
import type { PgSql, Sql } from './sql.ts';
import { sendOp, type Decide } from './send.ts';
import { runAsync } from './steps.ts';
import { ChatCommitter, sendChat, type ChatWake } from './postgres-send-chat.ts';
import { RECEIPT_COLUMNS, receiptEligible, toReceipts, type MessageRow } from './rows.ts';
import type { InboxPage, MessagingStore, SendOptions, SendRequest, SendResult } from './types.ts';

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

export class PgMessaging extends MessagingBase implements MessagingStore {
  private readonly chats: ChatCommitter;

  constructor(
    private readonly db: PgDb,
    sql: PgSql,
    wake: ChatWake,
  ) {
    super(sql, 'seq');
    this.chats = new ChatCommitter(db.pool, wake);
  }

  async send(req: SendRequest, opts: SendOptions = {}, decide?: Decide): Promise<SendResult> {
    // A chat between friends: one round trip (group-committed) when the state is cached, no lock held across the decision.
    const chat = await sendChat(this.chats, req, decide, opts);
    if (chat) return chat;
    return this.db.tx((c) => runAsync(sendOp(new PgTx(c, this.db), req, opts, decide)));
  }

  /** One statement: the deletion, its receipts (CTE `rec`) and, with `rows`, the messages joined. */
  protected readonly clear = async (
    q: Sql,
    where: string,
    params: unknown[],
    at: number,
    rows: boolean,
  ): Promise<Cleared> => {
    const gone = `gone AS (DELETE FROM messages m WHERE m.to_id = $1 AND ${where} RETURNING *),
      ${receiptsOf(`$${params.length + 1}`)}`;
    if (!rows) {
      const r = await q.get<{ acked: number; receipts: ReceiptView[] | null }>(
        `WITH ${gone} SELECT (SELECT count(*) FROM gone)::int AS acked, (SELECT json_agg(rec) FROM rec) AS receipts`,
        [...params, at],
      );
      return { n: r!.acked, receipts: toReceipts(r!.receipts ?? []), rows: [] };
    }
    const r = await q.all<MessageRow & { receipts: ReceiptView[] | null }>(
      `WITH ${gone}
       SELECT g.to_id, g.id, g.from_id, g.type, g.content, g.attachment_name, g.file_id, g.file_size,
              g.file_type, g.file_expires_at, g.created_at, g.group_id, g.mentioned, g.e2e,
              u.name AS from_name, u.description AS from_description, gr.name AS group_name,
              (SELECT json_agg(rec) FROM rec) AS receipts
       FROM gone g LEFT JOIN users u ON u.id = g.from_id LEFT JOIN groups gr ON gr.id = g.group_id
       ORDER BY g.id`,
      [...params, at],
    );
    // json_agg: bigints are JSON numbers.
    return { n: r.length, receipts: toReceipts(r[0]?.receipts ?? []), rows: r };
  };

  async peekInbox(userId: number, limit: number): Promise<InboxPage> {
    return peek(this.db.pool, userId, limit);
  }
}
