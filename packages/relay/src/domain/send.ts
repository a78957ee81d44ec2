// The friendship state machine on send (docs/compat.md: POST /send, friendship and status rules), as a pure function.
// Store backends call decideSend() inside their transaction, so the decision and its effects commit
// together and concurrent sends cannot both create a pair's first row (reference W-4).

import {
  formatFriendshipNotice,
  RelayError,
  type AttachmentView,
  type UserStatus,
} from '@openwechat/protocol';
import type { FriendshipRecord, NewMessage, UserRecord } from './records.ts';

export interface SendState {
  sender: UserRecord;
  recipient: UserRecord | null;
  friendship: FriendshipRecord | null;
  content: string;
  attachment: AttachmentView | null;
  /** End-to-end ciphertext envelope, stored with the message as given. */
  e2e?: string | null;
  now: number;
}

export type FriendshipChange =
  { op: 'none' } | { op: 'create_pending'; initiatedBy: number } | { op: 'accept' };

export interface SendDecision {
  outcome: 'request' | 'accepted' | 'chat';
  friendship: FriendshipChange;
  /** Messages to store, in order. */
  messages: NewMessage[];
}

/**
 * Who may receive from whom. Fix of W-13: `friends_only` refuses strangers only, and a reply to a
 * pending request (the recipient asked for it) is never refused because of the initiator's status.
 */
function checkRecipientStatus(status: UserStatus, relation: 'stranger' | 'reply' | 'friend'): void {
  if (relation === 'reply') return;
  if (status === 'do_not_disturb') throw new RelayError('recipient_dnd');
  if (status === 'friends_only' && relation === 'stranger') throw new RelayError('recipient_friends_only');
}

export function decideSend(s: SendState): SendDecision {
  const { sender, recipient, friendship: f, now } = s;
  if (!recipient) throw new RelayError('user_not_found');
  if (recipient.id === sender.id) throw new RelayError('cannot_message_self');

  const message = (type: NewMessage['type']): NewMessage => ({
    toId: recipient.id,
    fromId: sender.id,
    type,
    content: s.content,
    attachment: s.attachment,
    createdAt: now,
    ...(s.e2e ? { e2e: s.e2e } : {}),
  });

  if (f?.status === 'blocked') {
    throw new RelayError(f.blockedBy === recipient.id ? 'blocked_by_recipient' : 'you_blocked_recipient');
  }
  if (!f) {
    checkRecipientStatus(recipient.status, 'stranger');
    return {
      outcome: 'request',
      friendship: { op: 'create_pending', initiatedBy: sender.id },
      messages: [message('friend_request')],
    };
  }
  if (f.status === 'pending') {
    // The one-message rule is checked before the recipient's status, as on the reference.
    if (f.initiatedBy === sender.id) throw new RelayError('request_pending');
    checkRecipientStatus(recipient.status, 'reply');
    // Reply accepts: the reply reaches the initiator as a chat (with its attachment: W-15 fix), then a
    // notice to each side. The reference stamps notices +1 s to sort them after the chat; our ids order
    // them instead, so the notices carry the real time.
    const notice = (toId: number, other: UserRecord): NewMessage => ({
      toId,
      fromId: null,
      type: 'system',
      content: formatFriendshipNotice(other, now),
      attachment: null,
      createdAt: now,
    });
    return {
      outcome: 'accepted',
      friendship: { op: 'accept' },
      messages: [message('chat'), notice(sender.id, recipient), notice(recipient.id, sender)],
    };
  }
  if (f.status === 'accepted') {
    checkRecipientStatus(recipient.status, 'friend');
    return { outcome: 'chat', friendship: { op: 'none' }, messages: [message('chat')] };
  }
  throw new RelayError('friendship_state_error');
}
