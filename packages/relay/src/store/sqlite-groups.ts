// SQLite: groups (GroupStore). Every change is a skeleton of groups.ts run in one IMMEDIATE
// transaction over SqliteGroupTx; the reads are here.

import type Database from 'better-sqlite3';
import type { GroupMemberView, GroupRole, GroupView } from '@openwechat/protocol';
import type { GroupTx } from './dialect.ts';
import { GroupChanges } from './groups.ts';
import {
  GROUP_VIEW_SELECT,
  groupMembersSelect,
  pair,
  toFriendship,
  toGroup,
  toGroupMember,
  toGroupView,
  type FriendshipRow,
  type GroupMemberRow,
  type GroupRow,
  type GroupViewRow,
} from './rows.ts';
import { SqliteTx } from './sqlite-messages.ts';
import { runSync, type Op } from './steps.ts';
import type { FriendshipRecord, GroupRecord, GroupStore } from './types.ts';

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
    memberRoles: db.prepare<[number], { userId: number; role: GroupRole }>(
      'SELECT user_id AS userId, role FROM group_members WHERE group_id = ?',
    ),
    groupsOf: db.prepare<[number], GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = ? AND g.dissolved_at IS NULL ORDER BY g.id`,
    ),
    groupOf: db.prepare<[number, number], GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = ? AND g.id = ? AND g.dissolved_at IS NULL`,
    ),
  };
}

/** The SQLite side of GroupTx (dialect.ts). */
class SqliteGroupTx extends SqliteTx implements GroupTx {
  constructor(
    db: DB,
    private readonly g: ReturnType<typeof prepare>,
  ) {
    super(db);
  }

  lockGroup(groupId: number): GroupRecord | null {
    const row = this.g.getGroup.get(groupId);
    return row ? toGroup(row) : null;
  }

  role(groupId: number, userId: number): GroupRole | null {
    return this.g.memberRole.get(groupId, userId)?.role ?? null;
  }

  memberRoles(groupId: number): Array<{ userId: number; role: GroupRole }> {
    return this.g.memberRoles.all(groupId);
  }

  memberCount(groupId: number): number {
    return this.g.countMembers.get(groupId)!.n;
  }

  groupCounts(userIds: readonly number[]): Map<number, number> {
    return new Map(userIds.map((id) => [id, this.g.countGroupsOf.get(id)!.n]));
  }

  friendshipsOf(ownerId: number, userIds: readonly number[]): Map<number, FriendshipRecord> {
    const out = new Map<number, FriendshipRecord>();
    for (const id of userIds) {
      const row = this.g.getFriendship.get(...pair(ownerId, id));
      if (row) out.set(id, toFriendship(row));
    }
    return out;
  }

  membersAmong(groupId: number, userIds: readonly number[]): Set<number> {
    return new Set(userIds.filter((id) => this.g.memberRole.get(groupId, id) !== undefined));
  }

  insertGroup(name: string, description: string | null, ownerId: number, now: number): GroupRecord {
    return toGroup(this.g.insertGroup.get(name, description, ownerId, now)!);
  }

  insertMembers(groupId: number, userIds: readonly number[], role: GroupRole, now: number): void {
    for (const id of userIds) this.g.insertMember.run(groupId, id, role, now);
  }

  updateGroup(groupId: number, name: string, description: string | null, ownerId: number): void {
    this.g.updateGroup.run(name, description, ownerId, groupId);
  }

  handOver(groupId: number, from: number, to: number): void {
    this.g.setRole.run('member', groupId, from);
    this.g.setRole.run('owner', groupId, to);
  }

  deleteMember(groupId: number, userId: number): void {
    this.g.deleteMember.run(groupId, userId);
  }

  dissolve(groupId: number, now: number): void {
    this.g.dissolveGroup.run(now, groupId);
    this.g.deleteMembers.run(groupId);
  }

  groupView(viewerId: number, groupId: number): GroupView | null {
    const row = this.g.groupOf.get(viewerId, groupId);
    return row ? toGroupView(row) : null;
  }
}

export class SqliteGroups extends GroupChanges implements GroupStore {
  private readonly s: ReturnType<typeof prepare>;
  private readonly t: SqliteGroupTx;
  private readonly run: <T>(fn: () => T) => T;

  constructor(db: DB) {
    super();
    this.s = prepare(db);
    this.t = new SqliteGroupTx(db, this.s);
    const runTx = db.transaction((fn: () => unknown) => fn());
    this.run = <T>(fn: () => T): T => runTx.immediate(fn) as T;
  }

  protected async tx<T>(op: (t: GroupTx) => Op<T>): Promise<T> {
    return this.run(() => runSync(op(this.t)));
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
}
