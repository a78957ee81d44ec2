// PostgreSQL: groups (GroupStore).
//
// Lock order, the same in every transaction so none can deadlock another (or a private send): the
// group row first (FOR NO KEY UPDATE: operations on one group take turns there — a send waiting behind
// another then locks the member rows after that commit, instead of queueing through 500 row locks and
// re-checking each updated row), then user rows in id order (FOR NO KEY UPDATE, as send() and
// touchLastSeen() take them), then friendship rows, and the message-counter shard last. Nobody waits
// for a group row while holding a user row.

import type pg from 'pg';
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
import type { PgDb, Queryable } from './postgres-connection.ts';
import {
  countStored,
  lockUsers,
  peek,
  recordIdempotency,
  replayOfKey,
  storeFanOut,
} from './postgres-messages.ts';
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
  type RecordedGroupSend,
} from './rows.ts';
import type {
  FriendshipRecord,
  GroupChange,
  GroupRemoval,
  GroupSendRequest,
  GroupSendResult,
  GroupStore,
  GroupUpdate,
  InboxMessage,
  NewGroupRequest,
  SendOptions,
  UserRecord,
} from './types.ts';

/** The owner first, then by joining time. */
const GROUP_MEMBERS_SELECT = groupMembersSelect('$1');

export class PgGroups implements GroupStore {
  constructor(private readonly db: PgDb) {}

  private async lockGroup(c: pg.PoolClient, groupId: number) {
    const row = (
      await c.query<GroupRow>(
        `SELECT id, name, description, owner_id, created_at, dissolved_at FROM groups WHERE id = $1
         FOR NO KEY UPDATE`,
        [groupId],
      )
    ).rows[0];
    return row ? toGroup(row) : null;
  }

  private async role(c: Queryable, groupId: number, userId: number): Promise<GroupRole | null> {
    const row = (
      await c.query<{ role: GroupRole }>(
        'SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2',
        [groupId, userId],
      )
    ).rows[0];
    return row?.role ?? null;
  }

  /** Locks the group row and reads the user's role in it. */
  private async membership(c: pg.PoolClient, groupId: number, userId: number): Promise<Membership> {
    const group = await this.lockGroup(c, groupId);
    return { group, role: group ? await this.role(c, groupId, userId) : null };
  }

  /** Locks these users' rows in id order; returns the ones that exist. */

