import { describe, expect, it } from 'vitest';
import type { FriendshipRecord, GroupRecord, UserRecord } from './records.ts';
import {
  decideAddMembers,
  decideCreateGroup,
  decideDissolve,
  decideGroupSend,
  decideRemoveMember,
  decideUpdateGroup,
  mentionedMembers,
  type Candidate,
  type Membership,
} from './groups.ts';

const T = 1_772_000_000_000;
const LIMITS = { maxMembers: 4, maxGroupsPerUser: 3 };

const user = (id: number, name: string, status: UserRecord['status'] = 'open'): UserRecord => ({
  id,
  name,
  nameKey: name,
  description: null,
  status,
  createdAt: T,
  lastSeenAt: null,
  disabledAt: null,
});

const friends = (
  a: number,
  b: number,
  status: FriendshipRecord['status'] = 'accepted',
): FriendshipRecord => ({
  userA: Math.min(a, b),
  userB: Math.max(a, b),
  initiatedBy: a,
  status,
  blockedBy: null,
  createdAt: T,
  updatedAt: T,
});

const candidate = (id: number, o: Partial<Candidate> = {}): Candidate => ({
  id,
  user: user(id, `u${id}`),
  friendship: friends(1, id),
  isMember: false,
  groupCount: 0,
  ...o,
});

const group: GroupRecord = {
  id: 7,
  name: '项目组',
  description: null,
  ownerId: 1,
  createdAt: T,
  dissolvedAt: null,
};
const as = (role: Membership['role'], g: GroupRecord | null = group): Membership => ({ group: g, role });

describe('mentions', () => {
  const members = [
    { id: 1, name: 'bob' },
    { id: 2, name: 'bobby' },
    { id: 3, name: '小明' },
    { id: 4, name: 'a b' },
  ];
  const m = (content: string, ids: number[] = [], sender = 9) =>
    [...mentionedMembers(content, members, ids, sender)].sort();

  it('an @name ends at whitespace, U+2005, punctuation or the end', () => {
    expect(m('@bob hi')).toEqual([1]);
    expect(m('@bobby')).toEqual([2]);
    expect(m('hi @小明，在吗')).toEqual([3]);
    expect(m('@小明\u2005在吗')).toEqual([3]);
    expect(m('@a b: x')).toEqual([4]);
    expect(m('@bob.@bobby!')).toEqual([1, 2]);
    expect(m('@bobx @小明明 bob @ bob')).toEqual([]);
    expect(m('no mentions')).toEqual([]);
  });

  it('mention_ids name members; others and the sender are ignored', () => {
    expect(m('x', [2, 99, 1, 2])).toEqual([1, 2]);
    expect(m('@bob', [1], 1)).toEqual([]);
  });
});

describe('adding members', () => {
  it('friends of the owner only, reachable, within both limits; all or nothing in the order asked', () => {
    expect(
      decideAddMembers({
        memberCount: 1,
        candidates: [candidate(2), candidate(3), candidate(2)],
        limits: LIMITS,
      }),
    ).toEqual([2, 3]);
    const refused = (c: Candidate) => () =>
      decideAddMembers({ memberCount: 1, candidates: [candidate(2), c], limits: LIMITS });
    expect(refused(candidate(3, { user: null }))).toThrow(
      expect.objectContaining({ code: 'user_not_found' }),
    );
    expect(refused(candidate(3, { isMember: true }))).toThrow(
      expect.objectContaining({ code: 'already_member' }),
    );
    expect(refused(candidate(3, { friendship: null }))).toThrow(
      expect.objectContaining({ code: 'not_friends_of_owner' }),
    );
    expect(refused(candidate(3, { friendship: friends(1, 3, 'pending') }))).toThrow(
      expect.objectContaining({ code: 'not_friends_of_owner' }),
    );
    expect(refused(candidate(3, { user: user(3, 'u3', 'do_not_disturb') }))).toThrow(
      expect.objectContaining({ code: 'recipient_dnd' }),
    );
    expect(
      decideAddMembers({
        memberCount: 1,
        candidates: [candidate(3, { user: user(3, 'u3', 'friends_only') })],
        limits: LIMITS,
      }),
    ).toEqual([3]);
    expect(refused(candidate(3, { groupCount: 3 }))).toThrow(
      expect.objectContaining({ code: 'too_many_groups', detail: '加入的群组数量已达上限（最多 3 个）' }),
    );
    // The size is checked first.
    expect(() =>
      decideAddMembers({
        memberCount: 3,
        candidates: [candidate(2, { user: null }), candidate(3)],
        limits: LIMITS,
      }),
    ).toThrow(expect.objectContaining({ code: 'group_full', detail: '群组成员已达上限（最多 4 人）' }));
  });

  it('creating counts the owner’s groups too', () => {
    expect(() => decideCreateGroup({ ownerGroupCount: 3, candidates: [], limits: LIMITS })).toThrow(
      expect.objectContaining({ code: 'too_many_groups' }),
    );
    expect(decideCreateGroup({ ownerGroupCount: 2, candidates: [candidate(2)], limits: LIMITS })).toEqual([
      2,
    ]);
  });
});

