// The transaction dialect (dialect.ts) where both backends run the same statement, over sql.ts: user,
// group, member and friendship reads and writes. Locks are PostgreSQL's (FOR NO KEY UPDATE, in the
// order the skeletons take them); on SQLite they are dropped, its single writer holding everything.
// Each backend adds what it does its own way: the message inserts, the preview and the lifetime count
// (sqlite-messages.ts, postgres-messages.ts).

import type { GroupRole, GroupView } from '@openwechat/protocol';
import type { GroupTx, SendTx } from './dialect.ts';
import {
  FRIENDSHIP_COLUMNS,
  GROUP_COLUMNS,
  GROUP_VIEW_SELECT,
  pair,
  USER_COLUMNS,
  type IdempotencyRow,
  type StoredMessageRow,
} from './rows.ts';
import type { Sql } from './sql.ts';
import type { Step } from './steps.ts';
import type { FriendshipRecord, GroupRecord, InboxPage, NewMessage, UserRecord } from './types.ts';

/** `f` applied to a step's value, as a value (SQLite) or a promise (PostgreSQL). */
function mapStep<A, B>(s: Step<A>, f: (a: A) => B): Step<B> {
  return s instanceof Promise ? s.then(f) : f(s);
}

export const VIEW_OF = `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.id = $2 AND g.dissolved_at IS NULL`;
export const ROLE = 'SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2';

export abstract class SqlTx implements SendTx, GroupTx {
  /** Whether reads lock rows (PostgreSQL); otherwise a record the caller holds may stand for a read. */
  protected abstract readonly locksRows: boolean;

  constructor(protected readonly q: Sql) {}

  abstract peek(userId: number, limit: number): Step<InboxPage>;
  abstract insert(m: NewMessage): Step<StoredMessageRow>;
  abstract fanOut(messages: readonly NewMessage[]): Step<StoredMessageRow[]>;
  abstract countStored(n: number, key: number): Step<void>;

