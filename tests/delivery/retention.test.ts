// Retention of unacknowledged messages (docs/protocol.md: they expire after MESSAGE_RETENTION_DAYS). The sweep
// runs at start and every MAINTENANCE_INTERVAL_SECONDS, against the injected clock: older messages
// disappear (GET /messages, resume replay) while newer ones stay.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import { befriend, Clock, register, sendOk, type User } from '../relay/client.ts';
import { drainInbox, peekAll, type MessageJson } from './util.ts';

const HOUR = 3600;
const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function start(opts: Parameters<typeof startRelay>[0]): Promise<TestRelay> {
  const relay = await startRelay(opts);
  cleanup.push(() => relay.close());
  return relay;
}

async function friends(base: string, tag: string): Promise<{ alice: User; bob: User }> {
  const alice = await register(base, `${tag}_alice`);
  const bob = await register(base, `${tag}_bob`);
  await befriend(base, alice, bob);
  await drainInbox(base, bob);
  return { alice, bob };
}

/** Waits (up to 5 s) until the stored inbox differs from `count` messages: the sweep has run. */
async function waitForSweep(base: string, user: User, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((await peekAll(base, user)).total === count) {
    if (Date.now() > deadline) {
      throw new Error(
        `no expiry sweep within 5 s: still ${count} stored messages (maintenanceIntervalSeconds 0.05)`,
      );
    }
    await sleep(20);
  }
}

const summary = (ms: MessageJson[]): [number, string][] => ms.map((m) => [m.id, m.content]);

describe('message retention', () => {
  it('the periodic sweep removes messages older than the retention; newer ones stay', async () => {
    const clock = new Clock();
    const relay = await start({
      now: clock.now,
      messageRetentionDays: 1,
      maintenanceIntervalSeconds: 0.05,
      sseMaxPerIp: 10,
    });
    const base = relay.url;
    const { alice, bob } = await friends(base, 'ret1');

    for (const c of ['old 1', 'old 2', 'old 3']) await sendOk(base, alice, bob.id, c);
    clock.advance(12 * HOUR);
    for (const c of ['new 1', 'new 2']) await sendOk(base, alice, bob.id, c);
    // Let several sweeps pass while nothing is old enough: nothing may go.
    await sleep(200);
    const before = await peekAll(base, bob);
    expect(before.messages.map((m) => m.content)).toEqual(['old 1', 'old 2', 'old 3', 'new 1', 'new 2']);
    const newOnes = summary(before.messages.slice(3));

    // Now the first three are 24 h + 1 s old, the last two 12 h + 1 s.
    clock.advance(12 * HOUR + 1);
    await waitForSweep(base, bob, 5);

    const after = await peekAll(base, bob);
    expect(after.total).toBe(2);
    expect(summary(after.messages)).toEqual(newOnes);

    // A resume from 0 replays only what is left, in order (expired ones would have come first).
    const c: SseConnection = await openSse(base, { token: bob.token, path: '/stream?format=json&since=0' });
    cleanup.push(async () => c.close());
    expect(c.status).toBe(200);
    const events = await c.waitForMessages(2);
    expect(events.map((e) => JSON.parse(e.data) as MessageJson).map((m) => [m.id, m.content])).toEqual(
      newOnes,
    );
    c.close();

    // The new ones expire in their turn.
    clock.advance(12 * HOUR);
    await waitForSweep(base, bob, 2);
    expect(await peekAll(base, bob)).toEqual({ total: 0, fetched: 0, remaining: 0, messages: [] });
  });

  it('the sweep also runs at start (a relay that was down while messages aged)', async () => {
    const clock = new Clock();
    const dataDir = await mkdtemp(join(tmpdir(), 'owc-retention-'));
    cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
    const opts = { now: clock.now, dataDir, messageRetentionDays: 2, maintenanceIntervalSeconds: 3600 };

    const first = await startRelay(opts);
    const { alice, bob } = await friends(first.url, 'ret2');
    await sendOk(first.url, alice, bob.id, 'aged');
    clock.advance(30 * HOUR);
    await sendOk(first.url, alice, bob.id, 'fresh');
    await first.close();

    // Down for a day: 'aged' is now 54 h old (> 48 h), 'fresh' 24 h.
    clock.advance(24 * HOUR);
    const second = await start(opts);
    const left = await peekAll(second.url, bob);
    expect(left.messages.map((m) => m.content)).toEqual(['fresh']);
  });
});
