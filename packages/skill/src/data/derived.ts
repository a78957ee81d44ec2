// stats.json and context_snapshot.json: views computed from the files that hold the truth
// (conversations.md, contacts.json, cursor.json, config.json). Any process may refresh them (under the
// `derived` lock), so they are never lost or double-counted: a refresh recomputes, it does not add.
// The `sse` part of stats.json belongs to the daemon; other writers keep what is there.

import { readFile } from 'node:fs/promises';
import { readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { readConfigRaw } from './config.ts';
import { readContacts } from './contacts.ts';
import { parseConversationLine, type ConversationLine } from './formats.ts';
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
  updated_at: string;
  messages_received: number;
  messages_sent: number;
  /** Received messages by kind; `group` counts group messages (their lines say `type=chat`). */
  by_type: { chat: number; friend_request: number; system: number; group: number };
  last_message_id: number | null;
  sse: SseStatus | null;
}

export interface SnapshotMessage {
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
  updated_at: string;
  me: { id: number | null; name: string | null };
  /** Per contact id, and per group as `g<gid>` (group messages since our last message to that group). */
  unread_by_contact: Record<string, number>;
  recent: SnapshotMessage[];
  contacts: number;
}

const RECENT = 20;

/** Sort key of an unread entry: contact ids first, then `g<gid>` groups. */
function unreadOrder(key: string): number {
  return key.startsWith('g') ? 2 ** 40 + Number(key.slice(1)) : Number(key);
}

/** All lines, and the highest incoming id among those at or after byte offset `start`. */
async function readLinesAndLastId(
  dir: string,
  start: number,
): Promise<{ lines: ConversationLine[]; lastId: number }> {
  let buf: Buffer;
  try {
    buf = await readFile(dataPath(dir, 'conversations'));
  } catch {
    return { lines: [], lastId: 0 };
  }
  const lines: ConversationLine[] = [];
  let lastId = 0;
  let offset = 0;
  while (offset < buf.length) {
    const nl = buf.indexOf(0x0a, offset);
    const end = nl < 0 ? buf.length : nl;
    const l = parseConversationLine(buf.subarray(offset, end).toString('utf8'));
    if (l) {
      lines.push(l);
      if (offset >= start && l.direction === 'in' && l.id !== null && l.id > lastId) lastId = l.id;
    }
    offset = end + 1;
  }
  return { lines, lastId };
}

/** Recomputes stats.json and context_snapshot.json; `sse` replaces the daemon's part when given. */
export async function refreshDerived(
  dir: string,
  opts: { sse?: SseStatus; now?: number } = {},
): Promise<{ stats: StatsFile; snapshot: SnapshotFile }> {
  const now = opts.now ?? Date.now();
  return withLock(dir, 'derived', async () => {
    // The cursor first, then the lines: the daemon appends lines before it moves the cursor, so the
    // newest id is taken from this account's lines (past `starts`) as well, and the counts and
    // last_message_id always describe the same moment.
    const cursor = await readCursor(dir).catch(() => null);
    const { lines, lastId } = await readLinesAndLastId(dir, cursor?.starts?.conversations ?? 0);
    const byType = { chat: 0, friend_request: 0, system: 0, group: 0 };
    let received = 0;
    let sent = 0;
    // Unanswered messages per contact (and per group): incoming ones after our last message to them.
    const unread = new Map<string, number>();
    const incoming: ConversationLine[] = [];
    for (const l of lines) {
      const key = l.group ? l.group.id : String(l.peerId);
      if (l.direction === 'out') {
        sent++;
        unread.delete(key);
        continue;
      }
      received++;
      if (l.group) byType.group++;
      else if (l.type in byType) byType[l.type as keyof typeof byType]++;
      incoming.push(l);
      if (l.type !== 'system') unread.set(key, (unread.get(key) ?? 0) + 1);
    }
    const old = await readJsonOrNull<Partial<StatsFile>>(dataPath(dir, 'stats')).catch(() => null);
    const config = await readConfigRaw(dir).catch(() => null);
    const contacts = await readContacts(dir).catch(() => new Map());
    const updatedAt = new Date(now).toISOString();
    const stats: StatsFile = {
      updated_at: updatedAt,
      messages_received: received,
      messages_sent: sent,
      by_type: byType,
      last_message_id: Math.max(cursor?.last_id ?? 0, lastId) || null,
      sse: opts.sse ?? (old && typeof old.sse === 'object' ? (old.sse ?? null) : null),
    };
    const snapshot: SnapshotFile = {
      updated_at: updatedAt,
      me: {
        id: typeof config?.my_id === 'number' ? config.my_id : null,
        name: typeof config?.my_name === 'string' ? config.my_name : null,
      },
      // Contacts by id, then groups by id.
      unread_by_contact: Object.fromEntries(
        [...unread].sort((a, b) => unreadOrder(a[0]) - unreadOrder(b[0])),
      ),
      recent: incoming.slice(-RECENT).map((l) => ({
        id: l.id,
        time: l.time,
        from_id: l.peerId,
        from_name: l.peerName,
        type: l.type,
        content: l.content,
        ...(l.group ? { group: l.group, mentioned: l.mentioned } : {}),
      })),
      contacts: contacts.size,
    };
    await writeJsonAtomic(dataPath(dir, 'stats'), stats);
    await writeJsonAtomic(dataPath(dir, 'snapshot'), snapshot);
    return { stats, snapshot };
  });
}
