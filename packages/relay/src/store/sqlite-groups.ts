// SQLite: groups (GroupStore). Every change runs in one IMMEDIATE transaction; the rules are
// domain/groups.ts, decided inside it.

import type Database from 'better-sqlite3';
import {
  RelayError,
  type GroupMemberView,
  type GroupRef,
  type GroupRole,
  type GroupView,
} from '@openwechat/protocol';
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
  type GroupLimits,
  type GroupSendDecision,
  type GroupSendState,
  type Membership,
} from '../domain/groups.ts';
import {
  GROUP_VIEW_SELECT,
  groupMembersSelect,
  pair,
  replayOf,
  toFriendship,
  toGroup,
  toGroupMember,
  toGroupView,
  type FriendshipRow,
  type GroupMemberRow,
  type GroupRow,
  type GroupViewRow,
  type RecordedGroupSend,
} from './rows.ts';
import type { SqliteMessages } from './sqlite-messages.ts';
import type {
  GroupChange,
  GroupRemoval,
  GroupSendRequest,
  GroupSendResult,
  GroupStore,
  GroupUpdate,
  InboxMessage,
  NewGroupRequest,
  SendOptions,
} from './types.ts';

type DB = Database.Database;

function prepare(db: DB) {
  return {
    getFriendship: db.prepare<[number, number], FriendshipRow>(
      'SELECT * FROM friendships WHERE user_a = ? AND user_b = ?',
    ),
    insertGroup: db.prepare<[string, string | null, number, number], GroupRow>(
      `INSERT INTO groups (name, description, owner_id, created_at) VALUES (?, ?, ?, ?) RETURNING *`,
    ),
    getGroup: db.prepare<[number], GroupRow>('SELECT * FROM groups WHERE id = ?'),
    updateGroup: db.prepare<[string, string | null, number, number]>(
      'UPDATE groups SET name = ?, description = ?, owner_id = ? WHERE id = ?',
    ),
    dissolveGroup: db.prepare<[number, number]>('UPDATE groups SET dissolved_at = ? WHERE id = ?'),
    memberRole: db.prepare<[number, number], { role: GroupRole }>(
      'SELECT role FROM group_members WHERE group_id = ? AND user_id = ?',
    ),
    insertMember: db.prepare<[number, number, string, number]>(
      'INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)',
    ),
    setRole: db.prepare<[string, number, number]>(
      'UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?',
    ),
    deleteMember: db.prepare<[number, number]>(
      'DELETE FROM group_members WHERE group_id = ? AND user_id = ?',
    ),
    deleteMembers: db.prepare<[number]>('DELETE FROM group_members WHERE group_id = ?'),
    countMembers: db.prepare<[number], { n: number }>(
      'SELECT count(*) AS n FROM group_members WHERE group_id = ?',
    ),
    countGroupsOf: db.prepare<[number], { n: number }>(
      'SELECT count(*) AS n FROM group_members WHERE user_id = ?',
    ),
    members: db.prepare<[number], GroupMemberRow>(groupMembersSelect('?')),
    groupsOf: db.prepare<[number], GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = ? AND g.dissolved_at IS NULL ORDER BY g.id`,
    ),
    groupOf: db.prepare<[number, number], GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = ? AND g.id = ? AND g.dissolved_at IS NULL`,
    ),
  };
}

export class SqliteGroups implements GroupStore {
  private readonly s: ReturnType<typeof prepare>;
  /** Runs a closure in one IMMEDIATE transaction. */
  private readonly run: <T>(fn: () => T) => T;

  constructor(
    db: DB,
    private readonly msgs: SqliteMessages,
  ) {
    this.s = prepare(db);
    const runTx = db.transaction((fn: () => unknown) => fn());
    this.run = <T>(fn: () => T): T => runTx.immediate(fn) as T;
  }

  private membership(groupId: number, userId: number): Membership {
    const row = this.s.getGroup.get(groupId);
    return {
      group: row ? toGroup(row) : null,
      role: row ? (this.s.memberRole.get(groupId, userId)?.role ?? null) : null,
    };
  }

