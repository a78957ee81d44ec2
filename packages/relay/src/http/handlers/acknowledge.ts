// Acknowledgement by id, shared by the three ways a client acks (resume stream, GET /messages?after=,
// POST /messages/ack): delete every message ≤ upTo from the caller's inbox (recording and publishing the
// receipts of what it deletes), and notice a client that claims ids this inbox never issued.

import type { ReceiptView } from '@openwechat/protocol';
import type { Delivery, MessagingStore, UserRecord } from '../../store/types.ts';
import type { RelayServices, StoreCtx } from '../route.ts';

/** A Delivery (the store records receipts into it) at the relay's clock. */
export function delivery(services: Pick<RelayServices, 'now'>): Delivery {
  return { at: services.now(), receipts: [] };
}

/**
 * After the commit that recorded them: receipts go to their senders' JSON-mode streams, here (hub) and
 * on other instances (bus).
 */
export function publishReceipts(ctx: StoreCtx<unknown>, receipts: readonly ReceiptView[]): void {
  if (receipts.length === 0) return;
  const { hub, bus } = ctx.services;
  hub.deliverReceipts(receipts);
  bus?.announceReceipts(receipts).catch((err) => ctx.req.log.warn({ err }, 'receipt announce failed'));
}

export async function acknowledge(
  ctx: StoreCtx<MessagingStore> & { user: UserRecord },
  upTo: number,
  via: 'stream' | 'after' | 'ack',
): Promise<{ acked: number; lastId: number }> {
  const { store, metrics } = ctx.services;
  const d = delivery(ctx.services);
  const acked = await store.ackInbox(ctx.user.id, upTo, d);
  metrics.messagesAcknowledged.inc(acked);
  publishReceipts(ctx, d.receipts);
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
