// PUT /homepage and GET /homepage/{id}: the 400 checks in the reference's order, content errors before the
// token check, the reply URL (W-8: publicBaseUrl, forged Host), the served page's headers (CSP sandbox,
// nosniff), the default page, 404 and 422. Contract: docs/compat.md (PUT /homepage, GET /homepage).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { suiteRelay } from '../helpers/fixtures.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { rawRequest, register, request, type Registered } from './limits-helpers.ts';

const LIMIT = 524_288;
const BAD_TOKEN = 'ffffffffffffffffffffffffffffffff';

const relay = suiteRelay();
let alice: Registered;

function putRaw(base: string, body: Buffer | string, token: string | undefined, contentType = 'text/html') {
  const headers: Record<string, string> = { 'Content-Type': contentType };
  if (token !== undefined) headers['X-Token'] = token;
  return rawRequest(base, 'PUT', '/homepage', headers, body);
}

function putMultipart(base: string, form: FormData, token: string | undefined) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers['X-Token'] = token;
  // A local upload of ≤ 600 KB answers in milliseconds; 5 s without an answer is a hang.
  return request(base, 'PUT', '/homepage', { headers, body: form, timeoutMs: 5000 });
}

function htmlOfSize(bytes: number): string {
  return `<p>${'a'.repeat(bytes - 7)}</p>`;
}

beforeAll(async () => {
  alice = await register(relay.url);
});

describe('PUT /homepage success', () => {
  it('stores a raw body and replies with the URL built from the request', async () => {
    const html = '<!DOCTYPE html><html><head><title>Alice</title></head><body><h1>你好 🌍</h1></body></html>';
    const r = await putRaw(relay.url, html, alice.token);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(r.text).toBe(`主页已更新\n访问地址：${relay.url}/homepage/${alice.id}`);

    const g = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`);
    expect(g.status).toBe(200);
    expect(g.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(g.headers['content-security-policy']).toBe('sandbox allow-scripts');
    expect(g.headers['x-content-type-options']).toBe('nosniff');
    expect(g.bytes.equals(Buffer.from(html, 'utf8'))).toBe(true);
  });

  it('accepts a raw body whatever its Content-Type, and replaces the earlier page', async () => {
    const html = '<div>second <b>page</b></div>';
    const r = await putRaw(relay.url, html, alice.token, 'application/octet-stream');
    expect(r.status).toBe(200);
    const g = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`);
    expect(g.text).toBe(html);
  });

  it('accepts a multipart `file` field', async () => {
    const html = '<html><body><p>from a file</p><br/></body></html>';
    const form = new FormData();
    form.append('file', new Blob([html], { type: 'text/html' }), 'index.html');
    const r = await putMultipart(relay.url, form, alice.token);
    expect(r.status).toBe(200);
    expect(r.text).toBe(`主页已更新\n访问地址：${relay.url}/homepage/${alice.id}`);
    const g = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`);
    expect(g.text).toBe(html);
  });

  it('accepts exactly 524,288 bytes and serves them back unchanged', async () => {
    const html = htmlOfSize(LIMIT);
    expect(Buffer.byteLength(html)).toBe(LIMIT);
    const r = await putRaw(relay.url, html, alice.token);
    expect(r.status).toBe(200);
    expect(r.text).toBe(`主页已更新\n访问地址：${relay.url}/homepage/${alice.id}`);
    const g = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`);
    expect(g.bytes.length).toBe(LIMIT);
    expect(g.text).toBe(html);
  });

  it.each(['application/json', 'application/x-www-form-urlencoded', 'text/plain; charset=utf-8'])(
    'accepts an HTML raw body sent as %s',
    async (contentType) => {
      const u = await register(relay.url);
      const html = `<p>sent as ${contentType}</p>`;
      const r = await putRaw(relay.url, html, u.token, contentType);
      expect(r.status, r.text).toBe(200);
      expect(r.text).toBe(`主页已更新\n访问地址：${relay.url}/homepage/${u.id}`);
      expect((await rawRequest(relay.url, 'GET', `/homepage/${u.id}`)).text).toBe(html);
    },
  );

  it('accepts bodies that start with { or [ but are not JSON', async () => {
    const bob = await register(relay.url);
    for (const html of ['{<p>not json</p>', '[<b>x</b>]']) {
      const r = await putRaw(relay.url, html, bob.token);
      expect(r.status, html).toBe(200);
      expect((await rawRequest(relay.url, 'GET', `/homepage/${bob.id}`)).text).toBe(html);
    }
  });
});

