// What every PostgreSQL transaction that stores messages shares (private sends, group sends, group
// notices; MessageTx, dialect.ts): locking user rows in id order, the insert of one message or of a
// fan-out run, the lifetime counter, the inbox preview and the idempotency records. Text columns go
// through encodeText (postgres-text.ts).

import type pg from 'pg';
import { fanOutRuns, runRows } from './fan-out.ts';
import type { PgDb, Queryable } from './postgres-connection.ts';
import { MESSAGE_COUNTER_SHARDS } from './postgres-migrations.ts';
import { decodeText, encodeText } from './postgres-text.ts';
import {
  fieldParams,
  MESSAGE_SELECT,
  messageFields,
  toMessage,
  type MessageRow,
  type StoredMessageRow,
} from './rows.ts';
import { PgSql } from './sql.ts';
import { SqlTx } from './tx.ts';
import type { InboxPage, NewMessage } from './types.ts';

/** Total and oldest `limit` messages of an inbox, from one snapshot (one statement). */
export async function peek(db: Queryable, userId: number, limit: number): Promise<InboxPage> {
  const { rows } = await db.query<MessageRow & { total: number }>(
    `SELECT t.total, p.* FROM (SELECT count(*) AS total FROM messages WHERE to_id = $1) t
     LEFT JOIN LATERAL (${MESSAGE_SELECT} WHERE m.to_id = $1 ORDER BY m.id LIMIT $2) p ON true
     ORDER BY p.id`,
    [userId, limit],
  );
  return {
    total: rows[0]?.total ?? 0,
    messages: rows.filter((r) => r.id !== null).map((r) => toMessage(r, decodeText)),
  };
}

/**
 * The PostgreSQL side of the transaction dialect (dialect.ts), on one transaction's connection, over
 * the statements both backends share (tx.ts).
 */
export class PgTx extends SqlTx {
  protected readonly locksRows = true;

  constructor(
    readonly c: pg.PoolClient,
    db: PgDb,
  ) {
    super(new PgSql(db, c));
  }

  peek(userId: number, limit: number): Promise<InboxPage> {
    return peek(this.c, userId, limit);
  }

  /** One statement: the recipient's next id and the insert. The row returned holds the text as given. */
  async insert(m: NewMessage): Promise<StoredMessageRow> {
    const f = messageFields(m, encodeText);
    if (f.group_id !== null) throw new Error('group messages are stored with fanOut()');
    const r = await this.c.query<{ id: number }>(
      `WITH next AS (
         UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id = $1::bigint RETURNING last_msg_id
       )
       INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                             file_type, file_expires_at, created_at, e2e)
       SELECT $1::bigint, next.last_msg_id, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::bigint,
              $8::text, $9::bigint, $10::bigint, $11::text
       FROM next RETURNING id`,
      [m.toId, ...fieldParams(f), f.e2e],
    );
    const stored = r.rows[0];
    if (!stored) throw new Error(`message for unknown user ${m.toId}`);
    return { ...messageFields(m), to_id: m.toId, id: stored.id, mentioned: m.mentioned ?? false };
  }

  /**
   * One statement per run of identical messages (fan-out runs): the recipients' counters are advanced
   * by one set-based UPDATE … RETURNING and the rows inserted from it. The recipients' rows are held
   * already (locked in id order), so the UPDATE, whatever order it visits them in, waits for nobody.
   */
  async fanOut(messages: readonly NewMessage[]): Promise<StoredMessageRow[]> {
    const out: StoredMessageRow[] = [];
    for (const run of fanOutRuns(messages)) {
      const shared = messageFields(run[0]!, encodeText);
      const { rows } = await this.c.query<{ to_id: number; id: number }>(
        `WITH next AS (
           UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id = ANY($1::bigint[]) RETURNING id, last_msg_id
         )
         INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                               file_type, file_expires_at, created_at, group_id, mentioned, e2e)
         SELECT next.id, next.last_msg_id, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::bigint,
                $8::text, $9::bigint, $10::bigint, $11::bigint, next.id = ANY($12::bigint[]), $13::text
         FROM next RETURNING to_id, id`,
        [
          run.map((m) => m.toId),
          ...fieldParams(shared),
          shared.group_id,
          run.filter((m) => m.mentioned).map((m) => m.toId),
          shared.e2e,
        ],
      );
      // The rows hold the text as given (not encoded).
      out.push(...runRows(run, new Map(rows.map((r) => [r.to_id, r.id]))));
    }
    return out;
  }

  /**
   * On the shard of `key` (MESSAGE_COUNTER_SHARDS); last in a transaction, so the shard row is held
   * only for the commit.
   */
  async countStored(n: number, key: number): Promise<void> {
    if (n > 0) {
      await this.c.query('UPDATE message_counter SET total = total + $1 WHERE shard = $2', [
        n,
        key % MESSAGE_COUNTER_SHARDS,
      ]);
    }
  }
}
