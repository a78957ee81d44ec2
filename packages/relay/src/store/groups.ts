// Groups (GroupStore, docs/groups-api.md), written once for both backends. Every change is a skeleton
// (steps.ts): it locks (the group row, then user rows in id order, so no two transactions deadlock),
// decides with the pure functions of domain/groups.ts, writes, stores its notices or copies, and counts
// them last — one transaction over the backend's GroupTx (dialect.ts, tx.ts). A group that does not
// exist, is dissolved, or that the acting user does not belong to is group_not_found throughout.

import { RelayError, type GroupMemberView, type GroupRef, type GroupView } from '@openwechat/protocol';
import {
  addedNotices,
  decideAddMembers,
  decideCreateGroup,
  decideDissolve,
  decideGroupSend,
  decideOwnerAction,
  decideRemoveMember,
  decideUpdateGroup,
  type Candidate,
  type GroupSendDecision,
  type GroupSendState,
  type Membership,
} from '../domain/groups.ts';
import type { GroupTx } from './dialect.ts';
import { GROUP_VIEW_SELECT, GROUP_MEMBERS_SELECT, joinedFrom, toMessage } from './rows.ts';
import type { SqlDb } from './sql.ts';
import { ROLE, VIEW_OF } from './tx.ts';
import { recordSend, replayed } from './send.ts';
import { step, type Op } from './steps.ts';
import type {
  AddMembersRequest,
  GroupChange,
  GroupRemoval,
  GroupSendRequest,
  GroupSendResult,
  GroupStore,
  GroupUpdate,
  RecordedGroupSend,
  InboxMessage,
  NewGroupRequest,
  NewMessage,
  SendOptions,
  UserRecord,
} from './types.ts';

/** Locks the group row and reads the user's role in it. */
function* membership(t: GroupTx, groupId: number, userId: number): Op<Membership> {
  const group = yield* step(t.lockGroup(groupId));
  return { group, role: group ? yield* step(t.role(groupId, userId)) : null };
}

/** What decideAddMembers looks at (users already locked); groupId null: a group being created. */
function* candidates(
  t: GroupTx,
  ownerId: number,
  groupId: number | null,
  userIds: readonly number[],
  users: Map<number, UserRecord>,
): Op<Candidate[]> {
  const others = [...new Set(userIds)].filter((id) => id !== ownerId && users.has(id));
  const friendships = others.length ? yield* step(t.friendshipsOf(ownerId, others)) : new Map();
  const members =
    groupId !== null && others.length ? yield* step(t.membersAmong(groupId, others)) : new Set<number>();
  const counts = others.length ? yield* step(t.groupCounts(others)) : new Map<number, number>();
  return userIds.map((id) => ({
    id,
    user: users.get(id) ?? null,
    friendship: friendships.get(id) ?? null,
    isMember: id === ownerId || members.has(id),
    groupCount: counts.get(id) ?? 0,
  }));
}

function* view(t: GroupTx, viewerId: number, groupId: number): Op<GroupView> {
  const group = yield* step(t.groupView(viewerId, groupId));
  if (!group) throw new RelayError('group_not_found');
  return group;
}

/** Stores notices or copies (recipients locked) as their recipients see them. */
function* fanOut(
  t: GroupTx,
  messages: readonly NewMessage[],
  from: UserRecord | null = null,
  group: GroupRef | null = null,
): Op<InboxMessage[]> {
  if (messages.length === 0) return [];
  const joined = joinedFrom(from, group);
  return (yield* step(t.fanOut(messages))).map((r) => toMessage({ ...r, ...joined }));
}

/** Runs a skeleton in one transaction (SQLite: IMMEDIATE; PostgreSQL: retried on deadlock). */
type GroupTxRunner = <T>(op: (t: GroupTx) => Op<T>) => Promise<T>;

export class Groups implements GroupStore {
  constructor(
    private readonly sql: SqlDb,
    private readonly tx: GroupTxRunner,
  ) {}

