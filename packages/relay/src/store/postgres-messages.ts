// What every PostgreSQL area that stores messages shares (private sends, group sends, group notices):
// locking user rows in id order, the insert of one message or of a fan-out run, the lifetime counter,
// the inbox preview and the idempotency records. Text columns go through encodeText (postgres-text.ts).

import type pg from 'pg';
import type { GroupRef } from '@openwechat/protocol';
import { fanOutRuns } from './fan-out.ts';
import type { Queryable } from './postgres-connection.ts';
import { MESSAGE_COUNTER_SHARDS } from './postgres-migrations.ts';
import { decodeText, encodeText } from './postgres-text.ts';
import {
  joinedFrom,
  MESSAGE_SELECT,
  messageFields,
  replayOf,
  toMessage,
  toUser,
  USER_COLUMNS,
  type IdempotencyRow,
  type MessageRow,
  type StoredMessageRow,
  type UserRow,
} from './rows.ts';
import type { InboxMessage, InboxPage, NewMessage, SendOptions, UserRecord } from './types.ts';

/** Locks these users' rows in id order; returns the ones that exist. */
export async function lockUsers(c: pg.PoolClient, ids: readonly number[]): Promise<Map<number, UserRecord>> {
  const wanted = [...new Set(ids)].filter(Number.isSafeInteger).sort((x, y) => x - y);
  if (wanted.length === 0) return new Map();
  const { rows } = await c.query<UserRow>(
    `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE`,
    [wanted],
  );
  return new Map(rows.map((r) => [r.id, toUser(r)]));
}

/** The recorded result of an earlier request with this Idempotency-Key, if it is to be replayed (replayOf). */
export async function replayOfKey<R>(
  c: pg.PoolClient,
  userId: number,
  idem: NonNullable<SendOptions['idempotency']>,
  now: number,
): Promise<ReturnType<typeof replayOf<R>>> {
  const prior = (
    await c.query<IdempotencyRow>(
      'SELECT fingerprint, result, created_at FROM idempotency_keys WHERE user_id = $1 AND key = $2',
      [userId, idem.key],
    )
  ).rows[0];
  return replayOf<R>(prior, idem, now);
}

export async function recordIdempotency(
  c: pg.PoolClient,
  userId: number,
  idem: { key: string; fingerprint: string },
  result: unknown,
  now: number,
): Promise<void> {
  await c.query(
    `INSERT INTO idempotency_keys (user_id, key, fingerprint, result, created_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (user_id, key) DO UPDATE
       SET fingerprint = EXCLUDED.fingerprint, result = EXCLUDED.result, created_at = EXCLUDED.created_at`,
    [userId, idem.key, idem.fingerprint, JSON.stringify(result), now],
  );
}

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

/** Stores one message in its recipient's inbox with the recipient's next id (one statement). */
export async function insertMessage(c: pg.PoolClient, m: NewMessage): Promise<StoredMessageRow> {
  // As stored (encoded): toMessage(…, decodeText) decodes it like a row read back.
  const f = messageFields(m, encodeText);
  if (f.group_id !== null) throw new Error('group messages are stored with insertFanOut()');
  const r = await c.query<{ id: number }>(
    `WITH next AS (
       UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id = $1::bigint RETURNING last_msg_id
     )
     INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                           file_type, file_expires_at, created_at, e2e)
     SELECT $1::bigint, next.last_msg_id, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::bigint,
            $8::text, $9::bigint, $10::bigint, $11::text
     FROM next RETURNING id`,
    [
      m.toId,
      f.from_id,
      f.type,
      f.content,
      f.attachment_name,
      f.file_id,
      f.file_size,
      f.file_type,
      f.file_expires_at,
      f.created_at,
      f.e2e,
    ],
  );
  const stored = r.rows[0];
  if (!stored) throw new Error(`message for unknown user ${m.toId}`);
  return { ...f, to_id: m.toId, id: stored.id, mentioned: m.mentioned ?? false };
}

/**
 * Stores messages that differ only in their recipient (and mention flag) — group copies, a group's
 * notices — with one statement per run of identical messages: the recipients' counters are advanced by
 * one set-based UPDATE … RETURNING and the rows inserted from it. Each recipient appears once per run.
 * The caller must already hold the recipients' user rows (locked in id order), so the UPDATE, whatever
 * order it visits them in, waits for nobody. Returns the stored rows in input order.
 */
export async function insertFanOut(
  c: pg.PoolClient,
  messages: readonly NewMessage[],
): Promise<StoredMessageRow[]> {
  const out: StoredMessageRow[] = [];
  for (const run of fanOutRuns(messages)) {
    const shared = messageFields(run[0]!, encodeText);
    const { rows } = await c.query<{ to_id: number; id: number }>(
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
        shared.from_id,
        shared.type,
        shared.content,
        shared.attachment_name,
        shared.file_id,
        shared.file_size,
        shared.file_type,
        shared.file_expires_at,
        shared.created_at,
        shared.group_id,
        run.filter((m) => m.mentioned).map((m) => m.toId),
        shared.e2e,
      ],
    );
    const idOf = new Map(rows.map((r) => [r.to_id, r.id]));
    for (const m of run) {
      const id = idOf.get(m.toId);
      if (id === undefined) throw new Error(`message for unknown user ${m.toId}`);
      out.push({ ...shared, to_id: m.toId, id, mentioned: m.mentioned ?? false });
    }
  }
  return out;
}

/** Stores fan-out messages (recipients locked); the caller counts them (countStored) last. */
export async function storeFanOut(
  c: pg.PoolClient,
  messages: readonly NewMessage[],
  from: UserRecord | null = null,
  group: GroupRef | null = null,
): Promise<InboxMessage[]> {
  if (messages.length === 0) return [];
  const joined = joinedFrom(from, group);
  return (await insertFanOut(c, messages)).map((r) => toMessage({ ...r, ...joined }, decodeText));
}

/**
 * Adds to the lifetime message count, on the shard of `key` (MESSAGE_COUNTER_SHARDS); last in a
 * transaction, so the shard row is held only for the commit.
 */
export async function countStored(c: pg.PoolClient, n: number, key: number): Promise<void> {
  if (n > 0) {
    await c.query('UPDATE message_counter SET total = total + $1 WHERE shard = $2', [
      n,
      key % MESSAGE_COUNTER_SHARDS,
    ]);
  }
}
