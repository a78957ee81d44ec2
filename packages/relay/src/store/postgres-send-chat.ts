// The PostgreSQL send path between friends in two round trips instead of a seven-statement transaction
// (docs/benchmarks.md, "PostgreSQL at PostgreSQL's speed"): read the state without locks (sender,
// recipient, friendship and the sender's preview in one statement), decide in JavaScript with the same
// pure function as every other path (domain/send.ts), then write with owc_send_chat() (migration 7),
// which takes the locks the locked path takes, checks that what the decision read still holds and
// stores the message — or answers NULL, and the relay reads and decides again.
//
// Only the steady state takes this path: an accepted friendship and a decision to store one chat
// message for the recipient, without an Idempotency-Key. Everything else — a first message, a reply
// that accepts, a refusal's aftermath, keyed sends (their record must commit with the message) — takes
// the locked transaction (postgres-messaging.ts). Both commit the message before the sender hears
// success; ids stay in commit order per inbox (the recipient's row lock is held to the commit).

import type pg from 'pg';
import { RelayError } from '@openwechat/protocol';
import type { SendDecision, SendState } from '../domain/send.ts';
import { MESSAGE_COUNTER_SHARDS } from './postgres-migrations.ts';
import { decodeText, encodeText } from './postgres-text.ts';
import {
  joinedFrom,
  MESSAGE_SELECT,
  messageFields,
  pair,
  toFriendship,
  toMessage,
  toUser,
  USER_COLUMNS,
  type FriendshipRow,
  type MessageRow,
  type UserRow,
} from './rows.ts';
import type { SendOptions, SendRequest, SendResult } from './types.ts';

/** Reads before giving up on the fast path for this send (the locked path then settles it). */
const ATTEMPTS = 3;

interface StateRow {
  sender: UserRow | null;
  recipient: UserRow | null;
  friendship: FriendshipRow | null;
  preview_total: number | null;
  preview: MessageRow[] | null;
}

const READ_STATE = `SELECT
  (SELECT row_to_json(u) FROM (SELECT ${USER_COLUMNS} FROM users WHERE id = $1) u) AS sender,
  (SELECT row_to_json(u) FROM (SELECT ${USER_COLUMNS} FROM users WHERE id = $2) u) AS recipient,
  (SELECT row_to_json(f) FROM (SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at
     FROM friendships WHERE user_a = $3 AND user_b = $4) f) AS friendship,
  CASE WHEN $5::int > 0 THEN (SELECT count(*) FROM messages WHERE to_id = $1) END AS preview_total,
  CASE WHEN $5::int > 0 THEN (SELECT json_agg(p ORDER BY p.id)
     FROM (${MESSAGE_SELECT} WHERE m.to_id = $1 ORDER BY m.id LIMIT $5) p) END AS preview`;

const WRITE = `SELECT owc_send_chat($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
  $17, $18, $19, $20, $21, $22, $23, $24, $25) AS id`;

/**
 * The send, if it is a chat between friends; null when it must take the locked path (nothing was
 * written then). A refusal the decision makes is thrown as from the locked path.
 */
export async function sendChat(
  pool: pg.Pool,
  req: SendRequest,
  decide: (state: SendState) => SendDecision,
  opts: SendOptions,
): Promise<SendResult | null> {
  if (opts.idempotency || req.fromId === req.toId) return null;
  if (!Number.isSafeInteger(req.fromId) || !Number.isSafeInteger(req.toId)) return null;
  const [a, b] = pair(req.fromId, req.toId);
  const previewLimit = opts.previewLimit ?? 0;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const row = (await pool.query<StateRow>(READ_STATE, [req.fromId, req.toId, a, b, previewLimit])).rows[0]!;
    if (!row.sender || !row.recipient || !row.friendship) return null;
    const sender = toUser(row.sender);
    const recipient = toUser(row.recipient);
    const friendship = toFriendship(row.friendship);
    // Any other friendship is about to change (or refuses): the locked path decides it.
    if (friendship.status !== 'accepted') return null;
    let decision: SendDecision;
    try {
      decision = decide({
        sender,
        recipient,
        friendship,
        content: req.content,
        attachment: req.attachment,
        now: req.now,
      });
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
      m.mentioned
    ) {
      return null;
    }
    const f = messageFields(m, encodeText);
    const stored = await pool.query<{ id: number | null }>(WRITE, [
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
      f.type,
      f.content,
      f.attachment_name,
      f.file_id,
      f.file_size,
      f.file_type,
      f.file_expires_at,
      f.created_at,
      recipient.id % MESSAGE_COUNTER_SHARDS,
    ]);
    const id = stored.rows[0]?.id ?? null;
    if (id === null) continue; // the state moved between the read and the write: decide again
    const delivered = [
      toMessage({ ...f, to_id: recipient.id, id, mentioned: false, ...joinedFrom(sender) }, decodeText),
    ];
    return {
      outcome: decision.outcome,
      messageId: id,
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