  lockUsers(ids: readonly number[], known?: UserRecord): Step<Map<number, UserRecord>> {
    const out = new Map<number, UserRecord>();
    if (known && !this.locksRows) out.set(known.id, known);
    const wanted = [...new Set(ids)].filter((id) => Number.isSafeInteger(id) && !out.has(id));
    if (wanted.length === 0) return out;
    // One user (a send whose sender is known) by key; several in id order, the order every lock takes.
    const rows =
      wanted.length === 1
        ? this.q.all<UserRecord>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR NO KEY UPDATE`, wanted)
        : this.q.all<UserRecord>(
            `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE`,
            [wanted.sort((x, y) => x - y)],
          );
    return mapStep(rows, (rs) => {
      for (const r of rs) out.set(r.id, r);
      return out;
    });
  }

  user(id: number): Step<UserRecord | null> {
    const row = this.q.get<UserRecord>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
    return mapStep(row, (r) => r ?? null);
  }

  idempotencyRecord(userId: number, key: string): Step<IdempotencyRow | undefined> {
    return this.q.get<IdempotencyRow>(
      'SELECT fingerprint, result, created_at FROM idempotency_keys WHERE user_id = $1 AND key = $2',
      [userId, key],
    );
  }

  recordIdempotency(
    userId: number,
    idem: { key: string; fingerprint: string },
    result: unknown,
    now: number,
  ): Step<void> {
    const done = this.q.run(
      `INSERT INTO idempotency_keys (user_id, key, fingerprint, result, created_at)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (user_id, key) DO UPDATE
         SET fingerprint = EXCLUDED.fingerprint, result = EXCLUDED.result, created_at = EXCLUDED.created_at`,
      [userId, idem.key, idem.fingerprint, JSON.stringify(result), now],
    );
    return mapStep(done, () => undefined);
  }

  // ── A send's friendship ─────────────────────────────────────────────────────────────────────────

  friendship(a: number, b: number): Step<FriendshipRecord | null> {
    const row = this.q.get<FriendshipRecord>(
      `SELECT ${FRIENDSHIP_COLUMNS} FROM friendships WHERE user_a = $1 AND user_b = $2 FOR NO KEY UPDATE`,
      pair(a, b),
    );
    return mapStep(row, (r) => r ?? null);
  }

  friendshipsOf(ownerId: number, userIds: readonly number[]): Step<Map<number, FriendshipRecord>> {
    // Stored as the ordered pair: the users above the owner are user_b, those below user_a.
    const rows = this.q.all<FriendshipRecord>(
      `SELECT ${FRIENDSHIP_COLUMNS} FROM friendships
       WHERE (user_a = $1 AND user_b = ANY($2::bigint[])) OR (user_b = $1 AND user_a = ANY($3::bigint[]))
       ORDER BY user_a, user_b FOR SHARE`,
      [ownerId, userIds.filter((id) => id > ownerId), userIds.filter((id) => id < ownerId)],
    );
    return mapStep(rows, (rs) => new Map(rs.map((r) => [r.userA === ownerId ? r.userB : r.userA, r])));
  }

  insertPending(a: number, b: number, initiatedBy: number, now: number): Step<void> {
    const done = this.q.run(
      `INSERT INTO friendships (user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at)
       VALUES ($1, $2, $3, 'pending', NULL, $4, $4)`,
      [a, b, initiatedBy, now],
    );
    return mapStep(done, () => undefined);
  }

  accept(a: number, b: number, now: number): Step<boolean> {
    const n = this.q.run(
      `UPDATE friendships SET status = 'accepted', updated_at = $1 WHERE user_a = $2 AND user_b = $3`,
      [now, a, b],
    );
    return mapStep(n, (changed) => changed === 1);
  }

  // ── Groups ──────────────────────────────────────────────────────────────────────────────────────

  lockGroup(groupId: number): Step<GroupRecord | null> {
    const row = this.q.get<GroupRecord>(
      `SELECT ${GROUP_COLUMNS} FROM groups WHERE id = $1 FOR NO KEY UPDATE`,
      [groupId],
    );
    return mapStep(row, (r) => r ?? null);
  }

  role(groupId: number, userId: number): Step<GroupRole | null> {
    return mapStep(this.q.get<{ role: GroupRole }>(ROLE, [groupId, userId]), (r) => r?.role ?? null);
  }

  memberRoles(groupId: number): Step<Array<{ userId: number; role: GroupRole }>> {
    return this.q.all('SELECT user_id AS "userId", role FROM group_members WHERE group_id = $1', [groupId]);
  }

  memberCount(groupId: number): Step<number> {
    const row = this.q.get<{ n: number }>('SELECT count(*) AS n FROM group_members WHERE group_id = $1', [
      groupId,
    ]);
    return mapStep(row, (r) => r!.n);
  }

  groupCounts(userIds: readonly number[]): Step<Map<number, number>> {
    const rows = this.q.all<{ user_id: number; n: number }>(
      'SELECT user_id, count(*) AS n FROM group_members WHERE user_id = ANY($1::bigint[]) GROUP BY user_id',
      [userIds],
    );
    return mapStep(rows, (rs) => new Map(rs.map((r) => [r.user_id, r.n])));
  }

  membersAmong(groupId: number, userIds: readonly number[]): Step<Set<number>> {
    const rows = this.q.all<{ user_id: number }>(
      'SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = ANY($2::bigint[])',
      [groupId, userIds],
    );
    return mapStep(rows, (rs) => new Set(rs.map((r) => r.user_id)));
  }

  insertGroup(name: string, description: string | null, ownerId: number, now: number): Step<GroupRecord> {
    const row = this.q.get<GroupRecord>(
      `INSERT INTO groups (name, description, owner_id, created_at) VALUES ($1, $2, $3, $4)
       RETURNING ${GROUP_COLUMNS}`,
      [name, description, ownerId, now],
    );
    return mapStep(row, (r) => r!);
  }

  insertMembers(groupId: number, userIds: readonly number[], role: GroupRole, now: number): Step<void> {
    // The users are locked already (lockUsers): every one exists.
    const n = this.q.run(
      `INSERT INTO group_members (group_id, user_id, role, joined_at)
       SELECT $1, id, $3, $4 FROM users WHERE id = ANY($2::bigint[])`,
      [groupId, userIds, role, now],
    );
    return mapStep(n, () => undefined);
  }

  updateGroup(groupId: number, name: string, description: string | null, ownerId: number): Step<void> {
    const done = this.q.run('UPDATE groups SET name = $1, description = $2, owner_id = $3 WHERE id = $4', [
      name,
      description,
      ownerId,
      groupId,
    ]);
    return mapStep(done, () => undefined);
  }

  handOver(groupId: number, from: number, to: number): Step<void> {
    const done = this.q.run(
      `UPDATE group_members SET role = CASE WHEN user_id = $2 THEN 'owner' ELSE 'member' END
       WHERE group_id = $1 AND user_id IN ($2, $3)`,
      [groupId, to, from],
    );
    return mapStep(done, () => undefined);
  }

  deleteMember(groupId: number, userId: number): Step<void> {
    const done = this.q.run('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [
      groupId,
      userId,
    ]);
    return mapStep(done, () => undefined);
  }

  dissolve(groupId: number, now: number): Step<void> {
    const marked = this.q.run('UPDATE groups SET dissolved_at = $1 WHERE id = $2', [now, groupId]);
    return mapStep(marked, () =>
      mapStep(this.q.run('DELETE FROM group_members WHERE group_id = $1', [groupId]), () => undefined),
    ) as Step<void>;
  }

  groupView(viewerId: number, groupId: number): Step<GroupView | null> {
    return mapStep(this.q.get<GroupView>(VIEW_OF, [viewerId, groupId]), (r) => r ?? null);
  }
}
