// The membership rules of group chats (docs/groups-api.md), as pure functions. Store backends call them
// inside the transaction that applies their effects, like decideSend(), so a rule and the change it
// allows commit together: two concurrent adds cannot both take the last free seat, a friendship blocked
// meanwhile is seen, and a member removed meanwhile gets no copy of a message.

import {
  formatGroupAddedNotice,
  formatGroupDissolvedNotice,
  formatGroupRemovedNotice,
  RelayError,
  type AttachmentView,
  type GroupRef,
  type GroupRole,
} from '@openwechat/protocol';
import type { FriendshipRecord, GroupRecord, NewMessage, UserRecord } from './records.ts';

/** MAX_GROUP_MEMBERS (owner included) and MAX_GROUPS_PER_USER (groups a user belongs to). */
export interface GroupLimits {
  maxMembers: number;
  maxGroupsPerUser: number;
}

export function groupFull(limits: GroupLimits): RelayError {
  return new RelayError('group_full', `群组成员已达上限（最多 ${limits.maxMembers} 人）`);
}

export function tooManyGroups(limits: GroupLimits): RelayError {
  return new RelayError('too_many_groups', `加入的群组数量已达上限（最多 ${limits.maxGroupsPerUser} 个）`);
}

/** A user the owner asks to add, with what the rules look at. */
export interface Candidate {
  id: number;
  user: UserRecord | null;
  /** The (owner, candidate) friendship row. */
  friendship: FriendshipRecord | null;
  /** Already a member of this group (the owner is). */
  isMember: boolean;
  /** Groups the candidate belongs to now. */
  groupCount: number;
}

/**
 * Who may join: accepted friends of the owner whose status lets the owner reach them (`do_not_disturb`
 * refuses; `friends_only` accepts friends, which they all are), within both limits. All or nothing: the
 * first refusal, in the order asked, is thrown. `memberCount` is the group's size now (owner included).
 * Returns the ids to add, each once, in the order asked.
 */
export function decideAddMembers(s: {
  memberCount: number;
  candidates: readonly Candidate[];
  limits: GroupLimits;
}): number[] {
  const seen = new Set<number>();
  const unique = s.candidates.filter((c) => !seen.has(c.id) && seen.add(c.id));
  if (s.memberCount + unique.filter((c) => !c.isMember).length > s.limits.maxMembers) {
    throw groupFull(s.limits);
  }
  for (const c of unique) {
    if (!c.user) throw new RelayError('user_not_found');
    if (c.isMember) throw new RelayError('already_member');
    if (c.friendship?.status !== 'accepted') throw new RelayError('not_friends_of_owner');
    if (c.user.status === 'do_not_disturb') throw new RelayError('recipient_dnd');
    if (c.groupCount >= s.limits.maxGroupsPerUser) throw tooManyGroups(s.limits);
  }
  return unique.map((c) => c.id);
}

/** Creating a group: the owner joins one more group; the initial members follow decideAddMembers. */
export function decideCreateGroup(s: {
  ownerGroupCount: number;
  candidates: readonly Candidate[];
  limits: GroupLimits;
}): number[] {
  if (s.ownerGroupCount >= s.limits.maxGroupsPerUser) throw tooManyGroups(s.limits);
  return decideAddMembers({ memberCount: 1, candidates: s.candidates, limits: s.limits });
}

const notice = (toId: number, content: string, now: number): NewMessage => ({
  toId,
  fromId: null,
  type: 'system',
  content,
  attachment: null,
  createdAt: now,
});

/** `你已被 <owner> 加入群组 …` for each new member. */
export function addedNotices(
  owner: { id: number; name: string },
  group: GroupRef,
  memberIds: readonly number[],
  now: number,
): NewMessage[] {
  const text = formatGroupAddedNotice(owner, group);
  return memberIds.map((id) => notice(id, text, now));
}

/** The acting user's view of a group: null when the group is gone or the user is not a member. */
export interface Membership {
  group: GroupRecord | null;
  /** The actor's role, null when not a member. */
  role: GroupRole | null;
}

function requireMember(m: Membership): GroupRecord {
  if (!m.group || m.group.dissolvedAt !== null || !m.role) throw new RelayError('group_not_found');
  return m.group;
}

function requireOwner(m: Membership): GroupRecord {
  const group = requireMember(m);
  if (m.role !== 'owner') throw new RelayError('not_group_owner');
  return group;
}

