// Black-box tests of JSON mode (docs/protocol.md): `Accept: application/json` on any business endpoint gives JSON
// with real status codes; errors are {"error":{"code","message"}}; success shapes are snake_case with
// ISO-8601 UTC times.

import { describe, expect, it } from 'vitest';
import { startRelay } from '../helpers/relay.ts';
import { T0, befriend, register, req, sendOk, type User, relayPerTest } from './client.ts';

const REQUESTED = '发送成功（好友申请已发出，等待对方回复）';
const ACCEPTED = '发送成功（好友关系已建立）';
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

const { clock, relay } = relayPerTest();

interface JReply {
  status: number;
  json: unknown;
  headers: Headers;
}

async function j(
  method: string,
  path: string,
  opts: {
    token?: string;
    json?: unknown;
    body?: BodyInit;
    headers?: Record<string, string>;
    base?: string;
  } = {},
): Promise<JReply> {
  const r = await req(opts.base ?? relay.url, method, path, {
    jsonMode: true,
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    ...(opts.json !== undefined ? { json: opts.json } : {}),
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    ...(opts.headers !== undefined ? { headers: opts.headers } : {}),
  });
  expect(r.headers.get('content-type') ?? '').toMatch(/^application\/json/);
  let json: unknown;
  try {
    json = JSON.parse(r.body);
  } catch {
    throw new Error(`not JSON (${r.status}): ${r.body}`);
  }
  return { status: r.status, json, headers: r.headers };
}

function expectError(r: JReply, status: number, code: string, message?: string): void {
  expect({ status: r.status, code: (r.json as { error?: { code?: unknown } }).error?.code }).toEqual({
    status,
    code,
  });
  const body = r.json as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
  expect(typeof body.error.message).toBe('string');
  if (message !== undefined) expect(body.error.message).toBe(message);
}

const USER_KEYS = ['created_at', 'description', 'id', 'last_seen_at', 'name', 'status'];
const MESSAGE_KEYS = [
  'attachment',
  'content',
  'created_at',
  'from',
  'from_id',
  'group',
  'id',
  'mentioned',
  'type',
];

function iso(ms: number): (v: unknown) => void {
  return (v) => {
    expect(v).toMatch(ISO);
    expect(Date.parse(v as string)).toBe(ms);
  };
}

function expectUser(
  u: unknown,
  o: {
    id: number;
    name: string;
    description?: string | null;
    status?: string;
    created: number;
    lastSeen: number;
  },
): void {
  const x = u as Record<string, unknown>;
  expect(Object.keys(x).sort()).toEqual(USER_KEYS);
  expect({ id: x.id, name: x.name, description: x.description, status: x.status }).toEqual({
    id: o.id,
    name: o.name,
    description: o.description ?? null,
    status: o.status ?? 'open',
  });
  iso(o.created)(x.created_at);
  iso(o.lastSeen)(x.last_seen_at);
}

function expectMessage(
  m: unknown,
  o: { id: number; type: string; time: number; from: User | null; content: string; attachment?: string },
): void {
  const x = m as Record<string, unknown>;
  expect(Object.keys(x).sort()).toEqual(MESSAGE_KEYS);
  expect({ id: x.id, type: x.type, from_id: x.from_id, from: x.from, content: x.content }).toEqual({
    id: o.id,
    type: o.type,
    from_id: o.from ? o.from.id : null,
    from: o.from ? { id: o.from.id, name: o.from.name, description: o.from.description ?? null } : null,
    content: o.content,
  });
  iso(o.time)(x.created_at);
  if (o.attachment === undefined) expect(x.attachment).toBeNull();
  else expect((x.attachment as { name: unknown }).name).toBe(o.attachment);
}

