// Row shapes, row → record mappings and idempotency replays that both SQL backends share.

import {
  RelayError,
  type GroupMemberView,
  type GroupRole,
  type GroupView,
  type PublicUser,
} from '@openwechat/protocol';
import type { FriendshipRecord, GroupRecord, UserRecord } from './types.ts';

/** The user columns every query selects (never the token hash or the homepage). */
export const USER_COLUMNS = 'id, name, name_key, description, status, created_at, last_seen_at, disabled_at';

export interface UserRow {
  id: number;
  name: string;
  name_key: string;
  description: string | null;
  status: UserRecord['status'];
  created_at: number;
  last_seen_at: number | null;
  disabled_at?: number | null;
}

export interface FriendshipRow {
  user_a: number;
  user_b: number;
  initiated_by: number;
  status: FriendshipRecord['status'];
  blocked_by: number | null;
  created_at: number;
  updated_at: number;
}

export function toUser(row: UserRow): UserRecord {
  return { ...toPublicUser(row), nameKey: row.name_key, disabledAt: row.disabled_at ?? null };
}

export function toPublicUser(row: UserRow): PublicUser {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    status: row.status,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
  };
}

export function toFriendship(row: FriendshipRow): FriendshipRecord {
  return {
    userA: row.user_a,
    userB: row.user_b,
    initiatedBy: row.initiated_by,
    status: row.status,
    blockedBy: row.blocked_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The pair's primary key: the smaller id first. */
export function pair(a: number, b: number): [number, number] {
  return a < b ? [a, b] : [b, a];
}

export interface GroupRow {
  id: number;
  name: string;
  description: string | null;
  owner_id: number;
  created_at: number;
  dissolved_at: number | null;
}

export interface GroupViewRow {
  id: number;
  name: string;
  description: string | null;
  owner_id: number;
  owner_name: string;
  created_at: number;
  member_count: number;
  role: GroupRole;
}

export interface GroupMemberRow {
  id: number;
  name: string;
  description: string | null;
  role: GroupRole;
  joined_at: number;
}

export function toGroup(row: GroupRow): GroupRecord {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    ownerId: row.owner_id,
    createdAt: row.created_at,
    dissolvedAt: row.dissolved_at,
  };
}

export function toGroupView(row: GroupViewRow): GroupView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    ownerId: row.owner_id,
    ownerName: row.owner_name,
    memberCount: row.member_count,
    createdAt: row.created_at,
    role: row.role,
  };
}

export function toGroupMember(row: GroupMemberRow): GroupMemberView {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    role: row.role,
    joinedAt: row.joined_at,
  };
}

/** A stored idempotency record, as both backends read it. */
export interface IdempotencyRow {
  fingerprint: string;
  result: string;
  created_at: number;
}

/**
 * The answer to a repeated Idempotency-Key: the recorded result when the key is still within its window
 * and the request is the same, a conflict when the request differs, null when the key is new (or expired).
 */
export function replayOf<T>(
  prior: IdempotencyRow | undefined,
  idem: { fingerprint: string; windowMs: number },
  now: number,
): (T & { delivered: []; replayed: true }) | null {
  if (!prior || prior.created_at <= now - idem.windowMs) return null;
  if (prior.fingerprint !== idem.fingerprint) throw new RelayError('idempotency_conflict');
  return { ...(JSON.parse(prior.result) as T), delivered: [], replayed: true };
}
