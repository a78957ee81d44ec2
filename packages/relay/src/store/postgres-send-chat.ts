// The PostgreSQL send path between friends in one round trip instead of a seven-statement transaction
// (docs/benchmarks.md, "PostgreSQL at PostgreSQL's speed"): take the state from what this instance last
// read (the sender as the request authenticated it, the recipient and the friendship from StateCache;
// one statement reads them on a miss), decide in JavaScript with the same pure function as every other
// path (domain/send.ts), then write with owc_send_chats2() (migration 11), which takes the locks the
// locked path takes, checks that what the decision read still holds, stores the message, reads the
// sender's preview and sends the wake-up in the same transaction — or answers NULL for that send, and
// the relay reads afresh and decides again. So a stale cache costs a retry, never a wrong answer; and
// nothing but a write is decided on cached state: a refusal or a detour to the locked path is decided
// again on a fresh read. Writes that arrive in the same turn of the event loop go to the server together
// (ChatCommitter): one round trip and one commit (one WAL flush) for all of them, as the SQLite path
// batches its transactions.
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
  messageFields,
  pair,
  toMessage,
  USER_COLUMNS,
  type MessageRow,
} from './rows.ts';
import { sendState, type Decide } from './send.ts';
import type {
  FriendshipRecord,
  NewMessage,
  SendOptions,
  SendRequest,
  SendResult,
  UserRecord,
} from './types.ts';

/** Fresh reads before giving up on the fast path for this send (the locked path then settles it). */
const ATTEMPTS = 3;
/** Entries of each StateCache map; past it the map starts again empty (no unbounded growth). */
const CACHE_SIZE = 10_000;

interface State {
  sender: UserRecord | null;
  recipient: UserRecord | null;
  friendship: FriendshipRecord | null;
}

const READ_STATES = `SELECT
  (SELECT row_to_json(u) FROM (SELECT ${USER_COLUMNS} FROM users WHERE id = q.f) u) AS sender,
  (SELECT row_to_json(u) FROM (SELECT ${USER_COLUMNS} FROM users WHERE id = q.t) u) AS recipient,
  (SELECT row_to_json(fr) FROM (SELECT ${FRIENDSHIP_COLUMNS}
     FROM friendships WHERE user_a = q.a AND user_b = q.b) fr) AS friendship
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS q (f, t, a, b, n)
  ORDER BY q.n`;

const WRITE = `SELECT msg_id, preview_total, preview FROM owc_send_chats2($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
  $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)`;

interface WriteRow {
  msg_id: number | null;
  preview_total: number | null;
  preview: MessageRow[] | null;
}

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
}

/**
 * The recipients and friendships this instance last read or wrote with. Only a hint: owc_send_chats2
 * compares each under lock with the database, and a send whose entry was stale is decided again on a
 * fresh read (which replaces the entry).
 */
class StateCache {
  private readonly users = new Map<number, UserRecord>();
  private readonly friendships = new Map<string, FriendshipRecord>();

  get(q: StateQuery, sender: UserRecord | undefined): State | null {
    const s = sender ?? this.users.get(q.from);
    const recipient = this.users.get(q.to);
    const friendship = this.friendships.get(`${q.a}:${q.b}`);
    return s && recipient && friendship ? { sender: s, recipient, friendship } : null;
  }

  set(q: StateQuery, state: State): void {
    this.users.delete(q.from);
    this.users.delete(q.to);
    this.friendships.delete(`${q.a}:${q.b}`);
    if (!state.sender || !state.recipient || !state.friendship) return;
    if (this.users.size >= CACHE_SIZE) this.users.clear();
    if (this.friendships.size >= CACHE_SIZE) this.friendships.clear();
    this.users.set(q.from, state.sender);
    this.users.set(q.to, state.recipient);
    this.friendships.set(`${q.a}:${q.b}`, state.friendship);
  }
}

/** Where the write sends its wake-up: the bus's channel and this instance's id (postgres-wake.ts). */
export interface ChatWake {
  channel: string;
  instanceId: string;
}

