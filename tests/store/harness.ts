// What every area of the Store contract shares: a fresh store per test, users, sends, friendships, and
// small helpers. Tests never assume user ids (a PostgreSQL sequence need not restart at 1), only
// per-recipient message ids, which start at 1 for a new user by contract.

import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { nameKey, type AttachmentView, type PublicUser, type UserStatus } from '@openwechat/protocol';
import type { InboxMessage, SendResult, Store, UserRecord } from '../../packages/relay/src/store/types.ts';

export const T0 = 1_772_000_000_000;

export function publicOf(u: UserRecord): PublicUser {
  return {
    id: u.id,
    name: u.name,
    description: u.description,
    status: u.status,
    createdAt: u.createdAt,
    lastSeenAt: u.lastSeenAt,
  };
}

export function ids(messages: readonly InboxMessage[]): number[] {
  return messages.map((m) => m.id);
}

/** Yields `bytes` in pieces of the given sizes (cycled), like a socket would. */
export async function* piecesOf(bytes: Buffer, sizes: readonly number[]): AsyncIterable<Buffer> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.subarray(at, at + n);
    at += n;
    // Let other work run between pieces, as a real upload would.
    await new Promise((r) => setImmediate(r));
  }
}

export async function readAll(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The store under test (new and empty for each test) and the steps most tests start with. */
export interface Harness {
  readonly store: Store;
  user(
    userName: string,
    opts?: { status?: UserStatus; description?: string | null; createdAt?: number },
  ): Promise<UserRecord>;
  send(
    from: UserRecord,
    to: UserRecord | number,
    content: string,
    opts?: { now?: number; attachment?: AttachmentView | null },
  ): Promise<SendResult>;
  /** Makes a and b friends (a requests, b replies) and empties both inboxes. */
  befriend(a: UserRecord, b: UserRecord, now?: number): Promise<void>;
}

export function harness(current: () => Store): Harness {
  let userSeq = 0;
  const h: Harness = {
    get store() {
      return current();
    },
    user(userName, opts = {}) {
      userSeq++;
      return current().createUser({
        name: userName,
        nameKey: nameKey(userName),
        description: opts.description === undefined ? `I am ${userName}` : opts.description,
        status: opts.status ?? 'open',
        tokenHash: `hash-${userSeq}-${userName}`,
        createdAt: opts.createdAt ?? T0,
      });
    },
    send(from, to, content, opts = {}) {
      return current().send({
        fromId: from.id,
        toId: typeof to === 'number' ? to : to.id,
        content,
        attachment: opts.attachment ?? null,
        now: opts.now ?? T0 + 1000,
      });
    },
    async befriend(a, b, now = T0 + 1000) {
      expect((await h.send(a, b, 'hi', { now })).outcome).toBe('request');
      expect((await h.send(b, a, 'hello', { now })).outcome).toBe('accepted');
      await current().takeInbox(a.id, { limit: 500, fromId: null });
      await current().takeInbox(b.id, { limit: 500, fromId: null });
    },
  };
  return h;
}
