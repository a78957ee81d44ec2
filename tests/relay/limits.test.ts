// Rate limiter (docs/compat.md): per user (valid X-Token) or per IP, sliding 1 s window of
// rateLimitQps, 429 `错误：请求过于频繁，请稍后再试。` with Retry-After, the exempt paths, unknown routes
// counting, W-10 (X-Forwarded-For only from trustProxy). SSE connections per IP (sseMaxPerIp, docs/config.md).
// Bursts are sent concurrently so they land well inside one window; assertions are on counts.

import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay, type TestRelayOptions } from '../helpers/relay.ts';
import { openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import { register, request, uniqueName, type Registered, type TextReply } from './limits-helpers.ts';

const QPS = 5;
const LIMITED = '错误：请求过于频繁，请稍后再试。';
const SSE_FULL_1 = '错误：该 IP 的 SSE 连接数已达上限（最多 1 条）。';
const BAD_TOKEN = 'ffffffffffffffffffffffffffffffff';

let relay: TestRelay | undefined;
const streams: SseConnection[] = [];

async function start(opts: TestRelayOptions): Promise<TestRelay> {
  relay = await startRelay(opts);
  return relay;
}

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  await relay?.close();
  relay = undefined;
});

function burst(n: number, fn: (i: number) => Promise<TextReply>): Promise<TextReply[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
}

function count(rs: TextReply[], status: number): number {
  return rs.filter((r) => r.status === status).length;
}

function expectLimited(r: TextReply): void {
  expect(r.status).toBe(429);
  expect(r.text).toBe(LIMITED);
  expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
  const ra = r.headers.get('retry-after');
  expect(ra, 'Retry-After header').toMatch(/^\d+$/);
  expect(Number(ra)).toBeGreaterThanOrEqual(1);
}

/** Fills the IP bucket of 127.0.0.1 and checks it is full. */
async function exhaustIp(base: string): Promise<void> {
  const rs = await burst(QPS + 2, () => request(base, 'GET', '/no-such-route'));
  expect(count(rs, 429)).toBeGreaterThanOrEqual(2);
}

/** Fills a user's bucket and checks it is full. */
async function exhaustUser(base: string, u: Registered): Promise<void> {
  const rs = await burst(QPS + 2, () => request(base, 'GET', `/users/${u.id}`, { token: u.token }));
  expect(count(rs, 429)).toBeGreaterThanOrEqual(2);
}

