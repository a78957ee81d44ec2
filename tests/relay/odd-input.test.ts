// Odd input never yields a 5xx (issue 17): every endpoint of the route table, every place a client puts a
// value (path, query, JSON field, multipart field, header), with NUL, lone surrogates, invalid UTF-8 and
// huge numbers. Each answer is below 500, carries no internal-error text, and the relay keeps working.
// Runs on SQLite and (TEST_BACKEND=postgres) PostgreSQL, where NUL in text is not storable at all.

import { beforeAll, describe, expect, it } from 'vitest';
import { suiteRelay } from '../helpers/fixtures.ts';
import { openSse } from '../helpers/sse.ts';
import { makeFriends, rawRequest, register, request, type Registered } from './limits-helpers.ts';

/** Odd values as they travel in JSON (JSON.stringify escapes lone surrogates as \ud800). */
const JSON_VALUES: unknown[] = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\ud83d',
  '9'.repeat(400),
  1e308,
  -1e308,
  2 ** 53 + 1,
  -(2 ** 63),
  1.5,
  [],
  {},
  null,
  true,
];

/** Odd values as they travel in a URL (percent-encoded bytes, some not UTF-8). */
const URL_VALUES = [
  '%00',
  'a%00b',
  '%ED%A0%80',
  '%F0',
  '%FF%FE',
  '9'.repeat(400),
  '1e999',
  '-1',
  '0x10',
  '%E2%80%AE',
];

/** Odd header values (bytes latin-1 can carry; NUL cannot be sent at all). */
const HEADER_VALUES = ['\u00ff\u00fe', '9'.repeat(400), '-1', '1e999', ' ', 'a'.repeat(300)];

const relay = suiteRelay({ sseMaxPerIp: 100, sseMaxPerUser: 100 });
let alice: Registered;
let bob: Registered;
let groupId = 0;

beforeAll(async () => {
  alice = await register(relay.url);
  bob = await register(relay.url);
  await makeFriends(relay.url, alice, bob);
  const g = await request(relay.url, 'POST', '/groups', {
    token: alice.token,
    json: { name: 'odd', member_ids: [bob.id] },
    headers: { Accept: 'application/json' },
  });
  groupId = (JSON.parse(g.text) as { group: { id: number } }).group.id;
});

interface Case {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** Sends a case on a raw socket (paths are sent exactly as written); a stream is read to its head only. */
async function fire(c: Case): Promise<{ status: number; text: string }> {
  const headers = { 'X-Token': alice.token, ...c.headers };
  if (c.path.startsWith('/stream')) {
    const { 'X-Token': token, ...rest } = headers;
    const s = await openSse(relay.url, { path: c.path, token, headers: rest });
    s.close();
    return { status: s.status, text: s.body };
  }
  const r = await rawRequest(relay.url, c.method, c.path, headers, c.body);
  return { status: r.status, text: r.text };
}

function jsonCases(method: string, path: string, fields: string[]): Case[] {
  const out: Case[] = [];
  for (const field of fields)
    for (const v of JSON_VALUES)
      out.push({
        method,
        path,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ [field]: v }),
      });
  return out;
}

function multipartCase(path: string, field: string, value: string): Case {
  const b = 'oddBoundary';
  const body =
    `--${b}\r\nContent-Disposition: form-data; name="${field}"\r\n\r\n${value}\r\n` +
    `--${b}\r\nContent-Disposition: form-data; name="file"; filename="${value.slice(0, 20)}.txt"\r\n` +
    `Content-Type: text/plain\r\n\r\nbytes\r\n--${b}--\r\n`;
  return {
    method: 'POST',
    path,
    headers: { 'Content-Type': `multipart/form-data; boundary=${b}` },
    body: Buffer.from(body, 'utf8'),
  };
}

