// groups.json: the local cache of the groups this user belongs to (the relay is the source of truth).
// Written atomically under the `groups` lock by the daemon (at start, and when a group message or a
// membership notice arrives) and by the CLI's group commands. The demo UI reads it for names and member
// counts.
//
//   {"updated_at":"…","groups":[{"id":7,"name":"team","description":null,"owner_id":1,"role":"owner","member_count":3}]}

import type { Group, RelayClient } from '@openwechat/client';
import { readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { withLock } from './lock.ts';
import { dataPath } from './paths.ts';

export interface GroupEntry {
  id: number;
  name: string;
  description: string | null;
  owner_id: number;
  role: 'owner' | 'member';
  member_count: number;
}

export interface GroupsFile {
  updated_at: string;
  groups: GroupEntry[];
}

export function groupEntry(g: Group): GroupEntry {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    owner_id: g.ownerId,
    role: g.role,
    member_count: g.memberCount,
  };
}

export async function readGroups(dir: string): Promise<GroupsFile | null> {
  const file = await readJsonOrNull<GroupsFile>(dataPath(dir, 'groups'));
  return file && Array.isArray(file.groups) ? file : null;
}

async function write(dir: string, groups: GroupEntry[], now: number): Promise<GroupsFile> {
  const file: GroupsFile = {
    updated_at: new Date(now).toISOString(),
    groups: [...groups].sort((a, b) => a.id - b.id),
  };
  await writeJsonAtomic(dataPath(dir, 'groups'), file);
  return file;
}

/**
 * Asks the relay for the user's groups and replaces groups.json with the answer. The request runs under
 * the lock, so concurrent refreshes write in the order the relay answered them.
 */
export async function refreshGroups(
  dir: string,
  client: RelayClient,
  now?: () => number,
): Promise<GroupsFile> {
  return withLock(dir, 'groups', async () => {
    const list = await client.groups();
    return write(dir, list.map(groupEntry), now?.() ?? Date.now());
  });
}

/** Changes groups.json without asking the relay (e.g. after a leave, when the group is no longer listed). */
export async function updateGroups(
  dir: string,
  fn: (groups: GroupEntry[]) => GroupEntry[],
  now = Date.now(),
): Promise<GroupsFile> {
  return withLock(dir, 'groups', async () => {
    const old = await readGroups(dir);
    return write(dir, fn(old?.groups ?? []), now);
  });
}

export type GroupNotice =
  | { kind: 'added'; gid: number; name: string; by: { id: number; name: string } }
  | { kind: 'removed'; gid: number; name: string }
  | { kind: 'dissolved'; gid: number; name: string };

const ADDED_RE = /^你已被 ([\s\S]+?)（ID:(\d+)）加入群组 ([\s\S]+)（群ID:(\d+)）/;
const REMOVED_RE = /^你已被移出群组 ([\s\S]+)（群ID:(\d+)）/;
const DISSOLVED_RE = /^群组 ([\s\S]+)（群ID:(\d+)）已被群主解散/;

/** The membership change a system notice announces (docs/groups-api.md), or null for any other notice. */
export function groupNoticeOf(content: string): GroupNotice | null {
  let m = ADDED_RE.exec(content);
  if (m) {
    return { kind: 'added', gid: Number(m[4]), name: m[3] ?? '', by: { id: Number(m[2]), name: m[1] ?? '' } };
  }
  m = REMOVED_RE.exec(content);
  if (m) return { kind: 'removed', gid: Number(m[2]), name: m[1] ?? '' };
  m = DISSOLVED_RE.exec(content);
  if (m) return { kind: 'dissolved', gid: Number(m[2]), name: m[1] ?? '' };
  return null;
}