describe('rate limiter', () => {
  it('is off by default in the harness', async () => {
    const r = await start({});
    const rs = await burst(60, () => request(r.url, 'GET', '/no-such-route'));
    expect(count(rs, 404)).toBe(60);
  });

  it('per user: QPS requests pass, the rest get 429 with Retry-After; the window slides', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS });
    const u = await register(r.url);
    const rs = await burst(QPS + 3, () => request(r.url, 'GET', `/users/${u.id}`, { token: u.token }));
    expect(count(rs, 200)).toBe(QPS);
    expect(count(rs, 429)).toBe(3);
    for (const x of rs.filter((x) => x.status === 429)) expectLimited(x);
    for (const x of rs.filter((x) => x.status === 200)) expect(x.text).toContain(`（ID:${u.id}）`);

    await sleep(1200);
    const again = await request(r.url, 'GET', `/users/${u.id}`, { token: u.token });
    expect(again.status).toBe(200);
    expect(again.text).toContain(`（ID:${u.id}）`);
  });

  it('users are limited separately from each other and from the IP', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS });
    const a = await register(r.url);
    const b = await register(r.url);
    await exhaustUser(r.url, a);
    expectLimited(await request(r.url, 'GET', `/users/${a.id}`, { token: a.token }));
    const rb = await request(r.url, 'GET', `/users/${a.id}`, { token: b.token });
    expect(rb.status).toBe(200);
    expect(rb.text).toContain(`（ID:${a.id}）`);
    const anon = await request(r.url, 'GET', '/no-such-route');
    expect(anon.status).toBe(404);
  });

  it('per IP: unknown routes count, and an invalid token falls back to the IP key', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS });
    const u = await register(r.url);
    const rs = await burst(QPS + 3, () => request(r.url, 'GET', '/no-such-route'));
    expect(count(rs, 404)).toBe(QPS);
    for (const x of rs.filter((x) => x.status === 404)) expect(x.text).toBe('{"detail":"Not Found"}');
    for (const x of rs.filter((x) => x.status !== 404)) expectLimited(x);

    expectLimited(await request(r.url, 'GET', '/messages', { token: BAD_TOKEN }));
    expectLimited(await request(r.url, 'GET', '/messages'));
    // A valid token has its own bucket.
    const ok = await request(r.url, 'GET', '/messages', { token: u.token });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('收件箱为空');
  });

  it('soft-path business endpoints are limited too (POST /send)', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS });
    const a = await register(r.url);
    const rs = await burst(QPS + 2, (i) =>
      request(r.url, 'POST', '/send', { token: a.token, json: { to_id: 999_999, content: `x${i}` } }),
    );
    expect(count(rs, 200)).toBe(QPS);
    for (const x of rs.filter((x) => x.status === 200)) expect(x.text).toBe('错误：用户不存在');
    for (const x of rs.filter((x) => x.status !== 200)) expectLimited(x);
  });

  it('exempt paths are never limited, for the IP key and for the user key', async () => {
    const r = await start({
      rateLimitEnabled: true,
      rateLimitQps: QPS,
      adminKey: 'k-admin',
      sseMaxPerIp: 100,
    });
    const u = await register(r.url);
    const n = QPS * 2 + 2;

    const exemptCalls: Array<[string, () => Promise<TextReply>, number]> = [
      ['GET /health', () => request(r.url, 'GET', '/health'), 200],
      ['GET /stats', () => request(r.url, 'GET', '/stats'), 200],
      ['GET /homepage/{id}', () => request(r.url, 'GET', `/homepage/${u.id}`), 200],
      [
        'GET /homepage/{id} with token',
        () => request(r.url, 'GET', `/homepage/${u.id}`, { token: u.token }),
        200,
      ],
      [
        'PUT /homepage',
        () =>
          request(r.url, 'PUT', '/homepage', {
            token: u.token,
            body: '<p>hi</p>',
            headers: { 'Content-Type': 'text/html' },
          }),
        200,
      ],
      [
        'PUT /homepage bad token',
        () =>
          request(r.url, 'PUT', '/homepage', {
            token: BAD_TOKEN,
            body: '<p>hi</p>',
            headers: { 'Content-Type': 'text/html' },
          }),
        401,
      ],
      [
        'POST /register',
        () => request(r.url, 'POST', '/register', { json: { name: uniqueName('ex') } }),
        200,
      ],
      [
        'GET /admin/rate-limit',
        () => request(r.url, 'GET', '/admin/rate-limit', { headers: { 'X-Admin-Key': 'k-admin' } }),
        200,
      ],
      [
        'GET /admin/rate-limit wrong key',
        () => request(r.url, 'GET', '/admin/rate-limit', { headers: { 'X-Admin-Key': 'nope' } }),
        401,
      ],
      ['GET /stream bad token', () => request(r.url, 'GET', '/stream', { token: BAD_TOKEN }), 401],
    ];

    for (const [label, call, expected] of exemptCalls) {
      await exhaustIp(r.url);
      await exhaustUser(r.url, u);
      const rs = await burst(n, call);
      expect(
        rs.map((x) => x.status),
        label,
      ).toEqual(Array(n).fill(expected));
    }

    // A real stream with the user's token, while both buckets are full.
    await exhaustIp(r.url);
    await exhaustUser(r.url, u);
    for (let i = 0; i < 3; i++) {
      const s = await openSse(r.url, { token: u.token });
      streams.push(s);
      expect(s.status).toBe(200);
    }
  });

  it('W-10: without trustProxy, a rotating X-Forwarded-For does not evade the IP limit', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS });
    const rs = await burst(QPS + 4, (i) =>
      request(r.url, 'GET', '/no-such-route', { headers: { 'X-Forwarded-For': `10.1.${i}.${i + 1}` } }),
    );
    expect(count(rs, 404)).toBe(QPS);
    for (const x of rs.filter((x) => x.status !== 404)) expectLimited(x);
    // The real client (no header) shares that bucket.
    expectLimited(await request(r.url, 'GET', '/no-such-route'));
  });

  it('W-10: with trustProxy each forwarded client has its own bucket', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS, trustProxy: ['127.0.0.1'] });
    // Distinct clients behind the proxy: each has its own bucket.
    const distinct = await burst(QPS * 3, (i) =>
      request(r.url, 'GET', '/no-such-route', { headers: { 'X-Forwarded-For': `198.51.100.${i + 1}` } }),
    );
    expect(count(distinct, 404)).toBe(QPS * 3);

    // One client behind the proxy: limited.
    const same = await burst(QPS + 3, () =>
      request(r.url, 'GET', '/no-such-route', { headers: { 'X-Forwarded-For': '203.0.113.50' } }),
    );
    expect(count(same, 404)).toBe(QPS);
    for (const x of same.filter((x) => x.status !== 404)) expectLimited(x);

    // Other clients and the proxy itself are not affected.
    expect(
      (await request(r.url, 'GET', '/no-such-route', { headers: { 'X-Forwarded-For': '203.0.113.51' } }))
        .status,
    ).toBe(404);
    expect((await request(r.url, 'GET', '/no-such-route')).status).toBe(404);
  });

  // The brief said "the first XFF entry is the key". With a multi-entry header that would let a client behind
  // the trusted proxy choose its own key (nginx appends the peer to whatever the client sent), i.e. W-10 again.
  // What the relay does, and what these tests pin: walk the header from the right, skipping trusted proxies;
  // the first untrusted address is the client. For a single entry both readings agree.
  it('W-10: with trustProxy, entries a client prepends to X-Forwarded-For do not evade the limit', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS, trustProxy: ['127.0.0.1'] });
    const spoofed = await burst(QPS + 3, (i) =>
      request(r.url, 'GET', '/no-such-route', {
        headers: { 'X-Forwarded-For': `10.0.0.${i}, 203.0.113.50` },
      }),
    );
    expect(count(spoofed, 404)).toBe(QPS);
    for (const x of spoofed.filter((x) => x.status !== 404)) expectLimited(x);
    expectLimited(
      await request(r.url, 'GET', '/no-such-route', { headers: { 'X-Forwarded-For': '203.0.113.50' } }),
    );
  });

  it('W-10: with a chain of trusted proxies the right-most untrusted entry is the key', async () => {
    const r = await start({
      rateLimitEnabled: true,
      rateLimitQps: QPS,
      trustProxy: ['127.0.0.1', '10.0.0.0/8'],
    });
    const rs = await burst(QPS + 3, (i) =>
      request(r.url, 'GET', '/no-such-route', {
        headers: { 'X-Forwarded-For': `192.0.2.${i}, 203.0.113.60, 10.1.2.3` },
      }),
    );
    expect(count(rs, 404)).toBe(QPS);
    for (const x of rs.filter((x) => x.status !== 404)) expectLimited(x);
    expectLimited(
      await request(r.url, 'GET', '/no-such-route', { headers: { 'X-Forwarded-For': '203.0.113.60' } }),
    );
    expect(
      (
        await request(r.url, 'GET', '/no-such-route', {
          headers: { 'X-Forwarded-For': '203.0.113.61, 10.1.2.3' },
        })
      ).status,
    ).toBe(404);
  });
});