describe('JSON mode: POST /register', () => {
  it('returns the user, a 32-hex token and the open top users', async () => {
    clock.advance(0);
    await register(relay.url, 'early', { description: 'first' });
    await register(relay.url, 'shy', { status: 'friends_only' });
    clock.advance(1);
    const r = await j('POST', '/register', { json: { name: 'alice', description: '个人助手' } });
    expect(r.status).toBe(200);
    const body = r.json as { user: unknown; token: string; top_users: unknown[] };
    expect(Object.keys(body).sort()).toEqual(['token', 'top_users', 'user']);
    expect(body.token).toMatch(/^[0-9a-f]{32}$/);
    expectUser(body.user, {
      id: 3,
      name: 'alice',
      description: '个人助手',
      created: T0 + 1000,
      lastSeen: T0 + 1000,
    });
    expect(body.top_users).toHaveLength(2);
    expectUser(body.top_users[0], {
      id: 3,
      name: 'alice',
      description: '个人助手',
      created: T0 + 1000,
      lastSeen: T0 + 1000,
    });
    expectUser(body.top_users[1], { id: 1, name: 'early', description: 'first', created: T0, lastSeen: T0 });
    // The token works.
    expect((await j('GET', '/users/1', { token: body.token })).status).toBe(200);
  });

  it('errors: name_taken 409, invalid_name 400, invalid_description 400, validation_failed 422', async () => {
    await register(relay.url, 'bob');
    expectError(
      await j('POST', '/register', { json: { name: 'BOB' } }),
      409,
      'name_taken',
      '该名称已被使用，请换一个名称。',
    );
    expectError(
      await j('POST', '/register', { json: { name: 'a\nb' } }),
      400,
      'invalid_name',
      '名称不能包含换行等控制字符',
    );
    expectError(
      await j('POST', '/register', { json: { name: 'ok', description: 'a\u2028b' } }),
      400,
      'invalid_description',
      '简介不能包含换行等控制字符',
    );
    expectError(
      await j('POST', '/register', { json: { name: 'x'.repeat(101) } }),
      422,
      'validation_failed',
      '请求格式错误：body -> name: String should have at most 100 characters',
    );
    const bad = await j('POST', '/register', { json: { name: 'ok', status: 'busy' } });
    expectError(bad, 422, 'validation_failed');
    expect((bad.json as { error: { message: string } }).error.message.startsWith('请求格式错误：')).toBe(
      true,
    );
  });

  it('errors: registration_closed 503', async () => {
    const capped = await startRelay({ maxUsers: 1 });
    try {
      await register(capped.url, 'a');
      expectError(
        await j('POST', '/register', { base: capped.url, json: { name: 'b' } }),
        503,
        'registration_closed',
        '注册人数已达上限，暂不开放新用户注册。',
      );
    } finally {
      await capped.close();
    }
  });
});

describe('JSON mode: auth errors', () => {
  it('invalid_token 401 and a missing X-Token as validation_failed 422 on every business endpoint', async () => {
    await register(relay.url, 'a');
    const endpoints: [string, string, unknown?][] = [
      ['GET', '/messages'],
      ['GET', '/users'],
      ['GET', '/users/1'],
      ['GET', '/friends'],
      ['PATCH', '/me', { status: 'open' }],
      ['POST', '/send', { to_id: 1, content: 'hi' }],
      ['POST', '/block/1'],
      ['POST', '/unblock/1'],
    ];
    for (const [method, path, json] of endpoints) {
      const withJson = json === undefined ? {} : { json };
      const bad = await j(method, path, { token: '0123456789abcdef0123456789abcdef', ...withJson });
      expect({ path, status: bad.status, json: bad.json }).toEqual({
        path,
        status: 401,
        json: { error: { code: 'invalid_token', message: 'Token 无效' } },
      });
      const missing = await j(method, path, withJson);
      expect({ path, status: missing.status, json: missing.json }).toEqual({
        path,
        status: 422,
        json: {
          error: { code: 'validation_failed', message: '请求格式错误：header -> X-Token: Field required' },
        },
      });
    }
  });
});

