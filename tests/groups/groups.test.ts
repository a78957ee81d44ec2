// Group management over HTTP (docs/groups-api.md): create, list, details, add, remove, leave, update,
// dissolve — every reply text byte for byte, the JSON shapes, and every refusal in text mode (soft: HTTP
// 200 + `错误：…`) and in JSON mode (real status + the error body). Runs on SQLite, and on PostgreSQL
// with TEST_BACKEND=postgres.

import { beforeEach, describe, expect, it } from 'vitest';
import {
  befriend,
  bj,
  messages,
  register,
  relayPerTest,
  req,
  send,
  type Reply,
  type User,
} from '../relay/client.ts';
import {
  clearInboxes,
  createGroup,
  createGroupOk,
  groupSend,
  HEAVY,
  noticeBlock,
  ownerWithFriends,
  SEP,
} from './helpers.ts';

const { clock, relay, restart } = relayPerTest();
let base: string;
beforeEach(() => void (base = relay.url));

const reg = (name: string, status?: 'open' | 'friends_only' | 'do_not_disturb') =>
  register(base, name, status ? { status } : {});

const clear = (...users: User[]): Promise<void> => clearInboxes(base, ...users);

describe('create, list and details (text)', () => {
  it('answers with the exact layouts of the API decision', async () => {
    const { owner, friends } = await ownerWithFriends(
      base,
      (n) => register(base, n, { description: `我是${n}` }),
      2,
    );
    const [f0, f1] = friends as [User, User];
    const stranger = await reg('stranger');
    await clear(owner, f0, f1);
    clock.advance(60);
    const created = clock.t;
    const r = await createGroup(base, owner, {
      name: '项目组',
      description: '周报',
      member_ids: [f0.id, f1.id],
    });
    expect(r).toMatchObject({ status: 200, body: '群组已创建：项目组（群ID:1）\n成员 3 人' });
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    clock.advance(1);
    const solo = await createGroup(base, f0, { name: '独自' });
    expect(solo.body).toBe('群组已创建：独自（群ID:2）\n成员 1 人');

    expect((await req(base, 'GET', '/groups', { token: owner.token })).body).toBe(
      [
        '共 1 个群组',
        HEAVY,
        '[1] 项目组（群ID:1）',
        '    简介：周报',
        `    群主：owner（ID:${owner.id}）`,
        '    成员：3 人',
        '    我的身份：群主',
        HEAVY,
      ].join('\n'),
    );
    expect((await req(base, 'GET', '/groups', { token: f0.token })).body).toBe(
      [
        '共 2 个群组',
        HEAVY,
        '[1] 项目组（群ID:1）',
        '    简介：周报',
        `    群主：owner（ID:${owner.id}）`,
        '    成员：3 人',
        '    我的身份：成员',
        SEP,
        '[2] 独自（群ID:2）',
        '    简介：（无）',
        `    群主：f0（ID:${f0.id}）`,
        '    成员：1 人',
        '    我的身份：群主',
        HEAVY,
      ].join('\n'),
    );
    expect((await req(base, 'GET', '/groups', { token: stranger.token })).body).toBe('暂无群组');
    expect((await req(base, 'GET', '/groups/1', { token: f1.token })).body).toBe(
      [
        '项目组（群ID:1）',
        '简介：周报',
        `群主：owner（ID:${owner.id}）`,
        `创建时间：${bj(created)}`,
        '成员（3 人）：',
        `  - owner（ID:${owner.id}） 群主`,
        `  - f0（ID:${f0.id}）`,
        `  - f1（ID:${f1.id}）`,
      ].join('\n'),
    );
    // Each initial member is told, the owner is not.
    expect((await messages(base, f1)).body).toBe(
      `收件箱共 1 条 | 本次读取并清除 1 条 | 剩余 0 条（已全部读取）\n${HEAVY}\n[1]\n` +
        noticeBlock({
          time: created,
          content: `你已被 owner（ID:${owner.id}）加入群组 项目组（群ID:1）`,
          id: 3,
        }) +
        `\n${HEAVY}`,
    );
    expect((await messages(base, owner)).body).toBe('收件箱为空');
    // The owner's own id among the members is ignored; duplicates count once.
    const dup = await createGroup(base, owner, { name: 'dup', member_ids: [owner.id, f0.id, f0.id] });
    expect(dup.body).toBe('群组已创建：dup（群ID:3）\n成员 2 人');
  });
});

