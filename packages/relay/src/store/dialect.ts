// The per-dialect layer under the store's skeletons (steps.ts): what one transaction can ask of its
// backend. SQLite answers with values (prepared statements; its single writer serialises everything, so
// "lock" means read), PostgreSQL with promises (row locks in a fixed order: group row, then user rows
// in id order, then friendship rows, and the message-counter shard last, so no two transactions
// deadlock). The skeletons in messaging.ts and groups.ts call these in that order.

import type { GroupRole, GroupView } from '@openwechat/protocol';
import type { IdempotencyRow, StoredMessageRow } from './rows.ts';
import type { Step } from './steps.ts';
import type { FriendshipRecord, GroupRecord, InboxPage, NewMessage, UserRecord } from './types.ts';

/** What every transaction that stores messages needs. */
export interface MessageTx {
  /**
   * These users' records, held for the rest of the transaction (PostgreSQL: FOR NO KEY UPDATE in id
   * order); ids without a user are absent. `known`: a record the caller read moments ago, which a
   * backend that locks nothing may use instead of reading it again.
   */
  lockUsers(ids: readonly number[], known?: UserRecord): Step<Map<number, UserRecord>>;
  /** A user's record, unlocked (a message author outside the locked set). */
  user(id: number): Step<UserRecord | null>;
  idempotencyRecord(userId: number, key: string): Step<IdempotencyRow | undefined>;
  recordIdempotency(
    userId: number,
    idem: { key: string; fingerprint: string },
    result: unknown,
    now: number,
  ): Step<void>;
  /** Total and oldest `limit` messages of an inbox (the sender's preview). */
  peek(userId: number, limit: number): Step<InboxPage>;
  /** Stores one private message with its recipient's next id. */
  insert(m: NewMessage): Step<StoredMessageRow>;
  /**
   * Stores messages that differ only in their recipient (group copies, notices) with their recipients'
   * next ids, a fan-out run in a fixed number of statements; recipients must be locked already.
   */
  fanOut(messages: readonly NewMessage[]): Step<StoredMessageRow[]>;
  /** Adds `n` to the lifetime message count (PostgreSQL: on the shard of `key`); last in a transaction. */
  countStored(n: number, key: number): Step<void>;
}

/** A private send's friendship reads and writes. */
export interface SendTx extends MessageTx {
  /** The pair's friendship, held for the transaction (PostgreSQL: FOR NO KEY UPDATE). */
  friendship(a: number, b: number): Step<FriendshipRecord | null>;
  insertPending(a: number, b: number, initiatedBy: number, now: number): Step<void>;
  /** false when there was no row to accept. */
  accept(a: number, b: number, now: number): Step<boolean>;
}

/** A group change's reads and writes. */
export interface GroupTx extends MessageTx {
  /** The group row, held for the transaction (PostgreSQL: FOR NO KEY UPDATE, before any user row). */
  lockGroup(groupId: number): Step<GroupRecord | null>;
  role(groupId: number, userId: number): Step<GroupRole | null>;
  /** Every member and its role (any order). */
  memberRoles(groupId: number): Step<Array<{ userId: number; role: GroupRole }>>;
  memberCount(groupId: number): Step<number>;
  /** How many groups each of these users belongs to (absent: none). */
  groupCounts(userIds: readonly number[]): Step<Map<number, number>>;
  /** `ownerId`'s friendships with these users, by the other user's id (PostgreSQL: FOR SHARE). */
  friendshipsOf(ownerId: number, userIds: readonly number[]): Step<Map<number, FriendshipRecord>>;
  /** Which of these users are members of the group. */
  membersAmong(groupId: number, userIds: readonly number[]): Step<Set<number>>;
  insertGroup(name: string, description: string | null, ownerId: number, now: number): Step<GroupRecord>;
  insertMembers(groupId: number, userIds: readonly number[], role: GroupRole, now: number): Step<void>;
  updateGroup(groupId: number, name: string, description: string | null, ownerId: number): Step<void>;
  /** The new owner becomes 'owner', the old one 'member'. */
  handOver(groupId: number, from: number, to: number): Step<void>;
  deleteMember(groupId: number, userId: number): Step<void>;
  /** Marks the group dissolved and ends every membership. */
  dissolve(groupId: number, now: number): Step<void>;
  /** The group as `viewerId` sees it; null when not a member of a live group. */
  groupView(viewerId: number, groupId: number): Step<GroupView | null>;
}
