// A receipt reaches the sender's stream held by ANOTHER relay instance (PostgreSQL, two instances on one
// schema, as tests/scale/two-instances.test.ts — here in one process, each with its own pool, LISTEN
// connection and hub): alice streams from A, bob acknowledges on B; the receipt travels as a NOTIFY and
// A writes `event: receipt` without a store read. Both instances answer the query the same.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSchema, dropSchemas, pgAvailable, schemaUrl } from '../helpers/pg.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse } from '../helpers/sse.ts';
import { befriend, register, req } from '../relay/client.ts';
import { drainInbox, sendJson } from '../delivery/util.ts';

const available = await pgAvailable();
const cleanup: (() => Promise<void> | void)[] = [];

afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function instance(schema: string): Promise<TestRelay> {
  const dataDir = await mkdtemp(join(tmpdir(), 'owc-rcpt-'));
  const relay = await startRelay({ dataDir, databaseUrl: schemaUrl(schema), sseMaxPerIp: 20 });
  cleanup.push(async () => {
    await relay.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  return relay;
}

describe.skipIf(!available)('receipts across relay instances (PostgreSQL)', () => {
  it("an ack on instance B reaches the sender's JSON stream on instance A", async () => {
    const schema = await createSchema('receipts');
    cleanup.push(() => dropSchemas([schema]));
    const a = await instance(schema);
    const b = await instance(schema);
    const alice = await register(a.url, 'x_alice');
    const bob = await register(a.url, 'x_bob');
    await befriend(a.url, alice, bob);
    await drainInbox(a.url, alice);
    await drainInbox(a.url, bob);

    const aliceOnA = await openSse(a.url, { path: '/stream?format=json&since=0', token: alice.token });
    cleanup.push(() => aliceOnA.close());
    await aliceOnA.waitForEvents(1);

    const ids: number[] = [];
    for (const text of ['one', 'two', 'three']) {
      const r = await sendJson(a.url, alice, bob.id, text);
      ids.push((JSON.parse(r.body) as { message_id: number }).message_id);
    }
    // Acknowledged on B, through two different paths.
    await req(b.url, 'POST', '/messages/ack', { token: bob.token, json: { up_to: ids[1] } });
    await req(b.url, 'GET', `/messages?after=${ids[2]}`, { token: bob.token, jsonMode: true });

    const events = await aliceOnA.waitForEvents(3, {
      filter: (e) => e.event === 'receipt',
      timeoutMs: 15_000,
    });
    const receipts = events.map(
      (e) => JSON.parse(e.data) as { message_id: number; state: string; to_id: number },
    );
    expect(receipts.map((r) => [r.message_id, r.to_id, r.state])).toEqual(
      ids.map((id) => [id, bob.id, 'delivered']),
    );
    for (const base of [a.url, b.url]) {
      const q = await req(base, 'GET', `/sent/${bob.id}/${ids[0]}`, { token: alice.token, jsonMode: true });
      expect(JSON.parse(q.body)).toMatchObject({ receipt: { state: 'delivered' } });
    }

    // One ack of 300 messages: more receipts than fit one NOTIFY payload (split, none lost or repeated).
    const many: number[] = [];
    for (let i = 0; i < 300; i++) {
      const r = await sendJson(a.url, alice, bob.id, `bulk ${i}`);
      many.push((JSON.parse(r.body) as { message_id: number }).message_id);
    }
    await req(b.url, 'POST', '/messages/ack', { token: bob.token, json: { up_to: many.at(-1) } });
    const all = await aliceOnA.waitForEvents(3 + 300, {
      filter: (e) => e.event === 'receipt',
      timeoutMs: 30_000,
    });
    const bulk = all.slice(3).map((e) => (JSON.parse(e.data) as { message_id: number }).message_id);
    expect(bulk).toEqual(many);
  });
});
