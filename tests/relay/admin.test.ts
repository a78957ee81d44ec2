// GET/POST /admin/rate-limit (docs/compat.md: admin, error conventions): 503 when no admin key is configured, 401 for a
// wrong or missing key, {"enabled":bool} JSON, the runtime toggle (verified by exceeding the QPS), and the
// validation error for a bad body (HTTP 422: admin paths are hard paths; the reference answers 200 — docs/compat.md).

import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay, type TestRelayOptions } from '../helpers/relay.ts';
import { register, request, type TextReply } from './limits-helpers.ts';

const KEY = 'admin-secret-key-123';
const QPS = 4;

let relay: TestRelay | undefined;

async function start(opts: TestRelayOptions): Promise<TestRelay> {
  relay = await startRelay(opts);
  return relay;
}

afterEach(async () => {
  await relay?.close();
  relay = undefined;
});

function admin(base: string, method: 'GET' | 'POST', key?: string, body?: string): Promise<TextReply> {
  const headers: Record<string, string> = {};
  if (key !== undefined) headers['X-Admin-Key'] = key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return request(base, method, '/admin/rate-limit', { headers, body });
}

function expectJson(r: TextReply, value: unknown): void {
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type') ?? '').toMatch(/^application\/json/);
  expect(JSON.parse(r.text)).toEqual(value);
}

async function burstStatuses(base: string, n: number): Promise<number[]> {
  const rs = await Promise.all(Array.from({ length: n }, () => request(base, 'GET', '/no-such-route')));
  return rs.map((r) => r.status);
}

describe('admin not configured', () => {
  it('GET and POST → 503 错误 503：管理接口未配置 ADMIN_KEY, with or without a key', async () => {
    const r = await start({ rateLimitEnabled: true, rateLimitQps: QPS });
    for (const key of [undefined, '', 'anything']) {
      const g = await admin(r.url, 'GET', key);
      expect(g.status).toBe(503);
      expect(g.text).toBe('错误 503：管理接口未配置 ADMIN_KEY');
      const p = await admin(r.url, 'POST', key, '{"enabled":false}');
      expect(p.status).toBe(503);
      expect(p.text).toBe('错误 503：管理接口未配置 ADMIN_KEY');
    }
    // Nothing was switched off.
    const st = await burstStatuses(r.url, QPS + 3);
    expect(st.filter((s) => s === 429)).toHaveLength(3);
  });
});

describe('admin configured', () => {
  it('wrong or missing key → 401 错误 401：管理密钥无效, and nothing changes', async () => {
    const r = await start({ adminKey: KEY, rateLimitEnabled: true, rateLimitQps: QPS });
    for (const key of [undefined, '', 'wrong', KEY.toUpperCase(), `${KEY}x`, KEY.slice(0, -1)]) {
      const g = await admin(r.url, 'GET', key);
      expect(g.status, `GET key=${String(key)}`).toBe(401);
      expect(g.text).toBe('错误 401：管理密钥无效');
      const p = await admin(r.url, 'POST', key, '{"enabled":false}');
      expect(p.status, `POST key=${String(key)}`).toBe(401);
      expect(p.text).toBe('错误 401：管理密钥无效');
    }
    expectJson(await admin(r.url, 'GET', KEY), { enabled: true });
  });

  it('GET reports the configured state', async () => {
    const off = await start({ adminKey: KEY });
    expectJson(await admin(off.url, 'GET', KEY), { enabled: false });
    await off.close();
    relay = undefined;
    const on = await start({ adminKey: KEY, rateLimitEnabled: true });
    expectJson(await admin(on.url, 'GET', KEY), { enabled: true });
  });

  it('POST {"enabled":false} turns the limiter off and {"enabled":true} back on', async () => {
    const r = await start({ adminKey: KEY, rateLimitEnabled: true, rateLimitQps: QPS });
    const before = await burstStatuses(r.url, QPS + 3);
    expect(before.filter((s) => s === 429)).toHaveLength(3);

    expectJson(await admin(r.url, 'POST', KEY, '{"enabled":false}'), { enabled: false });
    expectJson(await admin(r.url, 'GET', KEY), { enabled: false });
    const off = await burstStatuses(r.url, QPS * 5);
    expect(off).toEqual(Array(QPS * 5).fill(404));

    // Per-user requests are not limited either.
    const u = await register(r.url);
    const users = await Promise.all(
      Array.from({ length: QPS * 3 }, () => request(r.url, 'GET', `/users/${u.id}`, { token: u.token })),
    );
    expect(users.map((x) => x.status)).toEqual(Array(QPS * 3).fill(200));

    expectJson(await admin(r.url, 'POST', KEY, '{"enabled":true}'), { enabled: true });
    expectJson(await admin(r.url, 'GET', KEY), { enabled: true });
    await new Promise((res) => setTimeout(res, 1100));
    const on = await burstStatuses(r.url, QPS + 3);
    expect(on.filter((s) => s === 404)).toHaveLength(QPS);
    expect(on.filter((s) => s === 429)).toHaveLength(3);
  });

  it('POST can turn the limiter on when it started off', async () => {
    const r = await start({ adminKey: KEY, rateLimitQps: QPS });
    expect(await burstStatuses(r.url, QPS * 3)).toEqual(Array(QPS * 3).fill(404));
    expectJson(await admin(r.url, 'POST', KEY, '{"enabled":true}'), { enabled: true });
    const on = await burstStatuses(r.url, QPS + 2);
    expect(on.filter((s) => s === 429)).toHaveLength(2);
  });

  it('a bad body is a validation error (HTTP 422, a deliberate difference) and changes nothing', async () => {
    const r = await start({ adminKey: KEY, rateLimitEnabled: true, rateLimitQps: QPS });
    const missing = await admin(r.url, 'POST', KEY, '{}');
    expect(missing.text).toBe('请求格式错误：body -> enabled: Field required');
    for (const body of ['{"enabled":"maybe"}', '{"enabled":[]}', '{"enabled":', 'not json', '[]', 'null']) {
      const x = await admin(r.url, 'POST', KEY, body);
      expect(x.text.startsWith('请求格式错误：'), `${body} → ${x.text}`).toBe(true);
    }
    expectJson(await admin(r.url, 'GET', KEY), { enabled: true });
    // The reference (docs/compat.md, verified): the validation handler does not cover /admin, so it answers HTTP 200.
    expect(missing.status).toBe(422);
    for (const body of ['{"enabled":"maybe"}', 'not json']) {
      expect((await admin(r.url, 'POST', KEY, body)).status, body).toBe(422);
    }
    expectJson(await admin(r.url, 'GET', KEY), { enabled: true });
  });

  it('admin routes are exempt from the limiter', async () => {
    const r = await start({ adminKey: KEY, rateLimitEnabled: true, rateLimitQps: QPS });
    await burstStatuses(r.url, QPS + 2);
    const rs = await Promise.all(Array.from({ length: QPS * 3 }, () => admin(r.url, 'GET', KEY)));
    expect(rs.map((x) => x.status)).toEqual(Array(QPS * 3).fill(200));
  });

  it('other methods on the admin path → 405', async () => {
    const r = await start({ adminKey: KEY });
    const x = await request(r.url, 'DELETE', '/admin/rate-limit', { headers: { 'X-Admin-Key': KEY } });
    expect(x.status).toBe(405);
    expect(x.text).toBe('{"detail":"Method Not Allowed"}');
  });
});