describe('JSON mode: POST /send', () => {
  it('result request / accepted / chat with the recipient message id and the caller inbox', async () => {
    const a = await register(relay.url, 'alice');
    const b = await register(relay.url, 'bob', { description: 'desc' });
    const first = await j('POST', '/send', { token: a.token, json: { to_id: b.id, content: 'hi bob' } });
    expect(first.status).toBe(200);
    expect(first.json).toEqual({
      result: 'request',
      message: REQUESTED,
      message_id: 1,
      inbox: { total: 0, preview: [] },
    });

    clock.advance(2);
    const reply = await j('POST', '/send', { token: b.token, json: { to_id: a.id, content: 'hi alice' } });
    expect(reply.status).toBe(200);
    const rb = reply.json as {
      result: string;
      message: string;
      message_id: number;
      inbox: { total: number; preview: unknown[] };
    };
    expect(Object.keys(rb).sort()).toEqual(['inbox', 'message', 'message_id', 'result']);
    expect({ result: rb.result, message: rb.message, message_id: rb.message_id }).toEqual({
      result: 'accepted',
      message: ACCEPTED,
      message_id: 1,
    });
    expect(Object.keys(rb.inbox).sort()).toEqual(['preview', 'total']);
    expect(rb.inbox.total).toBe(2);
    expect(rb.inbox.preview).toHaveLength(2);
    expectMessage(rb.inbox.preview[0], {
      id: 1,
      type: 'friend_request',
      time: T0,
      from: a,
      content: 'hi bob',
    });
    expectMessage(rb.inbox.preview[1], {
      id: 2,
      type: 'system',
      time: T0 + 2000,
      from: null,
      content: '您与 alice（ID:1）已成功建立好友关系。（2026-03-09 10:00:02 北京时间）',
    });

    const chat = await j('POST', '/send', { token: b.token, json: { to_id: a.id, content: 'chat' } });
    const cb = chat.json as { result: string; message: string; message_id: number; inbox: { total: number } };
    expect({
      result: cb.result,
      message: cb.message,
      message_id: cb.message_id,
      total: cb.inbox.total,
    }).toEqual({
      result: 'chat',
      message: '发送成功',
      message_id: 3, // a#1 chat, a#2 notice, a#3 this chat
      total: 2,
    });
  });

  it('previews at most 5 messages with the full total', async () => {
    const a = await register(relay.url, 'a');
    const t = await register(relay.url, 't');
    for (let i = 1; i <= 7; i++)
      await sendOk(relay.url, await register(relay.url, `s${i}`), a.id, `m${i}`, REQUESTED);
    const r = await j('POST', '/send', { token: a.token, json: { to_id: t.id, content: 'x' } });
    const body = r.json as { inbox: { total: number; preview: { id: number; content: string }[] } };
    expect(body.inbox.total).toBe(7);
    expect(body.inbox.preview.map((m) => [m.id, m.content])).toEqual([
      [1, 'm1'],
      [2, 'm2'],
      [3, 'm3'],
      [4, 'm4'],
      [5, 'm5'],
    ]);
  });

  it('error codes and statuses', async () => {
    const a = await register(relay.url, 'a');
    const b = await register(relay.url, 'b');
    const c = await register(relay.url, 'c');
    const fo = await register(relay.url, 'fo', { status: 'friends_only' });
    const dnd = await register(relay.url, 'dnd', { status: 'do_not_disturb' });
    const s = (from: User, to: number, content = 'x') =>
      j('POST', '/send', { token: from.token, json: { to_id: to, content } });
    expectError(await s(a, a.id), 400, 'cannot_message_self', '不能给自己发消息');
    expectError(await s(a, 999), 404, 'user_not_found', '用户不存在');
    expectError(await s(a, fo.id), 403, 'recipient_friends_only', '该用户仅接受好友消息');
    expectError(await s(a, dnd.id), 403, 'recipient_dnd', '该用户已开启免打扰，不接受任何消息');
    await sendOk(relay.url, a, c.id, 'first', REQUESTED);
    expectError(
      await s(a, c.id),
      409,
      'request_pending',
      '好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。',
    );
    await befriend(relay.url, a, b);
    await req(relay.url, 'POST', `/block/${b.id}`, { token: a.token });
    expectError(await s(b, a.id), 403, 'blocked_by_recipient', '对方已将你拉黑');
    expectError(await s(a, b.id), 403, 'you_blocked_recipient', '你已拉黑该用户，请先解除拉黑');
    expectError(
      await s(a, c.id, 'x'.repeat(1001)),
      422,
      'validation_failed',
      '请求格式错误：body -> content: String should have at most 1000 characters',
    );
    const malformed = await j('POST', '/send', {
      token: a.token,
      body: '{"to_id": ',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(malformed.status).toBeGreaterThanOrEqual(400);
    expect(malformed.status).toBeLessThan(500);
    expect((malformed.json as { error: { message: string } }).error.message).toMatch(
      /^请求格式错误：body -> \d+: JSON decode error$/,
    );
  });
});

describe('JSON mode: POST /send/file', () => {
  function form(fields: Record<string, string>, file?: { name: string; size: number }): FormData {
    const f = new FormData();
    for (const [k, v] of Object.entries(fields)) f.append(k, v);
    if (file) f.append('file', new Blob([new Uint8Array(file.size).fill(7)]), file.name);
    return f;
  }

  it('succeeds with the /send shape and carries the attachment to the recipient', async () => {
    const a = await register(relay.url, 'a');
    const b = await register(relay.url, 'b');
    const r = await j('POST', '/send/file', {
      token: a.token,
      body: form({ to_id: String(b.id) }, { name: 'report.pdf', size: 10 }),
    });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      result: 'request',
      message: REQUESTED,
      message_id: 1,
      inbox: { total: 0, preview: [] },
    });
    const inbox = await j('GET', '/messages', { token: b.token });
    const msgs = (inbox.json as { messages: unknown[] }).messages;
    expect(msgs).toHaveLength(1);
    expectMessage(msgs[0], {
      id: 1,
      type: 'friend_request',
      time: T0,
      from: a,
      content: '(附件)',
      attachment: 'report.pdf',
    });
  });

  it('errors: content_or_file_required 400, content_too_long 400, file_too_large 413', async () => {
    const small = await startRelay({ maxUploadMb: 1 });
    try {
      const a = await register(small.url, 'a');
      const b = await register(small.url, 'b');
      const f = (fields: Record<string, string>, file?: { name: string; size: number }) =>
        j('POST', '/send/file', { base: small.url, token: a.token, body: form(fields, file) });
      expectError(
        await f({ to_id: String(b.id), content: ' ' }),
        400,
        'content_or_file_required',
        'content 或 file 至少需提供一个',
      );
      expectError(
        await f({ to_id: String(b.id), content: 'x'.repeat(1001) }),
        400,
        'content_too_long',
        'content 最多 1000 字',
      );
      expectError(
        await f({ to_id: String(b.id), content: 'big' }, { name: 'big.bin', size: 1024 * 1024 + 1 }),
        413,
        'file_too_large',
        '文件大小超过限制（最大 1MB）',
      );
    } finally {
      await small.close();
    }
  });
});

