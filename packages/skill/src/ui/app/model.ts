// What the page shows, computed from the data files without touching the DOM: messages (conversations.md,
// read by the skill's own parser, data/lines.ts), who I am, contacts, groups, the channel state, and the
// sidebar entries for each way of splitting the conversations.

import {
  parseChannelLine,
  parseConversations,
  type ChannelLine,
  type ConversationLine,
} from '../../data/lines.ts';

export type Json = Record<string, unknown>;
type Dir = 'in' | 'out' | 'sys';
export type Split = 'friend' | 'session' | 'time';

const SSE_STATES = ['connected', 'disconnected', 'reconnecting', 'fallback', 'recovered', 'error'];
const SESSION_GAP_MS = 30 * 60 * 1000;

/** One conversations.md line as the page shows it. */
export interface Msg {
  /** Position among the shown lines (ties in sorting). */
  idx: number;
  time: string;
  /** Date.parse(time); NaN for a line that is not a message. */
  ts: number;
  type: string;
  /** The relay id (lines of skill 0.x only). */
  id: number | null;
  dir: Dir;
  /** The other user; null for notices and my own group messages. */
  peer: { id: string; name: string } | null;
  group: { id: string; name: string } | null;
  /** A saved file (`files/…`) or the name of an attachment that was not saved. */
  file: string | null;
  mentioned: boolean;
  content: string;
  /** The conversation: `u:<user id>`, `g:g<gid>` or `sys`. */
  key: string;
}

/** `null`/`undefined` → '', anything else as text. */
export function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v);
}

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fromLine(l: ConversationLine, idx: number, nameOf: (id: string) => string): Msg {
  const out = l.direction === 'out';
  let peer: Msg['peer'] = null;
  if (!out) peer = { id: String(l.fromId), name: l.fromName };
  else if (l.peerId > 0) peer = { id: String(l.peerId), name: l.peerName || nameOf(String(l.peerId)) };
  // My own line with no recipient (the Python skill's `from=#<me>`): kept under my name, as it says.
  else if (!l.group && l.fromId > 0) peer = { id: String(l.fromId), name: l.fromName };
  const systemPeer = peer === null || peer.id === '0';
  const dir: Dir = l.type === 'system' || (systemPeer && !l.group) ? 'sys' : out ? 'out' : 'in';
  const key = l.group ? `g:${l.group.id}` : systemPeer ? 'sys' : `u:${peer!.id}`;
  const ts = Date.parse(l.time);
  return {
    idx,
    time: l.time,
    ts: Number.isFinite(ts) ? ts : NaN,
    type: l.type,
    id: l.id,
    dir,
    peer: l.group && out ? null : peer,
    group: l.group,
    file: l.file ?? l.attachment,
    mentioned: l.mentioned,
    content: l.content,
    key,
  };
}

/**
 * The messages of conversations.md. A line that is not a message (a note, a damaged line) is shown verbatim
 * as a notice, so nothing in the file is hidden. `nameOf` names the recipient of my direct messages.
 */
export function toMessages(text: string, myId: number | null, nameOf: (id: string) => string): Msg[] {
  return parseConversations(text, myId).map((r, idx) =>
    r.line
      ? fromLine(r.line, idx, nameOf)
      : {
          idx,
          time: '',
          ts: NaN,
          type: 'system',
          id: null,
          dir: 'sys',
          peer: null,
          group: null,
          file: null,
          mentioned: false,
          content: r.raw,
          key: 'sys',
        },
  );
}

/** profile.json (the guide's my_id/my_name; skill 0.x wrote id/name), else the snapshot's `me`. */
export function whoAmI(profile: Json | null, snapshot: Json | null): { id: string; name: string } | null {
  if (profile && profile.my_id !== undefined) return { id: str(profile.my_id), name: str(profile.my_name) };
  if (profile && profile.id !== undefined) return { id: str(profile.id), name: str(profile.name) };
  const me = snapshot?.me;
  if (isObject(me) && me.id !== undefined) return { id: str(me.id), name: str(me.name) };
  return null;
}

export interface Contact {
  id: string;
  name: string;
  description: string;
  relationship: string;
  since: string;
  last_message_at: string;
}

function contact(id: unknown, c: Json): Contact {
  return {
    id: str(id),
    name: str(c.name),
    description: str(c.description),
    relationship: str(c.relationship),
    since: str(c.since),
    last_message_at: str(c.last_message_at),
  };
}

/** contacts.json: the guide's object keyed by user id (skill 0.x wrote {contacts: [...]}). */
export function contactsOf(json: Json | null): Contact[] {
  if (!json) return [];
  if (Array.isArray(json.contacts)) return json.contacts.filter(isObject).map((c) => contact(c.id, c));
  return Object.entries(json).flatMap(([k, v]) => (/^\d+$/.test(k) && isObject(v) ? [contact(k, v)] : []));
}

export interface Group {
  /** `7`, keyed `g7` in conversations.md. */
  id: string;
  name: string;
  description: string;
  role: string;
  memberCount: number | null;
}

/** groups.json: the groups I belong to (names, member counts, my role), written by the daemon and CLI. */
export function groupsOf(json: Json | null): Group[] {
  if (!json || !Array.isArray(json.groups)) return [];
  return json.groups
    .filter((g): g is Json => isObject(g) && /^\d+$/.test(str(g.id)))
    .map((g) => {
      const n = g.member_count === null || g.member_count === undefined ? NaN : Number(g.member_count);
      return {
        id: str(g.id),
        name: str(g.name),
        description: str(g.description),
        role: str(g.role),
        memberCount: Number.isFinite(n) ? n : null,
      };
    });
}

