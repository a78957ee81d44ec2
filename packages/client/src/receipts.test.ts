// Receipts through @openwechat/client against the real relay over loopback: receipt() and
// sentByKey()/sentGroupByKey() before and after the recipient acknowledges, StreamConsumer's onReceipt
// (receipts never reach onMessage nor move the cursor), and text mode / the reference refusing them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import { ClientError, RelayClient, StreamConsumer, type Delivery, type Receipt } from './index.ts';

let relay: TestRelay;
beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 20 });
});
afterAll(async () => {
  await relay?.close();
});

async function user(name: string): Promise<{ client: RelayClient; id: number }> {
  const reg = await new RelayClient({ baseUrl: relay.url }).register({ name });
  return { client: new RelayClient({ baseUrl: relay.url, token: reg.token }), id: reg.user.id };
}

/** Two friends with empty inboxes. */
async function pair(tag: string) {
  const { client: a, id: aId } = await user(`${tag}_a`);
  const { client: b, id: bId } = await user(`${tag}_b`);
  await a.send(bId, 'hi');
  await b.send(aId, 'hello');
  for (const c of [a, b]) await c.readInbox({ limit: 500 });
  return { a, b, aId, bId };
}

async function until<T>(what: string, get: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('RelayClient receipts', () => {
  it('receipt(): accepted, then delivered with a time; receipt_not_found for others', async () => {
    const { a, b, bId } = await pair('rc1');
    expect((await a.capabilities()).receipts).toBe(true);
    const sent = await a.send(bId, 'track me');
    const id = sent.messageId!;
    expect(await a.receipt(bId, id)).toEqual({
      messageId: id,
      toId: bId,
      groupId: null,
      state: 'accepted',
      at: null,
    });
    const before = Date.now();
    await b.ack(id);
    const r = await a.receipt(bId, id);
    expect(r.state).toBe('delivered');
    expect(r.at).toBeGreaterThanOrEqual(before - 1000);
    const err = await b.receipt(bId, id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect(err).toMatchObject({ code: 'receipt_not_found', status: 404 });
  });

  it('sentByKey(): null before a send, the original result and receipt after; group keys apart', async () => {
    const { a, b, aId, bId } = await pair('rc2');
    expect(await a.sentByKey('rc2-key')).toBeNull();
    const sent = await a.send(bId, 'once', { idempotencyKey: 'rc2-key' });
    const found = await a.sentByKey('rc2-key');
    expect(found).toEqual({
      result: { ...sent, replayed: true },
      receipt: { messageId: sent.messageId, toId: bId, groupId: null, state: 'accepted', at: null },
    });
    expect(await b.sentByKey('rc2-key')).toBeNull(); // someone else's key
    expect(aId).toBeGreaterThan(0);
    await b.readInbox({ limit: 10 }); // read-and-clear: delivered
    expect((await a.sentByKey('rc2-key'))!.receipt!.state).toBe('delivered');

    const gid = (await a.createGroup({ name: 'rc2g', memberIds: [bId] })).id;
    await b.readInbox({ limit: 10 });
    const g = await a.sendGroup(gid, 'to all', { idempotencyKey: 'rc2-group' });
    expect(g.copies).toEqual([{ toId: bId, messageId: expect.any(Number) as number }]);
    const gFound = await a.sentGroupByKey('rc2-group');
    expect(gFound!.result.copies).toEqual(g.copies);
    expect(gFound!.receipts).toEqual([
      { messageId: g.copies![0]!.messageId, toId: bId, groupId: gid, state: 'accepted', at: null },
    ]);
    await expect(a.sentByKey('rc2-group')).rejects.toThrow(/sentGroupByKey/);
    await expect(a.sentGroupByKey('rc2-key')).rejects.toThrow(/sentByKey/);
  });

  it('text mode (as with the reference) has no receipts', async () => {
    const c = new RelayClient({ baseUrl: relay.url, token: 'x'.repeat(32), mode: 'text' });
    expect((await c.capabilities()).receipts).toBe(false);
    await expect(c.receipt(1, 1)).rejects.toMatchObject({ code: 'unsupported' });
    await expect(c.sentByKey('k')).rejects.toMatchObject({ code: 'unsupported' });
  });
});

describe('StreamConsumer onReceipt', () => {
  it('passes receipt events to onReceipt, never to onMessage, and does not move the cursor', async () => {
    const { a, b, aId, bId } = await pair('rc3');
    const receipts: Receipt[] = [];
    const messages: Delivery[] = [];
    const saved: number[] = [];
    let cursor = (await a.readInbox({ after: 0 })).messages.at(-1)?.id ?? 0;
    const consumer = new StreamConsumer({
      client: a,
      cursor: {
        load: () => cursor,
        save: (id: number) => {
          saved.push(id);
          cursor = id;
        },
      },
      onMessage: (d) => void messages.push(d),
      onReceipt: (r) => void receipts.push(r),
      ackDelayMs: 0,
    });
    const run = consumer.run();
    try {
      await until('connected', () => (consumer.status().connected ? true : undefined));
      const ids: number[] = [];
      for (const text of ['one', 'two']) ids.push((await a.send(bId, text)).messageId!);
      await b.ack(ids[1]!);
      await until('two receipts', () => (receipts.length >= 2 ? true : undefined));
      expect(receipts.map((r) => [r.messageId, r.toId, r.state])).toEqual([
        [ids[0], bId, 'delivered'],
        [ids[1], bId, 'delivered'],
      ]);
      expect(messages).toEqual([]);
      expect(saved).toEqual([]);
      // A real message still flows, and only it moves the cursor.
      const back = (await b.send(aId, 'reply')).messageId!;
      await until('the reply', () => (messages.length ? true : undefined));
      await until('cursor saved', () => (saved.includes(back) ? true : undefined));
      expect(messages.map((m) => m.message.content)).toEqual(['reply']);
    } finally {
      await consumer.stop();
      await run;
    }
  });
});
