// No loss on the receiving side (docs/protocol.md "Resume and ack"): a resume SSE client whose socket is
// destroyed at random moments still ends up with every message exactly once and in order; `?since=` is
// the same as `Last-Event-ID`; a resume from an old id redelivers what is unacknowledged; lossless
// `GET /messages?after=` paging; `POST /messages/ack`; the legacy stream keeps push-means-delivered.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import { befriend, register, req, sendOk, type User } from '../relay/client.ts';
import {
  drainInbox,
  expectConsecutive,
  inboxJson,
  mulberry32,
  pageAll,
  peekAll,
  randInt,
  type MessageJson,
} from './util.ts';

let relay: TestRelay;
let base: string;
const open: SseConnection[] = [];
let pairNo = 0;

beforeAll(async () => {
  // Reconnecting clients may briefly hold several streams while the relay notices the old socket is gone.
  // Grace 0: a legacy write is deleted once flushed (the grace period: tests/delivery/legacy.test.ts).
  relay = await startRelay({ sseMaxPerIp: 100, sseMaxPerUser: 10, legacyStreamGraceSeconds: 0 });
  base = relay.url;
});

afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

afterAll(async () => {
  await relay?.close();
});

/** Two fresh friends; the recipient's inbox is emptied. Returns the recipient's last id so far. */
async function friends(): Promise<{ sender: User; recipient: User; baseline: number }> {
  pairNo += 1;
  const sender = await register(base, `rs${pairNo}_sender`);
  const recipient = await register(base, `rs${pairNo}_recipient`);
  await befriend(base, sender, recipient);
  const drained = await drainInbox(base, recipient);
  return { sender, recipient, baseline: drained.at(-1)?.id ?? 0 };
}

async function stream(
  user: User,
  path: string,
  headers: Record<string, string> = {},
): Promise<SseConnection> {
  const c = await openSse(base, { token: user.token, path, headers });
  open.push(c);
  expect(c.status, c.body).toBe(200);
  return c;
}

/** The `message` events of a JSON-format stream, decoded; checks `id:` matches the JSON id. */
function decoded(c: SseConnection): MessageJson[] {
  return c.messages().map((e) => {
    const m = JSON.parse(e.data) as MessageJson;
    expect(e.id).toBe(String(m.id));
    return m;
  });
}

async function sendMany(from: User, to: User, contents: string[]): Promise<void> {
  for (const c of contents) await sendOk(base, from, to.id, c);
}

describe('resume stream under random disconnects', () => {
  it('gets all 1,000 messages exactly once, in send order', async () => {
    const N = 1000;
    const rng = mulberry32(0xc0ffee);
    const { sender, recipient, baseline } = await friends();
    const sent = Array.from({ length: N }, (_, i) => `resume message ${i + 1}`);

    /** First content seen per id, and ids in the order they were first seen. */
    const got = new Map<number, string>();
    const order: number[] = [];
    let last = baseline;
    /** The id the relay was last told (the Last-Event-ID of the latest connection). */
    let acked = baseline;
    let connections = 0;
    let deliveries = 0;
    let sending = true;
    const deadline = Date.now() + 60_000;

    const reader = (async () => {
      while (got.size < N || sending) {
        if (Date.now() > deadline) throw new Error(`reader gave up with ${got.size}/${N} messages`);
        const since = last;
        acked = since;
        const c = await stream(recipient, '/stream?format=json', { 'Last-Event-ID': String(since) });
        connections += 1;
        // Drop after a random number of messages or a random time, whichever comes first. The count is
        // checked on every chunk, so the socket is also destroyed in the middle of replays and bursts.
        const target = randInt(rng, 1, 60);
        const delay = randInt(rng, 0, 25);
        await Promise.race([
          c.waitFor(() => c.messages().length >= target, 60_000, `${target} messages`).catch(() => {}),
          sleep(delay),
        ]);
        c.close();
        const batch = decoded(c);
        // One resume connection replays from exactly since+1, without gaps.
        expectConsecutive(
          batch.map((m) => m.id),
          since + 1,
        );
        for (const m of batch) {
          deliveries += 1;
          const seen = got.get(m.id);
          if (seen === undefined) {
            got.set(m.id, m.content);
            order.push(m.id);
          } else {
            expect(m.content).toBe(seen);
          }
          last = m.id;
          expect(m.from_id).toBe(sender.id);
        }
      }
    })();

    try {
      await sendMany(sender, recipient, sent);
    } finally {
      sending = false;
    }
    await reader;

    expect(got.size).toBe(N);
    expectConsecutive(order, baseline + 1);
    expect(order.map((id) => got.get(id))).toEqual(sent);
    expect(deliveries).toBeGreaterThanOrEqual(N);
    expect(connections).toBeGreaterThanOrEqual(5);

    // Only what the client confirmed was acknowledged: what the last connection delivered is still stored…
    const stored = await peekAll(base, recipient);
    expectConsecutive(
      stored.messages.map((m) => m.id),
      acked + 1,
    );
    expect(stored.messages.at(-1)?.id ?? acked).toBe(last);
    // …and one more resume with the last id acknowledges everything.
    const c = await stream(recipient, '/stream?format=json', { 'Last-Event-ID': String(last) });
    c.close();
    expect((await peekAll(base, recipient)).total).toBe(0);
  }, 90_000);
});