  /** What decideAddMembers looks at for each id (groupId null: a group being created). */
  private candidates(ownerId: number, groupId: number | null, userIds: readonly number[]): Candidate[] {
    return userIds.map((id) => {
      const user = this.msgs.user(id);
      const f = user && id !== ownerId ? this.s.getFriendship.get(...pair(ownerId, id)) : undefined;
      return {
        id,
        user,
        friendship: f ? toFriendship(f) : null,
        isMember: id === ownerId || (groupId !== null && this.s.memberRole.get(groupId, id) !== undefined),
        groupCount: user ? this.s.countGroupsOf.get(id)!.n : 0,
      };
    });
  }

  private groupView(viewerId: number, groupId: number): GroupView {
    const row = this.s.groupOf.get(viewerId, groupId);
    if (!row) throw new RelayError('group_not_found');
    return toGroupView(row);
  }

  private addMembers(
    groupId: number,
    ids: readonly number[],
    now: number,
  ): Array<{ id: number; name: string }> {
    return ids.map((id) => {
      this.s.insertMember.run(groupId, id, 'member', now);
      return { id, name: this.msgs.user(id)?.name ?? '' };
    });
  }

  async createGroup(req: NewGroupRequest): Promise<GroupChange> {
    return this.run(() => {
      const owner = this.msgs.user(req.ownerId);
      if (!owner) throw new RelayError('invalid_token');
      const ids = req.memberIds.filter((id) => id !== owner.id);
      const addIds = decideCreateGroup({
        ownerGroupCount: this.s.countGroupsOf.get(owner.id)!.n,
        candidates: this.candidates(owner.id, null, ids),
        limits: req.limits,
      });
      const g = this.s.insertGroup.get(req.name, req.description, owner.id, req.now)!;
      this.s.insertMember.run(g.id, owner.id, 'owner', req.now);
      const added = this.addMembers(g.id, addIds, req.now);
      const delivered = this.msgs.store(addedNotices(owner, g, addIds, req.now));
      return { group: this.groupView(owner.id, g.id), added, delivered };
    });
  }

  async listGroups(userId: number): Promise<GroupView[]> {
    return this.s.groupsOf.all(userId).map(toGroupView);
  }

  async getGroup(
    groupId: number,
    viewerId: number,
  ): Promise<{ group: GroupView; members: GroupMemberView[] } | null> {
    return this.run(() => {
      const row = this.s.groupOf.get(viewerId, groupId);
      if (!row) return null;
      return { group: toGroupView(row), members: this.s.members.all(groupId).map(toGroupMember) };
    });
  }

  async isGroupMember(groupId: number, userId: number): Promise<boolean> {
    return this.s.memberRole.get(groupId, userId) !== undefined;
  }

  async addGroupMembers(req: {
    groupId: number;
    actorId: number;
    userIds: readonly number[];
    now: number;
    limits: GroupLimits;
  }): Promise<GroupChange> {
    return this.run(() => {
      const group = decideOwnerAction(this.membership(req.groupId, req.actorId));
      const owner = this.msgs.user(group.ownerId)!;
      const addIds = decideAddMembers({
        memberCount: this.s.countMembers.get(group.id)!.n,
        candidates: this.candidates(owner.id, group.id, req.userIds),
        limits: req.limits,
      });
      const added = this.addMembers(group.id, addIds, req.now);
      const delivered = this.msgs.store(addedNotices(owner, group, addIds, req.now));
      return { group: this.groupView(req.actorId, group.id), added, delivered };
    });
  }

