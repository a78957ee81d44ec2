// Receipts as the client hands them out (camelCase, UTC ms), from the relay's ReceiptJson.

import type { ReceiptJson } from '@openwechat/protocol';
import type { Receipt } from './types.ts';

export function receiptFromJson(j: ReceiptJson): Receipt {
  return {
    messageId: j.message_id,
    toId: j.to_id,
    groupId: j.group_id,
    state: j.state,
    at: j.at === null ? null : Date.parse(j.at),
  };
}