  async listGroups(userId: number): Promise<GroupView[]> {
    return this.sql.all<GroupView>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.dissolved_at IS NULL ORDER BY g.id`,
      [userId],
    );
  }

  /** One snapshot for the group and its member list (the owner first, then by joining time). */
  getGroup(
    groupId: number,
    viewerId: number,
  ): Promise<{ group: GroupView; members: GroupMemberView[] } | null> {
    return this.sql.snapshot(function* (q) {
      const group = yield* step(q.get<GroupView>(VIEW_OF, [viewerId, groupId]));
      if (!group) return null;
      return { group, members: yield* step(q.all<GroupMemberView>(GROUP_MEMBERS_SELECT, [groupId])) };
    });
  }

  async isGroupMember(groupId: number, userId: number): Promise<boolean> {
    return (await this.sql.get(ROLE, [groupId, userId])) !== undefined;
  }

  createGroup(req: NewGroupRequest): Promise<GroupChange> {
    return this.tx(function* (t) {
      const ids = req.memberIds.filter((id) => id !== req.ownerId);
      const users = yield* step(t.lockUsers([req.ownerId, ...ids]));
      const owner = users.get(req.ownerId);
      if (!owner) throw new RelayError('invalid_token');
      const addIds = decideCreateGroup({
        ownerGroupCount: (yield* step(t.groupCounts([owner.id]))).get(owner.id) ?? 0,
        candidates: yield* candidates(t, owner.id, null, ids, users),
        limits: req.limits,
      });
      const g = yield* step(t.insertGroup(req.name, req.description, owner.id, req.now));
      yield* step(t.insertMembers(g.id, [owner.id], 'owner', req.now));
      if (addIds.length) yield* step(t.insertMembers(g.id, addIds, 'member', req.now));
      const delivered = yield* fanOut(t, addedNotices(owner, g, addIds, req.now));
      const group = yield* view(t, owner.id, g.id);
      yield* step(t.countStored(delivered.length, g.id));
      return { group, added: addIds.map((id) => ({ id, name: users.get(id)?.name ?? '' })), delivered };
    });
  }

  addGroupMembers(req: AddMembersRequest): Promise<GroupChange> {
    return this.tx(function* (t) {
      const group = decideOwnerAction(yield* membership(t, req.groupId, req.actorId));
      const users = yield* step(t.lockUsers([group.ownerId, ...req.userIds]));
      const owner = users.get(group.ownerId)!;
      const addIds = decideAddMembers({
        memberCount: yield* step(t.memberCount(group.id)),
        candidates: yield* candidates(t, owner.id, group.id, req.userIds, users),
        limits: req.limits,
      });
      if (addIds.length) yield* step(t.insertMembers(group.id, addIds, 'member', req.now));
      const delivered = yield* fanOut(t, addedNotices(owner, group, addIds, req.now));
      const changed = yield* view(t, req.actorId, group.id);
      yield* step(t.countStored(delivered.length, group.id));
      return {
        group: changed,
        added: addIds.map((id) => ({ id, name: users.get(id)?.name ?? '' })),
        delivered,
      };
    });
  }

  removeGroupMember(req: {
    groupId: number;
    actorId: number;
    userId: number;
    now: number;
  }): Promise<GroupRemoval> {
    return this.tx(function* (t) {
      const actor = yield* membership(t, req.groupId, req.actorId);
      const targetRole = actor.group ? yield* step(t.role(req.groupId, req.userId)) : null;
      const { left, notices } = decideRemoveMember({
        actor,
        actorId: req.actorId,
        targetId: req.userId,
        targetRole,
        now: req.now,
      });
      const group = actor.group!;
      const target = (yield* step(t.lockUsers([req.userId]))).get(req.userId);
      yield* step(t.deleteMember(group.id, req.userId));
      const delivered = yield* fanOut(t, notices);
      yield* step(t.countStored(delivered.length, group.id));
      return {
        group: { id: group.id, name: group.name },
        removed: { id: req.userId, name: target?.name ?? `ID:${req.userId}` },
        left,
        delivered,
      };
    });
  }

  leaveGroup(req: { groupId: number; userId: number; now: number }): Promise<GroupRemoval> {
    return this.removeGroupMember({
      groupId: req.groupId,
      actorId: req.userId,
      userId: req.userId,
      now: req.now,
    });
  }

  updateGroup(req: GroupUpdate): Promise<GroupView> {
    return this.tx(function* (t) {
      const actor = yield* membership(t, req.groupId, req.actorId);
      const newOwnerRole =
        req.ownerId !== undefined && actor.group ? yield* step(t.role(req.groupId, req.ownerId)) : null;
      const group = decideUpdateGroup({ actor, actorId: req.actorId, newOwnerId: req.ownerId, newOwnerRole });
      const ownerId = req.ownerId ?? group.ownerId;
      const description = req.description === undefined ? group.description : req.description;
      yield* step(t.updateGroup(group.id, req.name ?? group.name, description, ownerId));
      if (ownerId !== group.ownerId) yield* step(t.handOver(group.id, group.ownerId, ownerId));
      return yield* view(t, req.actorId, group.id);
    });
  }

  dissolveGroup(req: {
    groupId: number;
    actorId: number;
    now: number;
  }): Promise<{ group: GroupRef; delivered: InboxMessage[] }> {
    return this.tx(function* (t) {
      const actor = yield* membership(t, req.groupId, req.actorId);
      const memberIds = actor.group ? (yield* step(t.memberRoles(req.groupId))).map((m) => m.userId) : [];
      const notices = decideDissolve({ actor, memberIds, now: req.now });
      const group = actor.group!;
      yield* step(t.lockUsers(notices.map((n) => n.toId)));
      yield* step(t.dissolve(group.id, req.now));
      const delivered = yield* fanOut(t, notices);
      yield* step(t.countStored(delivered.length, group.id));
      return { group: { id: group.id, name: group.name }, delivered };
    });
  }

  /**
   * The group row, then the sender's and every member's user row in id order: the members cannot
   * change meanwhile, and each recipient's next id is taken under its row lock, so ids stay in commit
   * order per inbox whatever private sends run at the same time.
   */
  sendToGroup(
    req: GroupSendRequest,
    opts: SendOptions = {},
    decide: (state: GroupSendState) => GroupSendDecision = decideGroupSend,
  ): Promise<GroupSendResult> {
    return this.tx(function* (t) {
      const group = yield* step(t.lockGroup(req.groupId));
      const memberRows = group && group.dissolvedAt === null ? yield* step(t.memberRoles(group.id)) : [];
      const users = yield* step(t.lockUsers([req.fromId, ...memberRows.map((r) => r.userId)]));
      const replay = yield* replayed<RecordedGroupSend>(t, req.fromId, opts.idempotency, req.now);
      if (replay) return replay;
      const sender = users.get(req.fromId);
      if (!sender) throw new RelayError('invalid_token');
      const role = memberRows.find((r) => r.userId === req.fromId)?.role ?? null;
      const members = role
        ? memberRows
            .map((r) => users.get(r.userId))
            .filter((u): u is UserRecord => u !== undefined)
            .sort((x, y) => x.id - y.id)
            .map((u) => ({ id: u.id, name: u.name }))
        : [];
      const decision = decide({
        sender,
        membership: { group, role },
        members,
        content: req.content,
        attachment: req.attachment,
        ...(req.e2e ? { e2e: req.e2e } : {}),
        mentionIds: req.mentionIds,
        now: req.now,
      });
      const delivered = yield* fanOut(t, decision.messages, sender, decision.group);
      const recorded = yield* recordSend<RecordedGroupSend>(t, req.fromId, opts, req.now, {
        group: decision.group,
        recipients: delivered.length,
        copies: delivered.map((m): [number, number] => [m.toId, m.id]),
      });
      yield* step(t.countStored(delivered.length, decision.group.id));
      return { ...recorded, delivered, replayed: false };
    });
  }
}
