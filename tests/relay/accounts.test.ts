// Black-box tests of registration, discovery, profiles, status, /stats, /health and auth errors
// (docs/compat.md /register, /users, /users/{id}, /me, /stats, /health; fixes W-7, W-9, W-11).

import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { dropOrphanSchemas, querySchema, schemaForDataDir } from '../helpers/pg.ts';
import { startRelay, TEST_BACKEND } from '../helpers/relay.ts';
import {
  HEAVY,
  SEP,
  T0,
  TEXT_TYPE,
  befriend,
  bj,
  expectReply,
  expectSoftError,
  messages,
  parseRegistration,
  register,
  registerRaw,
  req,
  sendOk,
  stats,
  userBlock,
  relayPerTest,
} from './client.ts';

const TABLE_HEAD = '| ID | 名称 | 简介 | 活跃时间 |\n|----|------|------|----------|';

function regText(o: {
  id: number;
  name: string;
  desc: string;
  label: string;
  token: string;
  table: string;
}): string {
  return [
    '注册成功',
    SEP,
    `ID：${o.id}`,
    `名称：${o.name}`,
    `简介：${o.desc}`,
    `状态：${o.label}`,
    `Token：${o.token}`,
    SEP,
    '请妥善保存 Token，仅此一次显示。',
    '',
    '## 最近活跃用户（Top100）',
    '',
    o.table,
  ].join('\n');
}

/** The table section of a registration reply (everything after the Top100 header). */
function tableOf(body: string): string {
  const marker = '## 最近活跃用户（Top100）\n\n';
  const i = body.indexOf(marker);
  expect(i).toBeGreaterThan(0);
  return body.slice(i + marker.length);
}

const { clock, relay } = relayPerTest();

