// Responsiveness under load (reference W-3/W-18: nothing may block the event loop). 16 clients hammer
// POST /send between friends for ~3 s while a probe calls /health every 50 ms and an idle SSE stream with a
// 0.2 s heartbeat is open. Asserts only on counts and presence (every /health answered 200, every send
// succeeded, heartbeats kept coming); the latencies are printed for the record, never asserted.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, sleep } from '../helpers/sse.ts';
import {
  makeFriends,
  percentile,
  register,
  request,
  send,
  stats,
  type Registered,
} from './limits-helpers.ts';

const CLIENTS = 16;
const DURATION_MS = 3000;
const PROBE_EVERY_MS = 50;

let relay: TestRelay;

beforeAll(async () => {
  relay = await startRelay({ ssePingSeconds: 0.2 });
});

afterAll(async () => {
  await relay?.close();
});

describe('responsiveness under a /send storm', () => {
  it('keeps answering /health and sending heartbeats while 16 clients send', async () => {
    // 8 friend pairs; each of the 16 users sends to its partner.
    const users: Registered[] = [];
    for (let i = 0; i < CLIENTS; i++) users.push(await register(relay.url));
    for (let i = 0; i < CLIENTS; i += 2) await makeFriends(relay.url, users[i]!, users[i + 1]!);
    const watcher = await register(relay.url);
    const stream = await openSse(relay.url, { token: watcher.token });
    expect(stream.status).toBe(200);
    await stream.waitForEvents(1);
    const before = await stats(relay.url);

    const start = performance.now();
    const deadline = start + DURATION_MS;
    const pingsAtStart = stream.pings();
    let pingsAtHalf = -1;
    const halfTimer = setTimeout(() => (pingsAtHalf = stream.pings()), DURATION_MS / 2);

    let sent = 0;
    const sendFailures: string[] = [];
    const sender = async (i: number): Promise<void> => {
      const me = users[i]!;
      const partner = users[i ^ 1]!;
      let n = 0;
      while (performance.now() < deadline) {
        const r = await send(relay.url, me, partner, `storm ${i}-${n++}`);
        if (r.status === 200 && r.text.startsWith('发送成功')) sent++;
        else sendFailures.push(`${r.status} ${r.text.slice(0, 80)}`);
      }
    };

    const latencies: number[] = [];
    const healthFailures: string[] = [];
    const probe = async (): Promise<void> => {
      let next = start;
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          const r = await request(relay.url, 'GET', '/health');
          latencies.push(performance.now() - t0);
          if (r.status !== 200) healthFailures.push(`${r.status} ${r.text}`);
        } catch (err) {
          healthFailures.push(String(err));
        }
        next += PROBE_EVERY_MS;
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
      }
    };

    await Promise.all([probe(), ...Array.from({ length: CLIENTS }, (_, i) => sender(i))]);
    clearTimeout(halfTimer);
    const elapsed = performance.now() - start;
    // Let the heartbeat timer fire at least once more after the storm, then look.
    await sleep(500);
    const pingsTotal = stream.pings() - pingsAtStart;

    const sorted = [...latencies].sort((x, y) => x - y);
    const fmt = (v: number): string => `${v.toFixed(1)} ms`;
    console.log(
      `[responsiveness] ${CLIENTS} clients, ${(elapsed / 1000).toFixed(2)} s: ${sent} sends ` +
        `(${(sent / (elapsed / 1000)).toFixed(0)}/s), ${sendFailures.length} send failures; ` +
        `/health ×${latencies.length}: p50 ${fmt(percentile(sorted, 50))}, p99 ${fmt(percentile(sorted, 99))}, ` +
        `max ${fmt(sorted.at(-1) ?? NaN)}; pings during run: ${pingsTotal} (by half-time: ${pingsAtHalf - pingsAtStart})`,
    );

    expect(healthFailures).toEqual([]);
    expect(latencies.length).toBeGreaterThan(0);
    expect(sendFailures).toEqual([]);
    expect(sent).toBeGreaterThan(0);
    // Heartbeats kept arriving: some during the first half, and more after it.
    expect(pingsAtHalf - pingsAtStart).toBeGreaterThan(0);
    expect(stream.pings()).toBeGreaterThan(pingsAtHalf);
    expect(stream.ended).toBe(false);
    // The watcher got no messages, only heartbeats.
    expect(stream.messages()).toHaveLength(0);

    const after = await stats(relay.url);
    expect(after.messages - before.messages).toBe(sent);
    stream.close();
    await stream.closed;
  });
});
