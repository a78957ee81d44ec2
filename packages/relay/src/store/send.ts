// The private send, written once for both backends (steps.ts): lock → replay? → read → decide → write →
// record. The rules are domain/send.ts's decideSend, imported here as the group skeleton imports its
// own; a caller may pass a stricter decision (a refused upload replays or refuses). PostgreSQL's batched
// chat path (postgres-send-chat.ts) decides with the same sendState() and rules, and falls back to this.

import { RelayError } from '@openwechat/protocol';
import { decideSend, type SendDecision, type SendState } from '../domain/send.ts';
import type { MessageTx, SendTx } from './dialect.ts';
import { joinedFrom, pair, replayOf, toMessage } from './rows.ts';
import { step, type Op } from './steps.ts';
import type {
  FriendshipRecord,
  InboxMessage,
  RecordedSend,
  SendOptions,
  SendRequest,
  SendResult,
  UserRecord,
} from './types.ts';

export type Decide = (state: SendState) => SendDecision;

/** What the rules decide a send on. */
export function sendState(
  req: SendRequest,
  sender: UserRecord,
  recipient: UserRecord | null,
  friendship: FriendshipRecord | null,
): SendState {
  return {
    sender,
    recipient,
    friendship,
    content: req.content,
    attachment: req.attachment,
    ...(req.e2e ? { e2e: req.e2e } : {}),
    now: req.now,
  };
}

/** The recorded result of an earlier request with this key, if it is to be replayed (replayOf). */
export function* replayed<T>(
  t: MessageTx,
  userId: number,
  idem: SendOptions['idempotency'],
  now: number,
): Op<ReturnType<typeof replayOf<T>>> {
  if (!idem) return null;
  return replayOf<T>(yield* step(t.idempotencyRecord(userId, idem.key)), idem, now);
}

// The records a send returns are built with Object.assign, not `{ ...a, b }`: V8 11 (Node 20) takes a
// slow path for a spread followed by more properties, about a microsecond each (issue 26).

/** The sender's preview (when asked for) and the idempotency record (when keyed), both in the transaction. */
export function* recordSend<R extends { preview: unknown }>(
  t: MessageTx,
  fromId: number,
  opts: SendOptions,
  now: number,
  recorded: Omit<R, 'preview'>,
): Op<R> {
  const preview = opts.previewLimit ? yield* step(t.peek(fromId, opts.previewLimit)) : null;
  const result = Object.assign({}, recorded, { preview }) as R;
  if (opts.idempotency) yield* step(t.recordIdempotency(fromId, opts.idempotency, result, now));
  return result;
}

export function* sendOp(
  t: SendTx,
  req: SendRequest,
  opts: SendOptions,
  decide: Decide = decideSend,
): Op<SendResult> {
  // Both user rows first (PostgreSQL: in id order): serialises this pair, this sender and this inbox,
  // and two requests with one Idempotency-Key (the second then reads the first's record).
  const users = yield* step(t.lockUsers([req.fromId, req.toId], req.sender));
  const replay = yield* replayed<RecordedSend>(t, req.fromId, opts.idempotency, req.now);
  if (replay) return replay;
  const sender = users.get(req.fromId);
  // The caller authenticated the sender; a missing row means its account is gone.
  if (!sender) throw new RelayError('invalid_token');
  const recipient = users.get(req.toId) ?? null;
  // Held too: block() on this pair waits for this send (or it for block), never interleaves.
  const friendship =
    recipient && recipient.id !== sender.id ? yield* step(t.friendship(sender.id, recipient.id)) : null;
  const decision = decide(sendState(req, sender, recipient, friendship));

  const change = decision.friendship;
  if (change.op !== 'none') {
    if (!recipient) throw new Error('send decision changes a friendship without a recipient');
    const [a, b] = pair(sender.id, recipient.id);
    if (change.op === 'create_pending') yield* step(t.insertPending(a, b, change.initiatedBy, req.now));
    else if (!(yield* step(t.accept(a, b, req.now)))) {
      throw new Error('send decision accepts a friendship that does not exist');
    }
  }

  const delivered: InboxMessage[] = [];
  for (const m of decision.messages) {
    const stored = yield* step(t.insert(m));
    const from = m.fromId === null ? null : (users.get(m.fromId) ?? (yield* step(t.user(m.fromId))));
    delivered.push(toMessage(Object.assign({}, stored, joinedFrom(from))));
  }
  const recorded = yield* recordSend<RecordedSend>(t, req.fromId, opts, req.now, {
    outcome: decision.outcome,
    messageId: delivered[0]?.id ?? 0,
    toId: delivered[0]?.toId ?? req.toId,
  });
  // Last: the shard row (PostgreSQL) is held only for the commit, and a send counts once it cannot fail.
  yield* step(t.countStored(delivered.length, req.toId));
  return Object.assign({}, recorded, { delivered, replayed: false as const });
}
