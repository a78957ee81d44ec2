// Store contract, receipts (docs/protocol.md "Receipts"): takeInbox, ackInbox and deleteMessages record
// one receipt per message a user sent that they delete — at the Delivery's time, handed back in its
// list, once — and getReceipt answers delivered / accepted / null for that sender only. System notices
// get none; a sender blocked by the recipient gets none; expireMessages expires them with the messages;
// getIdempotentSend returns the recorded result (with the recipient, or each group copy) in its window.

import { beforeEach, describe, expect, it } from 'vitest';
import type { ReceiptView } from '@openwechat/protocol';
import type { GroupLimits } from '../../../packages/relay/src/domain/groups.ts';
import type { Delivery, Store } from '../../../packages/relay/src/store/types.ts';
import { T0, type Harness } from '../harness.ts';

export function receiptsContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user, send, befriend } = h;
  const LIMITS: GroupLimits = { maxMembers: 500, maxGroupsPerUser: 100 };
  const at = (t: number): Delivery => ({ at: t, receipts: [] });

  async function friends() {
    const alice = await user('alice');
    const bob = await user('bob');
    await befriend(alice, bob);
    return { alice, bob };
  }

  describe('receipts', () => {
    it('a stored message is accepted; ackInbox records delivered once, at the given time', async () => {
      const { alice, bob } = await friends();
      const m1 = (await send(alice, bob, 'one')).messageId;
      const m2 = (await send(alice, bob, 'two')).messageId;
      const accepted: ReceiptView = {
        fromId: alice.id,
        toId: bob.id,
        messageId: m1,
        groupId: null,
        deliveredAt: null,
      };
      expect(await store.getReceipt(alice.id, bob.id, m1)).toEqual(accepted);

      const d = at(T0 + 5000);
      expect(await store.ackInbox(bob.id, m1, d)).toBe(1);
      expect(d.receipts).toEqual([{ ...accepted, deliveredAt: T0 + 5000 }]);
      expect(await store.getReceipt(alice.id, bob.id, m1)).toEqual({ ...accepted, deliveredAt: T0 + 5000 });
      expect(await store.getReceipt(alice.id, bob.id, m2)).toMatchObject({ deliveredAt: null });

      // Only the sender sees it; unknown ids are null.
      expect(await store.getReceipt(bob.id, bob.id, m1)).toBeNull();
      expect(await store.getReceipt(alice.id, alice.id, m1)).toBeNull();
      expect(await store.getReceipt(alice.id, bob.id, m2 + 50)).toBeNull();

      // Acknowledging again records nothing more.
      const again = at(T0 + 9000);
      expect(await store.ackInbox(bob.id, m2, again)).toBe(1);
      expect(again.receipts.map((r) => r.messageId)).toEqual([m2]);
      const none = at(T0 + 9500);
      expect(await store.ackInbox(bob.id, m2, none)).toBe(0);
      expect(none.receipts).toEqual([]);
      expect(await store.getReceipt(alice.id, bob.id, m1)).toMatchObject({ deliveredAt: T0 + 5000 });
    });

    it('takeInbox (all, or from one sender) and deleteMessages record receipts; notices get none', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      const carol = await user('carol');
      await befriend(alice, bob);
      await befriend(carol, bob);
      const a1 = (await send(alice, bob, 'a1')).messageId;
      const c1 = (await send(carol, bob, 'c1')).messageId;
      const a2 = (await send(alice, bob, 'a2')).messageId;

      const d1 = at(T0 + 100);
      const page = await store.takeInbox(bob.id, { limit: 10, fromId: carol.id }, d1);
      expect(page.messages.map((m) => m.id)).toEqual([c1]);
      expect(d1.receipts).toEqual([
        { fromId: carol.id, toId: bob.id, messageId: c1, groupId: null, deliveredAt: T0 + 100 },
      ]);
      const d2 = at(T0 + 200);
      await store.deleteMessages(bob.id, [a2], d2);
      expect(d2.receipts.map((r) => r.messageId)).toEqual([a2]);
      const d3 = at(T0 + 300);
      await store.takeInbox(bob.id, { limit: 10, fromId: null }, d3);
      expect(d3.receipts.map((r) => [r.fromId, r.messageId])).toEqual([[alice.id, a1]]);

      // A friendship acceptance leaves the requester a system notice: no receipt for anyone.
      const dave = await user('dave');
      await send(dave, alice, 'hi');
      await send(alice, dave, 'hello'); // dave gets the reply and a system notice
      const d4 = at(T0 + 400);
      const taken = await store.takeInbox(dave.id, { limit: 10, fromId: null }, d4);
      expect(taken.messages.map((m) => m.type).sort()).toEqual(['chat', 'system']);
      expect(d4.receipts.map((r) => r.fromId)).toEqual([alice.id]);
    });

    it('without a Delivery the receipt is still recorded', async () => {
      const { alice, bob } = await friends();
      const m = (await send(alice, bob, 'x')).messageId;
      await store.ackInbox(bob.id, m);
      expect((await store.getReceipt(alice.id, bob.id, m))?.deliveredAt).toEqual(expect.any(Number));
    });

    it('a sender blocked by the recipient gets no receipt (group copies reach blocked members)', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      const carol = await user('carol');
      await befriend(alice, bob);
      await befriend(alice, carol);
      const g = await store.createGroup({
        ownerId: alice.id,
        name: 'g',
        description: null,
        memberIds: [bob.id, carol.id],
        now: T0 + 2000,
        limits: LIMITS,
      });
      for (const u of [bob, carol]) await store.takeInbox(u.id, { limit: 50, fromId: null });
      expect(await store.block(bob.id, alice.id, T0 + 3000)).toBe(true);
      const sent = await store.sendToGroup({
        fromId: alice.id,
        groupId: g.group.id,
        content: 'hello',
        attachment: null,
        mentionIds: [],
        now: T0 + 4000,
      });
      const copies = new Map(sent.copies!.map(([to, id]) => [to, id]));
      expect([...copies.keys()].sort()).toEqual([bob.id, carol.id].sort());
      const d = at(T0 + 5000);
      await store.ackInbox(bob.id, copies.get(bob.id)!, d);
      await store.ackInbox(carol.id, copies.get(carol.id)!, d);
      expect(d.receipts).toEqual([
        {
          fromId: alice.id,
          toId: carol.id,
          messageId: copies.get(carol.id)!,
          groupId: g.group.id,
          deliveredAt: T0 + 5000,
        },
      ]);
      expect(await store.getReceipt(alice.id, bob.id, copies.get(bob.id)!)).toBeNull();
    });

    it('expireMessages expires receipts of messages created before the cutoff', async () => {
      const { alice, bob } = await friends();
      const old = (await send(alice, bob, 'old', { now: T0 + 1000 })).messageId;
      const recent = (await send(alice, bob, 'recent', { now: T0 + 9000 })).messageId;
      await store.ackInbox(bob.id, recent, at(T0 + 10_000));
      expect(await store.expireMessages(T0 + 5000)).toBe(0); // both were acknowledged
      expect(await store.getReceipt(alice.id, bob.id, old)).toBeNull();
      expect(await store.getReceipt(alice.id, bob.id, recent)).toMatchObject({ deliveredAt: T0 + 10_000 });
      expect(await store.expireMessages(T0 + 9001)).toBe(0);
      expect(await store.getReceipt(alice.id, bob.id, recent)).toBeNull();
    });

    it('getIdempotentSend: the recorded result with its recipient, within the window, for its sender', async () => {
      const { alice, bob } = await friends();
      const idem = { key: 'k1', fingerprint: 'f1', windowMs: 86_400_000 };
      const r = await store.send(
        { fromId: alice.id, toId: bob.id, content: 'c', attachment: null, now: T0 + 7000 },
        { idempotency: idem, previewLimit: 5 },
      );
      const found = await store.getIdempotentSend(alice.id, 'k1', T0);
      expect(found).toEqual({
        result: {
          outcome: 'chat',
          messageId: r.messageId,
          toId: bob.id,
          preview: { total: 0, messages: [] },
        },
        createdAt: T0 + 7000,
      });
      expect(await store.getIdempotentSend(alice.id, 'k1', T0 + 7000)).toBeNull(); // made at, not after
      expect(await store.getIdempotentSend(bob.id, 'k1', T0)).toBeNull();
      expect(await store.getIdempotentSend(alice.id, 'k2', T0)).toBeNull();
    });
  });
}
