// contacts.json: the local cache of who is who and how we relate (the relay is the source of truth), in the
// guide's layout: an object keyed by user id, each `{"name","relationship","last_seen_utc", …}` (our extra
// keys: description, since, last_message_at; keys written by others are kept).
// Written by the CLI (friends sync, discovery, sends, block/unblock) and the daemon (friend requests,
// friendship notices, chats), always under the `contacts` lock and atomically.
//
// relationship: accepted | pending_outgoing | pending_incoming | blocked, and `none` for users we only
// know from discovery, a profile lookup, or a former friendship.

import { readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { withLock } from './lock.ts';
import { utcSecond } from './formats.ts';
import { dataPath } from './paths.ts';

const RELATIONSHIPS = ['accepted', 'pending_outgoing', 'pending_incoming', 'blocked', 'none'] as const;
export type Relationship = (typeof RELATIONSHIPS)[number];

export interface Contact {
  id: number;
  name: string;
  relationship: Relationship;
  /** The last time we heard from or about this user (UTC, `Z`). */
  last_seen_utc: string | null;
  description: string | null;
  since: string | null;
  last_message_at: string | null;
  [key: string]: unknown;
}

/** The guide's file: an object keyed by user id (`{"2": {"name","relationship","last_seen_utc",…}}`). */
export type ContactsFile = Record<string, Record<string, unknown>>;

export type ContactMap = Map<number, Contact>;

/** The layout of skill 0.x: `{"updated_at","contacts":[{id,…}]}` (read, and rewritten by migrate.ts). */
export function isListContactsFile(v: unknown): v is { contacts: Array<Record<string, unknown>> } {
  return typeof v === 'object' && v !== null && Array.isArray((v as { contacts?: unknown }).contacts);
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function contactOf(id: number, v: Record<string, unknown>): Contact {
  const { id: _id, ...rest } = v;
  return {
    ...rest,
    id,
    name: str(v.name) ?? '',
    relationship: RELATIONSHIPS.includes(v.relationship as Relationship)
      ? (v.relationship as Relationship)
      : 'none',
    last_seen_utc: str(v.last_seen_utc),
    description: str(v.description),
    since: str(v.since),
    last_message_at: str(v.last_message_at),
  };
}

/** Entries of either layout; keys of the guide's map that are not user ids are not contacts. */
function entriesOf(file: unknown): ContactMap {
  const map: ContactMap = new Map();
  if (isListContactsFile(file)) {
    for (const c of file.contacts)
      if (c && Number.isInteger(c.id) && (c.id as number) > 0)
        map.set(c.id as number, contactOf(c.id as number, c));
  } else if (typeof file === 'object' && file !== null && !Array.isArray(file)) {
    for (const [key, value] of Object.entries(file as Record<string, unknown>)) {
      if (!/^\d+$/.test(key) || typeof value !== 'object' || value === null) continue;
      map.set(Number(key), contactOf(Number(key), value as Record<string, unknown>));
    }
  }
  return map;
}

export async function readContacts(dir: string): Promise<ContactMap> {
  return entriesOf(await readJsonOrNull<unknown>(dataPath(dir, 'contacts')));
}

/** The file for a map: keyed by id, the guide's keys first, every other key kept. */
export function contactsFileOf(map: ContactMap, keep: Record<string, unknown> = {}): ContactsFile {
  const file: ContactsFile = {};
  for (const [k, v] of Object.entries(keep)) if (!/^\d+$/.test(k)) file[k] = v as Record<string, unknown>;
  for (const c of [...map.values()].sort((a, b) => a.id - b.id)) {
    const { id: _id, name, relationship, last_seen_utc, ...rest } = c;
    file[String(c.id)] = { name, relationship, last_seen_utc, ...rest };
  }
  return file;
}

/** Read-modify-write of contacts.json under its lock. `fn` changes the map in place. */
export async function updateContacts<T>(
  dir: string,
  fn: (contacts: ContactMap) => T | Promise<T>,
  now = Date.now(),
): Promise<T> {
  void now;
  return withLock(dir, 'contacts', async () => {
    const path = dataPath(dir, 'contacts');
    const old = await readJsonOrNull<unknown>(path);
    const map = entriesOf(old);
    const result = await fn(map);
    // Top-level keys that are not contacts (none in the guide's layout) are kept; 0.x's list is converted.
    const keep =
      old && typeof old === 'object' && !isListContactsFile(old) ? (old as Record<string, unknown>) : {};
    await writeJsonAtomic(path, contactsFileOf(map, keep));
    return result;
  });
}

/**
 * Adds or refreshes a user; `relationship` applies only when given (new entries start as `none`). `seen`
 * (UTC) is when we heard from or about them: `last_seen_utc` only moves forward.
 */
export function upsertContact(
  map: ContactMap,
  user: { id: number; name?: string | null; description?: string | null },
  relationship?: Relationship,
  seen: string = utcSecond(Date.now()),
): Contact {
  let c = map.get(user.id);
  if (!c) {
    c = {
      id: user.id,
      name: user.name ?? '',
      relationship: relationship ?? 'none',
      last_seen_utc: seen,
      description: user.description ?? null,
      since: null,
      last_message_at: null,
    };
    map.set(user.id, c);
  } else {
    if (user.name) c.name = user.name;
    if (user.description !== undefined) c.description = user.description;
    if (relationship) c.relationship = relationship;
    if (!c.last_seen_utc || c.last_seen_utc < seen) c.last_seen_utc = seen;
  }
  return c;
}

export function setRelationship(c: Contact, rel: Relationship, sinceIso: string | null): void {
  if (c.relationship !== rel) c.since = rel === 'none' ? null : sinceIso;
  else if (c.since === null && rel !== 'none') c.since = sinceIso;
  c.relationship = rel;
}

export function noteMessageTime(c: Contact, iso: string): void {
  if (!c.last_message_at || c.last_message_at < iso) c.last_message_at = iso;
}

const FRIENDSHIP_NOTICE_RE = /^您与 ([\s\S]+?)（ID:(\d+)）已成功建立好友关系/;

/** The other user of a "friendship established" system notice. */
export function friendshipOfNotice(content: string): { id: number; name: string } | null {
  const m = FRIENDSHIP_NOTICE_RE.exec(content);
  return m ? { id: Number(m[2]), name: m[1] ?? '' } : null;
}