export interface ChannelStatus extends ChannelLine {
  ts: number;
}

/**
 * sse_channel.log, one entry per non-blank line; a line the skill's parser does not read is kept whole as
 * its details (state '').
 */
export function channelLines(text: string): ChannelStatus[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((raw) => {
      const l = parseChannelLine(raw) ?? { time: '', state: '', details: raw.replace(/\r$/, '') };
      return { ...l, ts: Date.parse(l.time) };
    });
}

/** The channel's state: the last state line of sse_channel.log, else stats.json's `sse`. */
export function channelStatus(log: string | null, stats: Json | null): ChannelStatus | null {
  if (log !== null) {
    const lines = channelLines(log);
    for (let i = lines.length - 1; i >= 0; i--) if (SSE_STATES.includes(lines[i]!.state)) return lines[i]!;
  }
  const sse = stats?.sse;
  if (isObject(sse) && SSE_STATES.includes(str(sse.state))) {
    return { state: str(sse.state), time: str(sse.since), ts: Date.parse(str(sse.since)), details: '' };
  }
  return null;
}

/** `2026-03-09` in the browser's time zone. */
export function dayKey(ts: number): string {
  const d = new Date(ts);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

/** Where reading stopped in one conversation (localStorage): the newest id and time seen. */
export interface Seen {
  id: number | null;
  time: string | null;
}

export function isNewer(m: Msg, seen: Seen | undefined): boolean {
  if (!seen) return true;
  if (m.id !== null && typeof seen.id === 'number') return m.id > seen.id;
  const st = Date.parse(seen.time ?? '');
  return Number.isFinite(m.ts) && Number.isFinite(st) ? m.ts > st : false;
}

/** The mark after reading `m`: moves forward, never back. */
export function seenAfter(m: Msg, prev: Seen | undefined): Seen {
  const prevId = typeof prev?.id === 'number' ? prev.id : null;
  const prevTime = prev?.time ?? null;
  return {
    id: m.id !== null ? Math.max(m.id, prevId ?? 0) : prevId,
    time: Number.isFinite(m.ts) && !(Date.parse(prevTime ?? '') > m.ts) ? m.time : (prevTime ?? m.time),
  };
}

type Kind = 'user' | 'group' | 'system' | 'day';

/** One sidebar entry: a conversation, a session of one, or a day. */
export interface Bucket {
  id: string;
  /** The conversation key (null for a day). */
  key: string | null;
  kind: Kind;
  name: string;
  msgs: Msg[];
  first: Msg | null;
  last: Msg | null;
  unread: number;
}

function kindOf(key: string): Kind {
  return key === 'sys' ? 'system' : key.startsWith('g:') ? 'group' : 'user';
}

/**
 * The sidebar entries for `split`, newest first: per conversation (groups I belong to listed even before
 * their first message), per session (a gap of more than 30 minutes starts a new one), or per day.
 */
export function buckets(
  msgs: Msg[],
  split: Split,
  groups: Group[],
  nameOf: (key: string, sample: Msg | null) => string,
  isUnread: (m: Msg) => boolean,
): Bucket[] {
  const byKey = new Map<string, Msg[]>();
  for (const m of msgs) {
    const list = byKey.get(m.key);
    if (list) list.push(m);
    else byKey.set(m.key, [m]);
  }
  const out: Bucket[] = [];
  const bucket = (id: string, key: string | null, kind: Kind, list: Msg[], name?: string): Bucket => {
    const last = list[list.length - 1] ?? null;
    return {
      id,
      key,
      kind,
      name: name ?? nameOf(key ?? '', last),
      msgs: list,
      first: list[0] ?? null,
      last,
      unread: 0,
    };
  };
  if (split === 'friend') {
    for (const [key, list] of byKey) out.push(bucket(`c:${key}`, key, kindOf(key), list));
    for (const g of groups) {
      const key = `g:g${g.id}`;
      if (!byKey.has(key)) out.push(bucket(`c:${key}`, key, 'group', []));
    }
  } else if (split === 'session') {
    for (const [key, list] of byKey) {
      let cur: Msg[] | null = null;
      for (const m of list) {
        const prev = cur?.[cur.length - 1];
        if (!cur || !prev || !(m.ts - prev.ts <= SESSION_GAP_MS)) {
          cur = [];
          out.push(bucket(`s:${key}:${m.idx}`, key, kindOf(key), cur));
        }
        cur.push(m);
      }
    }
    for (const b of out) {
      b.first = b.msgs[0] ?? null;
      b.last = b.msgs[b.msgs.length - 1] ?? null;
      b.name = nameOf(b.key ?? '', b.last);
    }
  } else {
    const byDay = new Map<string, Msg[]>();
    for (const m of msgs) {
      const d = Number.isFinite(m.ts) ? dayKey(m.ts) : '—';
      const list = byDay.get(d);
      if (list) list.push(m);
      else byDay.set(d, [m]);
    }
    for (const [d, list] of byDay) out.push(bucket(`d:${d}`, null, 'day', list, d));
  }
  for (const b of out) b.unread = b.msgs.filter(isUnread).length;
  const lastTs = (b: Bucket): number => (b.last ? b.last.ts || 0 : -1);
  out.sort(
    (a, b) =>
      lastTs(b) - lastTs(a) ||
      (b.last ? b.last.idx : -1) - (a.last ? a.last.idx : -1) ||
      a.name.localeCompare(b.name),
  );
  return out;
}