/** Owner-only operations (add members, update, dissolve) start here. */
export function decideOwnerAction(actor: Membership): GroupRecord {
  return requireOwner(actor);
}

/**
 * DELETE /groups/{gid}/members/{uid} and POST /groups/{gid}/leave. Removing oneself is leaving (not for
 * the owner); removing someone else is the owner's, and that member is told.
 */
export function decideRemoveMember(s: {
  actor: Membership;
  actorId: number;
  targetId: number;
  /** The target's role, null when not a member. */
  targetRole: GroupRole | null;
  now: number;
}): { left: boolean; notices: NewMessage[] } {
  if (s.targetId === s.actorId) {
    requireMember(s.actor);
    if (s.actor.role === 'owner') throw new RelayError('owner_cannot_leave');
    return { left: true, notices: [] };
  }
  const group = requireOwner(s.actor);
  if (!s.targetRole) throw new RelayError('not_group_member');
  return { left: false, notices: [notice(s.targetId, formatGroupRemovedNotice(group), s.now)] };
}

/** PATCH /groups/{gid}: the owner only; a new owner must be a member already. */
export function decideUpdateGroup(s: {
  actor: Membership;
  actorId: number;
  newOwnerId: number | undefined;
  newOwnerRole: GroupRole | null;
}): GroupRecord {
  const group = requireOwner(s.actor);
  if (s.newOwnerId !== undefined && s.newOwnerId !== s.actorId && !s.newOwnerRole) {
    throw new RelayError('not_group_member');
  }
  return group;
}

/** DELETE /groups/{gid}: the owner only; every other member is told. */
export function decideDissolve(s: {
  actor: Membership;
  memberIds: readonly number[];
  now: number;
}): NewMessage[] {
  const group = requireOwner(s.actor);
  const text = formatGroupDissolvedNotice(group);
  return s.memberIds.filter((id) => id !== group.ownerId).map((id) => notice(id, text, s.now));
}

// Characters after `@<name>` that end a mention: whitespace (U+2005 included), punctuation, the end.
const MENTION_END = /[\s\p{P}]/u;

/**
 * Who a group message mentions: the ids in `mentionIds` that are members, and every member whose name
 * follows an `@` and ends at whitespace, U+2005, punctuation or the end of the content. The sender never
 * mentions itself.
 */
export function mentionedMembers(
  content: string,
  members: ReadonlyArray<{ id: number; name: string }>,
  mentionIds: readonly number[],
  senderId: number,
): Set<number> {
  const ids = new Set(members.map((m) => m.id));
  const out = new Set(mentionIds.filter((id) => ids.has(id) && id !== senderId));
  if (!content.includes('@')) return out;
  for (const m of members) {
    if (m.id === senderId || out.has(m.id) || !m.name) continue;
    const needle = `@${m.name}`;
    for (let at = content.indexOf(needle); at >= 0; at = content.indexOf(needle, at + 1)) {
      const next = content.slice(at + needle.length, at + needle.length + 2);
      if (next === '' || MENTION_END.test(Array.from(next)[0] ?? '')) {
        out.add(m.id);
        break;
      }
    }
  }
  return out;
}

export interface GroupSendState {
  sender: UserRecord;
  /** The sender's view of the group (its row and the sender's role). */
  membership: Membership;
  /** Current members (the sender included when a member), with their current names. */
  members: ReadonlyArray<{ id: number; name: string }>;
  content: string;
  attachment: AttachmentView | null;
  mentionIds: readonly number[];
  /** End-to-end ciphertext envelope, the same for every copy. */
  e2e?: string | null;
  now: number;
}

export interface GroupSendDecision {
  group: GroupRef;
  /** One `group` message per member but the sender, in member order. */
  messages: NewMessage[];
}

/** A group message goes to every other current member; only members may send. */
export function decideGroupSend(s: GroupSendState): GroupSendDecision {
  const group = requireMember(s.membership);
  const mentioned = mentionedMembers(s.content, s.members, s.mentionIds, s.sender.id);
  const messages = s.members
    .filter((m) => m.id !== s.sender.id)
    .map((m): NewMessage => ({
      toId: m.id,
      fromId: s.sender.id,
      type: 'group',
      content: s.content,
      attachment: s.attachment,
      createdAt: s.now,
      groupId: group.id,
      mentioned: mentioned.has(m.id),
      ...(s.e2e ? { e2e: s.e2e } : {}),
    }));
  return { group: { id: group.id, name: group.name }, messages };
}
