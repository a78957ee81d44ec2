// Read-and-clear under concurrency (W-2/W-3: concurrent reads never hand out a message twice): four
// readers drain the same inbox with plain GET /messages at the same time, with seeded random page sizes.
// Together they receive every stored message exactly once, and each reader sees ids in increasing order.

import { describe, expect, it } from 'vitest';
import { suiteRelay } from '../helpers/fixtures.ts';
import { befriend, register } from '../relay/client.ts';
import {
  drainInbox,
  expectConsecutive,
  inboxJson,
  mulberry32,
  peekAll,
  randInt,
  sendJson,
  type MessageJson,
} from './util.ts';

const relay = suiteRelay();

describe('concurrent GET /messages readers', () => {
  it('4 readers over 420 stored messages receive every message exactly once', async () => {
    const N = 420;
    const READERS = 4;
    const base = relay.url;
    const rng = mulberry32(7);
    const alice = await register(base, 'cr_alice');
    const bob = await register(base, 'cr_bob');
    await befriend(base, alice, bob);
    const baseline = (await drainInbox(base, bob)).at(-1)?.id ?? 0;

    const sent = Array.from({ length: N }, (_, i) => `stored ${i + 1}`);
    // Four concurrent senders; the commit order (the ids) is what the readers must reproduce.
    const byId = new Map<number, string>();
    for (let i = 0; i < N; i += 4) {
      const batch = sent.slice(i, i + 4);
      const answers = await Promise.all(batch.map((c) => sendJson(base, alice, bob.id, c)));
      answers.forEach((r, j) => {
        expect(r.status).toBe(200);
        byId.set((JSON.parse(r.body) as { message_id: number }).message_id, batch[j]!);
      });
    }
    expect((await peekAll(base, bob)).total).toBe(N);

    const limits = Array.from({ length: READERS }, () =>
      Array.from({ length: 200 }, () => randInt(rng, 1, 25)),
    );
    const reader = async (r: number): Promise<MessageJson[]> => {
      const got: MessageJson[] = [];
      for (let k = 0; ; k++) {
        const page = await inboxJson(base, bob, `?limit=${limits[r]![k % 200]}`);
        if (page.fetched === 0) return got;
        got.push(...page.messages);
      }
    };
    const results = await Promise.all(Array.from({ length: READERS }, (_, r) => reader(r)));

    for (const got of results) {
      for (let j = 1; j < got.length; j++) expect(got[j]!.id).toBeGreaterThan(got[j - 1]!.id);
    }
    const all = results.flat().sort((a, b) => a.id - b.id);
    expect(all).toHaveLength(N);
    expectConsecutive(
      all.map((m) => m.id),
      baseline + 1,
    );
    expect(all.map((m) => m.content)).toEqual(all.map((m) => byId.get(m.id)));
    expect(new Set(all.map((m) => m.content)).size).toBe(N);
    expect([...byId.values()].sort()).toEqual([...sent].sort());
    expect(await peekAll(base, bob)).toEqual({ total: 0, fetched: 0, remaining: 0, messages: [] });
  });
});