  async removeGroupMember(req: {
    groupId: number;
    actorId: number;
    userId: number;
    now: number;
  }): Promise<GroupRemoval> {
    return this.run(() => {
      const actor = this.membership(req.groupId, req.actorId);
      const targetRole = actor.group ? (this.s.memberRole.get(req.groupId, req.userId)?.role ?? null) : null;
      const { left, notices } = decideRemoveMember({
        actor,
        actorId: req.actorId,
        targetId: req.userId,
        targetRole,
        now: req.now,
      });
      this.s.deleteMember.run(req.groupId, req.userId);
      const group = actor.group!;
      return {
        group: { id: group.id, name: group.name },
        removed: { id: req.userId, name: this.msgs.user(req.userId)?.name ?? `ID:${req.userId}` },
        left,
        delivered: this.msgs.store(notices),
      };
    });
  }

  async leaveGroup(req: { groupId: number; userId: number; now: number }): Promise<GroupRemoval> {
    return this.removeGroupMember({
      groupId: req.groupId,
      actorId: req.userId,
      userId: req.userId,
      now: req.now,
    });
  }

  async updateGroup(req: GroupUpdate): Promise<GroupView> {
    return this.run(() => {
      const actor = this.membership(req.groupId, req.actorId);
      const newOwnerRole =
        req.ownerId !== undefined && actor.group
          ? (this.s.memberRole.get(req.groupId, req.ownerId)?.role ?? null)
          : null;
      const group = decideUpdateGroup({ actor, actorId: req.actorId, newOwnerId: req.ownerId, newOwnerRole });
      const ownerId = req.ownerId ?? group.ownerId;
      this.s.updateGroup.run(
        req.name ?? group.name,
        req.description === undefined ? group.description : req.description,
        ownerId,
        group.id,
      );
      if (ownerId !== group.ownerId) {
        this.s.setRole.run('member', group.id, group.ownerId);
        this.s.setRole.run('owner', group.id, ownerId);
      }
      return this.groupView(req.actorId, group.id);
    });
  }

  async dissolveGroup(req: {
    groupId: number;
    actorId: number;
    now: number;
  }): Promise<{ group: GroupRef; delivered: InboxMessage[] }> {
    return this.run(() => {
      const actor = this.membership(req.groupId, req.actorId);
      const memberIds = actor.group ? this.s.members.all(req.groupId).map((m) => m.id) : [];
      const notices = decideDissolve({ actor, memberIds, now: req.now });
      const group = actor.group!;
      this.s.dissolveGroup.run(req.now, group.id);
      this.s.deleteMembers.run(group.id);
      return { group: { id: group.id, name: group.name }, delivered: this.msgs.store(notices) };
    });
  }

  async sendToGroup(
    req: GroupSendRequest,
    opts: SendOptions = {},
    decide: (state: GroupSendState) => GroupSendDecision = decideGroupSend,
  ): Promise<GroupSendResult> {
    return this.run(() => {
      const idem = opts.idempotency;
      if (idem) {
        const prior = this.msgs.idempotencyRecord(req.fromId, idem.key);
        const replay = replayOf<RecordedGroupSend>(prior, idem, req.now);
        if (replay) return replay;
      }
      const sender = this.msgs.user(req.fromId);
      if (!sender) throw new RelayError('invalid_token');
      const membership = this.membership(req.groupId, req.fromId);
      // By id, as on PostgreSQL (the order of the copies in `delivered`).
      const members = membership.role ? this.s.members.all(req.groupId).sort((x, y) => x.id - y.id) : [];
      const decision = decide({
        sender,
        membership,
        members,
        content: req.content,
        attachment: req.attachment,
        ...(req.e2e ? { e2e: req.e2e } : {}),
        mentionIds: req.mentionIds,
        now: req.now,
      });
      const delivered = this.msgs.store(decision.messages, sender, decision.group);
      const recorded: RecordedGroupSend = {
        group: decision.group,
        recipients: delivered.length,
        copies: delivered.map((m): [number, number] => [m.toId, m.id]),
        preview: opts.previewLimit ? this.msgs.peek(req.fromId, opts.previewLimit) : null,
      };
      if (idem) this.msgs.recordIdempotency(req.fromId, idem, recorded, req.now);
      return { ...recorded, delivered, replayed: false };
    });
  }
}