describe('resume from an id', () => {
  it.each([
    [
      'Last-Event-ID header',
      (since: number) => ({ path: '/stream', headers: { 'Last-Event-ID': String(since) } }),
    ],
    ['?since= query', (since: number) => ({ path: `/stream?since=${since}`, headers: {} })],
  ])('%s: ids ≤ n are acknowledged, ids > n are replayed in order', async (_name, how) => {
    const { sender, recipient, baseline } = await friends();
    const contents = ['one', 'two', 'three', 'four', 'five'];
    await sendMany(sender, recipient, contents);

    const { path, headers } = how(baseline + 2);
    const c = await stream(recipient, path, headers);
    const events = await c.waitForMessages(3);
    // Text blocks: `id:` on the event and `消息ID：<n>` as the block's last line.
    expect(events.map((e) => e.id)).toEqual([3, 4, 5].map((k) => String(baseline + k)));
    expect(events.map((e) => e.data.split('\n').at(-1))).toEqual(
      [3, 4, 5].map((k) => `消息ID：${baseline + k}`),
    );
    expect(events.map((e) => /^内容：(.*)$/m.exec(e.data)?.[1])).toEqual(['three', 'four', 'five']);
    c.close();

    // Replayed does not mean acknowledged: 3..5 are still stored; 1..2 are gone.
    const stored = await peekAll(base, recipient);
    expect(stored.total).toBe(3);
    expect(stored.messages.map((m) => [m.id, m.content])).toEqual([
      [baseline + 3, 'three'],
      [baseline + 4, 'four'],
      [baseline + 5, 'five'],
    ]);
  });

  it('a reconnect with an old id gets the unacknowledged messages again; acked ones are gone', async () => {
    const { sender, recipient, baseline } = await friends();
    const contents = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
    await sendMany(sender, recipient, contents);
    const ids = contents.map((_, i) => baseline + 1 + i);

    const first = await stream(recipient, '/stream?format=json', { 'Last-Event-ID': String(baseline) });
    await first.waitForMessages(6);
    first.close();
    expect(decoded(first).map((m) => [m.id, m.content])).toEqual(ids.map((id, i) => [id, contents[i]]));

    // The client lost its state and only remembers the second id: 3..6 come again (at-least-once).
    const second = await stream(recipient, '/stream?format=json', { 'Last-Event-ID': String(ids[1]) });
    await second.waitForMessages(4);
    second.close();
    expect(decoded(second).map((m) => [m.id, m.content])).toEqual(
      ids.slice(2).map((id, i) => [id, contents[2 + i]]),
    );

    // An even older id: 1..2 were acknowledged by the previous resume and are not replayed.
    const third = await stream(recipient, '/stream?format=json', { 'Last-Event-ID': String(baseline) });
    await third.waitForMessages(4);
    // A live message after the replay follows in order on the same stream.
    await sendOk(base, sender, recipient.id, 'a7');
    await third.waitForMessages(5);
    third.close();
    expect(decoded(third).map((m) => [m.id, m.content])).toEqual([
      ...ids.slice(2).map((id, i) => [id, contents[2 + i]]),
      [baseline + 7, 'a7'],
    ]);
    expect((await peekAll(base, recipient)).messages.map((m) => m.id)).toEqual([
      ...ids.slice(2),
      baseline + 7,
    ]);
  });
});