describe('JSON mode', () => {
  it('has the documented shapes', async () => {
    const { owner, friends } = await ownerWithFriends(base, reg, 3);
    const [f0, f1, f2] = friends as [User, User, User];
    const at = new Date(clock.t).toISOString();
    const r = await createGroup(base, owner, { name: 'g', member_ids: [f0.id] }, true);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const group = {
      id: 1,
      name: 'g',
      description: null,
      owner_id: owner.id,
      owner_name: 'owner',
      member_count: 2,
      created_at: at,
      role: 'owner',
    };
    expect(JSON.parse(r.body)).toEqual({ group });
    const j = (path: string, method = 'GET', u: User = owner, json?: unknown) =>
      req(base, method, path, { token: u.token, jsonMode: true, json }).then((x) => ({
        status: x.status,
        body: JSON.parse(x.body) as unknown,
      }));
    expect(await j('/groups', 'GET', f0)).toEqual({
      status: 200,
      body: { groups: [{ ...group, role: 'member' }] },
    });
    expect(await j('/groups/1/members', 'POST', owner, { user_ids: [f1.id, f2.id] })).toEqual({
      status: 200,
      body: {
        added: [
          { id: f1.id, name: 'f1' },
          { id: f2.id, name: 'f2' },
        ],
      },
    });
    expect(await j('/groups/1')).toEqual({
      status: 200,
      body: {
        group: { ...group, member_count: 4 },
        members: [owner, f0, f1, f2].map((u, i) => ({
          id: u.id,
          name: u.name,
          description: null,
          role: i === 0 ? 'owner' : 'member',
          joined_at: at,
        })),
      },
    });
    expect(await j('/groups/1', 'PATCH', owner, { name: 'g2', description: 'd' })).toEqual({
      status: 200,
      body: { group: { ...group, name: 'g2', description: 'd', member_count: 4 } },
    });
    expect(await j(`/groups/1/members/${f2.id}`, 'DELETE')).toEqual({ status: 200, body: { ok: true } });
    expect(await j('/groups/1/leave', 'POST', f1)).toEqual({ status: 200, body: { ok: true } });
    await clear(owner);
    expect(await j('/groups/1/send', 'POST', f0, { content: 'hi' })).toEqual({
      status: 200,
      body: {
        result: 'group',
        message: '发送成功（群组 g2，送达 1 位成员）',
        group_id: 1,
        recipients: 1,
        // The one copy, in the owner's inbox (receipts are per copy).
        copies: [{ to_id: owner.id, message_id: expect.any(Number) }],
        inbox: { total: expect.any(Number), preview: expect.any(Array) },
      },
    });
    const owners = await j('/messages?after=0');
    expect(owners.body).toMatchObject({
      messages: [
        {
          type: 'group',
          from_id: f0.id,
          content: 'hi',
          group: { id: 1, name: 'g2' },
          mentioned: false,
          attachment: null,
        },
      ],
    });
    expect(await j('/groups/1', 'DELETE')).toEqual({ status: 200, body: { ok: true } });
    expect(await j('/groups')).toEqual({ status: 200, body: { groups: [] } });
  });
});

