// contacts.json: the local cache of who is who and how we relate (the relay is the source of truth).
// Written by the CLI (friends sync, discovery, sends, block/unblock) and the daemon (friend requests,
// friendship notices, chats), always under the `contacts` lock and atomically.
//
// relationship: accepted | pending_outgoing | pending_incoming | blocked, and `none` for users we only
// know from discovery, a profile lookup, or a former friendship.

import { readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { withLock } from './lock.ts';
import { dataPath } from './paths.ts';

export const RELATIONSHIPS = ['accepted', 'pending_outgoing', 'pending_incoming', 'blocked', 'none'] as const;
export type Relationship = (typeof RELATIONSHIPS)[number];

export interface Contact {
  id: number;
  name: string;
  description: string | null;
  relationship: Relationship;
  since: string | null;
  last_message_at: string | null;
  [key: string]: unknown;
}

export interface ContactsFile {
  updated_at: string;
  contacts: Contact[];
  [key: string]: unknown;
}

export type ContactMap = Map<number, Contact>;

export function isContactsFile(v: unknown): v is ContactsFile {
  return typeof v === 'object' && v !== null && Array.isArray((v as ContactsFile).contacts);
}

export async function readContacts(dir: string): Promise<ContactMap> {
  const file = await readJsonOrNull<unknown>(dataPath(dir, 'contacts'));
  const map: ContactMap = new Map();
  if (!isContactsFile(file)) return map;
  for (const c of file.contacts) if (c && Number.isInteger(c.id)) map.set(c.id, c);
  return map;
}

/** Read-modify-write of contacts.json under its lock. `fn` changes the map in place. */
export async function updateContacts<T>(
  dir: string,
  fn: (contacts: ContactMap) => T | Promise<T>,
  now = Date.now(),
): Promise<T> {
  return withLock(dir, 'contacts', async () => {
    const path = dataPath(dir, 'contacts');
    const old = await readJsonOrNull<unknown>(path);
    const extra = isContactsFile(old) ? old : { updated_at: '', contacts: [] };
    const map = await readContacts(dir);
    const result = await fn(map);
    const contacts = [...map.values()].sort((a, b) => a.id - b.id);
    await writeJsonAtomic(path, { ...extra, updated_at: new Date(now).toISOString(), contacts });
    return result;
  });
}

/** Adds or refreshes a user; `relationship` applies only when given (new entries start as `none`). */
export function upsertContact(
  map: ContactMap,
  user: { id: number; name?: string | null; description?: string | null },
  relationship?: Relationship,
): Contact {
  let c = map.get(user.id);
  if (!c) {
    c = {
      id: user.id,
      name: user.name ?? '',
      description: user.description ?? null,
      relationship: relationship ?? 'none',
      since: null,
      last_message_at: null,
    };
    map.set(user.id, c);
  } else {
    if (user.name) c.name = user.name;
    if (user.description !== undefined) c.description = user.description;
    if (relationship) c.relationship = relationship;
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
