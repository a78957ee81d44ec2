// Legacy streams (no Last-Event-ID, no ?since=) are at-least-once (issue 17.7, docs/protocol.md): a message
// written to one is deleted only once the stream stayed open for LEGACY_STREAM_GRACE_SECONDS after the
// bytes were flushed. A stream reset in the middle of a backlog replay loses nothing; a redelivered message
// is an exact copy. The relay's clock is injected: the grace period passes when the test says so.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, type SseConnection } from '../helpers/sse.ts';
import { befriend, register, sendOk, T0, type User } from '../relay/client.ts';
import { drainInbox, mulberry32, peekAll, randInt } from './util.ts';

const GRACE_S = 10;
let relay: TestRelay;
let base: string;
let clock = T0;
const open: SseConnection[] = [];
let pairNo = 0;

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 100, legacyStreamGraceSeconds: GRACE_S, now: () => clock });
  base = relay.url;
});

afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

afterAll(async () => {
  await relay?.close();
});

async function friends(): Promise<{ sender: User; recipient: User }> {
  pairNo += 1;
  const sender = await register(base, `lg${pairNo}_${process.pid}_s`);
  const recipient = await register(base, `lg${pairNo}_${process.pid}_r`);
  await befriend(base, sender, recipient);
  await drainInbox(base, recipient);
  return { sender, recipient };
}

async function legacy(user: User): Promise<SseConnection> {
  const c = await openSse(base, { token: user.token });
  open.push(c);
  expect(c.status, c.body).toBe(200);
  return c;
}

/** Moves the relay's clock past the grace period and runs the deletion it allows. */
async function passGrace(): Promise<void> {
  clock += GRACE_S * 1000 + 1;
  await relay.services.hub.settle();
}

/** Resolves once the relay has seen every stream of this suite close (socket close events). */
async function serverNoticed(): Promise<void> {
  await expect.poll(() => relay.services.hub.openStreams, { timeout: 5000, interval: 10 }).toBe(0);
}

/** The content line of a text block. */
const contentOf = (data: string): string => data.split('\n').find((l) => l.startsWith('内容：')) ?? '';

describe('legacy stream: at-least-once', () => {
  it('a stream reset during a backlog replay loses 0 of 1,000; repeats are exact copies', async () => {
    const N = 1000;
    const rng = mulberry32(0x5eed17);
    const { sender, recipient } = await friends();
    const sent = Array.from({ length: N }, (_, i) => `legacy backlog ${String(i + 1).padStart(4, '0')}`);
    // A backlog: everything is stored before the first stream opens.
    for (let i = 0; i < N; i += 10)
      await Promise.all(sent.slice(i, i + 10).map((c) => sendOk(base, sender, recipient.id, c)));

    /** First block text seen per message id. */
    const got = new Map<string, string>();
    let deliveries = 0;
    const take = (c: SseConnection) => {
      for (const e of c.messages()) {
        deliveries += 1;
        const id = e.id ?? '';
        const seen = got.get(id);
        if (seen === undefined) got.set(id, e.data);
        else expect(e.data).toBe(seen); // a repeat is the exact same block
      }
    };
    // Resets at random points of the replay: the relay has written (far) more than the client read.
    const RESETS = 8;
    for (let r = 0; r < RESETS; r++) {
      const c = await legacy(recipient);
      const target = randInt(rng, 1, N - 1);
      await c.waitFor(() => c.messages().length >= target, 5000, `${target} messages`).catch(() => {});
      c.close();
      await c.closed;
      take(c);
    }
    // Then a stream that stays healthy reads what is left; once the grace period has passed it is gone.
    // Nothing was deleted yet (the clock has not passed the grace period), so it replays all N itself: wait
    // for its own copy of each, not for the union with what the resets saw — that union may be complete
    // before this stream wrote anything (on PostgreSQL its replay is a round trip away), and what it had not
    // written yet when the grace period passes is rightly kept.
    const final = await legacy(recipient);
    await final.waitFor(() => new Set(final.messages().map((e) => e.id)).size >= N, 10_000).catch(() => {}); // a loss shows below as missing contents
    take(final);
    const resets = RESETS;
    const contents = [...got.values()].map(contentOf).sort();
    expect(contents).toEqual(sent.map((c) => `内容：${c}`));
    // The healthy last stream keeps what it wrote until the grace period passes, then it is gone.
    await passGrace();
    expect((await peekAll(base, recipient)).total).toBe(0);
    console.log(
      `legacy backlog replay: ${N} sent, ${got.size} received, 0 lost, ${deliveries - N} repeats over ${resets} resets`,
    );
  }, 120_000);

  it('a healthy legacy stream sees each message once; after the grace period they are gone', async () => {
    const { sender, recipient } = await friends();
    const c = await legacy(recipient);
    for (let i = 1; i <= 20; i++) await sendOk(base, sender, recipient.id, `live ${i}`);
    const evs = await c.waitForMessages(20);
    expect(evs.map((e) => contentOf(e.data))).toEqual(
      Array.from({ length: 20 }, (_, i) => `内容：live ${i + 1}`),
    );
    // Within the grace period they are still stored (not yet confirmed by time)…
    await relay.services.hub.settle();
    expect((await peekAll(base, recipient)).total).toBe(20);
    // …and once it passed with the stream still open, they are deleted; the stream saw nothing more.
    await passGrace();
    expect((await peekAll(base, recipient)).total).toBe(0);
    expect(c.messages()).toHaveLength(20);
    expect(c.ended).toBe(false);
  });

  it('a stream that dies within the grace period leaves its messages stored, delivered again', async () => {
    const { sender, recipient } = await friends();
    const c = await legacy(recipient);
    for (let i = 1; i <= 5; i++) await sendOk(base, sender, recipient.id, `fragile ${i}`);
    const first = await c.waitForMessages(5);
    c.close();
    await serverNoticed();
    await passGrace(); // the stream is gone: nothing to settle
    const again = await legacy(recipient);
    const second = await again.waitForMessages(5);
    expect(second.map((e) => e.data)).toEqual(first.map((e) => e.data));
  });

  it('while the same user also holds a resume stream, a legacy write deletes nothing', async () => {
    const { sender, recipient } = await friends();
    const resume = await openSse(base, { token: recipient.token, headers: { 'Last-Event-ID': '0' } });
    open.push(resume);
    const c = await legacy(recipient);
    await sendOk(base, sender, recipient.id, 'to both');
    await c.waitForMessages(1);
    await resume.waitForMessages(1);
    await passGrace();
    expect((await peekAll(base, recipient)).messages.map((m) => m.content)).toEqual(['to both']);
  });
});
