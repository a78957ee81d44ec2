// The JSON success bodies of the send endpoints, built from what a send returns or what its
// idempotency record kept — one function each, so GET /sent?idempotency_key= answers a send's original
// body exactly as the send (or its replay) did.

import {
  formatGroupSendSuccess,
  messageJson,
  SEND_SUCCESS,
  type GroupSendResultJson,
  type SendResultJson,
} from '@openwechat/protocol';
import type { GroupSendResult, InboxPage, SendResult } from '../../store/types.ts';

const EMPTY: InboxPage = { total: 0, messages: [] };

export function sendResultJson(r: Pick<SendResult, 'outcome' | 'messageId' | 'preview'>): SendResultJson {
  const preview = r.preview ?? EMPTY;
  return {
    result: r.outcome,
    message: SEND_SUCCESS[r.outcome],
    message_id: r.messageId,
    inbox: { total: preview.total, preview: preview.messages.map(messageJson) },
  };
}

export function groupSendResultJson(
  r: Pick<GroupSendResult, 'group' | 'recipients' | 'copies' | 'preview'>,
): GroupSendResultJson {
  const preview = r.preview ?? EMPTY;
  return {
    result: 'group',
    message: formatGroupSendSuccess(r.group, r.recipients),
    group_id: r.group.id,
    recipients: r.recipients,
    ...(r.copies
      ? { copies: r.copies.map(([toId, messageId]) => ({ to_id: toId, message_id: messageId })) }
      : {}),
    inbox: { total: preview.total, preview: preview.messages.map(messageJson) },
  };
}
