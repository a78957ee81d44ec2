import { RelayError, type AttachmentView, type ErrorCode, type UserStatus } from '@openwechat/protocol';
import { describe, expect, it } from 'vitest';
import type { FriendshipRecord, NewMessage, UserRecord } from './records.ts';
import { decideSend, type SendState } from './send.ts';

// 2026-03-09 02:00:00 UTC = 10:00:00 Beijing time.
const NOW = Date.UTC(2026, 2, 9, 2, 0, 0);
const ALICE = 1; // the sender in every case
const BOB = 2; // the recipient

function userRec(id: number, name: string, status: UserStatus = 'open'): UserRecord {
  return {
    id,
    name,
    nameKey: name,
    description: null,
    status,
    createdAt: 0,
    lastSeenAt: null,
    disabledAt: null,
  };
}

function row(status: FriendshipRecord['status'], initiatedBy: number, blockedBy: number | null = null) {
  return {
    userA: ALICE,
    userB: BOB,
    initiatedBy,
    status,
    blockedBy,
    createdAt: NOW - 1000,
    updatedAt: NOW - 1000,
  } satisfies FriendshipRecord;
}

function state(
  recipientStatus: UserStatus | null,
  friendship: FriendshipRecord | null,
  extra: Partial<SendState> = {},
): SendState {
  return {
    sender: userRec(ALICE, 'alice'),
    recipient: recipientStatus === null ? null : userRec(BOB, 'bob', recipientStatus),
    friendship,
    content: 'hi',
    attachment: null,
    now: NOW,
    ...extra,
  };
}

function refusal(s: SendState): ErrorCode | 'none' {
  try {
    decideSend(s);
    return 'none';
  } catch (err) {
    expect(err).toBeInstanceOf(RelayError);
    return (err as RelayError).code;
  }
}

const STATUSES: UserStatus[] = ['open', 'friends_only', 'do_not_disturb'];

describe('decideSend refusals', () => {
  const cases: Array<[string, SendState, ErrorCode]> = [
    ['unknown recipient', state(null, null), 'user_not_found'],
    ['self', { ...state('open', null), recipient: userRec(ALICE, 'alice') }, 'cannot_message_self'],
    ...STATUSES.flatMap((st): Array<[string, SendState, ErrorCode]> => [
      [`blocked by recipient (${st})`, state(st, row('blocked', ALICE, BOB)), 'blocked_by_recipient'],
      [`blocked by sender (${st})`, state(st, row('blocked', BOB, ALICE)), 'you_blocked_recipient'],
      // The one-message rule comes before the recipient's status.
      [`second message while pending (${st})`, state(st, row('pending', ALICE)), 'request_pending'],
    ]),
    ['stranger to friends_only', state('friends_only', null), 'recipient_friends_only'],
    ['stranger to do_not_disturb', state('do_not_disturb', null), 'recipient_dnd'],
    ['friend to do_not_disturb', state('do_not_disturb', row('accepted', BOB)), 'recipient_dnd'],
    [
      'unknown friendship status',
      state('open', { ...row('accepted', ALICE), status: 'weird' as FriendshipRecord['status'] }),
      'friendship_state_error',
    ],
  ];

  it.each(cases)('%s → %s', (_label, s, code) => {
    expect(refusal(s)).toBe(code);
  });
});

describe('decideSend outcomes', () => {
  const attachment: AttachmentView = { name: 'a.pdf', fileId: 'f1', size: 3, contentType: 'application/pdf' };
  const chatTo = (type: NewMessage['type'], att: AttachmentView | null = null): NewMessage => ({
    toId: BOB,
    fromId: ALICE,
    type,
    content: 'hi',
    attachment: att,
    createdAt: NOW,
  });

  it.each(['open'] as const)('a stranger to an %s user sends a friend request', (st) => {
    expect(decideSend(state(st, null, { attachment }))).toEqual({
      outcome: 'request',
      friendship: { op: 'create_pending', initiatedBy: ALICE },
      messages: [chatTo('friend_request', attachment)],
    });
  });

  it.each(['open', 'friends_only'] as const)('a friend chats with a %s user', (st) => {
    for (const initiator of [ALICE, BOB]) {
      expect(decideSend(state(st, row('accepted', initiator), { attachment }))).toEqual({
        outcome: 'chat',
        friendship: { op: 'none' },
        messages: [chatTo('chat', attachment)],
      });
    }
  });

  it.each(STATUSES)('a reply to a %s initiator accepts: chat (attachment kept), then two notices', (st) => {
    const s = state(st, row('pending', BOB), { attachment });
    expect(decideSend(s)).toEqual({
      outcome: 'accepted',
      friendship: { op: 'accept' },
      messages: [
        chatTo('chat', attachment),
        {
          toId: ALICE,
          fromId: null,
          type: 'system',
          content: '您与 bob（ID:2）已成功建立好友关系。（2026-03-09 10:00:00 北京时间）',
          attachment: null,
          createdAt: NOW,
        },
        {
          toId: BOB,
          fromId: null,
          type: 'system',
          content: '您与 alice（ID:1）已成功建立好友关系。（2026-03-09 10:00:00 北京时间）',
          attachment: null,
          createdAt: NOW,
        },
      ],
    });
  });

  it('the sender’s own status never limits sending', () => {
    for (const own of STATUSES) {
      const s = state('open', null);
      s.sender = userRec(ALICE, 'alice', own);
      expect(decideSend(s).outcome).toBe('request');
      s.friendship = row('accepted', ALICE);
      expect(decideSend(s).outcome).toBe('chat');
    }
  });

  it('is pure: the state is not modified', () => {
    const s = state('open', row('pending', BOB), { attachment });
    const copy = structuredClone(s);
    decideSend(s);
    expect(s).toEqual(copy);
  });
});
