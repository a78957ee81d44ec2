// The stream consumer against the real relay over loopback, through a TCP proxy the test can cut (real
// sockets break, real reconnects). Time and jitter are injected: the consumer's clock only moves when it
// sleeps (the sleep advances it and returns at once) or when the test says a connection stayed up.

import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import { RelayClient, StreamConsumer, type ConsumerEvent, type Delivery } from './index.ts';

/** Forwards to the relay; `down()` breaks every connection and refuses new ones until `up()`. */
interface CutProxy {
  url: string;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

async function cutProxy(target: string): Promise<CutProxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let isDown = false;
  const server: Server = createServer((client) => {
    if (isDown) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    down() {
      isDown = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    up() {
      isDown = false;
    },
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A clock that moves only when told; sleeping moves it. */
function fakeTime(): { now: () => number; sleep: (ms: number) => Promise<void>; advance(ms: number): void } {
  let t = 1_000_000;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
      await new Promise((r) => setImmediate(r));
    },
    advance(ms) {
      t += ms;
    },
  };
}

let relay: TestRelay;

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 20 });
});
afterAll(async () => {
  await relay?.close();
});

async function friends(url: string): Promise<{ alice: RelayClient; bob: RelayClient; bobId: number }> {
  const anon = new RelayClient({ baseUrl: url });
  const tag = Math.random().toString(36).slice(2, 7);
  const a = await anon.register({ name: `alice-${tag}` });
  const b = await anon.register({ name: `bob-${tag}` });
  const alice = new RelayClient({ baseUrl: url, token: a.token });
  const bob = new RelayClient({ baseUrl: url, token: b.token });
  await alice.send(b.user.id, 'request');
  await bob.send(a.user.id, 'accept');
  return { alice, bob, bobId: b.user.id };
}