describe('PUT /homepage 400 checks (spec order), all before the token check', () => {
  const cases: Array<[string, () => Buffer | string, string]> = [
    ['empty body', () => '', 'HTML 内容不能为空'],
    ['524,289 bytes', () => htmlOfSize(LIMIT + 1), '主页大小超过限制（最大 512KB）'],
    ['2 MB', () => htmlOfSize(2 * 1024 * 1024), '主页大小超过限制（最大 512KB）'],
    [
      'oversize and not UTF-8 (size wins)',
      () => Buffer.alloc(LIMIT + 1, 0xff),
      '主页大小超过限制（最大 512KB）',
    ],
    [
      'invalid UTF-8',
      () => Buffer.from([0x3c, 0x70, 0x3e, 0xff, 0xfe, 0x3c, 0x2f, 0x70, 0x3e]),
      'HTML 需为 UTF-8 编码',
    ],
    [
      'truncated UTF-8 sequence',
      () => Buffer.concat([Buffer.from('<p>'), Buffer.from([0xe4, 0xbd])]),
      'HTML 需为 UTF-8 编码',
    ],
    ['a JSON object', () => '{"html": "<p>hi</p>"}', '请提供 HTML 页面，而非 JSON'],
    [
      'a JSON array with whitespace around it',
      () => '  \n [1, 2, "<b>x</b>"] \n',
      '请提供 HTML 页面，而非 JSON',
    ],
    ['whitespace only', () => '  \n\t  \r\n ', 'HTML 内容不能为空'],
    ['plain text', () => 'just some text, no tags', '请提供有效的 HTML 页面（需包含 HTML 标签）'],
    ['a lone less-than sign', () => 'a < b and c > d', '请提供有效的 HTML 页面（需包含 HTML 标签）'],
    ['a comment only', () => '<!-- nothing here -->', '请提供有效的 HTML 页面（需包含 HTML 标签）'],
  ];

  it.each(cases)('%s → 400 with a valid token', async (_label, body, detail) => {
    const before = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`);
    const r = await putRaw(relay.url, body(), alice.token);
    expect(r.status).toBe(400);
    expect(r.text).toBe(`错误 400：${detail}`);
    const after = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`);
    expect(after.text).toBe(before.text);
  });

  it.each(cases)('%s → the same 400 with a bad token', async (_label, body, detail) => {
    const r = await putRaw(relay.url, body(), BAD_TOKEN);
    expect(r.status).toBe(400);
    expect(r.text).toBe(`错误 400：${detail}`);
  });

  it('multipart without a file field → 400 请提供 file 字段（HTML 文件）', async () => {
    const form = new FormData();
    form.append('html', '<p>not in the file field</p>');
    const r = await putMultipart(relay.url, form, alice.token);
    expect(r.status).toBe(400);
    expect(r.text).toBe('错误 400：请提供 file 字段（HTML 文件）');
    const r2 = await putMultipart(relay.url, form, BAD_TOKEN);
    expect(r2.status).toBe(400);
    expect(r2.text).toBe('错误 400：请提供 file 字段（HTML 文件）');
  });

  it('multipart file over 512 KB → 400 size error', async () => {
    const form = new FormData();
    form.append('file', new Blob([htmlOfSize(LIMIT + 1)], { type: 'text/html' }), 'big.html');
    const r = await putMultipart(relay.url, form, alice.token);
    expect(r.status).toBe(400);
    expect(r.text).toBe('错误 400：主页大小超过限制（最大 512KB）');
  });

  it('multipart file with JSON → 400 not JSON', async () => {
    const form = new FormData();
    form.append('file', new Blob(['{"a": 1}'], { type: 'application/json' }), 'x.json');
    const r = await putMultipart(relay.url, form, alice.token);
    expect(r.status).toBe(400);
    expect(r.text).toBe('错误 400：请提供 HTML 页面，而非 JSON');
  });
});

