// The PostgreSQL send path between friends in two round trips instead of a seven-statement transaction
// (docs/benchmarks.md, "PostgreSQL at PostgreSQL's speed"): read the state without locks (sender,
// recipient, friendship and the sender's preview in one statement), decide in JavaScript with the same
// pure function as every other path (domain/send.ts), then write with owc_send_chats() (migration 7),
// which takes the locks the locked path takes, checks that what the decision read still holds and
// stores the message — or answers NULL, and the relay reads and decides again. Writes that arrive in
// the same turn of the event loop go to the server together (ChatCommitter): one round trip and one
// commit (one WAL flush) for all of them, as the SQLite path batches its transactions.
//
// Only the steady state takes this path: an accepted friendship and a decision to store one chat
// message for the recipient, without an Idempotency-Key. Everything else — a first message, a reply
// that accepts, a refusal's aftermath, keyed sends (their record must commit with the message) — takes
// the locked transaction (postgres-messaging.ts). Both commit the message before the sender hears
// success; ids stay in commit order per inbox (the recipient's row lock is held to the commit).

import type pg from 'pg';
import { RelayError } from '@openwechat/protocol';
import { decideSend, type SendDecision } from '../domain/send.ts';
import { RoundTrips } from './postgres-connection.ts';
import { MESSAGE_COUNTER_SHARDS } from './postgres-migrations.ts';
import { decodeText, encodeText } from './postgres-text.ts';
import {
  fieldParams,
  FRIENDSHIP_COLUMNS,
  joinedFrom,
  MESSAGE_SELECT,
  messageFields,
  pair,
  toMessage,
  USER_COLUMNS,
  type MessageRow,
} from './rows.ts';
import { sendState, type Decide } from './send.ts';
import type { FriendshipRecord, SendOptions, SendRequest, SendResult, UserRecord } from './types.ts';

/** Reads before giving up on the fast path for this send (the locked path then settles it). */
const ATTEMPTS = 3;

interface StateRow {
  sender: UserRecord | null;
  recipient: UserRecord | null;
  friendship: FriendshipRecord | null;
  preview_total: number | null;
  preview: MessageRow[] | null;
}

const READ_STATES = `SELECT
  (SELECT row_to_json(u) FROM (SELECT ${USER_COLUMNS} FROM users WHERE id = q.f) u) AS sender,
  (SELECT row_to_json(u) FROM (SELECT ${USER_COLUMNS} FROM users WHERE id = q.t) u) AS recipient,
  (SELECT row_to_json(fr) FROM (SELECT ${FRIENDSHIP_COLUMNS}
     FROM friendships WHERE user_a = q.a AND user_b = q.b) fr) AS friendship,
  CASE WHEN q.l > 0 THEN (SELECT count(*) FROM messages WHERE to_id = q.f) END AS preview_total,
  CASE WHEN q.l > 0 THEN (SELECT json_agg(p ORDER BY p.id)
     FROM (${MESSAGE_SELECT} WHERE m.to_id = q.f ORDER BY m.id LIMIT q.l) p) END AS preview
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::int[]) WITH ORDINALITY AS q (f, t, a, b, l, n)
  ORDER BY q.n`;

const WRITE = `SELECT t.id FROM unnest(owc_send_chats($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
  $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)) WITH ORDINALITY AS t (id, n) ORDER BY t.n`;

/** Failures after which nothing of a write batch was stored and each send may be decided again. */
function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === '40001' || code === '40P01';
}

interface StateQuery {
  from: number;
  to: number;
  a: number;
  b: number;
  previewLimit: number;
}

/** The state reads and the writes of one instance's chat sends, each batched per turn of the event loop. */
export class ChatCommitter {
  readonly reads: RoundTrips<StateQuery, StateRow>;
  readonly writes: RoundTrips<unknown[], number | null>;

  constructor(pool: pg.Pool) {
    this.reads = new RoundTrips(async (qs) => {
      const col = <K extends keyof StateQuery>(k: K) => qs.map((q) => q[k]);
      const { rows } = await pool.query<StateRow>(READ_STATES, [
        col('from'),
        col('to'),
        col('a'),
        col('b'),
        col('previewLimit'),
      ]);
      return rows;
    });
    // A write batch is one transaction: when it fails as a whole with a transient error, every send in
    // it is decided again (nothing was stored); any other failure fails them all.
    this.writes = new RoundTrips(
      async (jobs) => {
        const columns = jobs[0]!.map((_, k) => jobs.map((j) => j[k]));
        const shard = Number(jobs[0]![0]) % MESSAGE_COUNTER_SHARDS;
        const { rows } = await pool.query<{ id: number | null }>(WRITE, [...columns, shard]);
        return rows.map((r) => r.id);
      },
      (err) => (isTransient(err) ? null : undefined),
    );
  }
}

/**
 * The send, if it is a chat between friends; null when it must take the locked path (nothing was
 * written then). A refusal the decision makes is thrown as from the locked path.
 */
export async function sendChat(
  committer: ChatCommitter,
  req: SendRequest,
  decide: Decide = decideSend,
  opts: SendOptions,
): Promise<SendResult | null> {
  // The batched write (owc_send_chats) has no ciphertext column: encrypted sends take the locked path.
  if (opts.idempotency || req.e2e || req.fromId === req.toId) return null;
  if (!Number.isSafeInteger(req.fromId) || !Number.isSafeInteger(req.toId)) return null;
  const [a, b] = pair(req.fromId, req.toId);
  const previewLimit = opts.previewLimit ?? 0;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const row = await committer.reads.submit({ from: req.fromId, to: req.toId, a, b, previewLimit });
    const { sender, recipient, friendship } = row;
    if (!sender || !recipient || !friendship) return null;
    // Any other friendship is about to change (or refuses): the locked path decides it.
    if (friendship.status !== 'accepted') return null;
    let decision: SendDecision;
    try {
      decision = decide(sendState(req, sender, recipient, friendship));
    } catch (err) {
      // A refusal is the answer; anything else is the locked path's to retry or report.
      if (err instanceof RelayError) throw err;
      return null;
    }
    const m = decision.messages[0];
    if (
      decision.friendship.op !== 'none' ||
      decision.messages.length !== 1 ||
      !m ||
      m.toId !== recipient.id ||
      m.fromId !== sender.id ||
      (m.groupId ?? null) !== null ||
      m.mentioned ||
      m.e2e
    ) {
      return null;
    }
    const f = messageFields(m, encodeText);
    const id = await committer.writes.submit([
      recipient.id,
      sender.id,
      a,
      b,
      recipient.status,
      recipient.disabledAt,
      recipient.name,
      recipient.description,
      sender.status,
      sender.disabledAt,
      sender.name,
      sender.description,
      friendship.status,
      friendship.initiatedBy,
      friendship.blockedBy,
      friendship.updatedAt,
      ...fieldParams(f).slice(1),
    ]);
    if (id === null) continue; // the state moved between the read and the write: decide again
    const delivered = [
      toMessage({ ...f, to_id: recipient.id, id, mentioned: false, ...joinedFrom(sender) }, decodeText),
    ];
    return {
      outcome: decision.outcome,
      messageId: id,
      toId: recipient.id,
      delivered,
      preview:
        previewLimit > 0
          ? {
              total: row.preview_total ?? 0,
              messages: (row.preview ?? []).map((r) => toMessage(r, decodeText)),
            }
          : null,
      replayed: false,
    };
  }
  return null;
}