  /** What decideAddMembers looks at (users already locked); groupId null: a group being created. */
  private async candidates(
    c: pg.PoolClient,
    ownerId: number,
    groupId: number | null,
    userIds: readonly number[],
    users: Map<number, UserRecord>,
  ): Promise<Candidate[]> {
    const others = [...new Set(userIds)].filter((id) => id !== ownerId && users.has(id));
    const pairs = others.map((id) => pair(ownerId, id));
    const friendships = new Map<number, FriendshipRecord>();
    if (pairs.length) {
      const { rows } = await c.query<FriendshipRow>(
        `SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at FROM friendships
         WHERE (user_a, user_b) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
         ORDER BY user_a, user_b FOR SHARE`,
        [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
      );
      for (const r of rows) friendships.set(r.user_a === ownerId ? r.user_b : r.user_a, toFriendship(r));
    }
    const members = new Set<number>();
    if (groupId !== null && others.length) {
      const { rows } = await c.query<{ user_id: number }>(
        'SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = ANY($2::bigint[])',
        [groupId, others],
      );
      for (const r of rows) members.add(r.user_id);
    }
    const counts = new Map<number, number>();
    if (others.length) {
      const { rows } = await c.query<{ user_id: number; n: number }>(
        'SELECT user_id, count(*) AS n FROM group_members WHERE user_id = ANY($1::bigint[]) GROUP BY user_id',
        [others],
      );
      for (const r of rows) counts.set(r.user_id, r.n);
    }
    return userIds.map((id) => ({
      id,
      user: users.get(id) ?? null,
      friendship: friendships.get(id) ?? null,
      isMember: id === ownerId || members.has(id),
      groupCount: counts.get(id) ?? 0,
    }));
  }

  private async groupView(c: Queryable, viewerId: number, groupId: number): Promise<GroupView> {
    const row = (
      await c.query<GroupViewRow>(
        `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.id = $2 AND g.dissolved_at IS NULL`,
        [viewerId, groupId],
      )
    ).rows[0];
    if (!row) throw new RelayError('group_not_found');
    return toGroupView(row);
  }

  private async insertMembers(c: pg.PoolClient, groupId: number, ids: readonly number[], now: number) {
    if (ids.length === 0) return;
    await c.query(
      `INSERT INTO group_members (group_id, user_id, role, joined_at)
       SELECT $1, id, 'member', $3 FROM unnest($2::bigint[]) AS id`,
      [groupId, ids, now],
    );
  }

  async createGroup(req: NewGroupRequest): Promise<GroupChange> {
    return this.db.tx(async (c) => {
      const ids = req.memberIds.filter((id) => id !== req.ownerId);
      const users = await lockUsers(c, [req.ownerId, ...ids]);
      const owner = users.get(req.ownerId);
      if (!owner) throw new RelayError('invalid_token');
      const ownerGroups = (
        await c.query<{ n: number }>('SELECT count(*) AS n FROM group_members WHERE user_id = $1', [owner.id])
      ).rows[0]!.n;
      const addIds = decideCreateGroup({
        ownerGroupCount: ownerGroups,
        candidates: await this.candidates(c, owner.id, null, ids, users),
        limits: req.limits,
      });
      const g = toGroup(
        (
          await c.query<GroupRow>(
            `INSERT INTO groups (name, description, owner_id, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, name, description, owner_id, created_at, dissolved_at`,
            [req.name, req.description, owner.id, req.now],
          )
        ).rows[0]!,
      );
      await c.query(
        `INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)`,
        [g.id, owner.id, req.now],
      );
      await this.insertMembers(c, g.id, addIds, req.now);
      const delivered = await storeFanOut(c, addedNotices(owner, g, addIds, req.now));
      const group = await this.groupView(c, owner.id, g.id);
      await countStored(c, delivered.length, g.id);
      return { group, added: addIds.map((id) => ({ id, name: users.get(id)?.name ?? '' })), delivered };
    });
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
      const row = (
        await c.query<GroupViewRow>(
          `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.id = $2 AND g.dissolved_at IS NULL`,
          [viewerId, groupId],
        )
      ).rows[0];
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
    return (await this.role(this.db.pool, groupId, userId)) !== null;
  }

  async addGroupMembers(req: {
    groupId: number;
    actorId: number;
    userIds: readonly number[];
    now: number;
    limits: GroupLimits;
  }): Promise<GroupChange> {
    return this.db.tx(async (c) => {
      const group = decideOwnerAction(await this.membership(c, req.groupId, req.actorId));
      const users = await lockUsers(c, [group.ownerId, ...req.userIds]);
      const owner = users.get(group.ownerId)!;
      const memberCount = (
        await c.query<{ n: number }>('SELECT count(*) AS n FROM group_members WHERE group_id = $1', [
          group.id,
        ])
      ).rows[0]!.n;
      const addIds = decideAddMembers({
        memberCount,
        candidates: await this.candidates(c, owner.id, group.id, req.userIds, users),
        limits: req.limits,
      });
      await this.insertMembers(c, group.id, addIds, req.now);
      const delivered = await storeFanOut(c, addedNotices(owner, group, addIds, req.now));
      const view = await this.groupView(c, req.actorId, group.id);
      await countStored(c, delivered.length, group.id);
      return { group: view, added: addIds.map((id) => ({ id, name: users.get(id)?.name ?? '' })), delivered };
    });
  }

  async removeGroupMember(req: {
    groupId: number;
    actorId: number;
    userId: number;
    now: number;
  }): Promise<GroupRemoval> {
    return this.db.tx(async (c) => {
      const actor = await this.membership(c, req.groupId, req.actorId);
      const targetRole = actor.group ? await this.role(c, req.groupId, req.userId) : null;
      const { left, notices } = decideRemoveMember({
        actor,
        actorId: req.actorId,
        targetId: req.userId,
        targetRole,
        now: req.now,
      });
      const group = actor.group!;
      const target = (await lockUsers(c, [req.userId])).get(req.userId);
      await c.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [group.id, req.userId]);
      const delivered = await storeFanOut(c, notices);
      await countStored(c, delivered.length, group.id);
      return {
        group: { id: group.id, name: group.name },
        removed: { id: req.userId, name: target?.name ?? `ID:${req.userId}` },
        left,
        delivered,
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
    return this.db.tx(async (c) => {
      const actor = await this.membership(c, req.groupId, req.actorId);
      const newOwnerRole =
        req.ownerId !== undefined && actor.group ? await this.role(c, req.groupId, req.ownerId) : null;
      const group = decideUpdateGroup({ actor, actorId: req.actorId, newOwnerId: req.ownerId, newOwnerRole });
      const ownerId = req.ownerId ?? group.ownerId;
      await c.query('UPDATE groups SET name = $1, description = $2, owner_id = $3 WHERE id = $4', [
        req.name ?? group.name,
        req.description === undefined ? group.description : req.description,
        ownerId,
        group.id,
      ]);
      if (ownerId !== group.ownerId) {
        await c.query(
          `UPDATE group_members SET role = CASE WHEN user_id = $2 THEN 'owner' ELSE 'member' END
           WHERE group_id = $1 AND user_id IN ($2, $3)`,
          [group.id, ownerId, group.ownerId],
        );
      }
      return this.groupView(c, req.actorId, group.id);
    });
  }

  async dissolveGroup(req: {
    groupId: number;
    actorId: number;
    now: number;
  }): Promise<{ group: GroupRef; delivered: InboxMessage[] }> {
    return this.db.tx(async (c) => {
      const actor = await this.membership(c, req.groupId, req.actorId);
      const memberIds = actor.group
        ? (
            await c.query<{ user_id: number }>('SELECT user_id FROM group_members WHERE group_id = $1', [
              req.groupId,
            ])
          ).rows.map((r) => r.user_id)
        : [];
      const notices = decideDissolve({ actor, memberIds, now: req.now });
      const group = actor.group!;
      await lockUsers(
        c,
        notices.map((n) => n.toId),
      );
      await c.query('UPDATE groups SET dissolved_at = $1 WHERE id = $2', [req.now, group.id]);
      await c.query('DELETE FROM group_members WHERE group_id = $1', [group.id]);
      const delivered = await storeFanOut(c, notices);
      await countStored(c, delivered.length, group.id);
      return { group: { id: group.id, name: group.name }, delivered };
    });
  }

  async sendToGroup(
    req: GroupSendRequest,
    opts: SendOptions = {},
    decide: (state: GroupSendState) => GroupSendDecision = decideGroupSend,
  ): Promise<GroupSendResult> {
    return this.db.tx(async (c) => {
      // The group row, then the sender's and every member's user row in id order: the members cannot
      // change meanwhile, and each recipient's next id is taken under its row lock, so ids stay in
      // commit order per inbox whatever private sends run at the same time.
      const group = await this.lockGroup(c, req.groupId);
      const memberRows =
        group && group.dissolvedAt === null
          ? (
              await c.query<{ user_id: number; role: GroupRole }>(
                'SELECT user_id, role FROM group_members WHERE group_id = $1',
                [group.id],
              )
            ).rows
          : [];
      const users = await lockUsers(c, [req.fromId, ...memberRows.map((r) => r.user_id)]);

      const idem = opts.idempotency;
      if (idem) {
        const replay = await replayOfKey<RecordedGroupSend>(c, req.fromId, idem, req.now);
        if (replay) return replay;
      }
      const sender = users.get(req.fromId);
      if (!sender) throw new RelayError('invalid_token');
      const role = memberRows.find((r) => r.user_id === req.fromId)?.role ?? null;
      const members = role
        ? memberRows
            .map((r) => users.get(r.user_id))
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
      const delivered = await storeFanOut(c, decision.messages, sender, decision.group);
      const recorded: RecordedGroupSend = {
        group: decision.group,
        recipients: delivered.length,
        copies: delivered.map((m): [number, number] => [m.toId, m.id]),
        preview: opts.previewLimit ? await peek(c, req.fromId, opts.previewLimit) : null,
      };
      if (idem) await recordIdempotency(c, req.fromId, idem, recorded, req.now);
      await countStored(c, delivered.length, decision.group.id);
      return { ...recorded, delivered, replayed: false };
    });
  }
}