function waitFor<T>(check: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      const v = check();
      if (v !== undefined) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

describe('StreamConsumer', () => {
  it('reconnect backoff starts over after a stable connection (issue 16), not after a short one', async () => {
    const proxy = await cutProxy(relay.url);
    const time = fakeTime();
    const events: ConsumerEvent[] = [];
    // The script: outage A (3 attempts) → stable connection → outage B (2 attempts) → a short
    // connection → outage C (1 attempt) → connected; then stop.
    const plan = [3, 2, 1];
    let outage = 0;
    let attemptsInOutage = 0;
    let connects = 0;
    try {
      const { bob } = await friends(proxy.url);
      proxy.down();
      const consumer = new StreamConsumer({
        client: bob,
        cursor: { load: () => 0 },
        onMessage: () => {},
        backoff: { baseMs: 100, maxMs: 10_000, stableMs: 5000 },
        random: () => 0.999999,
        now: time.now,
        sleep: time.sleep,
        onEvent: (ev) => {
          events.push(ev);
          if (ev.type === 'reconnecting' && ++attemptsInOutage === plan[outage]) proxy.up();
          if (ev.type === 'connected') {
            connects++;
            outage++;
            attemptsInOutage = 0;
            if (connects === 3) return;
            // Up for 5 s (stable) the first time, 1 s the second; then the connection breaks.
            time.advance(connects === 1 ? 5000 : 1000);
            setImmediate(() => proxy.down());
          }
        },
      });
      const run = consumer.run();
      await waitFor(() => (connects === 3 ? true : undefined), 'the third connect');
      await consumer.stop();
      await run;

      const summary = events
        .filter((e) => e.type === 'reconnecting' || e.type === 'connected')
        .map((e) =>
          e.type === 'reconnecting'
            ? `reconnecting attempt=${e.attempt} delay=${e.delayMs}`
            : `connected recovered=${JSON.stringify(e.recovered)}`,
        );
      expect(summary).toEqual([
        // Outage A: 100, 200, 400 ms steps (random ≈ 1: the top of each [step/2, step] range).
        'reconnecting attempt=1 delay=99',
        'reconnecting attempt=2 delay=199',
        'reconnecting attempt=3 delay=399',
        'connected recovered={"afterMs":697,"attempts":3}',
        // Outage B after 5 s up: from the first step again, and its own length and attempts only.
        'reconnecting attempt=1 delay=99',
        'reconnecting attempt=2 delay=199',
        'connected recovered={"afterMs":298,"attempts":2}',
        // Outage C after only 1 s up: the relay accepted and dropped, so the backoff goes on.
        'reconnecting attempt=3 delay=399',
        'connected recovered={"afterMs":399,"attempts":1}',
      ]);
      const disconnects = events.filter((e) => e.type === 'disconnected');
      expect(disconnects).toHaveLength(2);
    } finally {
      await proxy.close();
    }
  });

  it('acks only what the handler settled, coalesced; a failed handler is replayed from the cursor', async () => {
    const { alice, bob, bobId } = await friends(relay.url);
    // The set-up traffic (request, friendship notice) is not what this test looks at.
    const first = await bob.readInbox({ after: 0 });
    await bob.ack(Math.max(...first.messages.map((m) => m.id ?? 0)));
    const base = Math.max(...first.messages.map((m) => m.id ?? 0));

    let cursor = base;
    const saved: number[] = [];
    const handled: string[] = [];
    const acks: number[] = [];
    let failOnce = true;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const time = fakeTime();
    const consumer = new StreamConsumer({
      client: bob,
      cursor: {
        load: () => cursor,
        save: (id) => {
          saved.push(id);
          cursor = id;
        },
      },
      onMessage: async (d: Delivery) => {
        await gate;
        if (d.message.content === 'm3' && failOnce) {
          failOnce = false;
          throw new Error('disk full');
        }
        handled.push(`${d.id}:${d.message.content}`);
      },
      onEvent: (ev) => {
        if (ev.type === 'ack' && ev.ok) acks.push(ev.upTo);
      },
      // Acks wait (one hour) until flushed: what goes out is one request for everything handled.
      ackDelayMs: 3_600_000,
      backoff: { baseMs: 100, maxMs: 1000 },
      random: () => 0.5,
      now: time.now,
      sleep: time.sleep,
    });
    const run = consumer.run();
    for (const text of ['m1', 'm2', 'm3', 'm4', 'm5']) await alice.send(bobId, text);
    // Nothing is handled yet, so nothing may be acknowledged: the relay still holds all five.
    await waitFor(() => (consumer.status().connected ? true : undefined), 'the stream');
    expect((await bob.readInbox({ after: base })).messages.map((m) => m.content)).toEqual([
      'm1',
      'm2',
      'm3',
      'm4',
      'm5',
    ]);
    expect(acks).toEqual([]);
    release();
    await waitFor(() => (handled.length === 5 ? true : undefined), 'all five handled');
    await consumer.flushAcks();
    await consumer.stop();
    await run;

    const ids = handled.map((h) => Number(h.split(':')[0]));
    expect(handled.map((h) => h.split(':')[1])).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(ids).toEqual([base + 1, base + 2, base + 3, base + 4, base + 5]);
    // The cursor moved once per settled message; m3's failure did not move it, its replay did.
    expect(saved).toEqual(ids);
    // m3's failure closed the stream; the resume (Last-Event-ID m2) acknowledged m1 and m2, the flushed
    // ack the rest, in one request.
    expect(acks).toEqual([base + 5]);
    expect((await bob.readInbox({ after: base })).messages).toEqual([]);
  });

  it('polls /messages while the stream is refused (429), then resumes the stream after what it handled', async () => {
    // One stream per IP on this relay, held by someone else: our stream is refused, /messages is not.
    const limited = await startRelay({ sseMaxPerIp: 1 });
    try {
      const { alice, bob, bobId } = await friends(limited.url);
      const other = await new RelayClient({ baseUrl: limited.url }).register({ name: 'slot-holder' });
      const holder = await new RelayClient({ baseUrl: limited.url, token: other.token }).openStream({
        since: 0,
      });
      const got: Array<[string, string]> = [];
      const events: ConsumerEvent[] = [];
      let cursor = 0;
      const time = fakeTime();
      const consumer = new StreamConsumer({
        client: bob,
        cursor: { load: () => cursor, save: (id) => void (cursor = id) },
        onMessage: (d) => void got.push([d.via, d.message.content]),
        onEvent: (ev) => void events.push(ev),
        fallback: { intervalMs: 500, limit: 5 },
        ackDelayMs: 0,
        backoff: { baseMs: 100, maxMs: 1000 },
        random: () => 0,
        now: time.now,
        sleep: time.sleep,
      });
      const run = consumer.run();
      await waitFor(() => (got.length === 2 ? true : undefined), 'the waiting messages by poll');
      await alice.send(bobId, 'while refused');
      await waitFor(() => (got.length === 3 ? true : undefined), 'the new one by poll');
      holder.close();
      await waitFor(() => (consumer.status().connected ? true : undefined), 'the stream');
      await alice.send(bobId, 'live');
      await waitFor(() => (got.length === 4 ? true : undefined), 'the live message');
      await consumer.stop();
      await run;

      expect(got).toEqual([
        ['poll', 'request'],
        ['poll', expect.stringContaining('好友')],
        ['poll', 'while refused'],
        ['stream', 'live'],
      ]);
      const reconnect = events.find((e) => e.type === 'reconnecting');
      // The relay's Retry-After (2 s) is the floor of the first step.
      expect(reconnect).toMatchObject({
        attempt: 1,
        delayMs: 2000,
        failure: { code: 'sse_limit', status: 429 },
      });
      expect(events.filter((e) => e.type === 'fallback' && e.phase === 'start')).toEqual([
        { type: 'fallback', phase: 'start', via: 'GET /messages?after=0' },
      ]);
      const connected = events.find((e) => e.type === 'connected');
      expect(connected).toMatchObject({ mode: 'resume', format: 'json', since: 3 });
    } finally {
      await limited.close();
    }
  });
  it('a consumer refused as churn (429 sse_replaced_recently) waits the Retry-After, then connects (issue 24.5)', async () => {
    // One stream per user; after a replacement, further replacements wait 3 s (the relay's clock).
    const churn = await startRelay({ sseMaxPerUser: 1, sseReplaceIntervalSeconds: 3 });
    try {
      const { bob } = await friends(churn.url);
      // Two other consumers of bob: the second replaces the first, so bob's streams have just churned.
      const first = await bob.openStream({ since: 0 });
      const second = await bob.openStream({ since: 0 });
      first.close();
      const events: ConsumerEvent[] = [];
      const time = fakeTime();
      const consumer = new StreamConsumer({
        client: bob,
        cursor: { load: () => 0 },
        onMessage: () => {},
        onEvent: (ev) => void events.push(ev),
        backoff: { baseMs: 100, maxMs: 60_000 },
        random: () => 0,
        now: time.now,
        sleep: time.sleep,
      });
      const run = consumer.run();
      const reconnect = await waitFor(() => events.find((e) => e.type === 'reconnecting'), 'the refusal');
      // It is told why, and waits at least what the relay asked (not its own 100 ms step).
      expect(reconnect).toMatchObject({
        attempt: 1,
        failure: { code: 'sse_replaced_recently', status: 429 },
      });
      const delay = (reconnect as { delayMs: number }).delayMs;
      expect(delay).toBeGreaterThanOrEqual(1000);
      expect(delay).toBeLessThanOrEqual(3000);
      // Once the interval is over on the relay's clock, the consumer's reconnect replaces the stream.
      await waitFor(() => (consumer.status().connected ? true : undefined), 'the stream', 20_000);
      await consumer.stop();
      await run;
      second.close();
    } finally {
      await churn.close();
    }
  });
});
