// Delivery receipts (issue 22.2, docs/protocol.md "Receipts"): when a recipient's client acknowledges a
// message — resume stream cursor, POST /messages/ack, GET /messages?after=, a read-and-clear GET
// /messages that returns it, a legacy stream's write — its sender's JSON-mode streams get one
// `event: receipt`, and GET /sent/:to_id/:message_id turns from `accepted` into `delivered`. Text-mode
// streams see nothing new; a blocked sender learns nothing new; group copies have one receipt each;
// GET /sent?idempotency_key= finds the caller's own sends only; retention expires receipts.

import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay, type TestRelayOptions } from '../helpers/relay.ts';
import { openSse, type SseConnection, type SseEvent } from '../helpers/sse.ts';
import { createGroupOk, groupSend } from '../groups/helpers.ts';
import { befriend, Clock, register, req, type User } from '../relay/client.ts';
import { drainInbox, inboxJson, peekAll, sendJson } from './util.ts';

interface Receipt {
  message_id: number;
  to_id: number;
  group_id: number | null;
  state: 'accepted' | 'delivered';
  at: string | null;
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function start(opts: TestRelayOptions = {}): Promise<TestRelay> {
  const relay = await startRelay({ sseMaxPerIp: 20, sseMaxPerUser: 8, ...opts });
  cleanup.push(() => relay.close());
  return relay;
}

async function stream(base: string, user: User, query: string, headers: Record<string, string> = {}) {
  const conn = await openSse(base, { path: `/stream${query}`, token: user.token, headers });
  cleanup.push(() => conn.close());
  expect(conn.status).toBe(200);
  // The stream is registered once its first event (`event: log`) is written.
  await conn.waitForEvents(1);
  return conn;
}

const isReceipt = (e: SseEvent) => e.event === 'receipt';
const receiptsOf = (c: SseConnection): Receipt[] =>
  c.events.filter(isReceipt).map((e) => JSON.parse(e.data) as Receipt);

async function waitReceipts(c: SseConnection, n: number): Promise<Receipt[]> {
  await c.waitForEvents(n, { filter: isReceipt, timeoutMs: 10_000 });
  return receiptsOf(c);
}

/** GET /sent/:to/:id in JSON mode: the receipt, or the error code. */
async function query(base: string, sender: User, toId: number, id: number): Promise<Receipt | string> {
  const r = await req(base, 'GET', `/sent/${toId}/${id}`, { token: sender.token, jsonMode: true });
  if (r.status === 200) return (JSON.parse(r.body) as { receipt: Receipt }).receipt;
  expect(r.status, r.body).toBe(404);
  return (JSON.parse(r.body) as { error: { code: string } }).error.code;
}

async function sendId(base: string, from: User, to: User, content: string, key?: string): Promise<number> {
  const r = await sendJson(base, from, to.id, content, key ? { 'Idempotency-Key': key } : {});
  expect(r.status, r.body).toBe(200);
  return (JSON.parse(r.body) as { message_id: number }).message_id;
}

async function friends(base: string, tag: string): Promise<{ alice: User; bob: User }> {
  const alice = await register(base, `${tag}_alice`);
  const bob = await register(base, `${tag}_bob`);
  await befriend(base, alice, bob);
  await drainInbox(base, bob);
  await drainInbox(base, alice);
  return { alice, bob };
}

/**
 * "Exactly one": a later event on the same stream (a message from bob) proves everything written before
 * it has arrived; receipts are written when the ack commits, before that message is even sent.
 */
async function settleWith(base: string, alice: User, bob: User, conn: SseConnection): Promise<void> {
  const before = conn.messages().length;
  await sendId(base, bob, alice, `marker ${before}`);
  await conn.waitForMessages(before + 1, 10_000);
}

const ACK_PATHS: Array<[string, (base: string, bob: User, id: number) => Promise<void>]> = [
  [
    'POST /messages/ack',
    async (base, bob, id) => {
      const r = await req(base, 'POST', '/messages/ack', { token: bob.token, json: { up_to: id } });
      expect(r.status, r.body).toBe(200);
    },
  ],
  [
    'GET /messages?after=',
    async (base, bob, id) => {
      await inboxJson(base, bob, `?after=${id}`);
    },
  ],
  [
    'read-and-clear GET /messages',
    async (base, bob, id) => {
      const page = await inboxJson(base, bob);
      expect(page.messages.map((m) => m.id)).toContain(id);
    },
  ],
  [
    'resume stream cursor (Last-Event-ID)',
    async (base, bob, id) => {
      const c = await stream(base, bob, '', { 'Last-Event-ID': String(id) });
      c.close();
    },
  ],
];

describe('receipts: each acknowledgement path', () => {
  for (const [name, ack] of ACK_PATHS) {
    it(`${name}: accepted before, one receipt event to the sender's JSON stream, delivered after`, async () => {
      const clock = new Clock();
      const relay = await start({ now: clock.now });
      const base = relay.url;
      const { alice, bob } = await friends(base, 'path');
      const aliceStream = await stream(base, alice, '?format=json&since=0');

      const id = await sendId(base, alice, bob, 'hello');
      expect(await query(base, alice, bob.id, id)).toEqual({
        message_id: id,
        to_id: bob.id,
        group_id: null,
        state: 'accepted',
        at: null,
      });

      clock.advance(90);
      const ackedAt = new Date(clock.t).toISOString();
      await ack(base, bob, id);
      const expected: Receipt = {
        message_id: id,
        to_id: bob.id,
        group_id: null,
        state: 'delivered',
        at: ackedAt,
      };
      expect(await waitReceipts(aliceStream, 1)).toEqual([expected]);
      const event = aliceStream.events.find(isReceipt)!;
      expect(event.id).toBeUndefined(); // a receipt never moves the client's Last-Event-ID
      expect(await query(base, alice, bob.id, id)).toEqual(expected);

      // Acknowledging again (or past it) does not repeat the receipt.
      await req(base, 'POST', '/messages/ack', { token: bob.token, json: { up_to: id } });
      await settleWith(base, alice, bob, aliceStream);
      expect(receiptsOf(aliceStream)).toEqual([expected]);
    });
  }

  it('a legacy stream write counts as delivered once it has settled', async () => {
    const relay = await start({ legacyStreamGraceSeconds: 0.05 });
    const base = relay.url;
    const { alice, bob } = await friends(base, 'legacy');
    const aliceStream = await stream(base, alice, '?format=json&since=0');
    const bobLegacy = await stream(base, bob, '');
    const id = await sendId(base, alice, bob, 'pushed');
    await bobLegacy.waitForMessages(1, 10_000);
    const [r] = await waitReceipts(aliceStream, 1);
    expect(r).toMatchObject({ message_id: id, to_id: bob.id, state: 'delivered' });
    expect(await query(base, alice, bob.id, id)).toMatchObject({ state: 'delivered' });
  });
});

describe('receipts: who sees them', () => {
  it('text-mode streams (resume and legacy) and the recipient get no receipt events; a JSON legacy stream does', async () => {
    const relay = await start();
    const base = relay.url;
    const { alice, bob } = await friends(base, 'text');
    const textResume = await stream(base, alice, '?since=0');
    const textLegacy = await stream(base, alice, '');
    const jsonLegacy = await stream(base, alice, '?format=json');
    const jsonResume = await stream(base, alice, '?format=json&since=0');
    const bobJson = await stream(base, bob, '?format=json&since=0');

    const id = await sendId(base, alice, bob, 'one');
    await bobJson.waitForMessages(1, 10_000);
    await req(base, 'POST', '/messages/ack', { token: bob.token, json: { up_to: id } });
    await waitReceipts(jsonResume, 1);
    await waitReceipts(jsonLegacy, 1);

    await settleWith(base, alice, bob, jsonResume);
    for (const c of [textResume, textLegacy]) {
      await c.waitForMessages(1, 10_000); // the marker arrived, after where a receipt would have been
      expect(c.events.filter(isReceipt)).toEqual([]);
      expect(c.raw).not.toContain('receipt');
    }
    expect(receiptsOf(bobJson)).toEqual([]);
    expect(receiptsOf(jsonResume)).toHaveLength(1);
  });

  it('only the sender can query a receipt; unknown messages are receipt_not_found', async () => {
    const relay = await start();
    const base = relay.url;
    const { alice, bob } = await friends(base, 'who');
    const carol = await register(base, 'who_carol');
    const id = await sendId(base, alice, bob, 'private');
    expect(await query(base, alice, bob.id, id)).toMatchObject({ state: 'accepted' });
    expect(await query(base, carol, bob.id, id)).toBe('receipt_not_found');
    expect(await query(base, bob, bob.id, id)).toBe('receipt_not_found');
    expect(await query(base, alice, bob.id, id + 1000)).toBe('receipt_not_found');
    // Text mode: the same answer as one line; refusals in the hard convention.
    const text = await req(base, 'GET', `/sent/${bob.id}/${id}`, { token: alice.token });
    expect(text.body).toBe(`accepted message_id=${id} to_id=${bob.id}`);
    const missing = await req(base, 'GET', `/sent/${bob.id}/${id}`, { token: carol.token });
    expect(missing.status).toBe(404);
    expect(missing.body).toMatch(/^错误 404：/);
    const bad = await req(base, 'GET', `/sent/${bob.id}/zero`, { token: alice.token, jsonMode: true });
    expect(bad.status).toBe(422);
  });

  it('a blocked sender learns nothing new: no event, and what it saw before stays as it was', async () => {
    const relay = await start();
    const base = relay.url;
    const alice = await register(base, 'blk_alice');
    const bob = await register(base, 'blk_bob');
    const carol = await register(base, 'blk_carol');
    await befriend(base, alice, bob);
    await befriend(base, alice, carol);
    for (const u of [alice, bob, carol]) await drainInbox(base, u);
    const gid = await createGroupOk(base, alice, 'blk', [bob.id, carol.id]);
    for (const u of [bob, carol]) await drainInbox(base, u);
    const aliceStream = await stream(base, alice, '?format=json&since=0');

    // Delivered before the block: stays delivered.
    const early = await sendId(base, alice, bob, 'before the block');
    await req(base, 'POST', '/messages/ack', { token: bob.token, json: { up_to: early } });
    await waitReceipts(aliceStream, 1);
    expect(await query(base, alice, bob.id, early)).toMatchObject({ state: 'delivered' });

    const r = await req(base, 'POST', `/block/${alice.id}`, { token: bob.token });
    expect(r.status).toBe(200);
    expect(await query(base, alice, bob.id, early)).toMatchObject({ state: 'delivered' });

    // A group message still reaches bob (groups ignore blocks), but bob's ack tells alice nothing.
    const sent = await groupSend(base, alice, gid, 'to the group', { jsonMode: true });
    expect(sent.status, sent.body).toBe(200);
    const copies = (JSON.parse(sent.body) as { copies: { to_id: number; message_id: number }[] }).copies;
    const bobCopy = copies.find((c) => c.to_id === bob.id)!;
    const carolCopy = copies.find((c) => c.to_id === carol.id)!;
    expect(await query(base, alice, bob.id, bobCopy.message_id)).toMatchObject({ state: 'accepted' });
    await req(base, 'POST', '/messages/ack', { token: bob.token, json: { up_to: bobCopy.message_id } });
    await req(base, 'POST', '/messages/ack', { token: carol.token, json: { up_to: carolCopy.message_id } });
    const seen = await waitReceipts(aliceStream, 2);
    expect(seen[1]).toMatchObject({ to_id: carol.id, message_id: carolCopy.message_id, group_id: gid });
    await settleWith(base, alice, carol, aliceStream);
    expect(receiptsOf(aliceStream).filter((x) => x.to_id === bob.id && x.group_id !== null)).toEqual([]);
    expect(await query(base, alice, bob.id, bobCopy.message_id)).toBe('receipt_not_found');
  });
});

describe('receipts: groups', () => {
  it('one receipt per member copy: in the send result, as events with group_id, and by query', async () => {
    const relay = await start();
    const base = relay.url;
    const owner = await register(base, 'grp_owner');
    const members: User[] = [];
    for (const n of ['m1', 'm2', 'm3']) {
      const m = await register(base, `grp_${n}`);
      await befriend(base, owner, m);
      members.push(m);
    }
    for (const u of [owner, ...members]) await drainInbox(base, u);
    const gid = await createGroupOk(
      base,
      owner,
      'g',
      members.map((m) => m.id),
    );
    for (const m of members) await drainInbox(base, m);
    const ownerStream = await stream(base, owner, '?format=json&since=0');

    const sent = await groupSend(base, owner, gid, 'hello all', { jsonMode: true, key: 'grp-key-1' });
    expect(sent.status, sent.body).toBe(200);
    const body = JSON.parse(sent.body) as {
      recipients: number;
      copies: { to_id: number; message_id: number }[];
    };
    expect(body.recipients).toBe(3);
    expect(body.copies.map((c) => c.to_id).sort()).toEqual(members.map((m) => m.id).sort());
    for (const c of body.copies) {
      const stored = await peekAll(
        base,
        members.find((m) => m.id === c.to_id)!,
      );
      expect(stored.messages.map((m) => m.id)).toEqual([c.message_id]);
      expect(await query(base, owner, c.to_id, c.message_id)).toMatchObject({
        state: 'accepted',
        group_id: gid,
      });
    }

    // Two of three members acknowledge.
    for (const m of members.slice(0, 2)) {
      const c = body.copies.find((x) => x.to_id === m.id)!;
      await req(base, 'POST', '/messages/ack', { token: m.token, json: { up_to: c.message_id } });
    }
    const events = await waitReceipts(ownerStream, 2);
    expect(events.map((e) => [e.to_id, e.group_id, e.state]).sort()).toEqual(
      members
        .slice(0, 2)
        .map((m) => [m.id, gid, 'delivered'])
        .sort(),
    );

    const byKey = await req(base, 'GET', '/sent?idempotency_key=grp-key-1', {
      token: owner.token,
      jsonMode: true,
    });
    expect(byKey.status, byKey.body).toBe(200);
    const found = JSON.parse(byKey.body) as { result: unknown; receipt: null; receipts: Receipt[] };
    expect(found.result).toEqual(JSON.parse(sent.body));
    expect(found.receipt).toBeNull();
    expect(found.receipts.map((r) => [r.to_id, r.state]).sort()).toEqual(
      members.map((m, i) => [m.id, i < 2 ? 'delivered' : 'accepted']).sort(),
    );
  });
});

describe('receipts: GET /sent?idempotency_key=', () => {
  it("finds the caller's own send within 24 h with its original result and receipt; nothing else", async () => {
    const clock = new Clock();
    const relay = await start({ now: clock.now });
    const base = relay.url;
    const { alice, bob } = await friends(base, 'key');
    const first = await sendJson(base, alice, bob.id, 'once', { 'Idempotency-Key': 'k-1' });
    expect(first.status).toBe(200);
    const id = (JSON.parse(first.body) as { message_id: number }).message_id;

    const get = (u: User, key: string) =>
      req(base, 'GET', `/sent?idempotency_key=${encodeURIComponent(key)}`, {
        token: u.token,
        jsonMode: true,
      });
    let r = await get(alice, 'k-1');
    expect(r.status, r.body).toBe(200);
    expect(JSON.parse(r.body)).toEqual({
      key: 'k-1',
      result: JSON.parse(first.body),
      receipt: { message_id: id, to_id: bob.id, group_id: null, state: 'accepted', at: null },
    });

    clock.advance(60);
    await req(base, 'POST', '/messages/ack', { token: bob.token, json: { up_to: id } });
    r = await get(alice, 'k-1');
    expect((JSON.parse(r.body) as { receipt: Receipt }).receipt).toMatchObject({
      state: 'delivered',
      at: new Date(clock.t).toISOString(),
    });

    // Not found: an unknown key, and someone else's key (bob never sent with k-1).
    for (const [u, key] of [
      [alice, 'k-2'],
      [bob, 'k-1'],
    ] as const) {
      const nf = await get(u, key);
      expect(nf.status).toBe(404);
      expect(JSON.parse(nf.body)).toMatchObject({ error: { code: 'send_not_found' } });
    }
    const empty = await get(alice, '');
    expect(empty.status).toBe(422);

    // Past the 24 h window the record is not offered any more.
    clock.advance(24 * 3600);
    expect((await get(alice, 'k-1')).status).toBe(404);
  });
});

describe('receipts: retention', () => {
  it('receipts expire with the messages (MESSAGE_RETENTION_DAYS)', async () => {
    const clock = new Clock();
    const relay = await start({ now: clock.now, messageRetentionDays: 1, maintenanceIntervalSeconds: 0.05 });
    const base = relay.url;
    const { alice, bob } = await friends(base, 'ret');
    const delivered = await sendId(base, alice, bob, 'delivered one');
    await req(base, 'POST', '/messages/ack', { token: bob.token, json: { up_to: delivered } });
    clock.advance(3600);
    const pending = await sendId(base, alice, bob, 'pending one');
    expect(await query(base, alice, bob.id, delivered)).toMatchObject({ state: 'delivered' });

    clock.advance(23 * 3600 + 60); // the first is past one day, the second is not
    const deadline = Date.now() + 10_000;
    while ((await query(base, alice, bob.id, delivered)) !== 'receipt_not_found') {
      if (Date.now() > deadline)
        throw new Error('the retention sweep did not expire the receipt within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await query(base, alice, bob.id, pending)).toMatchObject({ state: 'accepted' });
  });
});