describe('JSON mode: GET /messages', () => {
  it('returns total, fetched, remaining and messages, and clears what it returned', async () => {
    const r = await register(relay.url, 'r');
    const x = await register(relay.url, 'x', { description: 'xd' });
    await befriend(relay.url, r, x, 'hi', 'hello'); // r#1 chat, r#2 notice
    clock.advance(1);
    await sendOk(relay.url, x, r.id, 'two\nlines'); // r#3
    const page = await j('GET', '/messages?limit=2', { token: r.token });
    expect(page.status).toBe(200);
    const body = page.json as { total: number; fetched: number; remaining: number; messages: unknown[] };
    expect(Object.keys(body).sort()).toEqual(['fetched', 'messages', 'remaining', 'total']);
    expect({ total: body.total, fetched: body.fetched, remaining: body.remaining }).toEqual({
      total: 3,
      fetched: 2,
      remaining: 1,
    });
    expectMessage(body.messages[0], { id: 1, type: 'chat', time: T0, from: x, content: 'hello' });
    expectMessage(body.messages[1], {
      id: 2,
      type: 'system',
      time: T0,
      from: null,
      content: '您与 x（ID:2）已成功建立好友关系。（2026-03-09 10:00:00 北京时间）',
    });
    const rest = await j('GET', '/messages', { token: r.token });
    const rb = rest.json as { total: number; fetched: number; remaining: number; messages: unknown[] };
    expect({ total: rb.total, fetched: rb.fetched, remaining: rb.remaining }).toEqual({
      total: 1,
      fetched: 1,
      remaining: 0,
    });
    // JSON carries the raw content (no text indentation).
    expectMessage(rb.messages[0], { id: 3, type: 'chat', time: T0 + 1000, from: x, content: 'two\nlines' });
    expect(await j('GET', '/messages', { token: r.token })).toMatchObject({
      status: 200,
      json: { total: 0, fetched: 0, remaining: 0, messages: [] },
    });
  });

  it('filters by from_id and validates limit', async () => {
    const r = await register(relay.url, 'r');
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await sendOk(relay.url, x, r.id, 'from x', REQUESTED);
    await sendOk(relay.url, y, r.id, 'from y', REQUESTED);
    const only = await j('GET', `/messages?from_id=${y.id}`, { token: r.token });
    const ob = only.json as { total: number; messages: { id: number; content: string }[] };
    expect(ob.total).toBe(1);
    expect(ob.messages.map((m) => [m.id, m.content])).toEqual([[2, 'from y']]);
    expectError(
      await j('GET', '/messages?limit=0', { token: r.token }),
      422,
      'validation_failed',
      '请求格式错误：query -> limit: Input should be greater than or equal to 1',
    );
    expectError(
      await j('GET', '/messages?limit=501', { token: r.token }),
      422,
      'validation_failed',
      '请求格式错误：query -> limit: Input should be less than or equal to 500',
    );
  });
});

