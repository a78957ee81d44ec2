// The relay's HTTP behaviour on PostgreSQL (issue 5), with two instances in this process sharing one
// fresh schema: every request of a flow may land on either instance and the answers are exactly what
// one SQLite relay gives — registration, the friendship state machine, read-and-clear, lossless
// `?after=` paging, idempotent sends retried through the other instance, attachments uploaded on one
// and downloaded from the other, and a resume stream on one fed by sends through the other.

import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRelay, type Relay } from '@openwechat/relay';
import { createSchema, dropSchemas, pgAvailable, querySchema, schemaUrl } from '../helpers/pg.ts';
import { openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import {
  acceptNotice,
  chatBlock,
  Clock,
  expectReply,
  inboxText,
  messages,
  register,
  req,
  requestBlock,
  send,
  sendOk,
  sendReplyText,
  stats,
  systemBlock,
  T0,
  type User,
} from '../relay/client.ts';
import type { InboxJson, MessageJson } from '../delivery/util.ts';

const REQUESTED = '发送成功（好友申请已发出，等待对方回复）';
const ACCEPTED = '发送成功（好友关系已建立）';

const available = await pgAvailable();

describe.skipIf(!available)('HTTP on PostgreSQL, two instances sharing one schema', () => {
  const clock = new Clock();
  let schema: string;
  const dirs: string[] = [];
  const relays: Relay[] = [];
  /** Instance A and instance B. */
  let A: string;
  let B: string;
  const streams: SseConnection[] = [];
  let alice: User;
  let bob: User;

  async function start(databaseUrl: string): Promise<string> {
    const dataDir = await mkdtemp(join(tmpdir(), 'owc-pg-http-'));
    dirs.push(dataDir);
    const relay = await createRelay(
      {
        host: '127.0.0.1',
        port: 0,
        dataDir,
        databaseUrl,
        rateLimitEnabled: false,
        sseMaxPerIp: 100,
        logLevel: 'silent',
      },
      { now: clock.now },
    );
    relays.push(relay);
    return relay.listen();
  }

  beforeAll(async () => {
    schema = await createSchema('http');
    A = await start(schemaUrl(schema));
    B = await start(schemaUrl(schema));
  });

  afterEach(() => {
    for (const s of streams.splice(0)) s.close();
  });

  afterAll(async () => {
    for (const r of relays) await r.close();
    if (schema) await dropSchemas([schema]);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function inbox(base: string, user: User, query: string): Promise<InboxJson> {
    const r = await req(base, 'GET', `/messages${query}`, { token: user.token, jsonMode: true });
    expect(r.status, r.body).toBe(200);
    return JSON.parse(r.body) as InboxJson;
  }

  function sendJson(base: string, from: User, toId: number, content: string, key?: string) {
    return req(base, 'POST', '/send', {
      token: from.token,
      json: { to_id: toId, content },
      jsonMode: true,
      headers: key ? { 'Idempotency-Key': key } : {},
    });
  }

  it('registers on either instance and runs the friendship flow with exact texts', async () => {
    const health = await req(A, 'GET', '/health');
    expect(health.status).toBe(200);
    expect((JSON.parse(health.body) as { features: string[] }).features).toEqual(
      expect.arrayContaining(['json', 'resume', 'idempotency', 'files']),
    );
    alice = await register(A, 'alice', { description: 'likes tea' });
    bob = await register(B, 'bob');
    expect(bob.id).toBeGreaterThan(alice.id);
    // The name rule holds across instances.
    const dup = await req(A, 'POST', '/register', { json: { name: 'BOB' } });
    expect(dup.status).toBe(409);

    expectReply(await send(A, alice, bob.id, 'hi bob'), 200, REQUESTED);
    const reply = await send(B, bob, alice.id, 'hello alice');
    expectReply(
      reply,
      200,
      sendReplyText(ACCEPTED, 2, [
        requestBlock({ time: T0, from: alice, content: 'hi bob', id: 1 }),
        systemBlock({ time: T0, content: acceptNotice(alice, T0), id: 2 }),
      ]),
    );
    expectReply(
      await messages(A, alice),
      200,
      inboxText({
        total: 2,
        blocks: [
          chatBlock({ time: T0, from: bob, content: 'hello alice', id: 1 }),
          systemBlock({ time: T0, content: acceptNotice(bob, T0), id: 2 }),
        ],
      }),
    );
    expectReply(await messages(B, alice), 200, '收件箱为空');
    expect((await messages(B, bob)).status).toBe(200);
    expect(await stats(A)).toEqual({ users: 2, friendships: 1, messages: 4 });
    expect(await stats(B)).toEqual({ users: 2, friendships: 1, messages: 4 });
  });

  it('pages losslessly with ?after= and reads-and-clears exactly once across instances', async () => {
    for (let i = 1; i <= 5; i++) await sendOk(i % 2 ? A : B, alice, bob.id, `page ${i}`);
    // bob's ids 1–2 were read; alice's chats are 3–7.
    const p1 = await inbox(B, bob, '?after=2&limit=2');
    expect({ total: p1.total, ids: p1.messages.map((m) => m.id) }).toEqual({ total: 5, ids: [3, 4] });
    const p2 = await inbox(A, bob, '?after=4&limit=2');
    expect({ total: p2.total, ids: p2.messages.map((m) => m.id) }).toEqual({ total: 3, ids: [5, 6] });
    // A lost response loses nothing: the same page again.
    expect((await inbox(B, bob, '?after=4&limit=2')).messages.map((m) => m.id)).toEqual([5, 6]);
    const p3 = await inbox(B, bob, '?after=6&limit=2');
    expect(p3.messages.map((m) => [m.id, m.content])).toEqual([[7, 'page 5']]);
    expect(await inbox(A, bob, '?after=7')).toEqual({ total: 0, fetched: 0, remaining: 0, messages: [] });

    for (let i = 0; i < 20; i++) await sendOk(i % 2 ? A : B, alice, bob.id, `burst ${i}`);
    const pages = await Promise.all(
      Array.from({ length: 4 }, (_, i) => inbox(i % 2 ? A : B, bob, '?limit=6')),
    );
    const got = pages.flatMap((p) => p.messages.map((m) => m.id)).sort((x, y) => x - y);
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => 8 + i));
    expect(pages.map((p) => p.fetched).sort((x, y) => x - y)).toEqual([2, 6, 6, 6]);
    expect(pages.map((p) => p.total).sort((x, y) => x - y)).toEqual([2, 8, 14, 20]);
  });

  it('an idempotent send retried through the other instance is replayed, not delivered twice', async () => {
    const first = await sendJson(A, alice, bob.id, 'exactly once', 'key-1');
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await sendJson(B, alice, bob.id, 'exactly once', 'key-1');
    expect({ status: again.status, body: again.body }).toEqual({ status: 200, body: first.body });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((JSON.parse(first.body) as { message_id: number }).message_id).toBe(28);
    const stored = await inbox(A, bob, '?after=27');
    expect(stored.messages.map((m) => [m.id, m.content])).toEqual([[28, 'exactly once']]);
    const conflict = await sendJson(B, alice, bob.id, 'something else', 'key-1');
    // The same key with another body is refused, and stores nothing.
    expect(conflict.status).toBe(409);
    expect(JSON.parse(conflict.body)).toEqual({
      error: { code: 'idempotency_conflict', message: '同一 Idempotency-Key 已用于不同的请求内容' },
    });
    expect((await inbox(A, bob, '?after=27')).messages.map((m) => m.id)).toEqual([28]);
  });

  it('a file uploaded through one instance downloads byte for byte from the other', async () => {
    const bytes = Buffer.alloc(700_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
    const upload = (base: string) => {
      const form = new FormData();
      form.set('to_id', String(bob.id));
      form.set('content', 'the report');
      form.set('file', new Blob([bytes], { type: 'application/pdf' }), 'report.pdf');
      return req(base, 'POST', '/send/file', {
        token: alice.token,
        body: form,
        jsonMode: true,
        headers: { 'Idempotency-Key': 'file-1' },
      });
    };
    const sent = await upload(A);
    expect(sent.status, sent.body).toBe(200);
    const messageId = (JSON.parse(sent.body) as { message_id: number }).message_id;
    expect(messageId).toBe(29);
    // The retry through B is a replay and leaves no second copy behind.
    const retry = await upload(B);
    expect({ status: retry.status, body: retry.body }).toEqual({ status: 200, body: sent.body });
    expect(await querySchema<{ n: string }>(schema, 'SELECT count(*) AS n FROM files')).toEqual([{ n: '1' }]);

    const page = await inbox(B, bob, '?after=28');
    const m = page.messages[0] as MessageJson & {
      attachment: { file_id: string; original_name: string; size: number; content_type: string; url: string };
    };
    expect(m).toMatchObject({ id: 29, content: 'the report', from_id: alice.id });
    expect(m.attachment).toMatchObject({
      original_name: 'report.pdf',
      size: bytes.length,
      content_type: 'application/pdf',
      url: `/files/${m.attachment.file_id}`,
    });
    const fileId = m.attachment.file_id;

    const get = async (base: string, user: { token: string }) => {
      const res = await fetch(`${base}/files/${fileId}`, { headers: { 'X-Token': user.token } });
      return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
    };
    const byBob = await get(B, bob);
    expect(byBob.status).toBe(200);
    expect(byBob.headers.get('content-type')).toBe('application/pdf');
    expect(byBob.headers.get('content-length')).toBe(String(bytes.length));
    expect(createHash('sha256').update(byBob.bytes).digest('hex')).toBe(
      createHash('sha256').update(bytes).digest('hex'),
    );
    const bySender = await get(A, alice);
    expect(bySender.bytes.equals(bytes)).toBe(true);
    const carol = await register(A, 'carol');
    expect((await get(A, carol)).status).toBe(404);

    // Downloaded by the recipient and now acknowledged (through A): the file goes.
    expect((await inbox(A, bob, '?after=29')).fetched).toBe(0);
    const deadline = Date.now() + 5000;
    let gone = false;
    while (!gone && Date.now() < deadline) {
      // A later download or the periodic sweep collects it; trigger one by downloading as the sender.
      gone = (await get(A, alice)).status === 404;
      if (!gone) {
        await (await fetch(`${B}/files/${fileId}`, { headers: { 'X-Token': bob.token } })).arrayBuffer();
        await sleep(50);
      }
    }
    expect(gone).toBe(true);
  });

  it('a resume stream on one instance gets what is sent through the other, and resumes on either', async () => {
    const last = 29;
    const s1 = await openSse(B, {
      token: bob.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': String(last) },
    });
    streams.push(s1);
    expect(s1.status).toBe(200);
    await s1.waitForEvents(1, { filter: (e) => e.event === 'log' });
    const started = Date.now();
    for (let i = 0; i < 3; i++) await sendOk(A, alice, bob.id, `live ${i}`);
    const live = await s1.waitForMessages(3, 5000);
    console.log(`[pg http] 3 messages sent via A reached a stream on B in ${Date.now() - started} ms`);
    const got = live.map((e) => JSON.parse(e.data) as MessageJson);
    expect(got.map((m) => [m.id, m.content])).toEqual([
      [30, 'live 0'],
      [31, 'live 1'],
      [32, 'live 2'],
    ]);
    expect(live.map((e) => e.id)).toEqual(['30', '31', '32']);
    s1.close();

    await sendOk(B, alice, bob.id, 'while away 1');
    await sendOk(A, alice, bob.id, 'while away 2');
    const s2 = await openSse(A, {
      token: bob.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': '31' },
    });
    streams.push(s2);
    const replay = await s2.waitForMessages(3, 5000);
    expect(replay.map((e) => (JSON.parse(e.data) as MessageJson).content)).toEqual([
      'live 2',
      'while away 1',
      'while away 2',
    ]);
    // Resuming from 31 acknowledged everything up to it.
    expect((await inbox(B, bob, '?after=0')).messages.map((m) => m.id)).toEqual([32, 33, 34]);
    expect(await stats(B)).toEqual({ users: 3, friendships: 1, messages: 36 });
  });
  it('refusals keep their texts and write nothing', async () => {
    const dave = await register(B, 'dave');
    const erin = await register(A, 'erin', { status: 'friends_only' });
    expectReply(await send(A, dave, alice.id, 'hi alice'), 200, REQUESTED);
    expectReply(
      await send(B, dave, alice.id, 'hi again'),
      200,
      '错误：好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。',
    );
    expectReply(await send(A, dave, erin.id, 'hi erin'), 200, '错误：该用户仅接受好友消息');
    expectReply(await send(B, dave, dave.id, 'me'), 200, '错误：不能给自己发消息');
    expect(await stats(A)).toEqual({ users: 5, friendships: 1, messages: 37 });
  });
});
