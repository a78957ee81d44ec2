// Friendships, the inbox and receipts (MessagingStore), over sql.ts. The send is a skeleton (send.ts);
// read-and-clear and acknowledgement are written here over one step of the backend (`clear`: delete and
// record the receipts; SQLite in two statements, PostgreSQL in one). What else each backend does its own
// way — the send's batching, the preview read — is in sqlite-messaging.ts and postgres-messaging.ts.

import type { FriendView, PublicUser, ReceiptView } from '@openwechat/protocol';
import {
  FRIENDSHIP_COLUMNS,
  MESSAGE_SELECT,
  pair,
  RECEIPT_COLUMNS,
  toMessage,
  type MessageRow,
} from './rows.ts';
import type { Sql, SqlDb } from './sql.ts';
import { step, type Step } from './steps.ts';
import type {
  Delivery,
  FriendshipRecord,
  InboxMessage,
  InboxPage,
  MessagingStore,
  RecordedSendResult,
} from './types.ts';

/** What a `clear` removed: how many messages, their receipts, and (when asked) the messages. */
export interface Cleared {
  n: number;
  receipts: ReceiptView[];
  rows: MessageRow[];
}

export abstract class MessagingBase implements Omit<MessagingStore, 'send' | 'peekInbox'> {
  constructor(
    protected readonly sql: SqlDb,
    /** The column that orders friendships by creation (SQLite: rowid; PostgreSQL: seq). */
    private readonly creationOrder: string,
  ) {}

  // Friendships

  async getFriendship(a: number, b: number): Promise<FriendshipRecord | null> {
    const row = await this.sql.get<FriendshipRecord>(
      `SELECT ${FRIENDSHIP_COLUMNS} FROM friendships WHERE user_a = $1 AND user_b = $2`,
      pair(a, b),
    );
    return row ?? null;
  }

  async listFriends(userId: number): Promise<FriendView[]> {
    const rows = await this.sql.all<PublicUser & { since: number }>(
      `SELECT u.id, u.name, u.description, u.status, u.created_at AS "createdAt", u.last_seen_at AS "lastSeenAt",
              f.updated_at AS since
       FROM friendships f
       JOIN users u ON u.id = CASE WHEN f.user_a = $1 THEN f.user_b ELSE f.user_a END
       WHERE (f.user_a = $1 OR f.user_b = $1) AND f.status = 'accepted'
       ORDER BY f.${this.creationOrder}`,
      [userId],
    );
    return rows.map(({ since, ...user }) => ({ user, since }));
  }

  pruneIdempotency(before: number): Promise<number> {
    return Promise.resolve(this.sql.run('DELETE FROM idempotency_keys WHERE created_at < $1', [before]));
  }

  block(by: number, target: number, now: number): Promise<boolean> {
    return this.sql.tx(function* (q) {
      const [a, b] = pair(by, target);
      const blocked = yield* step(
        q.run(
          `UPDATE friendships SET status = 'blocked', blocked_by = $1, updated_at = $2
           WHERE user_a = $3 AND user_b = $4 AND status = 'accepted'`,
          [by, now, a, b],
        ),
      );
      if (blocked === 0) return false;
      yield* step(q.run('DELETE FROM messages WHERE to_id = $1 AND from_id = $2', [by, target]));
      return true;
    });
  }

  async unblock(by: number, target: number): Promise<boolean> {
    const [a, b] = pair(by, target);
    const n = await this.sql.run(
      `DELETE FROM friendships WHERE user_a = $1 AND user_b = $2 AND status = 'blocked' AND blocked_by = $3`,
      [a, b, by],
    );
    return n > 0;
  }

  // Inbox