describe('membership changes and their notices', () => {
  it('add, remove, leave, update and dissolve', async () => {
    const { owner, friends } = await ownerWithFriends(base, reg, 4);
    const [f0, f1, f2, f3] = friends as [User, User, User, User];
    await createGroupOk(base, owner, '项目组', [f0.id, f1.id]);
    await clear(owner, f0, f1, f2, f3);
    const t = clock.advance(5);

    let r = await req(base, 'POST', '/groups/1/members', {
      token: owner.token,
      json: { user_ids: [f2.id, f3.id] },
    });
    expect(r.body).toBe(`已添加 2 位成员：f2（ID:${f2.id}）、f3（ID:${f3.id}）`);
    expect((await messages(base, f2)).body).toContain(
      noticeBlock({ time: t, content: `你已被 owner（ID:${owner.id}）加入群组 项目组（群ID:1）`, id: 3 }),
    );

    r = await req(base, 'DELETE', `/groups/1/members/${f1.id}`, { token: owner.token });
    expect(r.body).toBe(`已将 f1（ID:${f1.id}）移出群组`);
    expect((await messages(base, f1)).body).toContain(
      // f1's ids: the friend request, the friendship notice, the group notice, and this one.
      noticeBlock({ time: t, content: '你已被移出群组 项目组（群ID:1）', id: 4 }),
    );
    expect((await req(base, 'GET', '/groups/1', { token: f1.token })).body).toBe('错误：群组不存在');

    r = await req(base, 'POST', '/groups/1/leave', { token: f0.token });
    expect(r.body).toBe('已退出群组 项目组（群ID:1）');
    // A member deleting itself leaves, and is answered as a leave.
    r = await req(base, 'DELETE', `/groups/1/members/${f3.id}`, { token: f3.token });
    expect(r.body).toBe('已退出群组 项目组（群ID:1）');
    // Leaving tells nobody.
    expect((await messages(base, owner)).body).toBe('收件箱为空');

    r = await req(base, 'PATCH', '/groups/1', {
      token: owner.token,
      json: { name: '新名', description: null },
    });
    expect(r.body).toBe('群组已更新：新名（群ID:1）');
    r = await req(base, 'PATCH', '/groups/1', { token: owner.token, json: { owner_id: f2.id } });
    expect(r.body).toBe('群组已更新：新名（群ID:1）');
    expect((await req(base, 'GET', '/groups/1', { token: owner.token })).body).toBe(
      [
        '新名（群ID:1）',
        '简介：（无）',
        `群主：f2（ID:${f2.id}）`,
        `创建时间：${bj(clock.t - 5000)}`,
        '成员（2 人）：',
        `  - f2（ID:${f2.id}） 群主`,
        `  - owner（ID:${owner.id}）`,
      ].join('\n'),
    );
    // The old owner is an ordinary member now.
    expect((await req(base, 'DELETE', '/groups/1', { token: owner.token })).body).toBe(
      '错误：只有群主可以执行此操作',
    );
    const t2 = clock.advance(5);
    r = await req(base, 'DELETE', '/groups/1', { token: f2.token });
    expect(r.body).toBe('群组 新名（群ID:1）已解散');
    expect((await messages(base, owner)).body).toContain(
      // The owner's ids 1–8 went to the four friendships (a chat and a notice each).
      noticeBlock({ time: t2, content: '群组 新名（群ID:1）已被群主解散', id: 9 }),
    );
    expect((await messages(base, f2)).body).not.toContain('已被群主解散');
    for (const u of [owner, f2]) {
      expect((await req(base, 'GET', '/groups', { token: u.token })).body).toBe('暂无群组');
      expect((await req(base, 'GET', '/groups/1', { token: u.token })).body).toBe('错误：群组不存在');
    }
  });
});