describe('GET /messages?after= paging', () => {
  it('reads everything exactly once, in order; a lost response loses nothing', async () => {
    const N = 250;
    const LIMIT = 37;
    const rng = mulberry32(42);
    const { sender, recipient, baseline } = await friends();
    const sent = Array.from({ length: N }, (_, i) => `page message ${i + 1}`);
    await sendMany(sender, recipient, sent);

    const received: MessageJson[] = [];
    let after = baseline;
    let lost = 0;
    for (;;) {
      const page = await inboxJson(base, recipient, `?after=${after}&limit=${LIMIT}`);
      expect(page.total).toBe(N - received.length);
      expect(page.fetched).toBe(Math.min(LIMIT, N - received.length));
      expect(page.remaining).toBe(page.total - page.fetched);
      if (page.fetched === 0) break;
      if (rng() < 0.35) {
        // The response is "lost": ask again with the same `after`; the same page comes back.
        lost += 1;
        const again = await inboxJson(base, recipient, `?after=${after}&limit=${LIMIT}`);
        expect(again).toEqual(page);
        continue;
      }
      received.push(...page.messages);
      after = page.messages.at(-1)!.id;
    }
    expect(lost).toBeGreaterThan(0);
    expectConsecutive(
      received.map((m) => m.id),
      baseline + 1,
    );
    expect(received.map((m) => m.content)).toEqual(sent);
    expect(received.every((m) => m.type === 'chat' && m.from_id === sender.id)).toBe(true);

    // The last page is acknowledged by the next read; then the inbox is empty.
    const end = await inboxJson(base, recipient, `?after=${after}`);
    expect(end).toEqual({ total: 0, fetched: 0, remaining: 0, messages: [] });
    expect(await pageAll(base, recipient)).toEqual([]);
  });

  it('text mode pages end each block with 消息ID and do not delete', async () => {
    const { sender, recipient, baseline } = await friends();
    await sendMany(sender, recipient, ['t1', 't2', 't3']);
    const r = await req(base, 'GET', `/messages?after=${baseline}&limit=2`, { token: recipient.token });
    expect(r.status).toBe(200);
    expect([...r.body.matchAll(/^消息ID：(\d+)$/gm)].map((m) => Number(m[1]))).toEqual([
      baseline + 1,
      baseline + 2,
    ]);
    expect((await peekAll(base, recipient)).total).toBe(3);
  });
});

describe('POST /messages/ack', () => {
  it('deletes every message with id ≤ up_to and reports how many', async () => {
    const { sender, recipient, baseline } = await friends();
    const contents = Array.from({ length: 10 }, (_, i) => `ack ${i + 1}`);
    await sendMany(sender, recipient, contents);

    const r = await req(base, 'POST', '/messages/ack', {
      token: recipient.token,
      json: { up_to: baseline + 4 },
      jsonMode: true,
    });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ acked: 4, up_to: baseline + 4 });
    const left = await peekAll(base, recipient);
    expect(left.messages.map((m) => m.content)).toEqual(contents.slice(4));

    const t = await req(base, 'POST', '/messages/ack', {
      token: recipient.token,
      json: { up_to: baseline + 6 },
    });
    expect(t.status).toBe(200);
    expect(t.body).toBe(`已确认 2 条消息（消息ID ≤ ${baseline + 6}）`);

    // Acknowledging again is harmless.
    const again = await req(base, 'POST', '/messages/ack', {
      token: recipient.token,
      json: { up_to: baseline + 6 },
      jsonMode: true,
    });
    expect(JSON.parse(again.body)).toEqual({ acked: 0, up_to: baseline + 6 });
    expect((await peekAll(base, recipient)).messages.map((m) => m.content)).toEqual(contents.slice(6));
  });
});

describe('legacy stream (no Last-Event-ID, no since)', () => {
  it('a message written to a legacy stream is gone from GET /messages', async () => {
    const { sender, recipient } = await friends();
    await sendMany(sender, recipient, ['offline 1', 'offline 2', 'offline 3']);

    const c = await stream(recipient, '/stream?format=json');
    await c.waitForMessages(3);
    await sendOk(base, sender, recipient.id, 'live 4');
    await c.waitForMessages(4);
    expect(decoded(c).map((m) => m.content)).toEqual(['offline 1', 'offline 2', 'offline 3', 'live 4']);

    // The delete follows the write (a round trip later on PostgreSQL): wait for it, then it stays gone.
    await expect.poll(async () => (await peekAll(base, recipient)).total, { timeout: 2000 }).toBe(0);
    expect(await peekAll(base, recipient)).toEqual({ total: 0, fetched: 0, remaining: 0, messages: [] });
    expect(await drainInbox(base, recipient)).toEqual([]);
    c.close();
  });

  it('while the same user also holds a resume stream, a legacy write deletes nothing', async () => {
    const { sender, recipient, baseline } = await friends();
    const resume = await stream(recipient, '/stream?format=json', { 'Last-Event-ID': String(baseline) });
    const legacy = await stream(recipient, '/stream?format=json');
    await sendOk(base, sender, recipient.id, 'to both');
    await resume.waitForMessages(1);
    await legacy.waitForMessages(1);
    expect(decoded(resume).map((m) => m.content)).toEqual(['to both']);
    expect(decoded(legacy).map((m) => m.content)).toEqual(['to both']);
    expect((await peekAll(base, recipient)).messages.map((m) => m.content)).toEqual(['to both']);
  });
});
