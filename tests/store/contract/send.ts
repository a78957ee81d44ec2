// Store contract, send: private sends and the friendship state machine; idempotent sends.
// Run against every backend by ../contract.ts; `h.store` is a new, empty store for each test.

import { beforeEach, describe, expect, it } from 'vitest';
import { RelayError, formatFriendshipNotice, type AttachmentView } from '@openwechat/protocol';
import type { SendState } from '../../../packages/relay/src/domain/send.ts';
import type {
  InboxMessage,
  SendOptions,
  SendResult,
  Store,
  UserRecord,
} from '../../../packages/relay/src/store/types.ts';
import { ids, T0, type Harness } from '../harness.ts';

export function sendContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user, send, befriend } = h;

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
        toId: bob.id,
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
        toId: alice.id,
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
        store.send(
          { fromId: alice.id, toId: bob.id, content: 'x', attachment: null, now: T0 },
          {},
          (state) => {
            seen = state;
            throw new Error('refused by test');
          },
        ),
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
        store.send(
          { fromId: bob.id, toId: alice.id, content: 'y', attachment: null, now: T0 + 2 },
          {},
          (s) => {
            expect(s.friendship).toEqual(row);
            throw new Error('refused again');
          },
        ),
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
      const stored = (await store.peekInbox(alice.id, 10)).total + (await store.peekInbox(bob.id, 10)).total;
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
      const first = await store.send(req(alice, bob, 'once', T0 + 5000), keyed('k1', 'f1', 60_000, 5));
      const ping = (await store.peekInbox(alice.id, 10)).messages;
      expect(first).toEqual({
        outcome: 'chat',
        messageId: 3,
        toId: bob.id,
        delivered: [expect.objectContaining({ toId: bob.id, id: 3, content: 'once', type: 'chat' })],
        preview: { total: 1, messages: ping },
        replayed: false,
      });
      const stats = await store.getStats();
      // alice's inbox changes meanwhile: the replay still shows what the first answer showed.
      await store.takeInbox(alice.id, { limit: 10, fromId: null });
      const again = await store.send(req(alice, bob, 'once', T0 + 6000), keyed('k1', 'f1', 60_000, 5));
      expect(again).toEqual({
        outcome: 'chat',
        messageId: 3,
        toId: bob.id,
        delivered: [],
        preview: first.preview,
        replayed: true,
      });
      // A replay does not even ask the decision.
      const third = await store.send(req(alice, bob, 'once', T0 + 7000), keyed('k1', 'f1', 60_000, 5), () => {
        throw new Error('decide must not run on a replay');
      });
      expect(third).toEqual(again);
      expect(await store.lastMessageId(bob.id)).toBe(3);
      expect(ids((await store.peekInbox(bob.id, 10)).messages)).toEqual([3]);
      expect(await store.getStats()).toEqual(stats);
      // Keys are per sender: bob's 'k1' is a different request.
      const bobs = await store.send(req(bob, alice, 'mine', T0 + 8000), keyed('k1', 'f1'));
      expect(bobs).toMatchObject({ outcome: 'chat', messageId: 4, replayed: false, preview: null });
      expect(bobs.delivered).toHaveLength(1);
    });

    it('records the whole result of an accepting reply', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      await send(alice, bob, 'hi', { now: T0 + 1000 });
      const first = await store.send(req(bob, alice, 'ok', T0 + 2000), keyed('acc', 'fp', 60_000, 5));
      expect(first.outcome).toBe('accepted');
      expect(first.delivered).toHaveLength(3);
      // bob's preview includes the notice this very send put in his inbox.
      expect(first.preview!.messages.map((m) => [m.id, m.type])).toEqual([
        [1, 'friend_request'],
        [2, 'system'],
      ]);
      const again = await store.send(req(bob, alice, 'ok', T0 + 3000), keyed('acc', 'fp', 60_000, 5));
      expect(again).toEqual({ ...first, delivered: [], replayed: true });
      expect(await store.getStats()).toEqual({ users: 2, friendships: 1, messages: 4 });
    });

    it('the same key with another fingerprint is idempotency_conflict and stores nothing', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      await befriend(alice, bob);
      await store.send(req(alice, bob, 'one', T0 + 5000), keyed('k', 'fp-one'));
      const stats = await store.getStats();
      const err = await store
        .send(req(alice, bob, 'two', T0 + 5500), keyed('k', 'fp-two'))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RelayError);
      expect(err).toMatchObject({ code: 'idempotency_conflict' });
      expect(await store.lastMessageId(bob.id)).toBe(3);
      expect(await store.getStats()).toEqual(stats);
      // The original record is intact.
      const again = await store.send(req(alice, bob, 'one', T0 + 5600), keyed('k', 'fp-one'));
      expect(again).toMatchObject({ replayed: true, messageId: 3 });
    });

    it('outside the window the key sends again, and the new result is the one replayed', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      await befriend(alice, bob);
      const first = await store.send(req(alice, bob, 'm', T0 + 5000), keyed('w', 'fp', 1000));
      // Still inside: 999 ms later.
      expect((await store.send(req(alice, bob, 'm', T0 + 5999), keyed('w', 'fp', 1000))).replayed).toBe(true);
      // Exactly the window later the record no longer counts; a different fingerprint is no conflict.
      const second = await store.send(req(alice, bob, 'other', T0 + 6000), keyed('w', 'fp2', 1000));
      expect(second).toMatchObject({ replayed: false, messageId: first.messageId + 1 });
      expect(second.delivered.map((m) => m.content)).toEqual(['other']);
      const replay = await store.send(req(alice, bob, 'other', T0 + 6500), keyed('w', 'fp2', 1000));
      expect(replay).toMatchObject({ replayed: true, messageId: second.messageId });
      expect(ids(await store.listInbox(bob.id, 0, 10))).toEqual([3, 4]);
    });

    it('a refused send records nothing under its key', async () => {
      const alice = await user('alice');
      const bob = await user('bob', { status: 'do_not_disturb' });
      await expect(store.send(req(alice, bob, 'hi', T0 + 1000), keyed('r', 'fp'))).rejects.toMatchObject({
        code: 'recipient_dnd',
      });
      await store.setStatus(bob.id, 'open');
      const r = await store.send(req(alice, bob, 'hi', T0 + 2000), keyed('r', 'fp'));
      expect(r).toMatchObject({ outcome: 'request', messageId: 1, replayed: false });
    });

    it('5 concurrent identical keyed sends deliver once; the others replay its result', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      await befriend(alice, bob);
      const stats = await store.getStats();
      const results = await Promise.all(
        Array.from({ length: 5 }, () =>
          store.send(req(alice, bob, 'only once', T0 + 5000), keyed('same', 'fp', 60_000, 5)),
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
      await store.send(req(alice, bob, 'a', T0 + 1000), keyed('old', 'fa', window));
      await store.send(req(alice, bob, 'b', T0 + 2000), keyed('new', 'fb', window));
      expect(await store.pruneIdempotency(T0 + 1000)).toBe(0);
      expect(await store.pruneIdempotency(T0 + 2000)).toBe(1);
      // Forgotten: the same key sends again although still within its window.
      expect((await store.send(req(alice, bob, 'a', T0 + 3000), keyed('old', 'fa', window))).replayed).toBe(
        false,
      );
      expect((await store.send(req(alice, bob, 'b', T0 + 3000), keyed('new', 'fb', window))).replayed).toBe(
        true,
      );
      // The re-sent 'old' was recorded anew at T0 + 3000.
      expect(await store.pruneIdempotency(T0 + 2001)).toBe(1);
      expect(await store.pruneIdempotency(T0 + 3001)).toBe(1);
      expect(await store.pruneIdempotency(T0 + 3001)).toBe(0);
      expect(ids(await store.listInbox(bob.id, 0, 10))).toEqual([3, 4, 5]);
    });
  });
}
