// The backend-agnostic Store contract. Every backend runs it from its own test file:
//   runStoreContract('sqlite', () => openSqliteStore({ file: freshFile() }));
// `open` must return a new, empty store each time (the suite closes it after each test). Tests never
// assume user ids (a PostgreSQL sequence need not restart at 1), only per-recipient message ids, which
// start at 1 for a new user by contract.

import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  RelayError,
  formatFriendshipNotice,
  formatGroupAddedNotice,
  formatGroupDissolvedNotice,
  formatGroupRemovedNotice,
  nameKey,
  type AttachmentView,
  type PublicUser,
  type UserStatus,
} from '@openwechat/protocol';
import type { GroupLimits } from '../domain/groups.ts';
import { decideSend, type SendState } from '../domain/send.ts';
import type { InboxMessage, NewFile, SendOptions, SendResult, Store, UserRecord } from './types.ts';

const T0 = 1_772_000_000_000;

function publicOf(u: UserRecord): PublicUser {
  return {
    id: u.id,
    name: u.name,
    description: u.description,
    status: u.status,
    createdAt: u.createdAt,
    lastSeenAt: u.lastSeenAt,
  };
}

function ids(messages: readonly InboxMessage[]): number[] {
  return messages.map((m) => m.id);
}

/** Yields `bytes` in pieces of the given sizes (cycled), like a socket would. */
async function* piecesOf(bytes: Buffer, sizes: readonly number[]): AsyncIterable<Buffer> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.subarray(at, at + n);
    at += n;
    // Let other work run between pieces, as a real upload would.
    await new Promise((r) => setImmediate(r));
  }
}

