// GET /stream (SSE): auth errors on the hard path, response headers, the `event: log` first frame,
// `retry:`, message framing with ids, W-9 (no forged lines from \r / \r\n / \n), heartbeats, legacy
// push-means-delivered, replay at connect, and resume with Last-Event-ID / ?since=.
// Contract: docs/compat.md (GET /stream) and docs/protocol.md (streams and acknowledgements).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { badSseLines, openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import { makeFriends, messages, register, request, send, type Registered } from './limits-helpers.ts';

const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

let relay: TestRelay;
const open: SseConnection[] = [];

async function connect(opts: Parameters<typeof openSse>[1]): Promise<SseConnection> {
  const c = await openSse(relay.url, opts);
  open.push(c);
  return c;
}

/** The `消息ID：<n>` of a block (its last line). */
function blockId(data: string): number {
  const last = data.split('\n').at(-1) ?? '';
  const m = /^消息ID：(\d+)$/.exec(last);
  if (!m) throw new Error(`block does not end with 消息ID：<n>:\n${data}`);
  return Number(m[1]);
}

function closeAll(): void {
  for (const c of open.splice(0)) c.close();
}

/** Waits until the relay has freed the connection (a closed stream no longer holds anything). */
async function closeAndSettle(c: SseConnection): Promise<void> {
  c.close();
  await c.closed;
  await sleep(150);
}

beforeAll(async () => {
  // Grace 0: a legacy write is deleted as soon as it is flushed, as on the reference (the at-least-once
  // grace period is tested with an injected clock in tests/delivery/legacy.test.ts).
  relay = await startRelay({
    sseMaxPerIp: 50,
    sseMaxPerUser: 10,
    ssePingSeconds: 0.2,
    legacyStreamGraceSeconds: 0,
  });
});

afterAll(async () => {
  closeAll();
  await relay?.close();
});

describe('GET /stream auth (hard path)', () => {
  it('missing X-Token → 422 with the validation text', async () => {
    const c = await connect({});
    expect(c.status).toBe(422);
    expect(c.body).toBe('请求格式错误：header -> X-Token: Field required');
  });

  it('bad token → 401 错误 401：Token 无效', async () => {
    const c = await connect({ token: '0123456789abcdef0123456789abcdef' });
    expect(c.status).toBe(401);
    expect(c.body).toBe('错误 401：Token 无效');
    const c2 = await connect({ token: 'not-a-token' });
    expect(c2.status).toBe(401);
    expect(c2.body).toBe('错误 401：Token 无效');
  });
});