/** The state reads and the writes of one instance's chat sends, each batched per turn of the event loop. */
export class ChatCommitter {
  readonly cache = new StateCache();
  readonly reads: RoundTrips<StateQuery, State>;
  readonly writes: RoundTrips<unknown[], WriteRow | null>;

  constructor(
    pool: pg.Pool,
    readonly wake: ChatWake,
  ) {
    this.reads = new RoundTrips(async (qs) => {
      const col = <K extends keyof StateQuery>(k: K) => qs.map((q) => q[k]);
      const { rows } = await pool.query<State>(READ_STATES, [col('from'), col('to'), col('a'), col('b')]);
      return rows;
    });
    // A write batch is one transaction: when it fails as a whole with a transient error, every send in
    // it is decided again (nothing was stored); any other failure fails them all.
    this.writes = new RoundTrips(
      async (jobs) => {
        const columns = jobs[0]!.map((_, k) => jobs.map((j) => j[k]));
        const shard = Number(jobs[0]![0]) % MESSAGE_COUNTER_SHARDS;
        const { rows } = await pool.query<WriteRow>(WRITE, [
          ...columns,
          shard,
          wake.channel,
          `${wake.instanceId}:`,
        ]);
        return rows;
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
  // The batched write (owc_send_chats2) has no ciphertext column: encrypted sends take the locked path.
  if (opts.idempotency || req.e2e || req.fromId === req.toId) return null;
  if (!Number.isSafeInteger(req.fromId) || !Number.isSafeInteger(req.toId)) return null;
  const [a, b] = pair(req.fromId, req.toId);
  const q: StateQuery = { from: req.fromId, to: req.toId, a, b };
  const previewLimit = opts.previewLimit ?? 0;
  const { cache } = committer;
  // First from the cache (when it has all three); every further attempt on a fresh read.
  let state = cache.get(q, req.sender?.id === req.fromId ? req.sender : undefined);
  let fresh = false;
  for (let attempt = 0; attempt < ATTEMPTS;) {
    if (!state) {
      state = await committer.reads.submit(q);
      cache.set(q, state);
      fresh = true;
      attempt++;
    }
    const chat = decideChat(decide, req, state, fresh);
    state = null;
    // Whatever is not a chat between friends is decided on a fresh read, then by the locked path.
    if (!chat) {
      if (fresh) return null;
      continue;
    }
    const { decision, m, sender, recipient, friendship } = chat;
    const f = messageFields(m, encodeText);
    const written = await committer.writes.submit([
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
      previewLimit,
    ]);
    // The state moved since it was read (or the batch failed transiently): read and decide again.
    if (written?.msg_id == null) continue;
    const id = written.msg_id;
    return {
      outcome: decision.outcome,
      messageId: id,
      toId: recipient.id,
      delivered: [
        // Object.assign, not a spread followed by more properties (V8's slow path for that shape).
        toMessage(
          Object.assign(f, { to_id: recipient.id, id, mentioned: false }, joinedFrom(sender)),
          decodeText,
        ),
      ],
      preview:
        previewLimit > 0
          ? {
              total: written.preview_total ?? 0,
              messages: (written.preview ?? []).map((r) => toMessage(r, decodeText)),
            }
          : null,
      replayed: false,
      // Its NOTIFY left with the write's commit.
      woken: true,
    };
  }
  return null;
}

/**
 * The decision, if it is to store one chat message from sender to recipient; null otherwise. A refusal
 * is thrown only when decided on fresh state; on cached state it answers null (decide again afresh).
 */
function decideChat(
  decide: Decide,
  req: SendRequest,
  { sender, recipient, friendship }: State,
  fresh: boolean,
): {
  decision: SendDecision;
  m: NewMessage;
  sender: UserRecord;
  recipient: UserRecord;
  friendship: FriendshipRecord;
} | null {
  if (!sender || !recipient || friendship?.status !== 'accepted') return null;
  let decision: SendDecision;
  try {
    decision = decide(sendState(req, sender, recipient, friendship));
  } catch (err) {
    // A refusal is the answer; anything else is the locked path's to retry or report.
    if (fresh && err instanceof RelayError) throw err;
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
  return { decision, m, sender, recipient, friendship };
}
