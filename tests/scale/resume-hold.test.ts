// "Nothing is deleted by a legacy stream while the same user holds a resume stream" across instances
// (issue 24.3). Two relays on one PostgreSQL schema: the user's resume stream is on A, a legacy stream on
// B. B's legacy stream settles what it wrote after the grace period — it must not delete what the resume
// client on A has not acknowledged, or the resume client reconnecting with its Last-Event-ID gets nothing.
// Once the resume stream is gone (closed, or its instance stopped refreshing its record), legacy streams
// settle again.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchema, dropSchemas, pgAvailable, schemaUrl } from '../helpers/pg.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, sleep } from '../helpers/sse.ts';
import { request } from '../relay/limits-helpers.ts';
import { befriend, register, type User } from '../relay/client.ts';

const available = await pgAvailable();

describe.skipIf(!available)('the resume-stream rule across two instances (issue 24.3)', () => {
  let a: TestRelay;
  let b: TestRelay;
  let schema: string;

  beforeAll(async () => {
    schema = await createSchema('hold');
    const options = { databaseUrl: schemaUrl(schema), legacyStreamGraceSeconds: 0.2 };
    a = await startRelay(options);
    b = await startRelay(options);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    if (schema) await dropSchemas([schema]);
  });

  async function sendMany(from: User, to: User, n: number, tag: string): Promise<void> {
    for (let i = 0; i < n; i++) {
      const r = await request(a.url, 'POST', '/send', {
        token: from.token,
        json: { to_id: to.id, content: `${tag} ${i}` },
      });
      expect(r.text).toMatch(/^发送成功/);
    }
  }

  async function stored(who: User): Promise<number> {
    const r = await request(a.url, 'GET', '/messages?after=0&limit=1', {
      token: who.token,
      headers: { Accept: 'application/json' },
    });
    return (JSON.parse(r.text) as { total: number }).total;
  }

  it('a legacy stream on B deletes nothing while a resume stream of the user is open on A', async () => {
    const [s, u] = [await register(a.url, 'hold_sender'), await register(a.url, 'hold_user')];
    await befriend(a.url, s, u);
    await request(a.url, 'POST', '/messages/ack', { token: u.token, json: { up_to: 1_000_000 } });

    const resume = await openSse(a.url, {
      token: u.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': '0' },
    });
    const legacy = await openSse(b.url, { token: u.token });
    expect([resume.status, legacy.status]).toEqual([200, 200]);
    await sendMany(s, u, 50, 'held');
    await resume.waitForMessages(50, 20_000);
    await legacy.waitForMessages(50, 20_000);
    const lastBefore = Number(resume.messages()[0]!.id) - 1;
    // Past B's grace period, B settles what its legacy stream wrote.
    await sleep(300);
    await b.services.hub.settle();
    const kept = await stored(u);

    // The resume client reconnects from where it was before the 50 (it had not handled them).
    resume.close();
    const again = await openSse(a.url, {
      token: u.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': String(lastBefore) },
    });
    let got = 0;
    try {
      await again.waitForMessages(50, 10_000).catch(() => undefined);
      got = again.messages().length;
    } finally {
      again.close();
    }
    console.log(
      `item 3: ${kept} of 50 still stored; the resume client got ${got} of 50 back across instances`,
    );
    expect(kept).toBe(50);
    expect(got).toBe(50);
    legacy.close();
  });

  it('once the resume stream is closed, the legacy stream on B settles again', async () => {
    const [s, u] = [await register(a.url, 'rel_sender'), await register(a.url, 'rel_user')];
    await befriend(a.url, s, u);
    await request(a.url, 'POST', '/messages/ack', { token: u.token, json: { up_to: 1_000_000 } });
    const resume = await openSse(a.url, { token: u.token, path: '/stream?since=0&format=json' });
    expect(resume.status).toBe(200);
    resume.close();
    // A deletes its record at its first refresh after the stream closed (≤ 5 s; a crashed A's record
    // expires instead).
    const deadline = Date.now() + 15_000;
    while ((await b.services.bus!.resumeHeldElsewhere([u.id], Date.now())).size > 0) {
      if (Date.now() > deadline) throw new Error('A kept its record of the closed resume stream');
      await sleep(100);
    }
    const legacy = await openSse(b.url, { token: u.token });
    try {
      await sendMany(s, u, 5, 'released');
      await legacy.waitForMessages(5, 10_000);
      const settled = Date.now() + 10_000;
      while ((await stored(u)) > 0 && Date.now() < settled) {
        await sleep(250);
        await b.services.hub.settle();
      }
      expect(await stored(u)).toBe(0);
    } finally {
      legacy.close();
    }
  });
});