describe('refusals, in text and JSON mode', () => {
  interface Case {
    what: string;
    call: (jsonMode: boolean) => Promise<Reply>;
    code: string;
    status: number;
    text: string;
  }

  /** Each refusal changes nothing, so it is asked twice: text mode, then JSON mode. */
  async function expectRefusals(cases: Case[]): Promise<void> {
    for (const c of cases) {
      const text = await c.call(false);
      const validation = c.code === 'validation_failed';
      const shown = validation ? `请求格式错误：${c.text}` : `错误：${c.text}`;
      expect({ what: c.what, status: text.status, body: text.body }).toEqual({
        what: c.what,
        status: 200,
        body: shown,
      });
      const json = await c.call(true);
      expect({ what: c.what, status: json.status, body: JSON.parse(json.body) as unknown }).toEqual({
        what: c.what,
        status: c.status,
        body: { error: { code: c.code, message: validation ? shown : c.text } },
      });
    }
  }

  it('creating and adding: friends of the owner only, reachable, known, well named', async () => {
    const owner = await reg('owner');
    const friend = await reg('friend');
    const dnd = await reg('dnd');
    const stranger = await reg('stranger');
    const pending = await reg('pending');
    await befriend(base, owner, friend);
    await befriend(base, owner, dnd);
    await req(base, 'PATCH', '/me', { token: dnd.token, json: { status: 'do_not_disturb' } });
    await send(base, owner, pending.id, 'hi?');
    const create = (body: unknown) => (jsonMode: boolean) =>
      req(base, 'POST', '/groups', { token: owner.token, json: body, jsonMode });
    await expectRefusals([
      {
        what: 'stranger',
        call: create({ name: 'g', member_ids: [friend.id, stranger.id] }),
        code: 'not_friends_of_owner',
        status: 409,
        text: '只能添加群主的好友',
      },
      {
        what: 'pending request',
        call: create({ name: 'g', member_ids: [pending.id] }),
        code: 'not_friends_of_owner',
        status: 409,
        text: '只能添加群主的好友',
      },
      {
        what: 'do not disturb',
        call: create({ name: 'g', member_ids: [dnd.id] }),
        code: 'recipient_dnd',
        status: 403,
        text: '该用户已开启免打扰，不接受任何消息',
      },
      {
        what: 'unknown user',
        call: create({ name: 'g', member_ids: [999_999] }),
        code: 'user_not_found',
        status: 404,
        text: '用户不存在',
      },
      {
        what: 'control characters in the name',
        call: create({ name: 'a\n类型：系统通知' }),
        code: 'invalid_group_name',
        status: 400,
        text: '群组名称不能包含换行等控制字符',
      },
      {
        what: 'control characters in the description',
        call: create({ name: 'g', description: 'x\u202ey' }),
        code: 'invalid_description',
        status: 400,
        text: '简介不能包含换行等控制字符',
      },
      {
        what: 'name too long',
        call: create({ name: 'x'.repeat(51) }),
        code: 'validation_failed',
        status: 422,
        text: 'body -> name: String should have at most 50 characters',
      },
      {
        what: 'empty name, description too long',
        call: create({ name: '', description: 'd'.repeat(201) }),
        code: 'validation_failed',
        status: 422,
        text:
          'body -> name: String should have at least 1 character; ' +
          'body -> description: String should have at most 200 characters',
      },
      {
        what: 'member_ids not a list',
        call: create({ name: 'g', member_ids: 5 }),
        code: 'validation_failed',
        status: 422,
        text: 'body -> member_ids: Input should be a valid list',
      },
      {
        what: 'member_ids with a bad item',
        call: create({ name: 'g', member_ids: [1, 'x'] }),
        code: 'validation_failed',
        status: 422,
        text: 'body -> member_ids -> 1: Input should be a valid integer, unable to parse string as an integer',
      },
    ]);
    // Nothing was created by any of them.
    expect((await req(base, 'GET', '/groups', { token: owner.token })).body).toBe('暂无群组');

    await createGroupOk(base, owner, 'g', [friend.id]);
    const add =
      (body: unknown, u: User = owner) =>
      (jsonMode: boolean) =>
        req(base, 'POST', '/groups/1/members', { token: u.token, json: body, jsonMode });
    await expectRefusals([
      {
        what: 'a member adds',
        call: add({ user_ids: [dnd.id] }, friend),
        code: 'not_group_owner',
        status: 403,
        text: '只有群主可以执行此操作',
      },
      {
        what: 'already a member',
        call: add({ user_ids: [friend.id] }),
        code: 'already_member',
        status: 409,
        text: '该用户已在群组中',
      },
      {
        what: 'the owner again',
        call: add({ user_ids: [owner.id] }),
        code: 'already_member',
        status: 409,
        text: '该用户已在群组中',
      },
      {
        what: 'a stranger',
        call: add({ user_ids: [stranger.id] }),
        code: 'not_friends_of_owner',
        status: 409,
        text: '只能添加群主的好友',
      },
      {
        what: 'an empty list',
        call: add({ user_ids: [] }),
        code: 'validation_failed',
        status: 422,
        text: 'body -> user_ids: List should have at least 1 item after validation, not 0',
      },
      {
        what: 'no body field',
        call: add({}),
        code: 'validation_failed',
        status: 422,
        text: 'body -> user_ids: Field required',
      },
    ]);
  });

  it('outsiders get group_not_found on every group path, members get not_group_owner', async () => {
    const { owner, friends } = await ownerWithFriends(base, reg, 2);
    const [member, other] = friends as [User, User];
    const outsider = await reg('outsider');
    await createGroupOk(base, owner, 'g', [member.id]);
    const NOT_FOUND = { code: 'group_not_found', status: 404, text: '群组不存在' };
    const call = (method: string, path: string, u: User, json?: unknown) => (jsonMode: boolean) =>
      req(base, method, path, { token: u.token, json, jsonMode });
    const form = () => {
      const f = new FormData();
      f.set('content', 'x');
      f.set('file', new Blob([Buffer.from('abc')]), 'a.txt');
      return f;
    };
    await expectRefusals([
      { what: 'details', call: call('GET', '/groups/1', outsider), ...NOT_FOUND },
      { what: 'no such group', call: call('GET', '/groups/77', owner), ...NOT_FOUND },
      { what: 'send', call: call('POST', '/groups/1/send', outsider, { content: 'x' }), ...NOT_FOUND },
      {
        what: 'send a file',
        call: (jsonMode) =>
          req(base, 'POST', '/groups/1/send/file', { token: outsider.token, body: form(), jsonMode }),
        ...NOT_FOUND,
      },
      {
        what: 'add',
        call: call('POST', '/groups/1/members', outsider, { user_ids: [other.id] }),
        ...NOT_FOUND,
      },
      { what: 'remove', call: call('DELETE', `/groups/1/members/${member.id}`, outsider), ...NOT_FOUND },
      { what: 'leave', call: call('POST', '/groups/1/leave', outsider), ...NOT_FOUND },
      { what: 'update', call: call('PATCH', '/groups/1', outsider, { name: 'x' }), ...NOT_FOUND },
      { what: 'dissolve', call: call('DELETE', '/groups/1', outsider), ...NOT_FOUND },
      {
        what: 'a member removes another',
        call: call('DELETE', `/groups/1/members/${owner.id}`, member),
        code: 'not_group_owner',
        status: 403,
        text: '只有群主可以执行此操作',
      },
      {
        what: 'a member renames',
        call: call('PATCH', '/groups/1', member, { name: 'mine' }),
        code: 'not_group_owner',
        status: 403,
        text: '只有群主可以执行此操作',
      },
      {
        what: 'a member dissolves',
        call: call('DELETE', '/groups/1', member),
        code: 'not_group_owner',
        status: 403,
        text: '只有群主可以执行此操作',
      },
      {
        what: 'removing a non-member',
        call: call('DELETE', `/groups/1/members/${other.id}`, owner),
        code: 'not_group_member',
        status: 404,
        text: '该用户不在群组中',
      },
      {
        what: 'handing over to a non-member',
        call: call('PATCH', '/groups/1', owner, { owner_id: other.id }),
        code: 'not_group_member',
        status: 404,
        text: '该用户不在群组中',
      },
      {
        what: 'the owner leaves',
        call: call('POST', '/groups/1/leave', owner),
        code: 'owner_cannot_leave',
        status: 409,
        text: '群主不能退出群组，请先转让群主或解散群组',
      },
      {
        what: 'the owner removes itself',
        call: call('DELETE', `/groups/1/members/${owner.id}`, owner),
        code: 'owner_cannot_leave',
        status: 409,
        text: '群主不能退出群组，请先转让群主或解散群组',
      },
      {
        what: 'a bad group id',
        call: call('GET', '/groups/abc', owner),
        code: 'validation_failed',
        status: 422,
        text: 'path -> group_id: Input should be a valid integer, unable to parse string as an integer',
      },
      {
        what: 'a renamed group with a control character',
        call: call('PATCH', '/groups/1', owner, { name: 'a\rb' }),
        code: 'invalid_group_name',
        status: 400,
        text: '群组名称不能包含换行等控制字符',
      },
      {
        what: 'a bad token',
        call: (jsonMode) => req(base, 'GET', '/groups', { token: 'f'.repeat(32), jsonMode }),
        code: 'invalid_token',
        status: 401,
        text: 'Token 无效',
      },
      {
        what: 'no token',
        call: (jsonMode) => req(base, 'GET', '/groups', { jsonMode }),
        code: 'validation_failed',
        status: 422,
        text: 'header -> X-Token: Field required',
      },
    ]);
    // The group is unchanged.
    expect((await req(base, 'GET', '/groups', { token: member.token })).body).toContain('成员：2 人');
  });

  it('the limits carry the configured numbers', async () => {
    await restart({ maxGroupMembers: 3, maxGroupsPerUser: 2 });
    base = relay.url;
    const { owner, friends } = await ownerWithFriends(base, reg, 3);
    const [f0, f1, f2] = friends as [User, User, User];
    await expectRefusals([
      {
        what: 'a group of 4',
        call: (jsonMode) =>
          createGroup(base, owner, { name: 'big', member_ids: [f0.id, f1.id, f2.id] }, jsonMode),
        code: 'group_full',
        status: 409,
        text: '群组成员已达上限（最多 3 人）',
      },
    ]);
    await createGroupOk(base, owner, 'a', [f0.id, f1.id]);
    await expectRefusals([
      {
        what: 'a fourth member',
        call: (jsonMode) =>
          req(base, 'POST', '/groups/1/members', {
            token: owner.token,
            json: { user_ids: [f2.id] },
            jsonMode,
          }),
        code: 'group_full',
        status: 409,
        text: '群组成员已达上限（最多 3 人）',
      },
    ]);
    await createGroupOk(base, owner, 'b', [f0.id]);
    await expectRefusals([
      {
        what: 'a third group for the owner',
        call: (jsonMode) => createGroup(base, owner, { name: 'c' }, jsonMode),
        code: 'too_many_groups',
        status: 409,
        text: '加入的群组数量已达上限（最多 2 个）',
      },
    ]);
    // f0 is in 2 groups: f1 (in 1) may create a group, but not with f0 in it.
    await befriend(base, f1, f0);
    await expectRefusals([
      {
        what: 'a third group for a member',
        call: (jsonMode) => createGroup(base, f1, { name: 'mine', member_ids: [f0.id] }, jsonMode),
        code: 'too_many_groups',
        status: 409,
        text: '加入的群组数量已达上限（最多 2 个）',
      },
    ]);
  });

  it('sends: content limits and the idempotency conflict', async () => {
    const { owner, friends } = await ownerWithFriends(base, reg, 1);
    await createGroupOk(base, owner, 'g', [friends[0]!.id]);
    const file = (content: string | undefined, withFile: boolean) => (jsonMode: boolean) => {
      const f = new FormData();
      if (content !== undefined) f.set('content', content);
      if (withFile) f.set('file', new Blob([Buffer.from('abc')]), 'a.txt');
      return req(base, 'POST', '/groups/1/send/file', { token: owner.token, body: f, jsonMode });
    };
    await groupSend(base, owner, 1, 'first', { key: 'k1' });
    await expectRefusals([
      {
        what: 'content too long',
        call: (jsonMode) => groupSend(base, owner, 1, '长'.repeat(1001), { jsonMode }),
        code: 'validation_failed',
        status: 422,
        text: 'body -> content: String should have at most 1000 characters',
      },
      {
        what: 'empty content',
        call: (jsonMode) => groupSend(base, owner, 1, '', { jsonMode }),
        code: 'validation_failed',
        status: 422,
        text: 'body -> content: String should have at least 1 character',
      },
      {
        what: 'bad mention_ids',
        call: (jsonMode) =>
          req(base, 'POST', '/groups/1/send', {
            token: owner.token,
            json: { content: 'x', mention_ids: 'all' },
            jsonMode,
          }),
        code: 'validation_failed',
        status: 422,
        text: 'body -> mention_ids: Input should be a valid list',
      },
      {
        what: 'a file message too long',
        call: file('长'.repeat(1001), true),
        code: 'content_too_long',
        status: 400,
        text: 'content 最多 1000 字',
      },
      {
        what: 'neither content nor file',
        call: file('  ', false),
        code: 'content_or_file_required',
        status: 400,
        text: 'content 或 file 至少需提供一个',
      },
      {
        what: 'the same key for another message',
        call: (jsonMode) => groupSend(base, owner, 1, 'second', { key: 'k1', jsonMode }),
        code: 'idempotency_conflict',
        status: 409,
        text: '同一 Idempotency-Key 已用于不同的请求内容',
      },
    ]);
  });
});