function cases(): Case[] {
  const g = groupId;
  const out: Case[] = [];
  // Path parameters.
  for (const v of URL_VALUES) {
    out.push({ method: 'GET', path: `/users/${v}` });
    out.push({ method: 'POST', path: `/block/${v}` });
    out.push({ method: 'POST', path: `/unblock/${v}` });
    out.push({ method: 'GET', path: `/groups/${v}` });
    out.push({ method: 'DELETE', path: `/groups/${v}/members/${v}` });
    out.push({ method: 'POST', path: `/groups/${v}/leave` });
    out.push({ method: 'GET', path: `/files/${v}` });
    out.push({ method: 'GET', path: `/homepage/${v}` });
    out.push({ method: 'GET', path: `/${v}` });
  }
  // Query parameters.
  for (const v of URL_VALUES) {
    out.push({ method: 'GET', path: `/users?keyword=${v}` });
    out.push({ method: 'GET', path: `/users?keyword=${v}&status=${v}&limit=${v}` });
    out.push({ method: 'GET', path: `/messages?after=${v}&limit=${v}` });
    out.push({ method: 'GET', path: `/messages?after=0&limit=${v}` });
    out.push({ method: 'GET', path: `/stream?since=${v}&format=${v}` });
  }
  // JSON bodies.
  out.push(...jsonCases('POST', '/register', ['name', 'description', 'status']));
  out.push(...jsonCases('PATCH', '/me', ['status']));
  out.push(...jsonCases('POST', '/send', ['to_id', 'content']));
  for (const v of JSON_VALUES) {
    out.push({
      method: 'POST',
      path: '/send',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ to_id: bob.id, content: v }),
    });
    out.push({
      method: 'POST',
      path: `/groups/${g}/send`,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: v }),
    });
  }
  out.push(...jsonCases('POST', '/messages/ack', ['up_to']));
  out.push(...jsonCases('POST', '/groups', ['name', 'member_ids']));
  out.push(...jsonCases('PATCH', `/groups/${g}`, ['name']));
  out.push(...jsonCases('POST', `/groups/${g}/members`, ['user_ids']));
  out.push(...jsonCases('POST', '/admin/rate-limit', ['enabled']));
  // Multipart fields.
  for (const v of ['\u0000', 'a\u0000b', '9'.repeat(400), '1e999', '-1']) {
    out.push(multipartCase('/send/file', 'to_id', v));
    out.push(multipartCase('/send/file', 'content', v));
    out.push(multipartCase(`/groups/${g}/send/file`, 'content', v));
  }
  // Homepage bodies: NUL, a lone surrogate's bytes, invalid UTF-8.
  for (const body of [
    Buffer.from('<p>\u0000</p>'),
    Buffer.from([0x3c, 0x70, 0x3e, 0xed, 0xa0, 0x80]),
    Buffer.from([0xff]),
  ])
    out.push({ method: 'PUT', path: '/homepage', headers: { 'Content-Type': 'text/html' }, body });
  // Headers.
  for (const v of HEADER_VALUES) {
    out.push({ method: 'GET', path: '/messages', headers: { 'X-Token': v } });
    out.push({
      method: 'POST',
      path: '/send',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': v },
      body: JSON.stringify({ to_id: bob.id, content: 'idem' }),
    });
    out.push({ method: 'GET', path: '/health', headers: { 'X-Request-ID': v } });
    out.push({ method: 'GET', path: '/stream?since=0', headers: { 'Last-Event-ID': v } });
  }
  return out;
}

describe('odd input (NUL, lone surrogates, invalid UTF-8, huge numbers) over every endpoint', () => {
  it('never answers 5xx; the relay keeps working', async () => {
    const all = cases();
    const bad: string[] = [];
    for (const c of all) {
      // JSON mode too: the same refusals in the other rendering.
      for (const accept of [undefined, 'application/json']) {
        const r = await fire({ ...c, headers: { ...c.headers, ...(accept ? { Accept: accept } : {}) } });
        const adminOff = c.path.startsWith('/admin/') && r.status === 503;
        if ((r.status >= 500 && !adminOff) || r.status < 0 || /内部错误|internal_error/.test(r.text))
          bad.push(
            `${c.method} ${c.path} ${JSON.stringify(c.headers ?? {})} ${String(c.body ?? '').slice(0, 60)} → ${r.status} ${r.text.slice(0, 120)}`,
          );
      }
    }
    expect(bad).toEqual([]);
    expect(all.length).toBeGreaterThan(300);
    const h = await request(relay.url, 'GET', '/health');
    expect(h.status).toBe(200);
    expect(
      (
        await request(relay.url, 'POST', '/send', {
          token: bob.token,
          json: { to_id: alice.id, content: 'still fine' },
        })
      ).text,
    ).toMatch(/^发送成功/);
  }, 120_000);

  it('GET /users?keyword=%00 is a clear refusal or an empty search, never 500', async () => {
    const r = await request(relay.url, 'GET', '/users?keyword=%00', { token: alice.token });
    expect(r.status).toBeLessThan(500);
    expect(r.text).not.toMatch(/内部错误/);
  });
});