  async listInbox(userId: number, afterId: number, limit: number): Promise<InboxMessage[]> {
    const rows = await this.sql.all<MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3`,
      [userId, afterId, limit],
    );
    return rows.map((r) => toMessage(r, this.sql.decode));
  }

  async lastMessageId(userId: number): Promise<number> {
    const row = await this.sql.get<{ id: number }>('SELECT last_msg_id AS id FROM users WHERE id = $1', [
      userId,
    ]);
    return row?.id ?? 0;
  }

  async lastMessageIds(userIds: readonly number[]): Promise<Map<number, number>> {
    if (userIds.length === 0) return new Map();
    const rows = await this.sql.all<{ id: number; last: number }>(
      'SELECT id, last_msg_id AS last FROM users WHERE id = ANY($1::bigint[])',
      [userIds],
    );
    return new Map(rows.map((r) => [r.id, r.last]));
  }

  /** Deletes the messages created before $1 (SQLite: by rowid, having no index on created_at). */
  protected readonly expireSql: string = 'DELETE FROM messages WHERE created_at < $1';

  async expireMessages(before: number): Promise<number> {
    await this.sql.run('DELETE FROM receipts WHERE created_at < $1', [before]);
    return this.sql.run(this.expireSql, [before]);
  }

  /**
   * Deletes the messages `m` of inbox $1 matching `where` (its parameters are `params`, $1 the inbox)
   * and records their receipts at `at` (receiptEligible), in one transaction; with `rows`, returns the
   * messages deleted in id order, joined as MESSAGE_SELECT joins them. A field, not a method: it is
   * no Store method (compose.ts takes an area's prototype methods).
   */
  protected abstract readonly clear: (
    q: Sql,
    where: string,
    params: unknown[],
    at: number,
    rows: boolean,
  ) => Step<Cleared>;

  async takeInbox(
    userId: number,
    opts: { limit: number; fromId: number | null },
    delivery?: Delivery,
  ): Promise<InboxPage> {
    const at = delivery?.at ?? Date.now();
    const from = opts.fromId === null ? [] : [opts.fromId];
    const clear = this.clear.bind(this);
    const page = await this.sql.tx(function* (q) {
      // Readers of one inbox take turns (PostgreSQL: its row lock), so `total` is exact and no message is
      // returned twice; senders to it wait for the (short) read.
      yield* step(q.get('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [userId]));
      const total = yield* step(
        q.get<{ n: number }>(
          `SELECT count(*) AS n FROM messages WHERE to_id = $1 ${from.length ? 'AND from_id = $2' : ''}`,
          [userId, ...from],
        ),
      );
      // Only what this deletion removed is returned: a row acknowledged meanwhile is not handed out again.
      const gone = yield* step(
        clear(
          q,
          `m.id IN (SELECT id FROM messages WHERE to_id = $1 ${from.length ? 'AND from_id = $3' : ''}
                    ORDER BY id LIMIT $2)`,
          [userId, opts.limit, ...from],
          at,
          true,
        ),
      );
      return {
        total: total!.n,
        messages: gone.rows.map((r) => toMessage(r, q.decode)),
        receipts: gone.receipts,
      };
    });
    delivery?.receipts.push(...page.receipts);
    return { total: page.total, messages: page.messages };
  }

  async ackInbox(userId: number, upTo: number, delivery?: Delivery): Promise<number> {
    const gone = await this.clear(this.sql, 'm.id <= $2', [userId, upTo], delivery?.at ?? Date.now(), false);
    delivery?.receipts.push(...gone.receipts);
    return gone.n;
  }

  async deleteMessages(userId: number, ids: readonly number[], delivery?: Delivery): Promise<void> {
    if (ids.length === 0) return;
    const gone = await this.clear(
      this.sql,
      'm.id = ANY($2::bigint[])',
      [userId, ids],
      delivery?.at ?? Date.now(),
      false,
    );
    delivery?.receipts.push(...gone.receipts);
  }

  // Receipts

  async getReceipt(fromId: number, toId: number, messageId: number): Promise<ReceiptView | null> {
    // A recorded receipt (delivered) first, else the message still stored (accepted).
    const row = await this.sql.get<ReceiptView>(
      `SELECT ${RECEIPT_COLUMNS} FROM receipts WHERE to_id = $1 AND message_id = $2 AND from_id = $3
       UNION ALL
       SELECT from_id, to_id, id, group_id, NULL FROM messages
       WHERE to_id = $1 AND id = $2 AND from_id = $3 AND type <> 'system'
       LIMIT 1`,
      [toId, messageId, fromId],
    );
    return row ?? null;
  }

  async getIdempotentSend(
    userId: number,
    key: string,
    since: number,
  ): Promise<{ result: RecordedSendResult; createdAt: number } | null> {
    const row = await this.sql.get<{ result: string; created_at: number }>(
      'SELECT result, created_at FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at > $3',
      [userId, key, since],
    );
    return row ? { result: JSON.parse(row.result) as RecordedSendResult, createdAt: row.created_at } : null;
  }
}
