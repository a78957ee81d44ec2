// PostgreSQL: groups (GroupStore).
//
// Lock order, the same in every transaction so none can deadlock another (or a private send): the
// group row first (FOR NO KEY UPDATE: operations on one group take turns there — a send waiting behind
// another then locks the member rows after that commit, instead of queueing through 500 row locks and
// re-checking each updated row), then user rows in id order (FOR NO KEY UPDATE, as send() and
// touchLastSeen() take them), then friendship rows, and the message-counter shard last. Nobody waits
// for a group row while holding a user row.

import type pg from 'pg';
import type { GroupMemberView, GroupRole, GroupView } from '@openwechat/protocol';
import type { GroupTx } from './dialect.ts';
import { GroupChanges } from './groups.ts';
import type { PgDb, Queryable } from './postgres-connection.ts';
import { PgTx } from './postgres-messages.ts';
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
import { runAsync, type Op } from './steps.ts';
import type { FriendshipRecord, GroupRecord, GroupStore } from './types.ts';

/** The owner first, then by joining time. */
const GROUP_MEMBERS_SELECT = groupMembersSelect('$1');
const GROUP_COLUMNS = 'id, name, description, owner_id, created_at, dissolved_at';
const VIEW_OF = `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.id = $2 AND g.dissolved_at IS NULL`;

async function role(c: Queryable, groupId: number, userId: number): Promise<GroupRole | null> {
  const { rows } = await c.query<{ role: GroupRole }>(
    'SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2',
    [groupId, userId],
  );
  return rows[0]?.role ?? null;
}

/** The PostgreSQL side of GroupTx (dialect.ts): the group row locked first, friendships FOR SHARE. */
class PgGroupTx extends PgTx implements GroupTx {
  async lockGroup(groupId: number): Promise<GroupRecord | null> {
    const { rows } = await this.c.query<GroupRow>(
      `SELECT ${GROUP_COLUMNS} FROM groups WHERE id = $1 FOR NO KEY UPDATE`,
      [groupId],
    );
    return rows[0] ? toGroup(rows[0]) : null;
  }

  role(groupId: number, userId: number): Promise<GroupRole | null> {
    return role(this.c, groupId, userId);
  }

  async memberRoles(groupId: number): Promise<Array<{ userId: number; role: GroupRole }>> {
    const { rows } = await this.c.query<{ user_id: number; role: GroupRole }>(
      'SELECT user_id, role FROM group_members WHERE group_id = $1',
      [groupId],
    );
    return rows.map((r) => ({ userId: r.user_id, role: r.role }));
  }

  async memberCount(groupId: number): Promise<number> {
    const { rows } = await this.c.query<{ n: number }>(
      'SELECT count(*) AS n FROM group_members WHERE group_id = $1',
      [groupId],
    );
    return rows[0]!.n;
  }

  async groupCounts(userIds: readonly number[]): Promise<Map<number, number>> {
    const { rows } = await this.c.query<{ user_id: number; n: number }>(
      'SELECT user_id, count(*) AS n FROM group_members WHERE user_id = ANY($1::bigint[]) GROUP BY user_id',
      [userIds],
    );
    return new Map(rows.map((r) => [r.user_id, r.n]));
  }

  async friendshipsOf(ownerId: number, userIds: readonly number[]): Promise<Map<number, FriendshipRecord>> {
    const pairs = userIds.map((id) => pair(ownerId, id));
    const { rows } = await this.c.query<FriendshipRow>(
      `SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at FROM friendships
       WHERE (user_a, user_b) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
       ORDER BY user_a, user_b FOR SHARE`,
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    );
    return new Map(rows.map((r) => [r.user_a === ownerId ? r.user_b : r.user_a, toFriendship(r)]));
  }

  async membersAmong(groupId: number, userIds: readonly number[]): Promise<Set<number>> {
    const { rows } = await this.c.query<{ user_id: number }>(
      'SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = ANY($2::bigint[])',
      [groupId, userIds],
    );
    return new Set(rows.map((r) => r.user_id));
  }

  async insertGroup(name: string, description: string | null, ownerId: number, now: number) {
    const { rows } = await this.c.query<GroupRow>(
      `INSERT INTO groups (name, description, owner_id, created_at) VALUES ($1, $2, $3, $4)
       RETURNING ${GROUP_COLUMNS}`,
      [name, description, ownerId, now],
    );
    return toGroup(rows[0]!);
  }

  async insertMembers(groupId: number, userIds: readonly number[], role: GroupRole, now: number) {
    await this.c.query(
      `INSERT INTO group_members (group_id, user_id, role, joined_at)
       SELECT $1, id, $3, $4 FROM unnest($2::bigint[]) AS id`,
      [groupId, userIds, role, now],
    );
  }

  async updateGroup(groupId: number, name: string, description: string | null, ownerId: number) {
    await this.c.query('UPDATE groups SET name = $1, description = $2, owner_id = $3 WHERE id = $4', [
      name,
      description,
      ownerId,
      groupId,
    ]);
  }

  async handOver(groupId: number, from: number, to: number): Promise<void> {
    await this.c.query(
      `UPDATE group_members SET role = CASE WHEN user_id = $2 THEN 'owner' ELSE 'member' END
       WHERE group_id = $1 AND user_id IN ($2, $3)`,
      [groupId, to, from],
    );
  }

  async deleteMember(groupId: number, userId: number): Promise<void> {
    await this.c.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [groupId, userId]);
  }

  async dissolve(groupId: number, now: number): Promise<void> {
    await this.c.query('UPDATE groups SET dissolved_at = $1 WHERE id = $2', [now, groupId]);
    await this.c.query('DELETE FROM group_members WHERE group_id = $1', [groupId]);
  }

  async groupView(viewerId: number, groupId: number): Promise<GroupView | null> {
    const row = (await this.c.query<GroupViewRow>(VIEW_OF, [viewerId, groupId])).rows[0];
    return row ? toGroupView(row) : null;
  }
}

export class PgGroups extends GroupChanges implements GroupStore {
  constructor(private readonly db: PgDb) {
    super();
  }

  protected tx<T>(op: (t: GroupTx) => Op<T>): Promise<T> {
    return this.db.tx((c: pg.PoolClient) => runAsync(op(new PgGroupTx(c))));
  }

  async listGroups(userId: number): Promise<GroupView[]> {
    const { rows } = await this.db.pool.query<GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.dissolved_at IS NULL ORDER BY g.id`,
      [userId],
    );
    return rows.map(toGroupView);
  }

  async getGroup(
    groupId: number,
    viewerId: number,
  ): Promise<{ group: GroupView; members: GroupMemberView[] } | null> {
    // One snapshot for the group and its member list.
    const c = await this.db.pool.connect();
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const row = (await c.query<GroupViewRow>(VIEW_OF, [viewerId, groupId])).rows[0];
      const members = row ? (await c.query<GroupMemberRow>(GROUP_MEMBERS_SELECT, [groupId])).rows : [];
      await c.query('COMMIT');
      return row ? { group: toGroupView(row), members: members.map(toGroupMember) } : null;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async isGroupMember(groupId: number, userId: number): Promise<boolean> {
    return (await role(this.db.pool, groupId, userId)) !== null;
  }
}