describe('GET /stream connect', () => {
  it('sends the SSE headers, echoes X-Request-ID, and starts with event: log', async () => {
    const u = await register(relay.url);
    const c = await connect({ token: u.token, headers: { 'X-Request-ID': 'req-abc-123' } });
    expect(c.status).toBe(200);
    expect(c.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(c.headers['cache-control']).toBe('no-cache');
    expect(c.headers['x-accel-buffering']).toBe('no');
    expect(c.headers['x-request-id']).toBe('req-abc-123');

    const [first] = await c.waitForEvents(1);
    expect(first?.event).toBe('log');
    const m = /^stream_connected request_id=(\S+) user_id=(\d+) ip=(\S+) ts=(\S+)$/.exec(first?.data ?? '');
    expect(m, `log data: ${first?.data}`).not.toBeNull();
    expect(m?.[1]).toBe('req-abc-123');
    expect(Number(m?.[2])).toBe(u.id);
    expect(m?.[3]).toBe('127.0.0.1');
    expect(m?.[4]).toMatch(TS);
    // The log line is the first frame on the wire.
    expect(/^event: (.*)$/m.exec(c.raw)?.[1]).toBe('log');
  });

  it('generates an 8-character X-Request-ID when none is sent, and uses it in the log line', async () => {
    const u = await register(relay.url);
    const c = await connect({ token: u.token });
    expect(c.status).toBe(200);
    const rid = c.headers['x-request-id'];
    expect(typeof rid).toBe('string');
    expect(rid).toMatch(/^\S{8}$/);
    const [first] = await c.waitForEvents(1);
    expect(first?.data).toContain(`stream_connected request_id=${String(rid)} user_id=${u.id} `);
  });

  it('sends a retry: field exactly once', async () => {
    const u = await register(relay.url);
    const c = await connect({ token: u.token });
    await c.waitForEvents(1);
    await c.waitForPings(1, 5000); // something after the connect frames has arrived
    expect(c.retries).toHaveLength(1);
    expect(c.retries[0]).toBeGreaterThan(0);
    expect(c.raw.match(/^retry: \d+$/gm)).toHaveLength(1);
  });

  it('sends `: ping` heartbeats while idle', async () => {
    const u = await register(relay.url);
    const c = await connect({ token: u.token });
    await c.waitForPings(3, 10_000);
    expect(c.raw).toMatch(/^: ping$/m);
    expect(badSseLines(c.raw)).toEqual([]);
  });
});

describe('GET /stream delivery (legacy connection: no Last-Event-ID, no ?since=)', () => {
  let a: Registered;
  let b: Registered;

  beforeAll(async () => {
    a = await register(relay.url);
    b = await register(relay.url);
    await makeFriends(relay.url, a, b);
    // Drain what the friendship left in both inboxes.
    await messages(relay.url, a);
    await messages(relay.url, b);
  });

  it('pushes a message sent while the recipient is connected; it is then gone from GET /messages', async () => {
    const c = await connect({ token: b.token });
    await c.waitForEvents(1);
    const r = await send(relay.url, a, b, 'live hello');
    expect(r.status).toBe(200);
    expect(r.text.startsWith('发送成功')).toBe(true);

    const [ev] = await c.waitForMessages(1);
    expect(ev?.event).toBe('message');
    const lines = ev?.data.split('\n') ?? [];
    expect(lines[0]).toBe('类型：聊天消息');
    expect(lines[1]).toMatch(/^时间：\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(lines[2]).toBe(`发件人：${a.name}（ID:${a.id}）`);
    expect(lines[3]).toBe('内容：live hello');
    const id = blockId(ev?.data ?? '');
    expect(ev?.id).toBe(String(id));
    expect(badSseLines(c.raw)).toEqual([]);
    // Each line of the block is its own data: line.
    expect(c.raw).toContain(`event: message\n`);
    expect(c.raw).toContain(`data: 类型：聊天消息\ndata: 时间：`);
    expect(c.raw).toContain(`data: 内容：live hello\n`);
    expect(c.raw).toContain(`data: 消息ID：${id}\n`);

    // A legacy stream counts a written message as delivered: give the relay a moment to ack it.
    await sleep(300);
    const inbox = await messages(relay.url, b);
    expect(inbox.status).toBe(200);
    expect(inbox.text).toBe('收件箱为空');
    await closeAndSettle(c);
  });

  it('message ids increase per recipient and match the block’s 消息ID line', async () => {
    const c = await connect({ token: b.token });
    await c.waitForEvents(1);
    for (let i = 0; i < 5; i++) {
      const r = await send(relay.url, a, b, `seq ${i}`);
      expect(r.text.startsWith('发送成功')).toBe(true);
    }
    const evs = await c.waitForMessages(5);
    const ids = evs.map((e) => Number(e.id));
    expect(evs.map((e) => e.data.split('\n')[3])).toEqual([0, 1, 2, 3, 4].map((i) => `内容：seq ${i}`));
    for (const e of evs) expect(Number(e.id)).toBe(blockId(e.data));
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
    await closeAndSettle(c);
  });

  it('replays messages stored before connecting, after the log event, in order', async () => {
    await messages(relay.url, b);
    for (const t of ['stored one', 'stored two', 'stored three']) {
      expect((await send(relay.url, a, b, t)).text.startsWith('发送成功')).toBe(true);
    }
    const c = await connect({ token: b.token });
    const evs = await c.waitForEvents(4);
    expect(evs[0]?.event).toBe('log');
    const msgs = evs.slice(1, 4);
    expect(msgs.map((e) => e.event)).toEqual(['message', 'message', 'message']);
    expect(msgs.map((e) => e.data.split('\n')[3])).toEqual([
      '内容：stored one',
      '内容：stored two',
      '内容：stored three',
    ]);
    await sleep(300);
    expect((await messages(relay.url, b)).text).toBe('收件箱为空');
    await closeAndSettle(c);
  });

  it('pushes friend requests and both system notices of an accept', async () => {
    const x = await register(relay.url);
    const y = await register(relay.url);
    const cx = await connect({ token: x.token });
    const cy = await connect({ token: y.token });
    await cx.waitForEvents(1);
    await cy.waitForEvents(1);

    expect((await send(relay.url, x, y, 'please be my friend')).text).toMatch(
      /^发送成功（好友申请已发出，等待对方回复）/,
    );
    const [req] = await cy.waitForMessages(1);
    const reqLines = req?.data.split('\n') ?? [];
    expect(reqLines[0]).toBe('类型：好友申请');
    expect(reqLines[2]).toBe(`发件人：${x.name}（ID:${x.id}）`);
    expect(reqLines[3]).toBe('内容：please be my friend');
    expect(reqLines[4]).toBe(`操作提示：回复对方（to_id:${x.id}）任意消息即可建立好友关系`);

    expect((await send(relay.url, y, x, 'ok!')).text).toMatch(/^发送成功（好友关系已建立）/);
    const xs = await cx.waitForMessages(2);
    expect(xs[0]?.data.split('\n')[0]).toBe('类型：聊天消息');
    expect(xs[0]?.data.split('\n')[3]).toBe('内容：ok!');
    expect(xs[1]?.data.split('\n')[0]).toBe('类型：系统通知');
    expect(xs[1]?.data).toContain(`您与 ${y.name}（ID:${y.id}）已成功建立好友关系。`);
    const ys = await cy.waitForMessages(2);
    expect(ys[1]?.data.split('\n')[0]).toBe('类型：系统通知');
    expect(ys[1]?.data).toContain(`您与 ${x.name}（ID:${x.id}）已成功建立好友关系。`);
    for (const c of [cx, cy]) {
      expect(badSseLines(c.raw)).toEqual([]);
      for (const e of c.messages()) expect(Number(e.id)).toBe(blockId(e.data));
    }
    await closeAndSettle(cx);
    await closeAndSettle(cy);
  });

  it('fans a message out to every open connection of the recipient', async () => {
    const c1 = await connect({ token: b.token });
    const c2 = await connect({ token: b.token });
    await c1.waitForEvents(1);
    await c2.waitForEvents(1);
    expect((await send(relay.url, a, b, 'to both')).text.startsWith('发送成功')).toBe(true);
    const [e1] = await c1.waitForMessages(1);
    const [e2] = await c2.waitForMessages(1);
    expect(e1?.data.split('\n')[3]).toBe('内容：to both');
    expect(e2?.data.split('\n')[3]).toBe('内容：to both');
    expect(e1?.id).toBe(e2?.id);
    await closeAndSettle(c1);
    await closeAndSettle(c2);
  });

  it('after the stream closes, messages are stored for GET /messages again', async () => {
    const c = await connect({ token: b.token });
    await c.waitForEvents(1);
    await closeAndSettle(c);
    expect((await send(relay.url, a, b, 'while offline')).text.startsWith('发送成功')).toBe(true);
    const inbox = await messages(relay.url, b);
    expect(inbox.text).toContain('内容：while offline');
  });
});

describe('W-9: content with \\r, \\r\\n and \\n cannot forge SSE frames or block lines', () => {
  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('content with %s line breaks stays inside data: lines', async (_label, nl) => {
    const a = await register(relay.url);
    const b = await register(relay.url);
    await makeFriends(relay.url, a, b);
    await messages(relay.url, b);
    const c = await connect({ token: b.token });
    await c.waitForEvents(1);

    const evil = [
      'first line',
      'event: log',
      'id: 999999',
      'retry: 1',
      'data: stream_connected request_id=x user_id=1',
      '',
      '类型：系统通知',
      '时间：2026-01-01 00:00:00',
      '内容：you have been banned',
      '消息ID：123456',
      ': ping',
    ].join(nl);
    const r = await send(relay.url, a, b, evil);
    expect(r.text.startsWith('发送成功')).toBe(true);
    expect((await send(relay.url, a, b, 'after')).text.startsWith('发送成功')).toBe(true);

    const evs = await c.waitForMessages(2);
    // Exactly one log event and the two messages: no injected event.
    expect(c.events.map((e) => e.event)).toEqual(['log', 'message', 'message']);
    expect(badSseLines(c.raw)).toEqual([]);
    const [ev, after] = evs;
    const lines = ev?.data.split('\n') ?? [];
    // Only the real first line names the type, only the real last line carries an id.
    expect(lines.filter((l) => l.startsWith('类型：'))).toEqual(['类型：聊天消息']);
    expect(lines.filter((l) => l.startsWith('消息ID：'))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('内容：'))).toEqual(['内容：first line']);
    expect(lines.at(-1)).toMatch(/^消息ID：\d+$/);
    expect(ev?.id).toBe(String(blockId(ev?.data ?? '')));
    expect(Number(ev?.id)).not.toBe(999999);
    // The continuation lines are all there, indented, and no line of the data is empty-and-terminating.
    for (const l of lines.slice(1, -1)) {
      if (l.startsWith('时间：') || l.startsWith('发件人：') || l.startsWith('内容：')) continue;
      expect(l === '' || l.startsWith('  '), `continuation line ${JSON.stringify(l)} is not indented`).toBe(
        true,
      );
    }
    expect(ev?.data).toContain('you have been banned');
    expect(after?.data.split('\n')[3]).toBe('内容：after');
    expect(Number(after?.id)).toBeGreaterThan(Number(ev?.id));
    await closeAndSettle(c);
  });
});

describe('resume streams (Last-Event-ID / ?since=)', () => {
  it('a resume stream keeps messages until acknowledged by a later resume', async () => {
    const a = await register(relay.url);
    const b = await register(relay.url);
    await makeFriends(relay.url, a, b);
    await messages(relay.url, b);

    const c1 = await connect({ token: b.token, headers: { 'Last-Event-ID': '0' } });
    await c1.waitForEvents(1);
    expect((await send(relay.url, a, b, 'keep me')).text.startsWith('发送成功')).toBe(true);
    const [m1] = await c1.waitForMessages(1);
    const id1 = Number(m1?.id);
    expect(m1?.data.split('\n')[3]).toBe('内容：keep me');
    await closeAndSettle(c1);

    // Not acknowledged yet: a resume from 0 replays it.
    const c2 = await connect({ token: b.token, path: '/stream?since=0' });
    const [r2] = await c2.waitForMessages(1);
    expect(Number(r2?.id)).toBe(id1);
    expect(r2?.data.split('\n')[3]).toBe('内容：keep me');
    await closeAndSettle(c2);

    // Resuming from id1 acknowledges it: nothing is replayed and the inbox is empty.
    const c3 = await connect({ token: b.token, headers: { 'Last-Event-ID': String(id1) } });
    await c3.waitForEvents(1);
    await c3.waitForPings(1, 5000);
    expect(c3.messages()).toHaveLength(0);
    await closeAndSettle(c3);
    expect((await messages(relay.url, b)).text).toBe('收件箱为空');
  });
});

describe('W-10 in the log line', () => {
  it('without trustProxy the log shows the socket peer, not X-Forwarded-For', async () => {
    const u = await register(relay.url);
    const c = await connect({ token: u.token, headers: { 'X-Forwarded-For': '203.0.113.9' } });
    const [log] = await c.waitForEvents(1);
    expect(log?.data).toContain(' ip=127.0.0.1 ');
    await closeAndSettle(c);
  });

  it('with trustProxy the log shows the forwarded client', async () => {
    const r = await startRelay({ trustProxy: ['127.0.0.1'], sseMaxPerIp: 5 });
    try {
      const u = await register(r.url);
      const c = await openSse(r.url, { token: u.token, headers: { 'X-Forwarded-For': '203.0.113.9' } });
      const [log] = await c.waitForEvents(1);
      expect(log?.data).toContain(' ip=203.0.113.9 ');
      c.close();
      await c.closed;
    } finally {
      await r.close();
    }
  });

  // Multi-entry headers: the right-most address that is not a trusted proxy is the client (a client can
  // prepend anything; see limits.test.ts for why this differs from "the first entry").
  it.each([
    [['127.0.0.1'], '198.51.100.77, 203.0.113.9', '203.0.113.9'],
    [['127.0.0.1', '10.0.0.0/8'], '198.51.100.77, 203.0.113.9, 10.0.0.1', '203.0.113.9'],
  ])('with trustProxy %j and X-Forwarded-For %s the log shows ip=%s', async (trustProxy, xff, ip) => {
    const r = await startRelay({ trustProxy, sseMaxPerIp: 5 });
    try {
      const u = await register(r.url);
      const c = await openSse(r.url, { token: u.token, headers: { 'X-Forwarded-For': xff } });
      const [log] = await c.waitForEvents(1);
      expect(log?.data).toContain(` ip=${ip} `);
      c.close();
      await c.closed;
    } finally {
      await r.close();
    }
  });
});

describe('shutdown', () => {
  it('closing the relay ends open streams instead of hanging', async () => {
    const r = await startRelay({ sseMaxPerIp: 5 });
    const u = await register(r.url);
    const c = await openSse(r.url, { token: u.token });
    await c.waitForEvents(1);
    const closing = r.close();
    await c.waitFor(() => c.ended, 5000, 'the stream to end');
    await closing;
    expect(c.ended).toBe(true);
    expect(badSseLines(c.raw)).toEqual([]);
  });
});

describe('/stream and other endpoints', () => {
  it('a streaming connection does not stop /health or /send', async () => {
    const u = await register(relay.url);
    const c = await connect({ token: u.token });
    await c.waitForEvents(1);
    const h = await request(relay.url, 'GET', '/health');
    expect(h.status).toBe(200);
    expect((JSON.parse(h.text) as { status: string }).status).toBe('ok');
    await closeAndSettle(c);
  });
});
