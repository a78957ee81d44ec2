// Delivery receipts (docs/protocol.md, Receipts): what a sender can ask about its sent messages.
//   GET /sent/:to_id/:message_id      — the receipt of one message (accepted / delivered)
//   GET /sent?idempotency_key=<key>   — the send made with that key: its original result and receipt(s)
// Receipts themselves are recorded by the store when a message leaves its recipient's inbox
// (acknowledge.ts, readInbox, the legacy streams' settle) and pushed to the sender's JSON streams.
// Text mode answers one line per receipt (our addition; the reference has neither endpoint).

import {
  receiptJson,
  RelayError,
  SentPath,
  SentQuery,
  type ReceiptJson,
  type ReceiptView,
  type SentByKeyJson,
} from '@openwechat/protocol';
import type { MessagingStore, UserRecord } from '../../store/types.ts';
import { fromSchema, type Issues } from '../input.ts';
import type { Output, StoreCtx } from '../route.ts';
import { IDEMPOTENCY_WINDOW_MS } from './messaging.ts';
import { groupSendResultJson, sendResultJson } from './send-results.ts';

type AuthedCtx = StoreCtx<MessagingStore> & { user: UserRecord };

/** `delivered message_id=17 to_id=2 at=…` / `accepted message_id=17 to_id=2` (+ ` group_id=…`). */
function receiptLine(r: ReceiptJson): string {
  const group = r.group_id === null ? '' : ` group_id=${r.group_id}`;
  return `${r.state} message_id=${r.message_id} to_id=${r.to_id}${group}${r.at ? ` at=${r.at}` : ''}`;
}

export function parseSentPath(req: { params: unknown }, issues: Issues): { toId: number; messageId: number } {
  const p = fromSchema(issues, 'path', SentPath, req.params as Record<string, unknown>);
  return { toId: p.to_id ?? 0, messageId: p.message_id ?? 0 };
}

/** GET /sent/:to_id/:message_id: only the sender sees a receipt; anyone else gets receipt_not_found. */
export async function sentReceipt(
  ctx: AuthedCtx,
  input: { toId: number; messageId: number },
): Promise<Output> {
  const r = await ctx.services.store.getReceipt(ctx.user.id, input.toId, input.messageId);
  if (!r) throw new RelayError('receipt_not_found');
  const receipt = receiptJson(r);
  return { text: receiptLine(receipt), json: { receipt } };
}

export function parseSentQuery(req: { query: unknown }, issues: Issues): { key: string } {
  const q = fromSchema(issues, 'query', SentQuery, req.query as Record<string, unknown>);
  return { key: q.idempotency_key ?? '' };
}

/**
 * GET /sent?idempotency_key=: the caller's send with this key within the idempotency window — what an
 * agent runtime that crashed mid-send asks before sending again. A private send has one receipt
 * (null when the message is no longer known: expired, or delivered to a recipient who blocked the
 * caller); a group send has one per member's copy in `receipts`, and `receipt` is null.
 */
export async function sentByKey(ctx: AuthedCtx, input: { key: string }): Promise<Output> {
  const { store, now } = ctx.services;
  const found = await store.getIdempotentSend(ctx.user.id, input.key, now() - IDEMPOTENCY_WINDOW_MS);
  if (!found) throw new RelayError('send_not_found');
  const recorded = found.result;
  let json: SentByKeyJson;
  if (recorded.group !== undefined) {
    const copies = recorded.copies ?? [];
    const receipts = await Promise.all(
      copies.map(([toId, messageId]) => store.getReceipt(ctx.user.id, toId, messageId)),
    );
    json = {
      key: input.key,
      result: groupSendResultJson(recorded),
      receipt: null,
      receipts: receipts.filter((r): r is ReceiptView => r !== null).map(receiptJson),
    };
  } else {
    const r =
      recorded.toId === undefined || recorded.messageId === 0
        ? null
        : await store.getReceipt(ctx.user.id, recorded.toId, recorded.messageId);
    json = { key: input.key, result: sendResultJson(recorded), receipt: r ? receiptJson(r) : null };
  }
  const lines = [`sent key=${input.key} result=${json.result.result}`];
  if (json.receipt) lines.push(receiptLine(json.receipt));
  for (const r of json.receipts ?? []) lines.push(receiptLine(r));
  return { text: lines.join('\n'), json };
}
