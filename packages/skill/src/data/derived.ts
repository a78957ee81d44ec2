// stats.json and context_snapshot.json: views computed from the files that hold the truth
// (conversations.md, conversations.idx, contacts.json, groups.json, cursor.json, config.json), in the guide's
// layouts plus our keys; keys already in the files (an older skill's) are kept. Any process may refresh them (under the
// `derived` lock), so they are never lost or double-counted: a refresh recomputes, it does not add.
// The `sse` part of stats.json belongs to the daemon; other writers keep what is there.

import { readFile } from 'node:fs/promises';
import { readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { readConfigRaw } from './config.ts';
import { readContacts, type Contact } from './contacts.ts';
import {
  groupKey,
  IDX_RE,
  lineKey,
  parseConversationLine,
  utcSecond,
  type ConversationLine,
} from './formats.ts';
import { readGroups } from './groups.ts';
import { readCursor } from './inbox.ts';
import { withLock } from './lock.ts';
import { dataPath } from './paths.ts';

export type SseState = 'connected' | 'disconnected' | 'reconnecting' | 'fallback';

export interface SseStatus {
  state: SseState;
  since: string;
  reconnects: number;
  mode: 'resume' | 'legacy' | 'fallback';
}

export interface StatsFile {
  // The guide's counters.
  messages_received: number;
  messages_sent: number;
  friends_count: number;
  pending_incoming_count: number;
  pending_outgoing_count: number;
  last_sync_utc: string;
  // Ours.
  updated_at: string;
  /** Received messages by kind; `group` counts group messages (their lines say `type=chat.g<gid>`). */
  by_type: { chat: number; friend_request: number; system: number; group: number };
  last_message_id: number | null;
  sse: SseStatus | null;
  /**
   * What the counters held beyond the lines on disk (a folder of an older skill that counted more than
   * its conversations.md shows, or lines removed by retention): counters are baseline + lines, and the
   * baseline only grows, so a counter never goes down.
   */
  baseline: { messages_received: number; messages_sent: number };
  [key: string]: unknown;
}

interface SnapshotMessage {
  id: number | null;
  time: string;
  from_id: number;
  from_name: string;
  type: string;
  content: string;
  /** Group messages only: the group (`g<gid>`) and whether it mentioned this user. */
  group?: { id: string; name: string };
  mentioned?: boolean;
}

export interface SnapshotFile {
  // The guide's keys.
  updated_at_utc: string;
  /** Messages received in the last 24 hours (system notices not counted). */
  messages_received_recent: number;
  friends_count: number;
  /** The users we exchanged messages with most recently, newest first: `#2 bob`. */
  latest_peers: string[];
  // Ours.
  updated_at: string;
  me: { id: number | null; name: string | null };
  /** Per contact id, and per group as `g<gid>` (group messages since our last message to that group). */
  unread_by_contact: Record<string, number>;
  recent: SnapshotMessage[];
  contacts: number;
  [key: string]: unknown;
}

const RECENT = 20;
const LATEST_PEERS = 5;
const RECENT_WINDOW_MS = 86_400_000;

/** Sort key of an unread entry: contact ids first, then `g<gid>` groups. */
function unreadOrder(key: string): number {
  return key.startsWith('g') ? 2 ** 40 + Number(key.slice(1)) : Number(key);
}

/** All lines, and the highest incoming id among those at or after byte offset `start`. */
async function readLines(dir: string): Promise<Array<{ line: ConversationLine; offset: number }>> {
  let buf: Buffer;
  try {
    buf = await readFile(dataPath(dir, 'conversations'));
  } catch {
    return [];
  }
  const lines: Array<{ line: ConversationLine; offset: number }> = [];
  let offset = 0;
  while (offset < buf.length) {
    const nl = buf.indexOf(0x0a, offset);
    const end = nl < 0 ? buf.length : nl;
    const l = parseConversationLine(buf.subarray(offset, end).toString('utf8'));
    if (l) lines.push({ line: l, offset });
    offset = end + 1;
  }
  return lines;
}

/** conversations.idx from byte offset `start`: line key → message id (the last one written wins). */
async function readIds(dir: string, start: number): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  const buf = await readFile(dataPath(dir, 'conversationIds')).catch(() => Buffer.alloc(0));
  for (const line of buf.subarray(start).toString('utf8').split('\n')) {
    const m = IDX_RE.exec(line);
    if (m) ids.set(m[2]!, Number(m[1]));
  }
  return ids;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
const obj = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

/** Recomputes stats.json and context_snapshot.json; `sse` replaces the daemon's part when given. */
export async function refreshDerived(
  dir: string,
  opts: { sse?: SseStatus; now?: number } = {},
): Promise<{ stats: StatsFile; snapshot: SnapshotFile }> {
  const now = opts.now ?? Date.now();
  return withLock(dir, 'derived', async () => {
    // The cursor first, then the lines: the daemon appends lines before it moves the cursor, so the
    // newest id is taken from this account's idx entries as well, and the counts and last_message_id
    // always describe the same moment.
    const cursor = await readCursor(dir).catch(() => null);
    const lines = await readLines(dir);
    const ids = await readIds(dir, 0);
    const accountIds = await readIds(dir, cursor?.starts?.ids ?? 0);
    const start = cursor?.starts?.conversations ?? 0;
    let lastId = Math.max(0, ...accountIds.values());
    const byType = { chat: 0, friend_request: 0, system: 0, group: 0 };
    let received = 0;
    let sent = 0;
    let recentCount = 0;
    // Unanswered messages per contact (and per group): incoming ones after our last message to them.
    const unread = new Map<string, number>();
    const incoming: Array<{ l: ConversationLine; id: number | null }> = [];
    const peers = new Map<number, string>();
    for (const { line: l, offset } of lines) {
      const key = l.group ? l.group.id : String(l.peerId);
      if (l.peerId > 0 && !(l.group && l.direction === 'out')) {
        peers.delete(l.peerId);
        peers.set(l.peerId, l.peerName);
      }
      if (l.direction === 'out') {
        sent++;
        unread.delete(key);
        continue;
      }
      received++;
      const id = l.id ?? ids.get(lineKey(l.time, l.fromId, l.content)) ?? null;
      if (l.id !== null && offset >= start && l.id > lastId) lastId = l.id;
      if (l.group) byType.group++;
      else if (l.type in byType) byType[l.type as keyof typeof byType]++;
      if (l.type !== 'system' && now - Date.parse(l.time) <= RECENT_WINDOW_MS) recentCount++;
      incoming.push({ l, id });
      if (l.type !== 'system') unread.set(key, (unread.get(key) ?? 0) + 1);
    }
    const old = obj(await readJsonOrNull<unknown>(dataPath(dir, 'stats')).catch(() => null));
    const oldSnapshot = obj(await readJsonOrNull<unknown>(dataPath(dir, 'snapshot')).catch(() => null));
    const config = await readConfigRaw(dir).catch(() => null);
    const contacts = await readContacts(dir).catch(() => new Map<number, Contact>());
    const groups = await readGroups(dir).catch(() => null);
    const groupName = (key: string): string => groups?.groups.find((g) => groupKey(g.id) === key)?.name ?? '';
    const rel = (r: string): number => [...contacts.values()].filter((c) => c.relationship === r).length;
    const oldBase = obj(old.baseline);
    const baseline = {
      messages_received: Math.max(num(oldBase.messages_received), num(old.messages_received) - received),
      messages_sent: Math.max(num(oldBase.messages_sent), num(old.messages_sent) - sent),
    };
    const updatedAt = new Date(now).toISOString();
    const updatedUtc = utcSecond(now);
    const friends = rel('accepted');
    const stats: StatsFile = {
      ...old,
      messages_received: baseline.messages_received + received,
      messages_sent: baseline.messages_sent + sent,
      friends_count: friends,
      pending_incoming_count: rel('pending_incoming'),
      pending_outgoing_count: rel('pending_outgoing'),
      last_sync_utc: updatedUtc,
      updated_at: updatedAt,
      by_type: byType,
      last_message_id: Math.max(cursor?.last_id ?? 0, lastId) || null,
      sse: opts.sse ?? (typeof old.sse === 'object' ? ((old.sse as SseStatus | null) ?? null) : null),
      baseline,
    };
    const nameOf = (id: number, fallback: string): string => contacts.get(id)?.name || fallback;
    const snapshot: SnapshotFile = {
      ...oldSnapshot,
      updated_at_utc: updatedUtc,
      messages_received_recent: recentCount,
      friends_count: friends,
      latest_peers: [...peers]
        .reverse()
        .slice(0, LATEST_PEERS)
        .map(([id, name]) => `#${id} ${nameOf(id, name)}`.trim()),
      updated_at: updatedAt,
      me: {
        id: typeof config?.my_id === 'number' ? config.my_id : null,
        name: typeof config?.my_name === 'string' ? config.my_name : null,
      },
      // Contacts by id, then groups by id.
      unread_by_contact: Object.fromEntries(
        [...unread].sort((a, b) => unreadOrder(a[0]) - unreadOrder(b[0])),
      ),
      recent: incoming.slice(-RECENT).map(({ l, id }) => ({
        id,
        time: l.time,
        from_id: l.fromId,
        from_name: l.fromName,
        type: l.type,
        content: l.content,
        ...(l.group
          ? { group: { id: l.group.id, name: l.group.name || groupName(l.group.id) }, mentioned: l.mentioned }
          : {}),
      })),
      contacts: contacts.size,
    };
    await writeJsonAtomic(dataPath(dir, 'stats'), stats);
    await writeJsonAtomic(dataPath(dir, 'snapshot'), snapshot);
    return { stats, snapshot };
  });
}