describe('SSE connections per IP', () => {
  it('cap 1: another user gets 429 with Retry-After; the same user replaces its stream; closing frees the slot', async () => {
    const r = await start({ sseMaxPerIp: 1 });
    const a = await register(r.url);
    const b = await register(r.url);
    const s1 = await openSse(r.url, { token: a.token });
    streams.push(s1);
    expect(s1.status).toBe(200);
    await s1.waitForEvents(1);

    const s2 = await openSse(r.url, { token: b.token });
    expect(s2.status).toBe(429);
    expect(s2.body).toBe(SSE_FULL_1);
    expect(s2.headers['retry-after']).toMatch(/^\d+$/);

    // A reconnect of the same user (its old stream may be stale) replaces it instead of being refused.
    const same = await openSse(r.url, { token: a.token });
    streams.push(same);
    expect(same.status).toBe(200);
    await s1.closed;
    expect(s1.events.at(-1)).toMatchObject({ event: 'log', data: 'stream_closing reason=replaced' });

    same.close();
    await same.closed;
    let s3: SseConnection | undefined;
    for (let i = 0; i < 30; i++) {
      s3 = await openSse(r.url, { token: b.token });
      if (s3.status === 200) break;
      expect(s3.status).toBe(429);
      await sleep(100);
    }
    streams.push(s3 as SseConnection);
    expect(s3?.status).toBe(200);
    const [log] = await (s3 as SseConnection).waitForEvents(1);
    expect(log?.data).toContain(`user_id=${b.id} `);
  });

  it('refused and unauthenticated attempts do not take a slot', async () => {
    const r = await start({ sseMaxPerIp: 1 });
    const a = await register(r.url);
    const b = await register(r.url);
    for (let i = 0; i < 3; i++) {
      const bad = await openSse(r.url, { token: BAD_TOKEN });
      expect(bad.status).toBe(401);
      const missing = await openSse(r.url, {});
      expect(missing.status).toBe(422);
    }
    const s1 = await openSse(r.url, { token: a.token });
    streams.push(s1);
    expect(s1.status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await openSse(r.url, { token: b.token })).status).toBe(429);
    // Still exactly one slot in use: the first stream keeps working.
    await s1.waitForEvents(1);
    expect(s1.ended).toBe(false);
  });

  it('sseMaxPerIp: 2 allows two and names the limit in the refusal', async () => {
    const r = await start({ sseMaxPerIp: 2 });
    const us = await Promise.all([register(r.url), register(r.url), register(r.url)]);
    const s1 = await openSse(r.url, { token: us[0]!.token });
    const s2 = await openSse(r.url, { token: us[1]!.token });
    streams.push(s1, s2);
    expect([s1.status, s2.status]).toEqual([200, 200]);
    const s3 = await openSse(r.url, { token: us[2]!.token });
    expect(s3.status).toBe(429);
    expect(s3.body).toBe('错误：该 IP 的 SSE 连接数已达上限（最多 2 条）。');
    expect(s3.headers['retry-after']).toMatch(/^\d+$/);
  });

  it('W-10: without trustProxy, X-Forwarded-For does not give extra SSE slots', async () => {
    const r = await start({ sseMaxPerIp: 1 });
    const a = await register(r.url);
    const b = await register(r.url);
    const s1 = await openSse(r.url, { token: a.token, headers: { 'X-Forwarded-For': '198.51.100.1' } });
    streams.push(s1);
    expect(s1.status).toBe(200);
    const s2 = await openSse(r.url, { token: b.token, headers: { 'X-Forwarded-For': '198.51.100.2' } });
    expect(s2.status).toBe(429);
    expect(s2.body).toBe(SSE_FULL_1);
  });

  it('with trustProxy, each forwarded client has its own slot', async () => {
    const r = await start({ trustProxy: ['127.0.0.1'], sseMaxPerIp: 1 });
    const a = await register(r.url);
    const b = await register(r.url);
    const c = await register(r.url);
    const s1 = await openSse(r.url, { token: a.token, headers: { 'X-Forwarded-For': '198.51.100.1' } });
    const s2 = await openSse(r.url, { token: b.token, headers: { 'X-Forwarded-For': '198.51.100.2' } });
    streams.push(s1, s2);
    expect([s1.status, s2.status]).toEqual([200, 200]);
    const s3 = await openSse(r.url, { token: c.token, headers: { 'X-Forwarded-For': '198.51.100.1' } });
    expect(s3.status).toBe(429);
    expect(s3.body).toBe(SSE_FULL_1);
  });
});