async function readAll(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export function runStoreContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let userSeq = 0;

    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    async function user(
      userName: string,
      opts: { status?: UserStatus; description?: string | null; createdAt?: number } = {},
    ): Promise<UserRecord> {
      userSeq++;
      return store.createUser({
        name: userName,
        nameKey: nameKey(userName),
        description: opts.description === undefined ? `I am ${userName}` : opts.description,
        status: opts.status ?? 'open',
        tokenHash: `hash-${userSeq}-${userName}`,
        createdAt: opts.createdAt ?? T0,
      });
    }

    function send(
      from: UserRecord,
      to: UserRecord | number,
      content: string,
      opts: { now?: number; attachment?: AttachmentView | null } = {},
    ): Promise<SendResult> {
      return store.send(
        {
          fromId: from.id,
          toId: typeof to === 'number' ? to : to.id,
          content,
          attachment: opts.attachment ?? null,
          now: opts.now ?? T0 + 1000,
        },
        decideSend,
      );
    }

    /** Makes a and b friends (a requests, b replies) and empties both inboxes. */
    async function befriend(a: UserRecord, b: UserRecord, now = T0 + 1000): Promise<void> {
      expect((await send(a, b, 'hi', { now })).outcome).toBe('request');
      expect((await send(b, a, 'hello', { now })).outcome).toBe('accepted');
      await store.takeInbox(a.id, { limit: 500, fromId: null });
      await store.takeInbox(b.id, { limit: 500, fromId: null });
    }

    describe('operator tools', () => {
      const mk = (name: string, hash = name) =>
        store.createUser({
          name,
          nameKey: name.toLowerCase(),
          description: null,
          status: 'open',
          tokenHash: hash,
          createdAt: T0,
        });

      it('lists users by id with a literal, case-insensitive name filter and paging', async () => {
        const [a, b, c] = [await mk('Ann_1'), await mk('bob'), await mk('ANNIE')];
        const all = await store.listUsers({ query: null, limit: 10, offset: 0 });
        expect(all.total).toBe(3);
        expect(all.users.map((u) => u.id)).toEqual([a.id, b.id, c.id]);
        expect(
          (await store.listUsers({ query: 'ann', limit: 10, offset: 0 })).users.map((u) => u.name),
        ).toEqual(['Ann_1', 'ANNIE']);
        // `_` is literal, not a wildcard.
        expect(
          (await store.listUsers({ query: 'n_', limit: 10, offset: 0 })).users.map((u) => u.name),
        ).toEqual(['Ann_1']);
        const page2 = await store.listUsers({ query: null, limit: 2, offset: 2 });
        expect({ total: page2.total, ids: page2.users.map((u) => u.id) }).toEqual({ total: 3, ids: [c.id] });
        expect(await store.listUsers({ query: 'zzz', limit: 10, offset: 0 })).toEqual({
          total: 0,
          users: [],
        });
      });

      it('a disabled user keeps their token but is hidden from discovery and the top list', async () => {
        const a = await mk('a1');
        const b = await mk('b1');
        const off = await store.setUserDisabled(b.id, T0 + 5);
        expect(off?.disabledAt).toBe(T0 + 5);
        expect((await store.findUserByTokenHash('b1'))?.disabledAt).toBe(T0 + 5);
        expect((await store.discoverUsers({ excludeId: a.id, keyword: null, limit: 10 })).total).toBe(0);
        expect((await store.topActiveUsers(10)).map((u) => u.id)).toEqual([a.id]);
        expect((await store.setUserDisabled(b.id, null))?.disabledAt).toBeNull();
        expect((await store.discoverUsers({ excludeId: a.id, keyword: null, limit: 10 })).total).toBe(1);
        expect(await store.setUserDisabled(999_999, T0)).toBeNull();
      });

      it('a token reset replaces the hash: the old one finds nobody', async () => {
        const a = await mk('t1', 'old-hash');
        expect(await store.setTokenHash(a.id, 'new-hash')).toBe(true);
        expect(await store.findUserByTokenHash('old-hash')).toBeNull();
        expect((await store.findUserByTokenHash('new-hash'))?.id).toBe(a.id);
        expect(await store.setTokenHash(999_999, 'x')).toBe(false);
      });

      it('ping answers', async () => {
        await expect(store.ping()).resolves.toBeUndefined();
      });
    });

    describe('users', () => {
      it('creates a user and reads it back by id and token hash', async () => {
        const alice = await store.createUser({
          name: 'Alice',
          nameKey: 'alice',
          description: 'likes tea',
          status: 'friends_only',
          tokenHash: 'aa11',
          createdAt: T0,
        });
        const expected: UserRecord = {
          id: alice.id,
          name: 'Alice',
          nameKey: 'alice',
          description: 'likes tea',
          status: 'friends_only',
          createdAt: T0,
          lastSeenAt: null,
          disabledAt: null,
        };
        expect(alice).toEqual(expected);
        expect(Number.isInteger(alice.id)).toBe(true);
        expect(await store.getUser(alice.id)).toEqual(expected);
        expect(await store.findUserByTokenHash('aa11')).toEqual(expected);
        expect(await store.findUserByTokenHash('bb22')).toBeNull();
        expect(await store.getUser(alice.id + 1000)).toBeNull();
      });

      it('gives increasing ids and counts users', async () => {
        expect(await store.countUsers()).toBe(0);
        const a = await user('a');
        const b = await user('b');
        expect(b.id).toBeGreaterThan(a.id);
        expect(await store.countUsers()).toBe(2);
      });

      it('refuses a name whose key exists (BOB vs bob) with name_taken and stores nothing', async () => {
        await user('bob');
        await expect(user('BOB')).rejects.toMatchObject({ name: 'RelayError', code: 'name_taken' });
        expect(await store.countUsers()).toBe(1);
        expect((await user('bobby')).name).toBe('bobby');
        expect(await store.countUsers()).toBe(2);
      });

      it('keeps a null description', async () => {
        const u = await user('nodesc', { description: null });
        expect((await store.getUser(u.id))?.description).toBeNull();
      });

      it('sets the status and returns the updated record; null for an unknown user', async () => {
        const u = await user('carol');
        const updated = await store.setStatus(u.id, 'do_not_disturb');
        expect(updated).toEqual({ ...u, status: 'do_not_disturb' });
        expect((await store.getUser(u.id))?.status).toBe('do_not_disturb');
        expect(await store.setStatus(u.id + 1000, 'open')).toBeNull();
      });

      it('touches last-seen for many users at once, never moving it backwards', async () => {
        const a = await user('a');
        const b = await user('b');
        const c = await user('c');
        await store.touchLastSeen([
          [a.id, T0 + 10],
          [b.id, T0 + 20],
        ]);
        expect((await store.getUser(a.id))?.lastSeenAt).toBe(T0 + 10);
        expect((await store.getUser(b.id))?.lastSeenAt).toBe(T0 + 20);
        expect((await store.getUser(c.id))?.lastSeenAt).toBeNull();
        await store.touchLastSeen([
          [a.id, T0 + 30],
          [b.id, T0 + 5],
        ]);
        expect((await store.getUser(a.id))?.lastSeenAt).toBe(T0 + 30);
        expect((await store.getUser(b.id))?.lastSeenAt).toBe(T0 + 20);
        await store.touchLastSeen([]);
        expect((await store.getUser(a.id))?.lastSeenAt).toBe(T0 + 30);
      });

      it('lists top active open users: last seen desc, never-seen last, then id asc', async () => {
        const u1 = await user('u1');
        const u2 = await user('u2');
        const u3 = await user('u3');
        const fo = await user('fo', { status: 'friends_only' });
        const dnd = await user('dnd', { status: 'do_not_disturb' });
        const u5 = await user('u5');
        await store.touchLastSeen([
          [u2.id, T0 + 10],
          [u3.id, T0 + 20],
          [fo.id, T0 + 30],
          [dnd.id, T0 + 40],
        ]);
        const top = await store.topActiveUsers(10);
        expect(top.map((u) => u.id)).toEqual([u3.id, u2.id, u1.id, u5.id]);
        expect(top[0]).toEqual({ ...u3, lastSeenAt: T0 + 20 });
        expect((await store.topActiveUsers(2)).map((u) => u.id)).toEqual([u3.id, u2.id]);
      });

      it('sets and gets a homepage: undefined for an unknown user, null for none', async () => {
        const u = await user('home');
        expect(await store.getHomepage(u.id)).toBeNull();
        expect(await store.getHomepage(u.id + 1000)).toBeUndefined();
        await store.setHomepage(u.id, '<h1>hi</h1>');
        expect(await store.getHomepage(u.id)).toBe('<h1>hi</h1>');
        const big = `<p>${'x'.repeat(512 * 1024 - 7)}</p>`;
        await store.setHomepage(u.id, big);
        expect(await store.getHomepage(u.id)).toBe(big);
        // The homepage is never part of a user record.
        expect(Object.keys((await store.getUser(u.id))!).sort()).toEqual(
          ['createdAt', 'description', 'disabledAt', 'id', 'lastSeenAt', 'name', 'nameKey', 'status'].sort(),
        );
      });
    });

    describe('discovery', () => {
      it('samples open users other than the caller and reports the total', async () => {
        const me = await user('me');
        const open = [await user('o1'), await user('o2'), await user('o3')];
        await user('fo', { status: 'friends_only' });
        await user('dnd', { status: 'do_not_disturb' });
        const all = await store.discoverUsers({ excludeId: me.id, keyword: null, limit: 10 });
        expect(all.total).toBe(3);
        expect(all.users.map((u) => u.id).sort((x, y) => x - y)).toEqual(open.map((u) => u.id));
        expect(all.users.find((u) => u.id === open[0]!.id)).toEqual(open[0]);
        const two = await store.discoverUsers({ excludeId: me.id, keyword: null, limit: 2 });
        expect(two.total).toBe(3);
        expect(two.users).toHaveLength(2);
        expect(new Set(two.users.map((u) => u.id)).size).toBe(2);
        for (const u of two.users) expect(open.map((o) => o.id)).toContain(u.id);
      });

      it('returns a random sample', async () => {
        const me = await user('me');
        for (let i = 0; i < 5; i++) await user(`r${i}`);
        const seen = new Set<number>();
        for (let i = 0; i < 40; i++) {
          const r = await store.discoverUsers({ excludeId: me.id, keyword: null, limit: 1 });
          seen.add(r.users[0]!.id);
        }
        expect(seen.size).toBeGreaterThan(1);
      });

      it('filters by keyword on name or description, case-insensitively', async () => {
        const me = await user('me');
        const byName = await user('TeaLover');
        const byDesc = await user('x1', { description: 'Drinks TEA daily' });
        await user('x2', { description: null });
        await user('x3', { description: 'coffee' });
        await user('teapot', { status: 'friends_only' });
        const r = await store.discoverUsers({ excludeId: me.id, keyword: 'tea', limit: 10 });
        expect(r.total).toBe(2);
        expect(r.users.map((u) => u.id).sort((x, y) => x - y)).toEqual([byName.id, byDesc.id]);
        const none = await store.discoverUsers({ excludeId: me.id, keyword: 'matcha', limit: 10 });
        expect(none).toEqual({ total: 0, users: [] });
        const self = await store.discoverUsers({ excludeId: byName.id, keyword: 'tealover', limit: 10 });
        expect(self).toEqual({ total: 0, users: [] });
      });

      it('treats % and _ in the keyword literally', async () => {
        const me = await user('me');
        const pct = await user('100%real');
        const under = await user('a_b');
        await user('100xreal');
        await user('axb');
        await user('plain', { description: 'nothing special' });
        const p = await store.discoverUsers({ excludeId: me.id, keyword: '%', limit: 10 });
        expect(p.total).toBe(1);
        expect(p.users.map((u) => u.id)).toEqual([pct.id]);
        const u = await store.discoverUsers({ excludeId: me.id, keyword: '_', limit: 10 });
        expect(u.total).toBe(1);
        expect(u.users.map((x) => x.id)).toEqual([under.id]);
        const both = await store.discoverUsers({ excludeId: me.id, keyword: '0%r', limit: 10 });
        expect(both.users.map((x) => x.id)).toEqual([pct.id]);
        const backslash = await store.discoverUsers({ excludeId: me.id, keyword: '\\', limit: 10 });
        expect(backslash).toEqual({ total: 0, users: [] });
      });
    });

    describe('send and the friendship state machine', () => {
      it('a stranger request creates a pending row and delivers a friend_request', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const now = T0 + 5000;
        const r = await send(alice, bob, 'hi bob', { now });
        const expected: InboxMessage = {
          toId: bob.id,
          id: 1,
          type: 'friend_request',
          createdAt: now,
          fromId: alice.id,
          from: { id: alice.id, name: 'alice', description: 'I am alice' },
          content: 'hi bob',
          attachment: null,
          group: null,
          mentioned: false,
        };
        expect(r).toEqual({
          outcome: 'request',
          messageId: expected.id,
          delivered: [expected],
          preview: null,
          replayed: false,
        });
        expect(await store.getFriendship(bob.id, alice.id)).toEqual({
          userA: Math.min(alice.id, bob.id),
          userB: Math.max(alice.id, bob.id),
          initiatedBy: alice.id,
          status: 'pending',
          blockedBy: null,
          createdAt: now,
          updatedAt: now,
        });
        expect(await store.getFriendship(alice.id, bob.id)).toEqual(
          await store.getFriendship(bob.id, alice.id),
        );
        expect(await store.peekInbox(bob.id, 10)).toEqual({ total: 1, messages: [expected] });
        expect(await store.peekInbox(alice.id, 10)).toEqual({ total: 0, messages: [] });
        expect(await store.getStats()).toEqual({ users: 2, friendships: 0, messages: 1 });
      });

      it('refuses a second message while pending (request_pending) and writes nothing', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await send(alice, bob, 'one');
        await expect(send(alice, bob, 'two')).rejects.toMatchObject({ code: 'request_pending' });
        expect((await store.peekInbox(bob.id, 10)).total).toBe(1);
        expect(await store.lastMessageId(bob.id)).toBe(1);
        expect((await store.getStats()).messages).toBe(1);
      });

      it('a reply accepts: chat to the initiator plus a notice to each side, stats +3', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await send(alice, bob, 'hi', { now: T0 + 1000 });
        const before = await store.getStats();
        const now = T0 + 2000;
        const attachment: AttachmentView = {
          name: 'photo.png',
          fileId: 'f-1',
          size: 1234,
          contentType: 'image/png',
          expiresAt: T0 + 99_000,
        };
        const r = await send(bob, alice, 'hello alice', { now, attachment });
        const chat: InboxMessage = {
          toId: alice.id,
          id: 1,
          type: 'chat',
          createdAt: now,
          fromId: bob.id,
          from: { id: bob.id, name: 'bob', description: 'I am bob' },
          content: 'hello alice',
          attachment,
          group: null,
          mentioned: false,
        };
        const noticeToBob: InboxMessage = {
          toId: bob.id,
          id: 2,
          type: 'system',
          createdAt: now,
          fromId: null,
          from: null,
          content: formatFriendshipNotice(alice, now),
          attachment: null,
          group: null,
          mentioned: false,
        };
        const noticeToAlice: InboxMessage = {
          toId: alice.id,
          id: 2,
          type: 'system',
          createdAt: now,
          fromId: null,
          from: null,
          content: formatFriendshipNotice(bob, now),
          attachment: null,
          group: null,
          mentioned: false,
        };
        expect(r).toEqual({
          outcome: 'accepted',
          messageId: chat.id,
          delivered: [chat, noticeToBob, noticeToAlice],
          preview: null,
          replayed: false,
        });
        expect(await store.getFriendship(alice.id, bob.id)).toMatchObject({
          status: 'accepted',
          initiatedBy: alice.id,
          blockedBy: null,
          createdAt: T0 + 1000,
          updatedAt: now,
        });
        expect(await store.getStats()).toEqual({
          users: 2,
          friendships: before.friendships + 1,
          messages: before.messages + 3,
        });
        expect((await store.peekInbox(alice.id, 10)).messages).toEqual([chat, noticeToAlice]);
        // Bob keeps Alice's original request (reference behaviour) and gets his notice after it.
        const bobInbox = await store.peekInbox(bob.id, 10);
        expect(bobInbox.messages.map((m) => [m.id, m.type])).toEqual([
          [1, 'friend_request'],
          [2, 'system'],
        ]);
        expect(bobInbox.messages[1]).toEqual(noticeToBob);
      });

      it('concurrent sends, some refused: the lifetime count is exactly what was stored', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        await befriend(alice, bob);
        const before = await store.getStats();
        // Submitted together (one batch on SQLite): 5 chats, a send to nobody, a second request to carol
        // (refused: one pending request at a time), and the first request to carol.
        const results = await Promise.allSettled([
          ...[1, 2, 3, 4, 5].map((i) => send(alice, bob, `m${i}`)),
          send(alice, 999_999, 'x'),
          send(alice, carol, 'hello carol'),
          send(alice, carol, 'hello again'),
        ]);
        const refused = results
          .filter((r) => r.status === 'rejected')
          .map((r) => (r.reason as RelayError).code);
        expect(refused.sort()).toEqual(['request_pending', 'user_not_found']);
        expect((await store.getStats()).messages).toBe(before.messages + 6);
        expect((await store.peekInbox(bob.id, 100)).total).toBe(5);
      });

      it('friends chat in both directions', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        const stats = await store.getStats();
        const r1 = await send(alice, bob, 'how are you?', { now: T0 + 3000 });
        expect(r1.outcome).toBe('chat');
        expect(r1.delivered).toEqual([
          {
            toId: bob.id,
            id: 3,
            type: 'chat',
            createdAt: T0 + 3000,
            fromId: alice.id,
            from: { id: alice.id, name: 'alice', description: 'I am alice' },
            content: 'how are you?',
            attachment: null,
            group: null,
            mentioned: false,
          },
        ]);
        const r2 = await send(bob, alice, 'fine');
        expect(r2.outcome).toBe('chat');
        expect(ids(r2.delivered)).toEqual([3]);
        expect(await store.getStats()).toEqual({ ...stats, messages: stats.messages + 2 });
        expect((await store.getFriendship(alice.id, bob.id))?.status).toBe('accepted');
      });

      it('a blocked pair is refused in both directions', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        expect(await store.block(alice.id, bob.id, T0 + 5000)).toBe(true);
        await expect(send(bob, alice, 'let me in')).rejects.toMatchObject({ code: 'blocked_by_recipient' });
        await expect(send(alice, bob, 'hey')).rejects.toMatchObject({ code: 'you_blocked_recipient' });
        expect((await store.peekInbox(alice.id, 10)).total).toBe(0);
        expect((await store.peekInbox(bob.id, 10)).total).toBe(0);
      });

      it('friends_only refuses strangers but accepts friends', async () => {
        const fo = await user('fo');
        const friend = await user('friend');
        const stranger = await user('stranger');
        await befriend(friend, fo);
        await store.setStatus(fo.id, 'friends_only');
        await expect(send(stranger, fo, 'hi')).rejects.toMatchObject({ code: 'recipient_friends_only' });
        expect(await store.getFriendship(stranger.id, fo.id)).toBeNull();
        const r = await send(friend, fo, 'hi friend');
        expect(r.outcome).toBe('chat');
        expect(r.delivered.map((m) => [m.toId, m.content])).toEqual([[fo.id, 'hi friend']]);
      });

      it('do_not_disturb refuses everyone, friends included', async () => {
        const dnd = await user('dnd');
        const friend = await user('friend');
        const stranger = await user('stranger');
        await befriend(friend, dnd);
        await store.setStatus(dnd.id, 'do_not_disturb');
        await expect(send(stranger, dnd, 'hi')).rejects.toMatchObject({ code: 'recipient_dnd' });
        await expect(send(friend, dnd, 'hi')).rejects.toMatchObject({ code: 'recipient_dnd' });
        expect(await store.getFriendship(stranger.id, dnd.id)).toBeNull();
        expect((await store.peekInbox(dnd.id, 10)).total).toBe(0);
      });

      it('a reply to a friends_only or do_not_disturb initiator is accepted', async () => {
        for (const status of ['friends_only', 'do_not_disturb'] as const) {
          const initiator = await user(`init-${status}`, { status });
          const other = await user(`other-${status}`);
          expect((await send(initiator, other, 'add me')).outcome).toBe('request');
          const r = await send(other, initiator, 'sure');
          expect(r.outcome).toBe('accepted');
          expect(r.delivered.map((m) => [m.toId, m.type])).toEqual([
            [initiator.id, 'chat'],
            [other.id, 'system'],
            [initiator.id, 'system'],
          ]);
          expect((await store.getFriendship(initiator.id, other.id))?.status).toBe('accepted');
        }
      });

      it('refuses an unknown recipient and messaging oneself', async () => {
        const alice = await user('alice');
        await expect(send(alice, alice.id + 1000, 'hi')).rejects.toMatchObject({ code: 'user_not_found' });
        await expect(send(alice, alice, 'hi')).rejects.toMatchObject({ code: 'cannot_message_self' });
        expect((await store.peekInbox(alice.id, 10)).total).toBe(0);
        expect(await store.getStats()).toEqual({ users: 1, friendships: 0, messages: 0 });
      });

      it('a failed decision writes nothing', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        let seen: SendState | null = null;
        await expect(
          store.send({ fromId: alice.id, toId: bob.id, content: 'x', attachment: null, now: T0 }, (state) => {
            seen = state;
            throw new Error('refused by test');
          }),
        ).rejects.toThrow('refused by test');
        expect(seen).toEqual({
          sender: alice,
          recipient: bob,
          friendship: null,
          content: 'x',
          attachment: null,
          now: T0,
        });
        expect(await store.getFriendship(alice.id, bob.id)).toBeNull();
        expect(await store.lastMessageId(bob.id)).toBe(0);
        expect(await store.getStats()).toEqual({ users: 2, friendships: 0, messages: 0 });
        // A decision that throws after looking at a pending row leaves it untouched too.
        await send(alice, bob, 'hi', { now: T0 + 1 });
        const row = await store.getFriendship(alice.id, bob.id);
        await expect(
          store.send({ fromId: bob.id, toId: alice.id, content: 'y', attachment: null, now: T0 + 2 }, (s) => {
            expect(s.friendship).toEqual(row);
            throw new Error('refused again');
          }),
        ).rejects.toThrow('refused again');
        expect(await store.getFriendship(alice.id, bob.id)).toEqual(row);
        expect(await store.lastMessageId(alice.id)).toBe(0);
        expect((await store.getStats()).messages).toBe(1);
      });

      it('assigns per-recipient ids that increase by 1 in commit order and are never reused', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        await befriend(alice, bob); // bob: 1 request, 2 notice; alice: 1 chat, 2 notice
        await befriend(carol, bob); // bob: 3 request, 4 notice; carol: 1, 2
        expect(await store.lastMessageId(bob.id)).toBe(4);
        const got: number[] = [];
        for (let i = 0; i < 5; i++) {
          const from = i % 2 === 0 ? alice : carol;
          got.push(...ids((await send(from, bob, `m${i}`)).delivered));
        }
        expect(got).toEqual([5, 6, 7, 8, 9]);
        expect(await store.lastMessageId(bob.id)).toBe(9);
        expect(await store.lastMessageId(alice.id)).toBe(2);
        // Emptying the inbox does not reset the counter.
        await store.takeInbox(bob.id, { limit: 500, fromId: null });
        expect(await store.lastMessageId(bob.id)).toBe(9);
        expect(ids((await send(alice, bob, 'after')).delivered)).toEqual([10]);
        expect(await store.lastMessageId(alice.id + carol.id + bob.id + 1000)).toBe(0);
      });

      it('50 concurrent first messages from distinct strangers all succeed with distinct ids', async () => {
        const target = await user('popular');
        const senders: UserRecord[] = [];
        for (let i = 0; i < 50; i++) senders.push(await user(`fan${i}`));
        const results = await Promise.all(senders.map((s, i) => send(s, target, `hello ${i}`)));
        expect(results.every((r) => r.outcome === 'request' && r.delivered.length === 1)).toBe(true);
        const got = results.flatMap((r) => ids(r.delivered)).sort((a, b) => a - b);
        expect(got).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        const inbox = await store.peekInbox(target.id, 500);
        expect(inbox.total).toBe(50);
        expect(ids(inbox.messages)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        for (const r of results) {
          const m = r.delivered[0]!;
          expect(inbox.messages.find((x) => x.id === m.id)).toEqual(m);
        }
        for (const s of senders) {
          expect(await store.getFriendship(s.id, target.id)).toMatchObject({
            status: 'pending',
            initiatedBy: s.id,
          });
        }
        expect(await store.getStats()).toEqual({ users: 51, friendships: 0, messages: 50 });
      });

      it('two strangers messaging each other at once end in a consistent state', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const settled = await Promise.allSettled([send(alice, bob, 'hi bob'), send(bob, alice, 'hi alice')]);
        const ok = settled.filter((s): s is PromiseFulfilledResult<SendResult> => s.status === 'fulfilled');
        // Either one request then its acceptance, or (a backend that serialises differently) one request
        // and one refusal; never two pending rows, never a lost message.
        const outcomes = ok.map((s) => s.value.outcome).sort();
        const f = await store.getFriendship(alice.id, bob.id);
        const stats = await store.getStats();
        const stored =
          (await store.peekInbox(alice.id, 10)).total + (await store.peekInbox(bob.id, 10)).total;
        const delivered = ok.reduce((n, s) => n + s.value.delivered.length, 0);
        expect(stored).toBe(delivered);
        expect(stats.messages).toBe(delivered);
        if (outcomes.length === 2) {
          expect(outcomes).toEqual(['accepted', 'request']);
          expect(f?.status).toBe('accepted');
          expect(delivered).toBe(4);
          expect(stats.friendships).toBe(1);
        } else {
          expect(outcomes).toEqual(['request']);
          expect(f?.status).toBe('pending');
          expect(delivered).toBe(1);
        }
      });
    });

    describe('inbox', () => {
      /** alice and carol are bob's friends; bob's inbox then holds exactly `spec` (from → content). */
      async function inboxOf(spec: Array<'alice' | 'carol'>) {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        await befriend(alice, bob);
        await befriend(carol, bob);
        // bob's 4 befriend messages (ids 1–4) were taken; put back a system notice as id 5 by a fresh
        // acceptance with dave, then clear the request so only the notice remains.
        const dave = await user('dave');
        await send(bob, dave, 'hi dave');
        await send(dave, bob, 'hi bob'); // bob: 5 chat from dave, 6 system
        await store.deleteMessages(bob.id, [5]);
        const who = { alice, carol };
        for (const [i, from] of spec.entries()) await send(who[from], bob, `${from}-${i}`);
        return { alice, bob, carol, dave };
      }

      it('takeInbox reads and clears the oldest `limit` messages and reports the total', async () => {
        const { bob } = await inboxOf(['alice', 'carol', 'alice', 'carol']);
        const first = await store.takeInbox(bob.id, { limit: 3, fromId: null });
        expect(first.total).toBe(5);
        expect(ids(first.messages)).toEqual([6, 7, 8]);
        expect(first.messages.map((m) => m.content)).toEqual([
          expect.stringContaining('dave'),
          'alice-0',
          'carol-1',
        ]);
        const second = await store.takeInbox(bob.id, { limit: 3, fromId: null });
        expect(second.total).toBe(2);
        expect(ids(second.messages)).toEqual([9, 10]);
        expect(await store.takeInbox(bob.id, { limit: 3, fromId: null })).toEqual({ total: 0, messages: [] });
      });

      it('takeInbox with fromId reads and clears only that sender (never system notices)', async () => {
        const { alice, bob, carol } = await inboxOf(['alice', 'carol', 'alice', 'carol', 'alice']);
        const page = await store.takeInbox(bob.id, { limit: 2, fromId: alice.id });
        expect(page.total).toBe(3);
        expect(page.messages.map((m) => [m.id, m.content])).toEqual([
          [7, 'alice-0'],
          [9, 'alice-2'],
        ]);
        expect(page.messages.every((m) => m.fromId === alice.id && m.from?.name === 'alice')).toBe(true);
        const rest = await store.peekInbox(bob.id, 10);
        expect(rest.total).toBe(4);
        expect(ids(rest.messages)).toEqual([6, 8, 10, 11]);
        expect(rest.messages[0]).toMatchObject({ type: 'system', fromId: null, from: null });
        const carolPage = await store.takeInbox(bob.id, { limit: 10, fromId: carol.id });
        expect(carolPage.total).toBe(2);
        expect(ids(carolPage.messages)).toEqual([8, 10]);
        expect(ids((await store.peekInbox(bob.id, 10)).messages)).toEqual([6, 11]);
        expect(await store.takeInbox(bob.id, { limit: 10, fromId: carol.id })).toEqual({
          total: 0,
          messages: [],
        });
      });

      it('concurrent takeInbox calls never return the same message twice and together return all', async () => {
        const spec = Array.from({ length: 30 }, (_, i): 'alice' | 'carol' =>
          i % 2 === 0 ? 'alice' : 'carol',
        );
        const { bob } = await inboxOf(spec);
        const pages = await Promise.all(
          Array.from({ length: 4 }, () => store.takeInbox(bob.id, { limit: 10, fromId: null })),
        );
        const got = pages.flatMap((p) => ids(p.messages));
        expect(got).toHaveLength(31);
        expect(new Set(got).size).toBe(31);
        expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: 31 }, (_, i) => i + 6));
        expect(pages.map((p) => p.messages.length).sort((a, b) => a - b)).toEqual([1, 10, 10, 10]);
        expect((await store.peekInbox(bob.id, 100)).total).toBe(0);
      });

      it('peekInbox does not delete', async () => {
        const { bob } = await inboxOf(['alice', 'carol']);
        const a = await store.peekInbox(bob.id, 2);
        expect(a.total).toBe(3);
        expect(ids(a.messages)).toEqual([6, 7]);
        expect(await store.peekInbox(bob.id, 2)).toEqual(a);
        expect(ids((await store.peekInbox(bob.id, 10)).messages)).toEqual([6, 7, 8]);
      });

      it('listInbox returns messages after an id without deleting; ackInbox deletes up to an id', async () => {
        const { bob } = await inboxOf(['alice', 'carol', 'alice', 'carol']);
        expect(ids(await store.listInbox(bob.id, 0, 100))).toEqual([6, 7, 8, 9, 10]);
        expect(ids(await store.listInbox(bob.id, 7, 100))).toEqual([8, 9, 10]);
        expect(ids(await store.listInbox(bob.id, 7, 2))).toEqual([8, 9]);
        expect(await store.listInbox(bob.id, 10, 100)).toEqual([]);
        expect((await store.peekInbox(bob.id, 100)).total).toBe(5);
        expect(await store.ackInbox(bob.id, 8)).toBe(3);
        expect(ids(await store.listInbox(bob.id, 0, 100))).toEqual([9, 10]);
        expect(await store.ackInbox(bob.id, 8)).toBe(0);
        expect(await store.ackInbox(bob.id, 100)).toBe(2);
        expect(await store.listInbox(bob.id, 0, 100)).toEqual([]);
        expect(await store.lastMessageId(bob.id)).toBe(10);
      });

      it('ackInbox and deleteMessages touch only the given inbox', async () => {
        const { alice, bob } = await inboxOf(['alice', 'carol']);
        const aliceIds = ids(await store.listInbox(alice.id, 0, 100));
        expect(aliceIds).toEqual([]);
        await send(bob, alice, 'to alice 1');
        await send(bob, alice, 'to alice 2');
        expect(await store.ackInbox(bob.id, 6)).toBe(1);
        expect(ids(await store.listInbox(alice.id, 0, 100))).toEqual([3, 4]);
        await store.deleteMessages(bob.id, [3, 4, 8]);
        expect(ids(await store.listInbox(bob.id, 0, 100))).toEqual([7]);
        expect(ids(await store.listInbox(alice.id, 0, 100))).toEqual([3, 4]);
        await store.deleteMessages(alice.id, []);
        await store.deleteMessages(alice.id, [4, 999]);
        expect(ids(await store.listInbox(alice.id, 0, 100))).toEqual([3]);
      });

      it('expireMessages deletes messages created before a time, in every inbox', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        await send(alice, bob, 'old', { now: T0 + 100 });
        await send(carol, alice, 'edge', { now: T0 + 200 });
        await send(bob, carol, 'new', { now: T0 + 300 });
        expect(await store.expireMessages(T0 + 200)).toBe(1);
        expect((await store.peekInbox(bob.id, 10)).total).toBe(0);
        expect(ids(await store.listInbox(alice.id, 0, 10))).toEqual([1]);
        expect(ids(await store.listInbox(carol.id, 0, 10))).toEqual([1]);
        expect(await store.expireMessages(T0 + 301)).toBe(2);
        expect(await store.expireMessages(T0 + 301)).toBe(0);
        expect(await store.lastMessageId(bob.id)).toBe(1);
        // Expiry does not touch the lifetime counter.
        expect((await store.getStats()).messages).toBe(3);
      });
    });

    describe('block and unblock', () => {
      it('block purges only the target’s messages from the blocker’s inbox', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        await befriend(alice, bob);
        await befriend(alice, carol);
        await send(bob, alice, 'b1');
        await send(carol, alice, 'c1');
        await send(bob, alice, 'b2');
        await send(alice, bob, 'a-to-b');
        // Leave a system notice from the accept in alice's inbox too.
        const dave = await user('dave');
        await send(dave, alice, 'hi');
        await send(alice, dave, 'hello'); // alice: notice
        await store.deleteMessages(alice.id, [(await store.lastMessageId(alice.id)) - 1]);
        const before = await store.peekInbox(alice.id, 100);
        expect(before.messages.map((m) => m.content)).toEqual(['b1', 'c1', 'b2', expect.any(String)]);
        const now = T0 + 9000;
        expect(await store.block(alice.id, bob.id, now)).toBe(true);
        expect(await store.getFriendship(bob.id, alice.id)).toMatchObject({
          status: 'blocked',
          blockedBy: alice.id,
          initiatedBy: alice.id,
          updatedAt: now,
        });
        const after = await store.peekInbox(alice.id, 100);
        expect(after.messages.map((m) => m.content)).toEqual(['c1', before.messages[3]!.content]);
        expect(after.messages[1]).toMatchObject({ type: 'system', from: null });
        // What alice sent bob stays in his inbox.
        expect((await store.peekInbox(bob.id, 100)).messages.map((m) => m.content)).toEqual(['a-to-b']);
        expect((await store.getStats()).friendships).toBe(2);
      });

      it('only an accepted row can be blocked', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        expect(await store.block(alice.id, bob.id, T0)).toBe(false);
        expect(await store.getFriendship(alice.id, bob.id)).toBeNull();
        await send(carol, alice, 'pending request');
        expect(await store.block(alice.id, carol.id, T0)).toBe(false);
        expect((await store.getFriendship(alice.id, carol.id))?.status).toBe('pending');
        expect((await store.peekInbox(alice.id, 10)).total).toBe(1);
        await befriend(alice, bob);
        expect(await store.block(bob.id, alice.id, T0 + 1)).toBe(true);
        // The blocked side cannot block back, and blocking again changes nothing.
        expect(await store.block(alice.id, bob.id, T0 + 2)).toBe(false);
        expect(await store.block(bob.id, alice.id, T0 + 3)).toBe(false);
        expect(await store.getFriendship(alice.id, bob.id)).toMatchObject({
          status: 'blocked',
          blockedBy: bob.id,
          updatedAt: T0 + 1,
        });
      });

      it('unblock deletes the row only for the blocker', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        expect(await store.unblock(alice.id, bob.id)).toBe(false);
        expect((await store.getFriendship(alice.id, bob.id))?.status).toBe('accepted');
        await store.block(alice.id, bob.id, T0 + 5);
        expect(await store.unblock(bob.id, alice.id)).toBe(false);
        expect((await store.getFriendship(alice.id, bob.id))?.status).toBe('blocked');
        expect(await store.unblock(alice.id, bob.id)).toBe(true);
        expect(await store.getFriendship(alice.id, bob.id)).toBeNull();
        expect(await store.unblock(alice.id, bob.id)).toBe(false);
        expect(await store.unblock(alice.id, alice.id + bob.id + 1000)).toBe(false);
        // Strangers again: the one-message rule applies anew, from either side.
        expect((await send(bob, alice, 'again?')).outcome).toBe('request');
        await expect(send(bob, alice, 'again!')).rejects.toMatchObject({ code: 'request_pending' });
      });
    });

    describe('friends and stats', () => {
      it('lists accepted friends in row creation order with since = acceptance time', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        const dave = await user('dave');
        const erin = await user('erin');
        expect(await store.listFriends(alice.id)).toEqual([]);
        await send(alice, bob, 'hi', { now: T0 + 1 }); // row alice–bob created first
        await send(carol, alice, 'hi', { now: T0 + 2 }); // row alice–carol created second
        await send(alice, dave, 'hi', { now: T0 + 3 }); // stays pending
        await send(erin, alice, 'hi', { now: T0 + 4 });
        await send(alice, carol, 'ok', { now: T0 + 10 }); // accepted first
        await send(bob, alice, 'ok', { now: T0 + 20 }); // accepted second
        await send(alice, erin, 'ok', { now: T0 + 30 });
        await store.block(alice.id, erin.id, T0 + 40); // blocked rows are not friends
        const friends = await store.listFriends(alice.id);
        expect(friends).toEqual([
          { user: publicOf(bob), since: T0 + 20 },
          { user: publicOf(carol), since: T0 + 10 },
        ]);
        expect(await store.listFriends(bob.id)).toEqual([{ user: publicOf(alice), since: T0 + 20 }]);
        expect(await store.listFriends(dave.id)).toEqual([]);
        expect(await store.listFriends(erin.id)).toEqual([]);
      });

      it('reports users, accepted friendships and the lifetime message count', async () => {
        expect(await store.getStats()).toEqual({ users: 0, friendships: 0, messages: 0 });
        const a = await user('a');
        const b = await user('b');
        const c = await user('c');
        await send(a, b, 'x'); // +1
        expect(await store.getStats()).toEqual({ users: 3, friendships: 0, messages: 1 });
        await send(b, a, 'y'); // +3
        await send(c, a, 'z'); // +1
        expect(await store.getStats()).toEqual({ users: 3, friendships: 1, messages: 5 });
        await store.takeInbox(a.id, { limit: 500, fromId: null });
        expect((await store.getStats()).messages).toBe(5);
        await store.block(a.id, b.id, T0);
        expect(await store.getStats()).toEqual({ users: 3, friendships: 0, messages: 5 });
      });
    });

    describe('idempotent send', () => {
      const keyed = (
        key: string,
        fingerprint: string,
        windowMs = 60_000,
        previewLimit?: number,
      ): SendOptions => ({
        idempotency: { key, fingerprint, windowMs },
        ...(previewLimit === undefined ? {} : { previewLimit }),
      });
      const req = (from: UserRecord, to: UserRecord, content: string, now: number) => ({
        fromId: from.id,
        toId: to.id,
        content,
        attachment: null,
        now,
      });

      it('a repeat within the window returns the recorded result, replayed, and stores nothing', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        await send(bob, alice, 'ping', { now: T0 + 4000 }); // alice's inbox: 3
        const first = await store.send(
          req(alice, bob, 'once', T0 + 5000),
          decideSend,
          keyed('k1', 'f1', 60_000, 5),
        );
        const ping = (await store.peekInbox(alice.id, 10)).messages;
        expect(first).toEqual({
          outcome: 'chat',
          messageId: 3,
          delivered: [expect.objectContaining({ toId: bob.id, id: 3, content: 'once', type: 'chat' })],
          preview: { total: 1, messages: ping },
          replayed: false,
        });
        const stats = await store.getStats();
        // alice's inbox changes meanwhile: the replay still shows what the first answer showed.
        await store.takeInbox(alice.id, { limit: 10, fromId: null });
        const again = await store.send(
          req(alice, bob, 'once', T0 + 6000),
          decideSend,
          keyed('k1', 'f1', 60_000, 5),
        );
        expect(again).toEqual({
          outcome: 'chat',
          messageId: 3,
          delivered: [],
          preview: first.preview,
          replayed: true,
        });
        // A replay does not even ask the decision.
        const third = await store.send(
          req(alice, bob, 'once', T0 + 7000),
          () => {
            throw new Error('decide must not run on a replay');
          },
          keyed('k1', 'f1', 60_000, 5),
        );
        expect(third).toEqual(again);
        expect(await store.lastMessageId(bob.id)).toBe(3);
        expect(ids((await store.peekInbox(bob.id, 10)).messages)).toEqual([3]);
        expect(await store.getStats()).toEqual(stats);
        // Keys are per sender: bob's 'k1' is a different request.
        const bobs = await store.send(req(bob, alice, 'mine', T0 + 8000), decideSend, keyed('k1', 'f1'));
        expect(bobs).toMatchObject({ outcome: 'chat', messageId: 4, replayed: false, preview: null });
        expect(bobs.delivered).toHaveLength(1);
      });

      it('records the whole result of an accepting reply', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await send(alice, bob, 'hi', { now: T0 + 1000 });
        const first = await store.send(
          req(bob, alice, 'ok', T0 + 2000),
          decideSend,
          keyed('acc', 'fp', 60_000, 5),
        );
        expect(first.outcome).toBe('accepted');
        expect(first.delivered).toHaveLength(3);
        // bob's preview includes the notice this very send put in his inbox.
        expect(first.preview!.messages.map((m) => [m.id, m.type])).toEqual([
          [1, 'friend_request'],
          [2, 'system'],
        ]);
        const again = await store.send(
          req(bob, alice, 'ok', T0 + 3000),
          decideSend,
          keyed('acc', 'fp', 60_000, 5),
        );
        expect(again).toEqual({ ...first, delivered: [], replayed: true });
        expect(await store.getStats()).toEqual({ users: 2, friendships: 1, messages: 4 });
      });

      it('the same key with another fingerprint is idempotency_conflict and stores nothing', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        await store.send(req(alice, bob, 'one', T0 + 5000), decideSend, keyed('k', 'fp-one'));
        const stats = await store.getStats();
        const err = await store
          .send(req(alice, bob, 'two', T0 + 5500), decideSend, keyed('k', 'fp-two'))
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RelayError);
        expect(err).toMatchObject({ code: 'idempotency_conflict' });
        expect(await store.lastMessageId(bob.id)).toBe(3);
        expect(await store.getStats()).toEqual(stats);
        // The original record is intact.
        const again = await store.send(req(alice, bob, 'one', T0 + 5600), decideSend, keyed('k', 'fp-one'));
        expect(again).toMatchObject({ replayed: true, messageId: 3 });
      });

      it('outside the window the key sends again, and the new result is the one replayed', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        const first = await store.send(req(alice, bob, 'm', T0 + 5000), decideSend, keyed('w', 'fp', 1000));
        // Still inside: 999 ms later.
        expect(
          (await store.send(req(alice, bob, 'm', T0 + 5999), decideSend, keyed('w', 'fp', 1000))).replayed,
        ).toBe(true);
        // Exactly the window later the record no longer counts; a different fingerprint is no conflict.
        const second = await store.send(
          req(alice, bob, 'other', T0 + 6000),
          decideSend,
          keyed('w', 'fp2', 1000),
        );
        expect(second).toMatchObject({ replayed: false, messageId: first.messageId + 1 });
        expect(second.delivered.map((m) => m.content)).toEqual(['other']);
        const replay = await store.send(
          req(alice, bob, 'other', T0 + 6500),
          decideSend,
          keyed('w', 'fp2', 1000),
        );
        expect(replay).toMatchObject({ replayed: true, messageId: second.messageId });
        expect(ids(await store.listInbox(bob.id, 0, 10))).toEqual([3, 4]);
      });

      it('a refused send records nothing under its key', async () => {
        const alice = await user('alice');
        const bob = await user('bob', { status: 'do_not_disturb' });
        await expect(
          store.send(req(alice, bob, 'hi', T0 + 1000), decideSend, keyed('r', 'fp')),
        ).rejects.toMatchObject({ code: 'recipient_dnd' });
        await store.setStatus(bob.id, 'open');
        const r = await store.send(req(alice, bob, 'hi', T0 + 2000), decideSend, keyed('r', 'fp'));
        expect(r).toMatchObject({ outcome: 'request', messageId: 1, replayed: false });
      });

      it('5 concurrent identical keyed sends deliver once; the others replay its result', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        const stats = await store.getStats();
        const results = await Promise.all(
          Array.from({ length: 5 }, () =>
            store.send(req(alice, bob, 'only once', T0 + 5000), decideSend, keyed('same', 'fp', 60_000, 5)),
          ),
        );
        const fresh = results.filter((r) => !r.replayed);
        expect(fresh).toHaveLength(1);
        expect(fresh[0]!.delivered).toHaveLength(1);
        for (const r of results) {
          expect(r).toEqual(r.replayed ? { ...fresh[0]!, delivered: [], replayed: true } : fresh[0]!);
        }
        expect(ids((await store.peekInbox(bob.id, 10)).messages)).toEqual([3]);
        expect(await store.getStats()).toEqual({ ...stats, messages: stats.messages + 1 });
      });

      it('pruneIdempotency forgets records created before a time', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        const window = 3_600_000;
        await store.send(req(alice, bob, 'a', T0 + 1000), decideSend, keyed('old', 'fa', window));
        await store.send(req(alice, bob, 'b', T0 + 2000), decideSend, keyed('new', 'fb', window));
        expect(await store.pruneIdempotency(T0 + 1000)).toBe(0);
        expect(await store.pruneIdempotency(T0 + 2000)).toBe(1);
        // Forgotten: the same key sends again although still within its window.
        expect(
          (await store.send(req(alice, bob, 'a', T0 + 3000), decideSend, keyed('old', 'fa', window)))
            .replayed,
        ).toBe(false);
        expect(
          (await store.send(req(alice, bob, 'b', T0 + 3000), decideSend, keyed('new', 'fb', window)))
            .replayed,
        ).toBe(true);
        // The re-sent 'old' was recorded anew at T0 + 3000.
        expect(await store.pruneIdempotency(T0 + 2001)).toBe(1);
        expect(await store.pruneIdempotency(T0 + 3001)).toBe(1);
        expect(await store.pruneIdempotency(T0 + 3001)).toBe(0);
        expect(ids(await store.listInbox(bob.id, 0, 10))).toEqual([3, 4, 5]);
      });
    });

    describe('preview and last ids', () => {
      it('previewLimit returns the sender’s oldest messages and inbox total, read in the transaction', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        await befriend(alice, bob);
        await befriend(alice, carol);
        await send(bob, alice, 'b1');
        await send(carol, alice, 'c1');
        await send(bob, alice, 'b2');
        const r = await store.send(
          { fromId: alice.id, toId: bob.id, content: 'reply', attachment: null, now: T0 + 9000 },
          decideSend,
          { previewLimit: 2 },
        );
        expect(r.preview).toEqual(await store.peekInbox(alice.id, 2));
        expect(r.preview!.total).toBe(3);
        expect(r.preview!.messages.map((m) => m.content)).toEqual(['b1', 'c1']);
        // Nothing is consumed by a preview.
        expect((await store.peekInbox(alice.id, 10)).total).toBe(3);
        const none = await store.send(
          { fromId: carol.id, toId: alice.id, content: 'x', attachment: null, now: T0 + 9100 },
          decideSend,
          { previewLimit: 5 },
        );
        expect(none.preview).toEqual({ total: 0, messages: [] });
      });

      it('lastMessageIds answers for many users at once; unknown users are absent', async () => {
        const a = await user('a');
        const b = await user('b');
        const c = await user('c');
        await send(a, b, 'x'); // b: 1
        await send(c, a, 'y'); // a: 1
        await send(b, a, 'z'); // accepts a's request: a: 2, 3; b: 2
        await store.takeInbox(a.id, { limit: 10, fromId: null });
        const unknown = a.id + b.id + c.id + 1000;
        const got = await store.lastMessageIds([a.id, b.id, c.id, unknown]);
        expect(got).toEqual(
          new Map([
            [a.id, 3],
            [b.id, 2],
            [c.id, 0],
          ]),
        );
        expect(await store.lastMessageIds([])).toEqual(new Map());
        expect(await store.lastMessageIds([b.id])).toEqual(new Map([[b.id, 2]]));
      });

      it('stores text exactly: U+0000, private-use characters, emoji and long content', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        const odd = 'a\u0000b\ue000\ue001c\\%_😀\u0000';
        const attachment: AttachmentView = {
          name: `file${odd}.txt`,
          fileId: null,
          size: null,
          contentType: null,
          expiresAt: null,
        };
        const r = await send(alice, bob, odd, { attachment });
        expect(r.delivered[0]).toMatchObject({ content: odd, attachment });
        expect((await store.peekInbox(bob.id, 10)).messages[0]).toEqual(r.delivered[0]);
        expect(await store.listInbox(bob.id, 0, 10)).toEqual(r.delivered);
        const long = '长'.repeat(1000);
        await send(bob, alice, long);
        expect((await store.takeInbox(alice.id, { limit: 1, fromId: null })).messages[0]!.content).toBe(long);
        await store.setHomepage(bob.id, `<p>${odd}</p>`);
        expect(await store.getHomepage(bob.id)).toBe(`<p>${odd}</p>`);
        expect(await store.takeInbox(bob.id, { limit: 10, fromId: null })).toEqual({
          total: 1,
          messages: r.delivered,
        });
      });
    });

    describe('advancing message ids (after a restore)', () => {
      it('every next id jumps past everything issued; stored messages keep their ids and stay ackable', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const carol = await user('carol');
        await befriend(alice, bob);
        await send(alice, bob, 'm1');
        await send(alice, bob, 'm2');
        const bobLast = await store.lastMessageId(bob.id);
        const aliceLast = await store.lastMessageId(alice.id);
        const stored = await store.listInbox(bob.id, 0, 10);
        expect(stored.map((m) => m.content)).toEqual(['m1', 'm2']);
        expect(stored[1]!.id).toBe(bobLast);

        expect(await store.advanceMessageIds(1000)).toEqual({ users: 3, by: 1000 });
        expect(await store.lastMessageIds([alice.id, bob.id, carol.id])).toEqual(
          new Map([
            [alice.id, aliceLast + 1000],
            [bob.id, bobLast + 1000],
            [carol.id, 1000],
          ]),
        );
        // Stored messages are untouched.
        expect(await store.listInbox(bob.id, 0, 10)).toEqual(stored);
        expect(await store.peekInbox(bob.id, 10)).toEqual({ total: 2, messages: stored });

        const next = await send(alice, bob, 'm3');
        expect(next.messageId).toBe(bobLast + 1000 + 1);
        expect((await send(alice, carol, 'hi carol')).messageId).toBe(1001); // a request to a stranger
        // Resume semantics: a client that has seen m1 acknowledges it and gets m2 and m3, in id order.
        expect(await store.ackInbox(bob.id, stored[0]!.id)).toBe(1);
        expect((await store.listInbox(bob.id, stored[0]!.id, 10)).map((m) => m.content)).toEqual([
          'm2',
          'm3',
        ]);
        // One that has seen everything issued before the advance acknowledges m2 and still gets m3.
        expect(await store.ackInbox(bob.id, bobLast)).toBe(1);
        expect(ids(await store.listInbox(bob.id, bobLast, 10))).toEqual([bobLast + 1001]);
        expect(await store.takeInbox(bob.id, { limit: 10, fromId: null })).toEqual({
          total: 1,
          messages: next.delivered,
        });
        // Ids keep growing by one from the new base.
        expect((await send(alice, bob, 'm4')).messageId).toBe(bobLast + 1002);
      });

      it('refuses a non-positive or fractional step, and one that would pass the safe-integer range', async () => {
        const a = await user('a');
        const b = await user('b');
        await send(a, b, 'x');
        for (const bad of [0, -1, 1.5, Number.NaN]) {
          await expect(store.advanceMessageIds(bad)).rejects.toThrow(RangeError);
        }
        await expect(store.advanceMessageIds(Number.MAX_SAFE_INTEGER)).rejects.toThrow(/safe|past/);
        expect(await store.lastMessageId(b.id)).toBe(1); // nothing changed
        expect(await store.advanceMessageIds(Number.MAX_SAFE_INTEGER - 1)).toEqual({
          users: 2,
          by: Number.MAX_SAFE_INTEGER - 1,
        });
        expect(await store.lastMessageId(b.id)).toBe(Number.MAX_SAFE_INTEGER);
      });

      it('an empty store advances nobody', async () => {
        expect(await store.advanceMessageIds(5)).toEqual({ users: 0, by: 5 });
        const a = await user('a');
        expect(await store.lastMessageId(a.id)).toBe(0);
      });
    });

    describe('groups', () => {
      const LIMITS: GroupLimits = { maxMembers: 500, maxGroupsPerUser: 100 };
      const T1 = T0 + 10_000;

      /** An owner and `n` of its friends (inboxes emptied). */
      async function team(n: number, statuses: UserStatus[] = []) {
        const owner = await user('owner');
        const friends: UserRecord[] = [];
        for (let i = 0; i < n; i++) {
          const f = await user(`f${i}`);
          await befriend(owner, f);
          if (statuses[i]) await store.setStatus(f.id, statuses[i]!);
          friends.push((await store.getUser(f.id))!);
        }
        return { owner, friends };
      }

      function create(owner: UserRecord, members: readonly UserRecord[], o: Partial<GroupLimits> = {}) {
        return store.createGroup({
          ownerId: owner.id,
          name: '项目组',
          description: '周报',
          memberIds: members.map((m) => m.id),
          now: T1,
          limits: { ...LIMITS, ...o },
        });
      }

      function gsend(
        from: UserRecord,
        groupId: number,
        content: string,
        o: { mentionIds?: number[]; now?: number; opts?: SendOptions } = {},
      ) {
        return store.sendToGroup(
          {
            fromId: from.id,
            groupId,
            content,
            attachment: null,
            mentionIds: o.mentionIds ?? [],
            now: o.now ?? T1 + 1000,
          },
          o.opts,
        );
      }

      /** Everything in an inbox, without consuming it. */
      const inbox = async (u: UserRecord) => store.listInbox(u.id, 0, 1000);

      it('creates a group: the owner and the initial members, each told in a notice', async () => {
        const { owner, friends } = await team(2);
        const [a, b] = friends as [UserRecord, UserRecord];
        const r = await create(owner, [a, b, owner, a]);
        const g = r.group;
        expect(g).toEqual({
          id: g.id,
          name: '项目组',
          description: '周报',
          ownerId: owner.id,
          ownerName: 'owner',
          memberCount: 3,
          createdAt: T1,
          role: 'owner',
        });
        expect(r.added).toEqual([
          { id: a.id, name: 'f0' },
          { id: b.id, name: 'f1' },
        ]);
        const text = formatGroupAddedNotice(owner, { id: g.id, name: '项目组' });
        expect(r.delivered).toEqual([
          {
            toId: a.id,
            id: 3,
            type: 'system',
            createdAt: T1,
            fromId: null,
            from: null,
            content: text,
            attachment: null,
            group: null,
            mentioned: false,
          },
          expect.objectContaining({ toId: b.id, id: 3, content: text }),
        ]);
        expect(await inbox(a)).toEqual([r.delivered[0]]);
        expect(await store.listGroups(owner.id)).toEqual([g]);
        expect(await store.listGroups(a.id)).toEqual([{ ...g, role: 'member' }]);
        const detail = await store.getGroup(g.id, b.id);
        expect(detail).toEqual({
          group: { ...g, role: 'member' },
          members: [
            { id: owner.id, name: 'owner', description: 'I am owner', role: 'owner', joinedAt: T1 },
            { id: a.id, name: 'f0', description: 'I am f0', role: 'member', joinedAt: T1 },
            { id: b.id, name: 'f1', description: 'I am f1', role: 'member', joinedAt: T1 },
          ],
        });
        expect(await store.isGroupMember(g.id, b.id)).toBe(true);
        // A group of one is a group too.
        const solo = await create(owner, []);
        expect([solo.group.memberCount, solo.added, solo.delivered]).toEqual([1, [], []]);
        expect((await store.listGroups(owner.id)).map((x) => x.id)).toEqual([g.id, solo.group.id]);
        expect((await store.getStats()).messages).toBeGreaterThanOrEqual(2);
      });

      it('outsiders see nothing: getGroup is null and every change is group_not_found', async () => {
        const { owner, friends } = await team(1);
        const stranger = await user('stranger');
        const { group } = await create(owner, friends);
        expect(await store.getGroup(group.id, stranger.id)).toBeNull();
        expect(await store.getGroup(group.id + 1000, owner.id)).toBeNull();
        expect(await store.isGroupMember(group.id, stranger.id)).toBe(false);
        expect(await store.listGroups(stranger.id)).toEqual([]);
        const now = T1;
        for (const call of [
          () => gsend(stranger, group.id, 'x'),
          () => gsend(owner, group.id + 1000, 'x'),
          () =>
            store.addGroupMembers({
              groupId: group.id,
              actorId: stranger.id,
              userIds: [],
              now,
              limits: LIMITS,
            }),
          () => store.removeGroupMember({ groupId: group.id, actorId: stranger.id, userId: owner.id, now }),
          () => store.leaveGroup({ groupId: group.id, userId: stranger.id, now }),
          () => store.updateGroup({ groupId: group.id, actorId: stranger.id, name: 'x', now }),
          () => store.dissolveGroup({ groupId: group.id, actorId: stranger.id, now }),
        ]) {
          await expect(call()).rejects.toMatchObject({ code: 'group_not_found' });
        }
      });

      it('members must be accepted friends of the owner, reachable, and known; a refusal writes nothing', async () => {
        const { owner, friends } = await team(3, ['open', 'friends_only', 'do_not_disturb']);
        const [open, fo, dnd] = friends as [UserRecord, UserRecord, UserRecord];
        const stranger = await user('stranger');
        const pending = await user('pending');
        await send(owner, pending, 'hi?');
        const blocked = await user('blocked');
        await befriend(owner, blocked);
        await store.block(owner.id, blocked.id, T0 + 2000);
        const before = await store.getStats();
        for (const [who, code] of [
          [stranger.id, 'not_friends_of_owner'],
          [pending.id, 'not_friends_of_owner'],
          [blocked.id, 'not_friends_of_owner'],
          [dnd.id, 'recipient_dnd'],
          [stranger.id + pending.id + blocked.id + 1000, 'user_not_found'],
        ] as const) {
          await expect(
            store.createGroup({
              ownerId: owner.id,
              name: 'g',
              description: null,
              memberIds: [open.id, who],
              now: T1,
              limits: LIMITS,
            }),
          ).rejects.toMatchObject({ code });
        }
        expect(await store.listGroups(owner.id)).toEqual([]);
        expect(await store.listGroups(open.id)).toEqual([]);
        expect(await inbox(open)).toEqual([]);
        expect(await store.getStats()).toEqual(before);
        // friends_only accepts friends.
        const ok = await create(owner, [open, fo]);
        expect(ok.group.memberCount).toBe(3);
      });

      it('limits: members per group (owner included) and groups per user, with the configured numbers', async () => {
        const { owner, friends } = await team(3);
        const [a, b, c] = friends as [UserRecord, UserRecord, UserRecord];
        const full = await create(owner, [a, b, c], { maxMembers: 3 }).catch((e: unknown) => e);
        expect(full).toBeInstanceOf(RelayError);
        expect(full).toMatchObject({ code: 'group_full', detail: '群组成员已达上限（最多 3 人）' });
        const { group } = await create(owner, [a, b], { maxMembers: 3 });
        await expect(
          store.addGroupMembers({
            groupId: group.id,
            actorId: owner.id,
            userIds: [c.id],
            now: T1,
            limits: { ...LIMITS, maxMembers: 3 },
          }),
        ).rejects.toMatchObject({ code: 'group_full' });
        // a is in 1 group: with a limit of 1, a second group cannot take a, nor can the owner (in 1) create.
        await expect(create(owner, [c], { maxGroupsPerUser: 1 })).rejects.toMatchObject({
          code: 'too_many_groups',
          detail: '加入的群组数量已达上限（最多 1 个）',
        });
        const second = await create(owner, [a], { maxGroupsPerUser: 2 });
        expect(second.group.memberCount).toBe(2);
        // The owner is in 2 groups now, and so is a: a third group cannot take a.
        const third = await create(owner, [], { maxGroupsPerUser: 3 });
        await expect(
          store.addGroupMembers({
            groupId: third.group.id,
            actorId: owner.id,
            userIds: [a.id],
            now: T1,
            limits: { ...LIMITS, maxGroupsPerUser: 2 },
          }),
        ).rejects.toMatchObject({ code: 'too_many_groups', detail: '加入的群组数量已达上限（最多 2 个）' });
        expect((await store.listGroups(a.id)).length).toBe(2);
      });

      it('the owner adds members (all or nothing); members and outsiders cannot', async () => {
        const { owner, friends } = await team(4);
        const [a, b, c, d] = friends as [UserRecord, UserRecord, UserRecord, UserRecord];
        const stranger = await user('stranger');
        const { group } = await create(owner, [a]);
        const add = (actor: UserRecord, ids: number[]) =>
          store.addGroupMembers({
            groupId: group.id,
            actorId: actor.id,
            userIds: ids,
            now: T1 + 5,
            limits: LIMITS,
          });
        await expect(add(a, [b.id])).rejects.toMatchObject({ code: 'not_group_owner' });
        await expect(add(owner, [b.id, a.id])).rejects.toMatchObject({ code: 'already_member' });
        await expect(add(owner, [owner.id])).rejects.toMatchObject({ code: 'already_member' });
        await expect(add(owner, [b.id, stranger.id])).rejects.toMatchObject({ code: 'not_friends_of_owner' });
        expect((await store.getGroup(group.id, owner.id))!.group.memberCount).toBe(2);
        expect(await inbox(b)).toEqual([]);
        const r = await add(owner, [c.id, b.id, c.id]);
        expect(r.added).toEqual([
          { id: c.id, name: 'f2' },
          { id: b.id, name: 'f1' },
        ]);
        expect(r.group.memberCount).toBe(4);
        expect(r.delivered.map((m) => [m.toId, m.content])).toEqual([
          [c.id, formatGroupAddedNotice(owner, group)],
          [b.id, formatGroupAddedNotice(owner, group)],
        ]);
        expect(await store.getGroup(group.id, d.id)).toBeNull();
        expect((await store.getGroup(group.id, c.id))!.members.map((m) => [m.id, m.joinedAt])).toEqual([
          [owner.id, T1],
          [a.id, T1],
          [b.id, T1 + 5],
          [c.id, T1 + 5],
        ]);
      });

      it('remove and leave: the owner removes (the member is told), a member leaves, the owner cannot', async () => {
        const { owner, friends } = await team(3);
        const [a, b, c] = friends as [UserRecord, UserRecord, UserRecord];
        const { group } = await create(owner, [a, b, c]);
        for (const u of [a, b, c]) await store.takeInbox(u.id, { limit: 10, fromId: null });
        const now = T1 + 7;
        await expect(
          store.removeGroupMember({ groupId: group.id, actorId: a.id, userId: b.id, now }),
        ).rejects.toMatchObject({ code: 'not_group_owner' });
        const stranger = await user('stranger');
        await expect(
          store.removeGroupMember({ groupId: group.id, actorId: owner.id, userId: stranger.id, now }),
        ).rejects.toMatchObject({ code: 'not_group_member' });
        await expect(store.leaveGroup({ groupId: group.id, userId: owner.id, now })).rejects.toMatchObject({
          code: 'owner_cannot_leave',
        });
        await expect(
          store.removeGroupMember({ groupId: group.id, actorId: owner.id, userId: owner.id, now }),
        ).rejects.toMatchObject({ code: 'owner_cannot_leave' });

        const removed = await store.removeGroupMember({
          groupId: group.id,
          actorId: owner.id,
          userId: b.id,
          now,
        });
        expect(removed).toEqual({
          group: { id: group.id, name: '项目组' },
          removed: { id: b.id, name: 'f1' },
          left: false,
          delivered: [
            expect.objectContaining({ toId: b.id, type: 'system', content: formatGroupRemovedNotice(group) }),
          ],
        });
        const left = await store.leaveGroup({ groupId: group.id, userId: a.id, now });
        expect([left.left, left.removed, left.delivered]).toEqual([true, { id: a.id, name: 'f0' }, []]);
        // A member removing itself is leaving.
        const self = await store.removeGroupMember({ groupId: group.id, actorId: c.id, userId: c.id, now });
        expect([self.left, self.delivered]).toEqual([true, []]);
        expect(await store.getGroup(group.id, a.id)).toBeNull();
        expect(await store.listGroups(b.id)).toEqual([]);
        expect((await store.getGroup(group.id, owner.id))!.group.memberCount).toBe(1);
        const r = await gsend(owner, group.id, 'anyone?');
        expect([r.recipients, r.delivered]).toEqual([0, []]);
        await expect(gsend(a, group.id, 'me?')).rejects.toMatchObject({ code: 'group_not_found' });
      });

      it('the owner renames, re-describes and hands the group over', async () => {
        const { owner, friends } = await team(2);
        const [a, b] = friends as [UserRecord, UserRecord];
        const { group } = await create(owner, [a]);
        await expect(
          store.updateGroup({ groupId: group.id, actorId: a.id, name: 'mine', now: T1 }),
        ).rejects.toMatchObject({ code: 'not_group_owner' });
        await expect(
          store.updateGroup({ groupId: group.id, actorId: owner.id, ownerId: b.id, now: T1 }),
        ).rejects.toMatchObject({ code: 'not_group_member' });
        const renamed = await store.updateGroup({
          groupId: group.id,
          actorId: owner.id,
          name: '新名字',
          now: T1,
        });
        expect([renamed.name, renamed.description]).toEqual(['新名字', '周报']);
        const cleared = await store.updateGroup({
          groupId: group.id,
          actorId: owner.id,
          description: null,
          now: T1,
        });
        expect([cleared.name, cleared.description]).toEqual(['新名字', null]);
        const handed = await store.updateGroup({
          groupId: group.id,
          actorId: owner.id,
          ownerId: a.id,
          now: T1,
        });
        expect([handed.ownerId, handed.ownerName, handed.role]).toEqual([a.id, 'f0', 'member']);
        expect((await store.getGroup(group.id, a.id))!.members.map((m) => [m.id, m.role])).toEqual([
          [a.id, 'owner'],
          [owner.id, 'member'],
        ]);
        // The old owner may leave now; the new one may not.
        await expect(store.leaveGroup({ groupId: group.id, userId: a.id, now: T1 })).rejects.toMatchObject({
          code: 'owner_cannot_leave',
        });
        await store.leaveGroup({ groupId: group.id, userId: owner.id, now: T1 });
        expect((await store.getGroup(group.id, a.id))!.group.memberCount).toBe(1);
      });

      it('dissolve: owner only; every other member is told; the group is gone, its messages stay readable', async () => {
        const { owner, friends } = await team(2);
        const [a, b] = friends as [UserRecord, UserRecord];
        const { group } = await create(owner, [a, b]);
        await gsend(a, group.id, 'before');
        await expect(
          store.dissolveGroup({ groupId: group.id, actorId: a.id, now: T1 }),
        ).rejects.toMatchObject({
          code: 'not_group_owner',
        });
        const r = await store.dissolveGroup({ groupId: group.id, actorId: owner.id, now: T1 + 50 });
        const text = formatGroupDissolvedNotice(group);
        expect(r.group).toEqual({ id: group.id, name: '项目组' });
        expect(r.delivered.map((m) => [m.toId, m.type, m.content, m.createdAt])).toEqual([
          [a.id, 'system', text, T1 + 50],
          [b.id, 'system', text, T1 + 50],
        ]);
        for (const u of [owner, a, b]) {
          expect(await store.listGroups(u.id)).toEqual([]);
          expect(await store.getGroup(group.id, u.id)).toBeNull();
        }
        await expect(gsend(owner, group.id, 'x')).rejects.toMatchObject({ code: 'group_not_found' });
        await expect(
          store.dissolveGroup({ groupId: group.id, actorId: owner.id, now: T1 }),
        ).rejects.toMatchObject({
          code: 'group_not_found',
        });
        // b still has the message sent before, naming the group.
        expect((await inbox(b)).find((m) => m.type === 'group')?.group).toEqual({
          id: group.id,
          name: '项目组',
        });
      });

      it('a group send stores one copy per other member, each with its own id and mention flag', async () => {
        const { owner, friends } = await team(3);
        const [a, b, c] = friends as [UserRecord, UserRecord, UserRecord];
        await send(owner, b, 'extra'); // b's ids are one ahead
        const { group } = await create(owner, [a, b, c]);
        const stats = await store.getStats();
        const r = await gsend(a, group.id, '@f1 和 @owner，看一下', { mentionIds: [c.id, a.id, 999_999] });
        const copy = (to: UserRecord, id: number, mentioned: boolean): InboxMessage => ({
          toId: to.id,
          id,
          type: 'group',
          createdAt: T1 + 1000,
          fromId: a.id,
          from: { id: a.id, name: 'f0', description: 'I am f0' },
          content: '@f1 和 @owner，看一下',
          attachment: null,
          group: { id: group.id, name: '项目组' },
          mentioned,
        });
        // The owner's inbox held the befriend chats and notices (emptied), so its next id is 7.
        const ownerNext = (await store.lastMessageId(owner.id)) as number;
        expect(r).toEqual({
          group: { id: group.id, name: '项目组' },
          recipients: 3,
          delivered: [copy(owner, ownerNext, true), copy(b, 5, true), copy(c, 4, true)].sort(
            (x, y) => x.toId - y.toId,
          ),
          preview: null,
          replayed: false,
        });
        expect(await store.getStats()).toEqual({ ...stats, messages: stats.messages + 3 });
        expect((await inbox(a)).filter((m) => m.type === 'group')).toEqual([]);
        expect((await inbox(b)).at(-1)).toEqual(copy(b, 5, true));
        // Without a mention nobody is flagged; `@f1x` is not `@f1`.
        const plain = await gsend(b, group.id, 'mail me@f1x or @f0x');
        expect(plain.delivered.map((m) => m.mentioned)).toEqual([false, false, false]);
        // The current group name is shown on stored copies.
        await store.updateGroup({ groupId: group.id, actorId: owner.id, name: '改名', now: T1 });
        expect((await inbox(c)).filter((m) => m.type === 'group').map((m) => m.group!.name)).toEqual([
          '改名',
          '改名',
        ]);
      });

      it('group sends are idempotent per sender and key, and carry the sender’s preview', async () => {
        const { owner, friends } = await team(2);
        const [a, b] = friends as [UserRecord, UserRecord];
        const { group } = await create(owner, [a, b]);
        const opts: SendOptions = {
          idempotency: { key: 'g-1', fingerprint: 'fp', windowMs: 60_000 },
          previewLimit: 5,
        };
        const first = await gsend(a, group.id, 'once', { opts });
        expect(first.preview).toEqual(await store.peekInbox(a.id, 5));
        const again = await gsend(a, group.id, 'once', { opts, now: T1 + 2000 });
        expect(again).toEqual({ ...first, delivered: [], replayed: true });
        expect((await inbox(b)).filter((m) => m.type === 'group')).toHaveLength(1);
        await expect(
          gsend(a, group.id, 'other', {
            opts: { idempotency: { key: 'g-1', fingerprint: 'fp2', windowMs: 60_000 } },
          }),
        ).rejects.toMatchObject({ code: 'idempotency_conflict' });
        // A replay does not consult membership: it answers what was answered.
        await store.leaveGroup({ groupId: group.id, userId: a.id, now: T1 });
        expect((await gsend(a, group.id, 'once', { opts, now: T1 + 3000 })).replayed).toBe(true);
      });

      it('a refused group send (custom decision) writes nothing', async () => {
        const { owner, friends } = await team(1);
        const { group } = await create(owner, friends);
        const before = await store.lastMessageId(friends[0]!.id);
        await expect(
          store.sendToGroup(
            { fromId: owner.id, groupId: group.id, content: 'x', attachment: null, mentionIds: [], now: T1 },
            { idempotency: { key: 'q', fingerprint: 'f', windowMs: 60_000 } },
            () => {
              throw new RelayError('upload_quota_exceeded');
            },
          ),
        ).rejects.toMatchObject({ code: 'upload_quota_exceeded' });
        expect(await store.lastMessageId(friends[0]!.id)).toBe(before);
        // The key was not recorded: the same key now delivers.
        const ok = await gsend(owner, group.id, 'x', {
          opts: { idempotency: { key: 'q', fingerprint: 'f', windowMs: 60_000 } },
        });
        expect([ok.replayed, ok.recipients]).toEqual([false, 1]);
      });

      it('concurrent group and private sends keep every inbox gapless, each message once', async () => {
        const { owner, friends } = await team(4);
        const { group } = await create(owner, friends);
        const [a, b] = friends as [UserRecord, UserRecord];
        const starts = new Map<number, number>();
        for (const u of [owner, ...friends]) starts.set(u.id, await store.lastMessageId(u.id));
        const jobs: Array<Promise<unknown>> = [];
        for (let i = 0; i < 6; i++) {
          jobs.push(gsend(friends[i % 4]!, group.id, `g${i}`, { now: T1 + i }));
          jobs.push(send(a, owner, `p${i}`, { now: T1 + i }));
          jobs.push(send(owner, b, `q${i}`, { now: T1 + i }));
        }
        await Promise.all(jobs);
        for (const u of [owner, ...friends]) {
          const got = await store.listInbox(u.id, starts.get(u.id)!, 1000);
          const first = starts.get(u.id)! + 1;
          expect(ids(got)).toEqual(got.map((_, k) => first + k));
          const groupContents = got.filter((m) => m.type === 'group').map((m) => m.content);
          expect(new Set(groupContents).size).toBe(groupContents.length);
        }
        // Each member gets the sends of the other three: 6 sends, 2 of them its own (4 members).
        expect((await inbox(owner)).filter((m) => m.type === 'group')).toHaveLength(6);
        expect((await inbox(a)).filter((m) => m.type === 'group')).toHaveLength(6 - 2);
      });

      it('a group attachment records its group', async () => {
        const { owner, friends } = await team(1);
        const { group } = await create(owner, friends);
        const bytes = Buffer.from('group file');
        const f: NewFile = {
          id: randomBytes(16).toString('hex'),
          senderId: owner.id,
          recipientId: owner.id,
          groupId: group.id,
          name: 'g.txt',
          contentType: 'text/plain',
          size: bytes.length,
          sha256: sha256(bytes),
          createdAt: T0,
          expiresAt: T0 + 86_400_000,
        };
        await store.putFile(f, piecesOf(bytes, [3]));
        expect(await store.getFile(f.id)).toEqual({ ...f, downloadedAt: null });
      });
    });

    describe('files', () => {
      let fileSeq = 0;
      function newFile(
        sender: UserRecord,
        recipient: UserRecord,
        bytes: Buffer,
        o: Partial<NewFile> = {},
      ): NewFile {
        fileSeq++;
        return {
          id: randomBytes(16).toString('hex'),
          senderId: sender.id,
          recipientId: recipient.id,
          name: `file-${fileSeq}.bin`,
          contentType: 'application/octet-stream',
          size: bytes.length,
          sha256: sha256(bytes),
          createdAt: T0,
          expiresAt: T0 + 86_400_000,
          groupId: null,
          ...o,
        };
      }
      const attachmentOf = (f: NewFile): AttachmentView => ({
        name: f.name,
        fileId: f.id,
        size: f.size,
        contentType: f.contentType,
        expiresAt: f.expiresAt,
      });

      it('putFile from odd-sized pieces round-trips byte for byte; getFile is null for unknown ids', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        // Larger than two storage chunks, in pieces that never line up with them.
        const bytes = randomBytes(700_001);
        const file = newFile(alice, bob, bytes, { name: 'photo 照片.png', contentType: 'image/png' });
        let seenWhileWriting: unknown = 'not checked';
        async function* upload(): AsyncIterable<Buffer> {
          let first = true;
          for await (const piece of piecesOf(bytes, [1, 7, 65_537, 100_003, 4096, 262_145])) {
            yield piece;
            if (first) {
              first = false;
              // An upload in progress is never served.
              seenWhileWriting = await store.getFile(file.id);
            }
          }
        }
        await store.putFile(file, upload());
        expect(seenWhileWriting).toBeNull();
        expect(await store.getFile(file.id)).toEqual({ ...file, downloadedAt: null });
        const back = await readAll(store.readFile(file.id));
        expect(back.length).toBe(bytes.length);
        expect(back.equals(bytes)).toBe(true);
        // Reading again gives the same bytes.
        expect(sha256(await readAll(store.readFile(file.id)))).toBe(file.sha256);
        expect(await store.getFile(randomBytes(16).toString('hex'))).toBeNull();
        expect(await readAll(store.readFile(randomBytes(16).toString('hex')))).toEqual(Buffer.alloc(0));
        // An empty file is a file too.
        const empty = newFile(alice, bob, Buffer.alloc(0));
        await store.putFile(empty, piecesOf(Buffer.alloc(0), [1]));
        expect(await store.getFile(empty.id)).toEqual({ ...empty, downloadedAt: null });
        expect((await readAll(store.readFile(empty.id))).length).toBe(0);
      });

      it('a failed upload leaves nothing behind', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const bytes = randomBytes(300_000);
        const file = newFile(alice, bob, bytes);
        async function* broken(): AsyncIterable<Buffer> {
          yield bytes.subarray(0, 280_000);
          throw new Error('client went away');
        }
        await expect(store.putFile(file, broken())).rejects.toThrow('client went away');
        expect(await store.getFile(file.id)).toBeNull();
        expect(await store.storedFileBytes(alice.id)).toBe(0);
        expect(await readAll(store.readFile(file.id))).toEqual(Buffer.alloc(0));
        // The id can be used again.
        await store.putFile(file, piecesOf(bytes, [99_999]));
        expect((await readAll(store.readFile(file.id))).equals(bytes)).toBe(true);
      });

      it('storedFileBytes sums the sender’s stored files; deleteFile removes record and bytes', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        expect(await store.storedFileBytes(alice.id)).toBe(0);
        const b1 = randomBytes(1000);
        const b2 = randomBytes(300_000);
        const f1 = newFile(alice, bob, b1);
        const f2 = newFile(alice, bob, b2);
        const f3 = newFile(bob, alice, b1);
        for (const [f, b] of [
          [f1, b1],
          [f2, b2],
          [f3, b1],
        ] as const) {
          await store.putFile(f, piecesOf(b, [4097]));
        }
        expect(await store.storedFileBytes(alice.id)).toBe(301_000);
        expect(await store.storedFileBytes(bob.id)).toBe(1000);
        await store.deleteFile(f2.id);
        expect(await store.getFile(f2.id)).toBeNull();
        expect(await readAll(store.readFile(f2.id))).toEqual(Buffer.alloc(0));
        expect(await store.storedFileBytes(alice.id)).toBe(1000);
        await store.deleteFile(f2.id);
        await store.deleteFile(randomBytes(16).toString('hex'));
        expect((await readAll(store.readFile(f1.id))).equals(b1)).toBe(true);
      });

      it('markFileDownloaded keeps the first time', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        const f = newFile(alice, bob, Buffer.from('hello'));
        await store.putFile(f, piecesOf(Buffer.from('hello'), [2]));
        await store.markFileDownloaded(f.id, T0 + 10);
        await store.markFileDownloaded(f.id, T0 + 20);
        expect((await store.getFile(f.id))?.downloadedAt).toBe(T0 + 10);
      });

      it('sweepFiles deletes expired files and downloaded files no stored message references', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        const now = T0 + 50_000;
        const bytes = randomBytes(5000);
        const expired = newFile(alice, bob, bytes, { expiresAt: now - 1 });
        const edge = newFile(alice, bob, bytes, { expiresAt: now });
        const ackedDownloaded = newFile(alice, bob, bytes);
        const storedDownloaded = newFile(alice, bob, bytes);
        const ackedNotDownloaded = newFile(alice, bob, bytes);
        const neverSent = newFile(alice, bob, bytes);
        const all = [expired, edge, ackedDownloaded, storedDownloaded, ackedNotDownloaded, neverSent];
        for (const f of all) await store.putFile(f, piecesOf(bytes, [777]));
        // Messages referencing them: bob acks the first one only.
        const m1 = await send(alice, bob, 'acked', { attachment: attachmentOf(ackedDownloaded) });
        await send(alice, bob, 'stored', { attachment: attachmentOf(storedDownloaded) });
        const m3 = await send(alice, bob, 'acked too', { attachment: attachmentOf(ackedNotDownloaded) });
        await store.deleteMessages(bob.id, [m1.messageId, m3.messageId]);
        await store.markFileDownloaded(ackedDownloaded.id, now - 100);
        await store.markFileDownloaded(storedDownloaded.id, now - 100);
        expect(await store.sweepFiles(now)).toBe(2);
        expect(await store.getFile(expired.id)).toBeNull();
        expect(await store.getFile(ackedDownloaded.id)).toBeNull();
        for (const f of [edge, storedDownloaded, ackedNotDownloaded, neverSent]) {
          expect(await store.getFile(f.id)).not.toBeNull();
        }
        expect(await store.storedFileBytes(alice.id)).toBe(4 * bytes.length);
        expect(await store.sweepFiles(now)).toBe(0);
        // Once its message is acknowledged, the downloaded file goes too.
        await store.ackInbox(bob.id, await store.lastMessageId(bob.id));
        expect(await store.sweepFiles(now)).toBe(1);
        expect(await store.getFile(storedDownloaded.id)).toBeNull();
        // Later, everything expired goes.
        expect(await store.sweepFiles(T0 + 86_400_001)).toBe(3);
        expect(await store.storedFileBytes(alice.id)).toBe(0);
      });

      it('collectFile applies the sweep rule to one downloaded file only', async () => {
        const alice = await user('alice');
        const bob = await user('bob');
        await befriend(alice, bob);
        const now = T0 + 50_000;
        const bytes = randomBytes(3000);
        const [acked, pending, notDownloaded, other] = [1, 2, 3, 4].map(() => newFile(alice, bob, bytes));
        for (const f of [acked, pending, notDownloaded, other])
          await store.putFile(f!, piecesOf(bytes, [1000]));
        const m1 = await send(alice, bob, 'a', { attachment: attachmentOf(acked!) });
        await send(alice, bob, 'b', { attachment: attachmentOf(pending!) });
        const m3 = await send(alice, bob, 'c', { attachment: attachmentOf(notDownloaded!) });
        const m4 = await send(alice, bob, 'd', { attachment: attachmentOf(other!) });
        await store.deleteMessages(bob.id, [m1.messageId, m3.messageId, m4.messageId]);
        for (const f of [acked, pending, other]) await store.markFileDownloaded(f!.id, now - 10);
        // Its message is still stored: kept. Not downloaded: kept. Unknown id: nothing.
        expect(await store.collectFile(pending!.id, now)).toBe(false);
        expect(await store.collectFile(notDownloaded!.id, now)).toBe(false);
        expect(await store.collectFile('0'.repeat(32), now)).toBe(false);
        // Downloaded and acknowledged: gone — and only that one (`other` qualifies too, but was not asked).
        expect(await store.collectFile(acked!.id, now)).toBe(true);
        expect(await store.getFile(acked!.id)).toBeNull();
        expect(await store.collectFile(acked!.id, now)).toBe(false);
        for (const f of [pending, notDownloaded, other]) expect(await store.getFile(f!.id)).not.toBeNull();
        expect(await store.storedFileBytes(alice.id)).toBe(3 * bytes.length);
      });
    });
  });
}
