// Shared pieces of the delivery suites: a seeded PRNG (runs are reproducible), JSON-mode inbox reads,
// and a checker for "every logical message exactly once, in order".

import { expect } from 'vitest';
import { req, type User } from '../relay/client.ts';

/** mulberry32, the skill daemon's seeded PRNG for its jitter: floats in [0, 1). */
export { seededRandom as mulberry32 } from '../../packages/skill/src/daemon.ts';

/** An integer in [min, max] from the PRNG. */
export function randInt(rng: () => number, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

/** The JSON form of a message (GET /messages, /send previews, `?format=json` streams). */
export interface MessageJson {
  id: number;
  type: 'chat' | 'friend_request' | 'system';
  created_at: string;
  from_id: number | null;
  from: { id: number; name: string; description: string | null } | null;
  content: string;
  attachment: unknown;
}

export interface InboxJson {
  total: number;
  fetched: number;
  remaining: number;
  messages: MessageJson[];
}

/** GET /messages in JSON mode (query e.g. `?after=3&limit=50`); asserts HTTP 200. */
export async function inboxJson(base: string, user: { token: string }, query = ''): Promise<InboxJson> {
  const r = await req(base, 'GET', `/messages${query}`, { token: user.token, jsonMode: true });
  expect(r.status, r.body).toBe(200);
  return JSON.parse(r.body) as InboxJson;
}

/** Read-and-clear the whole inbox (plain GET /messages); returns what was in it. */
export async function drainInbox(base: string, user: { token: string }): Promise<MessageJson[]> {
  const all: MessageJson[] = [];
  for (;;) {
    const page = await inboxJson(base, user, '?limit=500');
    all.push(...page.messages);
    if (page.fetched === 0 || page.remaining === 0) return all;
  }
}

/** Everything stored, without deleting it (GET /messages?after=0 acknowledges nothing). */
export async function peekAll(base: string, user: { token: string }): Promise<InboxJson> {
  return inboxJson(base, user, '?after=0&limit=500');
}

/** Reads the whole inbox with lossless `?after=` paging, acknowledging as it goes. */
export async function pageAll(base: string, user: { token: string }, limit = 100): Promise<MessageJson[]> {
  const all: MessageJson[] = [];
  let after = 0;
  for (;;) {
    const page = await inboxJson(base, user, `?after=${after}&limit=${limit}`);
    if (page.fetched === 0) return all;
    all.push(...page.messages);
    after = page.messages.at(-1)!.id;
  }
}

/** POST /send in JSON mode with optional extra headers (Idempotency-Key). */
export async function sendJson(
  base: string,
  from: User,
  toId: number,
  content: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Headers }> {
  return req(base, 'POST', '/send', {
    token: from.token,
    json: { to_id: toId, content },
    headers,
    jsonMode: true,
  });
}

/** Asserts ids are strictly consecutive (no gap, no duplicate) from `first`. */
export function expectConsecutive(ids: number[], first: number): void {
  const expected = Array.from({ length: ids.length }, (_, i) => first + i);
  expect(ids).toEqual(expected);
}
