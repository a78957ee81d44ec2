// Store contract, friends: block, unblock, the friend list and the statistics.
// Run against every backend by ../contract.ts; `h.store` is a new, empty store for each test.

import { beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../../packages/relay/src/store/types.ts';
import { publicOf, T0, type Harness } from '../harness.ts';

export function friendsContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user, send, befriend } = h;

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
}