describe('PUT /homepage auth', () => {
  it('valid content with a bad token → 401 错误 401：Token 无效', async () => {
    const r = await putRaw(relay.url, '<p>hello</p>', BAD_TOKEN);
    expect(r.status).toBe(401);
    expect(r.text).toBe('错误 401：Token 无效');
  });

  it('valid multipart content with a bad token → 401', async () => {
    const form = new FormData();
    form.append('file', new Blob(['<p>hello</p>'], { type: 'text/html' }), 'a.html');
    const r = await putMultipart(relay.url, form, BAD_TOKEN);
    expect(r.status).toBe(401);
    expect(r.text).toBe('错误 401：Token 无效');
  });

  it('valid content without X-Token → 422 validation error', async () => {
    const r = await putRaw(relay.url, '<p>hello</p>', undefined);
    expect(r.status).toBe(422);
    expect(r.text).toBe('请求格式错误：header -> X-Token: Field required');
  });
});

describe('GET /homepage/{id}', () => {
  it('serves the default page when the user has none', async () => {
    const carol = await register(relay.url);
    const g = await rawRequest(relay.url, 'GET', `/homepage/${carol.id}`);
    expect(g.status).toBe(200);
    expect(g.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(g.text).toMatch(/^<!DOCTYPE html>/i);
    expect(g.text).toContain('<title>主页</title>');
    expect(g.text).toContain('该用户尚未设置主页');
  });

  it('is public (no token needed)', async () => {
    const g = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`, { 'X-Token': BAD_TOKEN });
    expect(g.status).toBe(200);
  });

  it.each(['987654', '0', '-1'])('unknown user %s → 404 错误 404：用户不存在', async (id) => {
    const g = await rawRequest(relay.url, 'GET', `/homepage/${id}`);
    expect(g.status).toBe(404);
    expect(g.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(g.text).toBe('错误 404：用户不存在');
  });

  it('non-integer id → 422 validation error', async () => {
    const g = await rawRequest(relay.url, 'GET', '/homepage/abc');
    expect(g.status).toBe(422);
    expect(g.text).toBe(
      '请求格式错误：path -> user_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });

  it('pages are per user', async () => {
    const d = await register(relay.url);
    const e = await register(relay.url);
    expect((await putRaw(relay.url, '<p>d page</p>', d.token)).status).toBe(200);
    expect((await rawRequest(relay.url, 'GET', `/homepage/${d.id}`)).text).toBe('<p>d page</p>');
    expect((await rawRequest(relay.url, 'GET', `/homepage/${e.id}`)).text).toContain('该用户尚未设置主页');
  });
});

describe('W-8: the reply URL with publicBaseUrl', () => {
  let pub: TestRelay;
  beforeAll(async () => {
    pub = await startRelay({ publicBaseUrl: 'https://example.org/openwechat' });
  });
  afterAll(async () => {
    await pub?.close();
  });

  it('uses the configured base, not the Host header', async () => {
    const u = await register(pub.url);
    const r = await putRaw(pub.url, '<p>x</p>', u.token);
    expect(r.status).toBe(200);
    expect(r.text).toBe(`主页已更新\n访问地址：https://example.org/openwechat/homepage/${u.id}`);
  });

  it('a forged Host header does not change the URL', async () => {
    const u = await register(pub.url);
    const r = await rawRequest(
      pub.url,
      'PUT',
      '/homepage',
      {
        Host: 'evil.example:666',
        'X-Token': u.token,
        'Content-Type': 'text/html',
        'X-Forwarded-Host': 'evil2.example',
      },
      '<p>x</p>',
    );
    expect(r.status).toBe(200);
    expect(r.text).toBe(`主页已更新\n访问地址：https://example.org/openwechat/homepage/${u.id}`);
    expect(r.text).not.toContain('evil');
  });
});