describe('JSON mode: users, friends, status, block', () => {
  it('GET /users returns {total, users} of open users other than the caller', async () => {
    const me = await register(relay.url, 'me');
    clock.advance(1);
    await register(relay.url, 'bob', { description: 'b' });
    await register(relay.url, 'shy', { status: 'friends_only' });
    const r = await j('GET', '/users', { token: me.token });
    expect(r.status).toBe(200);
    const body = r.json as { total: number; users: unknown[] };
    expect(Object.keys(body).sort()).toEqual(['total', 'users']);
    expect(body.total).toBe(1);
    expect(body.users).toHaveLength(1);
    expectUser(body.users[0], {
      id: 2,
      name: 'bob',
      description: 'b',
      created: T0 + 1000,
      lastSeen: T0 + 1000,
    });
    await j('PATCH', '/me', {
      token: (await register(relay.url, 'z')).token,
      json: { status: 'do_not_disturb' },
    });
    const none = await j('GET', '/users?keyword=nomatch', { token: me.token });
    expect(none).toMatchObject({ status: 200, json: { total: 0, users: [] } });
  });

  it('GET /users/{id} returns {user}; unknown → 404 user_not_found; non-integer → 422', async () => {
    const me = await register(relay.url, 'me');
    await register(relay.url, 'quiet', { status: 'do_not_disturb', description: 'shh' });
    const r = await j('GET', '/users/2', { token: me.token });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json as object)).toEqual(['user']);
    expectUser((r.json as { user: unknown }).user, {
      id: 2,
      name: 'quiet',
      description: 'shh',
      status: 'do_not_disturb',
      created: T0,
      lastSeen: T0,
    });
    expectError(await j('GET', '/users/999', { token: me.token }), 404, 'user_not_found', '用户不存在');
    expectError(
      await j('GET', '/users/abc', { token: me.token }),
      422,
      'validation_failed',
      '请求格式错误：path -> user_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });

  it('GET /friends returns users with friends_since', async () => {
    const a = await register(relay.url, 'a');
    const b = await register(relay.url, 'b', { description: 'bd' });
    expect(await j('GET', '/friends', { token: a.token })).toMatchObject({
      status: 200,
      json: { friends: [] },
    });
    await sendOk(relay.url, a, b.id, 'hi', REQUESTED);
    clock.advance(3);
    await sendOk(relay.url, b, a.id, 'hey', ACCEPTED);
    clock.advance(1);
    const r = await j('GET', '/friends', { token: a.token });
    expect(r.status).toBe(200);
    const friends = (r.json as { friends: Record<string, unknown>[] }).friends;
    expect(friends).toHaveLength(1);
    const f = friends[0]!;
    expect(Object.keys(f).sort()).toEqual([...USER_KEYS, 'friends_since'].sort());
    const { friends_since: since, ...user } = f;
    iso(T0 + 3000)(since);
    expectUser(user, { id: 2, name: 'b', description: 'bd', created: T0, lastSeen: T0 + 3000 });
  });

  it('PATCH /me returns {user}; a bad status is 422 validation_failed', async () => {
    const me = await register(relay.url, 'me');
    clock.advance(2);
    const r = await j('PATCH', '/me', { token: me.token, json: { status: 'friends_only' } });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json as object)).toEqual(['user']);
    expectUser((r.json as { user: unknown }).user, {
      id: 1,
      name: 'me',
      status: 'friends_only',
      created: T0,
      lastSeen: T0 + 2000,
    });
    expectError(
      await j('PATCH', '/me', { token: me.token, json: { status: 'busy' } }),
      422,
      'validation_failed',
      "请求格式错误：body -> status: Input should be 'open', 'friends_only' or 'do_not_disturb'",
    );
  });

  it('POST /block and /unblock return {user:{id,name}, status}; errors carry their codes', async () => {
    const a = await register(relay.url, 'a');
    const b = await register(relay.url, 'bob');
    const c = await register(relay.url, 'c');
    expectError(
      await j('POST', `/block/${a.id}`, { token: a.token }),
      400,
      'cannot_block_self',
      '不能拉黑自己',
    );
    expectError(await j('POST', '/block/999', { token: a.token }), 404, 'user_not_found', '用户不存在');
    expectError(
      await j('POST', `/block/${c.id}`, { token: a.token }),
      409,
      'not_friends',
      '只能拉黑已建立好友关系的用户',
    );
    expectError(
      await j('POST', `/unblock/${b.id}`, { token: a.token }),
      404,
      'no_block_record',
      '未找到对该用户的拉黑记录',
    );
    await befriend(relay.url, a, b);
    const blocked = await j('POST', `/block/${b.id}`, { token: a.token });
    expect(blocked).toMatchObject({ status: 200 });
    expect(blocked.json).toEqual({ user: { id: 2, name: 'bob' }, status: 'blocked' });
    expectError(await j('POST', `/unblock/${a.id}`, { token: b.token }), 404, 'no_block_record');
    const unblocked = await j('POST', `/unblock/${b.id}`, { token: a.token });
    expect(unblocked.status).toBe(200);
    expect(unblocked.json).toEqual({ user: { id: 2, name: 'bob' }, status: 'none' });
    // Strangers again: a fresh request is allowed.
    const again = await j('POST', '/send', { token: b.token, json: { to_id: a.id, content: 'again' } });
    expect((again.json as { result: string }).result).toBe('request');
  });
});

