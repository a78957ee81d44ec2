// Store contract, inbox: read-and-clear, peeks, previews, last ids, ids advanced after a restore.
// Run against every backend by ../contract.ts; `h.store` is a new, empty store for each test.

import { beforeEach, describe, expect, it } from 'vitest';
import type { AttachmentView } from '@openwechat/protocol';
import type { Store } from '../../../packages/relay/src/store/types.ts';
import { ids, T0, type Harness } from '../harness.ts';

export function inboxContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user, send, befriend } = h;

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
      const spec = Array.from({ length: 30 }, (_, i): 'alice' | 'carol' => (i % 2 === 0 ? 'alice' : 'carol'));
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
        { previewLimit: 2 },
      );
      expect(r.preview).toEqual(await store.peekInbox(alice.id, 2));
      expect(r.preview!.total).toBe(3);
      expect(r.preview!.messages.map((m) => m.content)).toEqual(['b1', 'c1']);
      // Nothing is consumed by a preview.
      expect((await store.peekInbox(alice.id, 10)).total).toBe(3);
      const none = await store.send(
        { fromId: carol.id, toId: alice.id, content: 'x', attachment: null, now: T0 + 9100 },
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
      expect((await store.listInbox(bob.id, stored[0]!.id, 10)).map((m) => m.content)).toEqual(['m2', 'm3']);
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
}