describe('POST /register: success layout', () => {
  it('prints every line, both SEP rules and the Top100 table exactly', async () => {
    const r = await registerRaw(relay.url, { name: 'alice' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe(TEXT_TYPE);
    const { id, token } = parseRegistration(r.body);
    expect(id).toBe(1);
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(r.body).toBe(
      '注册成功\n' +
        '────────────────────────────────────────\n' +
        'ID：1\n' +
        '名称：alice\n' +
        '简介：（无）\n' +
        '状态：可交流\n' +
        `Token：${token}\n` +
        '────────────────────────────────────────\n' +
        '请妥善保存 Token，仅此一次显示。\n' +
        '\n' +
        '## 最近活跃用户（Top100）\n' +
        '\n' +
        '| ID | 名称 | 简介 | 活跃时间 |\n' +
        '|----|------|------|----------|\n' +
        '| 1 | alice | （无） | 2026-03-09 10:00:00 |',
    );
  });

  it('shows description and status label in the header block', async () => {
    await register(relay.url, 'alice');
    const r = await registerRaw(relay.url, { name: 'bob', description: '个人助手', status: 'open' });
    expect(r.status).toBe(200);
    const { id, token } = parseRegistration(r.body);
    expect(id).toBe(2);
    expect(r.body).toBe(
      regText({
        id: 2,
        name: 'bob',
        desc: '个人助手',
        label: '可交流',
        token,
        table: `${TABLE_HEAD}\n| 1 | alice | （无） | ${bj(T0)} |\n| 2 | bob | 个人助手 | ${bj(T0)} |`,
      }),
    );
  });

  it('labels friends_only and do_not_disturb registrants; an empty description is （无）', async () => {
    await register(relay.url, 'opener');
    const a = await registerRaw(relay.url, { name: 'fo', description: '', status: 'friends_only' });
    expect(a.status).toBe(200);
    expect(a.body).toContain(`\nID：2\n名称：fo\n简介：（无）\n状态：仅好友\nToken：`);
    const b = await registerRaw(relay.url, { name: 'dnd', description: null, status: 'do_not_disturb' });
    expect(b.status).toBe(200);
    expect(b.body).toContain(`\nID：3\n名称：dnd\n简介：（无）\n状态：免打扰\nToken：`);
  });

  it('gives every user a distinct 32-hex token', async () => {
    const a = await register(relay.url, 'a');
    const b = await register(relay.url, 'b');
    expect(a.token).toMatch(/^[0-9a-f]{32}$/);
    expect(b.token).toMatch(/^[0-9a-f]{32}$/);
    expect(a.token).not.toBe(b.token);
  });

  it('orders the table by last activity (newest first) and includes the new registrant', async () => {
    const u1 = await register(relay.url, 'u1');
    clock.advance(1);
    await register(relay.url, 'u2');
    clock.advance(1);
    // u1 is active again: an authenticated call updates last_seen_at.
    expect((await req(relay.url, 'GET', '/users/2', { token: u1.token })).status).toBe(200);
    clock.advance(1);
    const r = await registerRaw(relay.url, { name: 'u3' });
    expect(r.status).toBe(200);
    expect(tableOf(r.body)).toBe(
      `${TABLE_HEAD}\n` +
        `| 3 | u3 | （无） | ${bj(T0 + 3000)} |\n` +
        `| 1 | u1 | （无） | ${bj(T0 + 2000)} |\n` +
        `| 2 | u2 | （无） | ${bj(T0 + 1000)} |`,
    );
  });

  it('breaks ties on activity time by ascending id', async () => {
    await register(relay.url, 'x1');
    await register(relay.url, 'x2');
    const r = await registerRaw(relay.url, { name: 'x3' });
    expect(tableOf(r.body)).toBe(
      `${TABLE_HEAD}\n| 1 | x1 | （无） | ${bj(T0)} |\n| 2 | x2 | （无） | ${bj(T0)} |\n| 3 | x3 | （无） | ${bj(T0)} |`,
    );
  });

  it('W-11: lists only open users (friends_only and do_not_disturb are hidden)', async () => {
    await register(relay.url, 'open1');
    await register(relay.url, 'shy', { status: 'friends_only', description: 'secret' });
    await register(relay.url, 'quiet', { status: 'do_not_disturb' });
    const r = await registerRaw(relay.url, { name: 'open2' });
    expect(tableOf(r.body)).toBe(
      `${TABLE_HEAD}\n| 1 | open1 | （无） | ${bj(T0)} |\n| 4 | open2 | （无） | ${bj(T0)} |`,
    );
  });

  it('W-11: a user switched away from open disappears from the table', async () => {
    const a = await register(relay.url, 'a');
    await register(relay.url, 'b');
    const p = await req(relay.url, 'PATCH', '/me', { token: a.token, json: { status: 'do_not_disturb' } });
    expect(p.body).toBe('状态已更新为：免打扰（do_not_disturb）');
    const r = await registerRaw(relay.url, { name: 'c' });
    expect(tableOf(r.body)).toBe(
      `${TABLE_HEAD}\n| 2 | b | （无） | ${bj(T0)} |\n| 3 | c | （无） | ${bj(T0)} |`,
    );
  });

  it('W-11: with no open user at all the table reads （暂无用户）', async () => {
    const r = await registerRaw(relay.url, { name: 'hermit', status: 'friends_only' });
    expect(r.status).toBe(200);
    expect(tableOf(r.body)).toBe('（暂无用户）');
  });

  it('cuts descriptions longer than 30 characters to 27 + "..." (30 is kept)', async () => {
    const d30 = '一二三四五六七八九十'.repeat(3);
    const d31 = d30 + '甲';
    await register(relay.url, 'thirty', { description: d30 });
    await register(relay.url, 'thirtyone', { description: d31 });
    const r = await registerRaw(relay.url, { name: 'z', description: 'x'.repeat(200) });
    expect(r.status).toBe(200);
    // The header block shows the full description; only the table cuts it.
    expect(r.body).toContain(`\n简介：${'x'.repeat(200)}\n`);
    expect(tableOf(r.body)).toBe(
      `${TABLE_HEAD}\n` +
        `| 1 | thirty | ${d30} | ${bj(T0)} |\n` +
        `| 2 | thirtyone | ${d31.slice(0, 27)}... | ${bj(T0)} |\n` +
        `| 3 | z | ${'x'.repeat(27)}... | ${bj(T0)} |`,
    );
  });

  it('escapes | as \\| in names (W-11) and descriptions, before the 30-character cut', async () => {
    await register(relay.url, 'a|b', { description: 'x|y' });
    // 30 characters raw, 31 once escaped: cut to 27 + "...".
    await register(relay.url, 'pipe', { description: 'p'.repeat(29) + '|' });
    const r = await registerRaw(relay.url, { name: 'c' });
    expect(tableOf(r.body)).toBe(
      `${TABLE_HEAD}\n` +
        `| 1 | a\\|b | x\\|y | ${bj(T0)} |\n` +
        `| 2 | pipe | ${'p'.repeat(27)}... | ${bj(T0)} |\n` +
        `| 3 | c | （无） | ${bj(T0)} |`,
    );
    // The header block itself is not escaped.
    const d = await registerRaw(relay.url, { name: 'd|e', description: 'f|g' });
    expect(d.body).toContain('\n名称：d|e\n简介：f|g\n');
  });

  it('lists at most 100 users, the newest registrant first', async () => {
    for (let i = 1; i <= 100; i++) {
      await register(relay.url, `user${i}`);
      clock.advance(1);
    }
    const r = await registerRaw(relay.url, { name: 'user101' });
    expect(r.status).toBe(200);
    const rows = tableOf(r.body).split('\n').slice(2);
    expect(rows).toHaveLength(100);
    expect(rows[0]).toBe(`| 101 | user101 | （无） | ${bj(T0 + 100_000)} |`);
    expect(rows[99]).toBe(`| 2 | user2 | （无） | ${bj(T0 + 1000)} |`);
    expect(r.body).not.toContain('| 1 | user1 |');
  });
});

describe('characters and time', () => {
  it('shows times in Beijing time, rolling the date over at 16:00 UTC', async () => {
    clock.t = Date.UTC(2026, 11, 31, 16, 30, 5); // 2027-01-01 00:30:05 Beijing
    const r = await registerRaw(relay.url, { name: 'night' });
    expect(tableOf(r.body)).toBe(`${TABLE_HEAD}\n| 1 | night | （无） | 2027-01-01 00:30:05 |`);
    const other = await register(relay.url, 'other');
    expect((await req(relay.url, 'GET', '/users/1', { token: other.token })).body).toBe(
      'night（ID:1）\n    简介：（无）\n    状态：可交流\n    注册时间：2027-01-01 00:30:05\n    最后活跃：2027-01-01 00:30:05',
    );
  });

  it('counts characters as code points (100 emoji are a valid name, 101 are not)', async () => {
    const ok = '😀'.repeat(100);
    const r = await registerRaw(relay.url, { name: ok, description: '🎉'.repeat(200) });
    expect(r.status).toBe(200);
    expect(r.body).toContain(`\n名称：${ok}\n`);
    expectReply(
      await registerRaw(relay.url, { name: '😀'.repeat(101) }),
      422,
      '请求格式错误：body -> name: String should have at most 100 characters',
    );
    expectReply(
      await registerRaw(relay.url, { name: 'x', description: '🎉'.repeat(201) }),
      422,
      '请求格式错误：body -> description: String should have at most 200 characters',
    );
    // The Top100 cut is 27 characters too, never half an emoji.
    expect(tableOf(r.body)).toBe(`${TABLE_HEAD}\n| 1 | ${ok} | ${'🎉'.repeat(27)}... | ${bj(T0)} |`);
  });
});

describe('POST /register: refusals', () => {
  it('409 on a duplicate name, case-insensitively', async () => {
    await register(relay.url, 'bob');
    expectReply(
      await registerRaw(relay.url, { name: 'bob' }),
      409,
      '错误 409：该名称已被使用，请换一个名称。',
    );
    expectReply(
      await registerRaw(relay.url, { name: 'BOB' }),
      409,
      '错误 409：该名称已被使用，请换一个名称。',
    );
    expectReply(
      await registerRaw(relay.url, { name: 'Bob' }),
      409,
      '错误 409：该名称已被使用，请换一个名称。',
    );
    expect((await stats(relay.url)).users).toBe(1);
  });

  it('503 once maxUsers is reached (checked before the duplicate name)', async () => {
    const capped = await startRelay({ maxUsers: 2 });
    try {
      await register(capped.url, 'a');
      await register(capped.url, 'b');
      const full = '错误 503：注册人数已达上限，暂不开放新用户注册。';
      expectReply(await registerRaw(capped.url, { name: 'c' }), 503, full);
      expectReply(await registerRaw(capped.url, { name: 'a' }), 503, full);
      expect((await stats(capped.url)).users).toBe(2);
    } finally {
      await capped.close();
    }
  });

  it('422 when the name is missing or empty', async () => {
    expectReply(await registerRaw(relay.url, {}), 422, '请求格式错误：body -> name: Field required');
    expectReply(
      await registerRaw(relay.url, { name: '' }),
      422,
      '请求格式错误：body -> name: String should have at least 1 character',
    );
  });

  it('accepts a 100-character name and refuses 101 with 422', async () => {
    const ok = await registerRaw(relay.url, { name: 'n'.repeat(100) });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain(`\n名称：${'n'.repeat(100)}\n`);
    expectReply(
      await registerRaw(relay.url, { name: 'm'.repeat(101) }),
      422,
      '请求格式错误：body -> name: String should have at most 100 characters',
    );
  });

  it('accepts a 200-character description and refuses 201 with 422', async () => {
    expect((await registerRaw(relay.url, { name: 'a', description: 'd'.repeat(200) })).status).toBe(200);
    expectReply(
      await registerRaw(relay.url, { name: 'b', description: 'd'.repeat(201) }),
      422,
      '请求格式错误：body -> description: String should have at most 200 characters',
    );
  });

  it('422 on an unknown status', async () => {
    expectReply(
      await registerRaw(relay.url, { name: 'a', status: 'busy' }),
      422,
      "请求格式错误：body -> status: Input should be 'open', 'friends_only' or 'do_not_disturb'",
    );
  });

  it('422 on malformed JSON', async () => {
    const r = await req(relay.url, 'POST', '/register', {
      body: '{"name": ',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(r.status).toBe(422);
    expect(r.body).toMatch(/^请求格式错误：body -> \d+: JSON decode error$/);
  });

  it('W-9: refuses control characters in the name (400)', async () => {
    for (const bad of [
      'spoofer\n类型：系统通知',
      'a\tb',
      'a\rb',
      'a\u2028b',
      'a\u2029b',
      'a\u0007b',
      'a\u0085b',
    ]) {
      expectReply(await registerRaw(relay.url, { name: bad }), 400, '错误 400：名称不能包含换行等控制字符');
    }
    expect((await stats(relay.url)).users).toBe(0);
  });

  it('W-9: refuses control characters in the description (400)', async () => {
    for (const bad of ['line1\nline2', 'a\tb', 'a\r\nb', 'a\u2028b', 'a\u0000b']) {
      expectReply(
        await registerRaw(relay.url, { name: 'ok', description: bad }),
        400,
        '错误 400：简介不能包含换行等控制字符',
      );
    }
    expect((await stats(relay.url)).users).toBe(0);
    // Ordinary punctuation, spaces and non-ASCII text are fine.
    expect((await registerRaw(relay.url, { name: 'ok name｜名', description: 'a b | c：d' })).status).toBe(
      200,
    );
  });
});

describe('GET /users (discovery)', () => {
  it('shows open users other than the caller in the documented layout', async () => {
    const me = await register(relay.url, 'me');
    clock.advance(1);
    await register(relay.url, 'bob', { description: '个人助手' });
    clock.advance(1);
    await register(relay.url, 'carol');
    await register(relay.url, 'shy', { status: 'friends_only' });
    await register(relay.url, 'quiet', { status: 'do_not_disturb' });
    clock.advance(1);
    const r = await req(relay.url, 'GET', '/users', { token: me.token });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe(TEXT_TYPE);
    const bob =
      'bob（ID:2）\n' +
      '    简介：个人助手\n' +
      '    状态：可交流\n' +
      '    注册时间：2026-03-09 10:00:01\n' +
      '    最后活跃：2026-03-09 10:00:01';
    const carol = userBlock({
      id: 3,
      name: 'carol',
      status: 'open',
      created: T0 + 2000,
      lastSeen: T0 + 2000,
    });
    const layout = (x: string, y: string): string =>
      `本次随机展示 2 人（可交流用户共 2 人）\n${HEAVY}\n[1] ${x}\n${SEP}\n[2] ${y}\n${HEAVY}`;
    expect([layout(bob, carol), layout(carol, bob)]).toContain(r.body);
  });

  it('shows at most 10 of the open users, with the full count', async () => {
    const me = await register(relay.url, 'me');
    for (let i = 1; i <= 12; i++) await register(relay.url, `u${i}`);
    const r = await req(relay.url, 'GET', '/users', { token: me.token });
    const lines = r.body.split('\n');
    expect(lines[0]).toBe('本次随机展示 10 人（可交流用户共 12 人）');
    expect(lines[1]).toBe(HEAVY);
    expect(lines.at(-1)).toBe(HEAVY);
    const items = lines.filter((l) => /^\[\d+\] /.test(l));
    expect(items.map((l) => /^\[(\d+)\]/.exec(l)![1])).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
      '9',
      '10',
    ]);
    expect(lines.filter((l) => l === SEP)).toHaveLength(9);
    expect(r.body).not.toContain('me（ID:1）');
    const ids = items.map((l) => Number(/（ID:(\d+)）$/.exec(l)![1]));
    expect(new Set(ids).size).toBe(10);
    for (const id of ids) expect(id).toBeGreaterThanOrEqual(2);
  });

  it('filters by keyword (trimmed, case-insensitive, on name or description)', async () => {
    const me = await register(relay.url, 'me', { description: 'alpha me' });
    await register(relay.url, 'AlphaBot');
    await register(relay.url, 'beta', { description: 'likes ALPHA stuff' });
    await register(relay.url, 'gamma', { description: 'nothing' });
    await register(relay.url, 'alphashy', { status: 'friends_only' });
    const r = await req(relay.url, 'GET', `/users?keyword=${encodeURIComponent('  alpha ')}`, {
      token: me.token,
    });
    expect(r.body.split('\n')[0]).toBe('本次随机展示 2 人（可交流用户共 2 人）');
    expect(r.body).toContain('AlphaBot（ID:2）');
    expect(r.body).toContain('beta（ID:3）');
    expect(r.body).not.toContain('gamma');
    expect(r.body).not.toContain('alphashy');
    const none = await req(relay.url, 'GET', '/users?keyword=zzz', { token: me.token });
    expectReply(none, 200, '暂无可交流的用户');
  });

  it('includes friends and blocked users (only status and the caller are excluded)', async () => {
    const me = await register(relay.url, 'me');
    const friend = await register(relay.url, 'friend');
    const foe = await register(relay.url, 'foe');
    await befriend(relay.url, me, friend);
    await befriend(relay.url, me, foe);
    expect((await req(relay.url, 'POST', `/block/${foe.id}`, { token: me.token })).body).toBe(
      '已拉黑 foe（ID:3），其在你收件箱中的消息已清除',
    );
    const r = await req(relay.url, 'GET', '/users', { token: me.token });
    expect(r.body.split('\n')[0]).toBe('本次随机展示 2 人（可交流用户共 2 人）');
    expect(r.body).toContain('friend（ID:2）');
    expect(r.body).toContain('foe（ID:3）');
  });

  it('says 暂无可交流的用户 when nobody else is open', async () => {
    const me = await register(relay.url, 'me');
    await register(relay.url, 'shy', { status: 'friends_only' });
    await register(relay.url, 'quiet', { status: 'do_not_disturb' });
    expectReply(await req(relay.url, 'GET', '/users', { token: me.token }), 200, '暂无可交流的用户');
  });
});

describe('GET /users/{id}', () => {
  it('shows any user, including friends_only, do_not_disturb and the caller', async () => {
    const me = await register(relay.url, 'me');
    clock.advance(1);
    await register(relay.url, 'shy', { status: 'friends_only', description: '只和朋友聊' });
    clock.advance(1);
    await register(relay.url, 'quiet', { status: 'do_not_disturb' });
    clock.advance(5);
    expectReply(
      await req(relay.url, 'GET', '/users/2', { token: me.token }),
      200,
      'shy（ID:2）\n' +
        '    简介：只和朋友聊\n' +
        '    状态：仅好友\n' +
        '    注册时间：2026-03-09 10:00:01\n' +
        '    最后活跃：2026-03-09 10:00:01',
    );
    expectReply(
      await req(relay.url, 'GET', '/users/3', { token: me.token }),
      200,
      userBlock({ id: 3, name: 'quiet', status: 'do_not_disturb', created: T0 + 2000, lastSeen: T0 + 2000 }),
    );
    // The caller's own request updates their last activity before the profile is shown.
    expectReply(
      await req(relay.url, 'GET', '/users/1', { token: me.token }),
      200,
      userBlock({ id: 1, name: 'me', status: 'open', created: T0, lastSeen: T0 + 7000 }),
    );
  });

  it('unknown id → 200 错误：用户不存在; non-integer → 200 validation error', async () => {
    const me = await register(relay.url, 'me');
    expectSoftError(await req(relay.url, 'GET', '/users/999', { token: me.token }), '用户不存在');
    expectReply(
      await req(relay.url, 'GET', '/users/abc', { token: me.token }),
      200,
      '请求格式错误：path -> user_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });
});

describe('PATCH /me', () => {
  it('sets each status and prints its label', async () => {
    const me = await register(relay.url, 'me');
    const other = await register(relay.url, 'other');
    const cases: [string, string][] = [
      ['friends_only', '状态已更新为：仅好友（friends_only）'],
      ['do_not_disturb', '状态已更新为：免打扰（do_not_disturb）'],
      ['open', '状态已更新为：可交流（open）'],
    ];
    for (const [status, text] of cases) {
      const r = await req(relay.url, 'PATCH', '/me', { token: me.token, json: { status } });
      expectReply(r, 200, text);
      expect(r.headers.get('content-type')).toBe(TEXT_TYPE);
      const profile = await req(relay.url, 'GET', '/users/1', { token: other.token });
      expect(profile.body).toContain(`\n    状态：${text.slice(7, 10)}\n`);
    }
  });

  it('hides a friends_only user from discovery immediately', async () => {
    const me = await register(relay.url, 'me');
    const other = await register(relay.url, 'other');
    expect((await req(relay.url, 'GET', '/users', { token: me.token })).body).toContain('other（ID:2）');
    await req(relay.url, 'PATCH', '/me', { token: other.token, json: { status: 'friends_only' } });
    expectReply(await req(relay.url, 'GET', '/users', { token: me.token }), 200, '暂无可交流的用户');
  });

  it('refuses a bad status with 200 请求格式错误 and changes nothing', async () => {
    const me = await register(relay.url, 'me');
    const text = "请求格式错误：body -> status: Input should be 'open', 'friends_only' or 'do_not_disturb'";
    expectReply(
      await req(relay.url, 'PATCH', '/me', { token: me.token, json: { status: 'busy' } }),
      200,
      text,
    );
    expectReply(
      await req(relay.url, 'PATCH', '/me', { token: me.token, json: {} }),
      200,
      '请求格式错误：body -> status: Field required',
    );
    expect((await req(relay.url, 'GET', '/users/1', { token: me.token })).body).toContain(
      '\n    状态：可交流\n',
    );
  });
});

describe('GET /stats and GET /health', () => {
  it('/stats returns exactly users, friendships and messages as JSON', async () => {
    const r = await req(relay.url, 'GET', '/stats');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(JSON.parse(r.body)).toEqual({ users: 0, friendships: 0, messages: 0 });
  });

  it('/stats counts users, accepted friendships and relayed messages (+3 on accept)', async () => {
    const a = await register(relay.url, 'a');
    const b = await register(relay.url, 'b');
    const c = await register(relay.url, 'c');
    expect(await stats(relay.url)).toEqual({ users: 3, friendships: 0, messages: 0 });
    await sendOk(relay.url, a, b.id, 'hi', '发送成功（好友申请已发出，等待对方回复）');
    expect(await stats(relay.url)).toEqual({ users: 3, friendships: 0, messages: 1 });
    await sendOk(relay.url, b, a.id, 'hello', '发送成功（好友关系已建立）');
    expect(await stats(relay.url)).toEqual({ users: 3, friendships: 1, messages: 4 });
    await sendOk(relay.url, a, b.id, 'chat');
    expect(await stats(relay.url)).toEqual({ users: 3, friendships: 1, messages: 5 });
    // Refused sends and reading the inbox do not count.
    await sendOk(relay.url, c, a.id, 'req', '发送成功（好友申请已发出，等待对方回复）');
    const again = await req(relay.url, 'POST', '/send', {
      token: c.token,
      json: { to_id: a.id, content: 'x' },
    });
    expect(again.body.startsWith('错误：')).toBe(true);
    await messages(relay.url, a);
    await messages(relay.url, b);
    expect(await stats(relay.url)).toEqual({ users: 3, friendships: 1, messages: 6 });
    await befriend(relay.url, c, b);
    expect(await stats(relay.url)).toEqual({ users: 3, friendships: 2, messages: 10 });
  });

  it('/health returns status ok plus version and features', async () => {
    const r = await req(relay.url, 'GET', '/health');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    const body = JSON.parse(r.body) as { status: unknown; version: unknown; features: unknown };
    expect(body.status).toBe('ok');
    expect(typeof body.version).toBe('string');
    expect((body.version as string).length).toBeGreaterThan(0);
    expect(Array.isArray(body.features)).toBe(true);
    for (const f of body.features as unknown[]) expect(typeof f).toBe('string');
    expect(body.features).toContain('json');
  });
});

describe('authentication on soft paths', () => {
  const soft: [string, string, unknown?][] = [
    ['GET', '/messages'],
    ['GET', '/users'],
    ['GET', '/users/1'],
    ['GET', '/friends'],
    ['PATCH', '/me', { status: 'open' }],
    ['POST', '/send', { to_id: 1, content: 'hi' }],
    ['POST', '/block/1'],
    ['POST', '/unblock/1'],
  ];

  it('a missing X-Token is 200 请求格式错误：header -> X-Token: Field required', async () => {
    await register(relay.url, 'a');
    for (const [method, path, json] of soft) {
      const r = await req(relay.url, method, path, json === undefined ? {} : { json });
      expect({ path, status: r.status, body: r.body }).toEqual({
        path,
        status: 200,
        body: '请求格式错误：header -> X-Token: Field required',
      });
    }
  });

  it('a wrong token is 200 错误：Token 无效', async () => {
    await register(relay.url, 'a');
    for (const [method, path, json] of soft) {
      const r = await req(relay.url, method, path, {
        token: '0123456789abcdef0123456789abcdef',
        ...(json === undefined ? {} : { json }),
      });
      expect({ path, status: r.status, body: r.body }).toEqual({
        path,
        status: 200,
        body: '错误：Token 无效',
      });
    }
  });

  it.runIf(TEST_BACKEND === 'postgres')(
    'W-7 (PostgreSQL): only the SHA-256 of a token is stored',
    async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'owc-accounts-'));
      const own = await startRelay({ dataDir });
      try {
        const u = await register(own.url, 'hashed');
        const rows = await querySchema<{ row: string }>(
          await schemaForDataDir(dataDir),
          'SELECT row_to_json(u)::text AS row FROM users u',
        );
        expect(rows).toHaveLength(1);
        expect(rows[0]!.row).not.toContain(u.token);
        expect(rows[0]!.row).toContain(createHash('sha256').update(u.token).digest('hex'));
      } finally {
        await own.close();
        await rm(dataDir, { recursive: true, force: true });
        await dropOrphanSchemas();
      }
    },
  );

  it.runIf(TEST_BACKEND === 'sqlite')('W-7: the token never appears in the data folder', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'owc-accounts-'));
    const own = await startRelay({ dataDir });
    const users = [];
    try {
      for (const n of ['a', 'b', 'c']) users.push(await register(own.url, n));
      await befriend(own.url, users[0]!, users[1]!);
      await req(own.url, 'GET', '/users', { token: users[2]!.token });
      await checkFolder(
        dataDir,
        users.map((u) => u.token),
      );
    } finally {
      await own.close();
    }
    try {
      await checkFolder(
        dataDir,
        users.map((u) => u.token),
      );
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

async function checkFolder(dir: string, tokens: string[]): Promise<void> {
  const files = await listFiles(dir);
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) {
    const bytes = await readFile(file);
    for (const token of tokens) {
      expect(bytes.includes(Buffer.from(token, 'ascii')), `${file} contains a token`).toBe(false);
      expect(bytes.includes(Buffer.from(token.toUpperCase(), 'ascii')), `${file} contains a token`).toBe(
        false,
      );
      expect(bytes.includes(Buffer.from(token, 'utf16le')), `${file} contains a token`).toBe(false);
    }
  }
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir)) {
    const p = join(dir, entry);
    const s = await stat(p);
    if (s.isDirectory()) out.push(...(await listFiles(p)));
    else if (s.isFile()) out.push(p);
  }
  return out;
}
