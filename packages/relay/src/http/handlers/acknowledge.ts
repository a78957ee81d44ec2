// Acknowledgement by id, shared by the three ways a client acks (resume stream, GET /messages?after=,
// POST /messages/ack): delete every message ≤ upTo from the caller's inbox, and notice a client that
// claims ids this inbox never issued.

import type { MessagingStore, UserRecord } from '../../store/types.ts';
import type { StoreCtx } from '../route.ts';

export async function acknowledge(
  ctx: StoreCtx<MessagingStore> & { user: UserRecord },
  upTo: number,
  via: 'stream' | 'after' | 'ack',
): Promise<{ acked: number; lastId: number }> {
  const { store, metrics } = ctx.services;
  const acked = await store.ackInbox(ctx.user.id, upTo);
  metrics.messagesAcknowledged.inc(acked);
  const lastId = await store.lastMessageId(ctx.user.id);
  if (upTo > lastId) {
    // Ids went back in time (a backup restored without advance-ids, or a client that knew another
    // relay): the next messages get ids the client believes it has seen, so it acks them unseen and
    // id-deduping clients drop them. The operator can fix it; the client cannot tell.
    ctx.req.log.warn(
      { userId: ctx.user.id, upTo, lastId, via },
      'client acknowledges message ids this inbox never issued; after restoring a backup run `npm run admin -- advance-ids`',
    );
  }
  return { acked, lastId };
}