describe('JSON mode: /stats, /health and the rate limiter', () => {
  it('/stats and /health are JSON regardless of Accept', async () => {
    expect(await j('GET', '/stats')).toMatchObject({
      status: 200,
      json: { users: 0, friendships: 0, messages: 0 },
    });
    const h = await j('GET', '/health');
    expect(h.status).toBe(200);
    expect((h.json as { status: string }).status).toBe('ok');
  });

  it('rate_limited 429 with Retry-After', async () => {
    const limited = await startRelay({ rateLimitEnabled: true, rateLimitQps: 2 });
    try {
      const a = await register(limited.url, 'a');
      const replies: JReply[] = [];
      for (let i = 0; i < 4; i++)
        replies.push(await j('GET', '/users', { base: limited.url, token: a.token }));
      expect(replies.slice(0, 2).map((r) => r.status)).toEqual([200, 200]);
      const last = replies[3]!;
      expectError(last, 429, 'rate_limited', '请求过于频繁，请稍后再试。');
      expect(last.headers.get('retry-after')).toMatch(/^\d+$/);
      // Text mode keeps the reference body.
      const text = await req(limited.url, 'GET', '/users', { token: a.token });
      expect({ status: text.status, body: text.body }).toEqual({
        status: 429,
        body: '错误：请求过于频繁，请稍后再试。',
      });
    } finally {
      await limited.close();
    }
  });
});