describe('removing, leaving, updating, dissolving', () => {
  it('applies the owner and membership rules', () => {
    const remove = (actor: Membership, actorId: number, targetId: number, targetRole: Membership['role']) =>
      decideRemoveMember({ actor, actorId, targetId, targetRole, now: T });
    expect(remove(as('member'), 2, 2, 'member')).toEqual({ left: true, notices: [] });
    expect(() => remove(as('owner'), 1, 1, 'owner')).toThrow(
      expect.objectContaining({ code: 'owner_cannot_leave' }),
    );
    expect(() => remove(as(null), 5, 5, null)).toThrow(expect.objectContaining({ code: 'group_not_found' }));
    expect(() => remove(as('member'), 2, 3, 'member')).toThrow(
      expect.objectContaining({ code: 'not_group_owner' }),
    );
    expect(() => remove(as('owner'), 1, 3, null)).toThrow(
      expect.objectContaining({ code: 'not_group_member' }),
    );
    expect(remove(as('owner'), 1, 3, 'member')).toEqual({
      left: false,
      notices: [
        {
          toId: 3,
          fromId: null,
          type: 'system',
          content: '你已被移出群组 项目组（群ID:7）',
          attachment: null,
          createdAt: T,
        },
      ],
    });
    expect(() => remove(as('member', { ...group, dissolvedAt: T }), 2, 2, 'member')).toThrow(
      expect.objectContaining({ code: 'group_not_found' }),
    );

    expect(() =>
      decideUpdateGroup({ actor: as('owner'), actorId: 1, newOwnerId: 3, newOwnerRole: null }),
    ).toThrow(expect.objectContaining({ code: 'not_group_member' }));
    expect(decideUpdateGroup({ actor: as('owner'), actorId: 1, newOwnerId: 1, newOwnerRole: null })).toBe(
      group,
    );
    expect(
      decideDissolve({ actor: as('owner'), memberIds: [1, 2, 3], now: T }).map((n) => [n.toId, n.content]),
    ).toEqual([
      [2, '群组 项目组（群ID:7）已被群主解散'],
      [3, '群组 项目组（群ID:7）已被群主解散'],
    ]);
  });
});

describe('group send', () => {
  it('one group message per other member, flagged when mentioned; members only', () => {
    const sender = user(2, 'u2');
    const members = [
      { id: 1, name: 'owner' },
      { id: 2, name: 'u2' },
      { id: 3, name: 'u3' },
    ];
    const d = decideGroupSend({
      sender,
      membership: as('member'),
      members,
      content: '@u3 hi',
      attachment: null,
      mentionIds: [],
      now: T,
    });
    expect(d).toEqual({
      group: { id: 7, name: '项目组' },
      messages: [1, 3].map((toId) => ({
        toId,
        fromId: 2,
        type: 'group',
        content: '@u3 hi',
        attachment: null,
        createdAt: T,
        groupId: 7,
        mentioned: toId === 3,
      })),
    });
    expect(() =>
      decideGroupSend({
        sender,
        membership: as(null),
        members,
        content: 'x',
        attachment: null,
        mentionIds: [],
        now: T,
      }),
    ).toThrow(expect.objectContaining({ code: 'group_not_found' }));
  });
});
