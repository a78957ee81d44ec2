// Black-box tests of the friendship state machine (docs/compat.md), the status rules with our W-13 fix,
// /friends, /block and /unblock, over HTTP only.

import { describe, expect, it } from 'vitest';
import {
  HEAVY,
  SEP,
  T0,
  acceptNotice,
  befriend,
  chatBlock,
  expectReply,
  expectSoftError,
  friendBlock,
  friendsText,
  inboxText,
  messageIds as messageIdsOf,
  messages,
  register,
  req,
  requestBlock,
  send,
  sendOk,
  stats,
  systemBlock,
  type Status,
  type User,
  relayPerTest,
} from './client.ts';

const REQUESTED = '发送成功（好友申请已发出，等待对方回复）';
const ACCEPTED = '发送成功（好友关系已建立）';
const ONE_MESSAGE = '好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。';
const FRIENDS_ONLY = '该用户仅接受好友消息';
const DND = '该用户已开启免打扰，不接受任何消息';
const ONLY_FRIENDS_BLOCK = '只能拉黑已建立好友关系的用户';
const NO_BLOCK = '未找到对该用户的拉黑记录';

const { clock, relay } = relayPerTest();

async function setStatus(u: User, status: Status): Promise<void> {
  const r = await req(relay.url, 'PATCH', '/me', { token: u.token, json: { status } });
  expect(r.body.startsWith('状态已更新为：')).toBe(true);
  u.status = status;
}

const friends = (u: User) => req(relay.url, 'GET', '/friends', { token: u.token });
const block = (u: User, id: number) => req(relay.url, 'POST', `/block/${id}`, { token: u.token });
const unblock = (u: User, id: number) => req(relay.url, 'POST', `/unblock/${id}`, { token: u.token });

describe('state machine (docs/compat.md)', () => {
  it('none → pending: a friend_request reaches the recipient, stats +1, nobody is a friend yet', async () => {
    const x = await register(relay.url, 'alice');
    const y = await register(relay.url, 'bob');
    expectReply(await send(relay.url, x, y.id, 'hi bob'), 200, REQUESTED);
    expect(await stats(relay.url)).toEqual({ users: 2, friendships: 0, messages: 1 });
    expectReply(await friends(x), 200, '暂无好友');
    expectReply(await friends(y), 200, '暂无好友');
    expectReply(
      await messages(relay.url, y),
      200,
      inboxText({ total: 1, blocks: [requestBlock({ time: T0, from: x, content: 'hi bob', id: 1 })] }),
    );
  });

  it('pending(X): X sending again hits the one-message rule, before any status check', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await sendOk(relay.url, x, y.id, 'first', REQUESTED);
    expectSoftError(await send(relay.url, x, y.id, 'second'), ONE_MESSAGE);
    await setStatus(y, 'do_not_disturb');
    expectSoftError(await send(relay.url, x, y.id, 'third'), ONE_MESSAGE);
    await setStatus(y, 'friends_only');
    expectSoftError(await send(relay.url, x, y.id, 'fourth'), ONE_MESSAGE);
    expect((await stats(relay.url)).messages).toBe(1);
  });

  it('pending(X) → accepted when Y replies: chat to X, a notice to each side with the real time, stats +3', async () => {
    const x = await register(relay.url, 'alice');
    const y = await register(relay.url, 'bob', { description: '个人助手' });
    await sendOk(relay.url, x, y.id, 'hi bob', REQUESTED);
    clock.advance(5);
    const r = await send(relay.url, y, x.id, 'hello alice');
    expect(r.body.split('\n')[0]).toBe(ACCEPTED);
    expect(await stats(relay.url)).toEqual({ users: 2, friendships: 1, messages: 4 });
    clock.advance(1);
    expectReply(
      await messages(relay.url, x),
      200,
      '收件箱共 2 条 | 本次读取并清除 2 条 | 剩余 0 条（已全部读取）\n' +
        `${HEAVY}\n` +
        '[1]\n' +
        '类型：聊天消息\n' +
        '时间：2026-03-09 10:00:05\n' +
        '发件人：bob（ID:2） | 个人助手\n' +
        '内容：hello alice\n' +
        '消息ID：1\n' +
        `${SEP}\n` +
        '[2]\n' +
        '类型：系统通知\n' +
        '时间：2026-03-09 10:00:05\n' +
        '内容：您与 bob（ID:2）已成功建立好友关系。（2026-03-09 10:00:05 北京时间）\n' +
        '消息ID：2\n' +
        `${HEAVY}`,
    );
    // The original request stays in Y's inbox; Y's notice names X.
    expectReply(
      await messages(relay.url, y),
      200,
      inboxText({
        total: 2,
        blocks: [
          requestBlock({ time: T0, from: x, content: 'hi bob', id: 1 }),
          systemBlock({ time: T0 + 5000, content: acceptNotice(x, T0 + 5000), id: 2 }),
        ],
      }),
    );
    clock.advance(1);
    // /friends: friendship time is the accept time; last activity is the friend's.
    expectReply(
      await friends(x),
      200,
      '共 1 位好友\n' +
        `${HEAVY}\n` +
        '[1] bob（ID:2）\n' +
        '    简介：个人助手\n' +
        '    好友建立时间：2026-03-09 10:00:05\n' +
        '    最后活跃：2026-03-09 10:00:06\n' +
        `${HEAVY}`,
    );
    expectReply(
      await friends(y),
      200,
      friendsText([friendBlock({ id: 1, name: 'alice', since: T0 + 5000, lastSeen: T0 + 7000 })]),
    );
  });

  it('accepted: either side chats, stats +1 each', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await befriend(relay.url, x, y);
    await messages(relay.url, x);
    await messages(relay.url, y);
    expectReply(await send(relay.url, x, y.id, 'one'), 200, '发送成功');
    await sendOk(relay.url, y, x.id, 'two'); // y's own preview shows 'one'
    await sendOk(relay.url, x, y.id, 'three');
    expect(await stats(relay.url)).toEqual({ users: 2, friendships: 1, messages: 7 });
    expectReply(
      await messages(relay.url, y),
      200,
      inboxText({
        total: 2,
        blocks: [
          chatBlock({ time: T0, from: x, content: 'one', id: 3 }),
          chatBlock({ time: T0, from: x, content: 'three', id: 4 }),
        ],
      }),
    );
  });

  it('/friends lists every accepted friendship with SEP between items', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y', { description: 'why' });
    const z = await register(relay.url, 'z');
    const w = await register(relay.url, 'w');
    await befriend(relay.url, x, y);
    clock.advance(3);
    await befriend(relay.url, z, x);
    await sendOk(relay.url, x, w.id, 'pending only', REQUESTED);
    clock.advance(1);
    expectReply(
      await friends(x),
      200,
      `共 2 位好友\n${HEAVY}\n` +
        `[1] ${friendBlock({ id: 2, name: 'y', description: 'why', since: T0, lastSeen: T0 })}\n${SEP}\n` +
        `[2] ${friendBlock({ id: 3, name: 'z', since: T0 + 3000, lastSeen: T0 + 3000 })}\n${HEAVY}`,
    );
    expectReply(await friends(w), 200, '暂无好友');
  });

  it('accepted → blocked: purges only the blocked user’s messages from the blocker’s inbox', async () => {
    const x = await register(relay.url, 'alice');
    const y = await register(relay.url, 'bob');
    const w = await register(relay.url, 'carol');
    await befriend(relay.url, x, y, 'hi', 'hello'); // x#1 chat, x#2 notice; y#1 request, y#2 notice
    await sendOk(relay.url, y, x.id, 'again'); // x#3
    await sendOk(relay.url, w, x.id, 'from carol', REQUESTED); // x#4
    await sendOk(relay.url, x, y.id, 'to bob'); // y#3
    expectReply(await block(x, y.id), 200, '已拉黑 bob（ID:2），其在你收件箱中的消息已清除');
    expect(await stats(relay.url)).toEqual({ users: 3, friendships: 0, messages: 7 });
    expectReply(
      await messages(relay.url, x),
      200,
      inboxText({
        total: 2,
        blocks: [
          systemBlock({ time: T0, content: acceptNotice(y, T0), id: 2 }),
          requestBlock({ time: T0, from: w, content: 'from carol', id: 4 }),
        ],
      }),
    );
    // What the blocker sent stays in the blocked user's inbox.
    expectReply(
      await messages(relay.url, y),
      200,
      inboxText({
        total: 3,
        blocks: [
          requestBlock({ time: T0, from: x, content: 'hi', id: 1 }),
          systemBlock({ time: T0, content: acceptNotice(x, T0), id: 2 }),
          chatBlock({ time: T0, from: x, content: 'to bob', id: 3 }),
        ],
      }),
    );
    expectReply(await friends(x), 200, '暂无好友');
    expectReply(await friends(y), 200, '暂无好友');
  });

  it('blocked: refusals for each side; the blocked side cannot block or unblock', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await befriend(relay.url, x, y);
    await block(x, y.id);
    expectSoftError(await send(relay.url, y, x.id, 'let me in'), '对方已将你拉黑');
    expectSoftError(await send(relay.url, x, y.id, 'oops'), '你已拉黑该用户，请先解除拉黑');
    expectSoftError(await block(y, x.id), ONLY_FRIENDS_BLOCK);
    expectSoftError(await unblock(y, x.id), NO_BLOCK);
    expectSoftError(await block(x, y.id), ONLY_FRIENDS_BLOCK);
    expect((await stats(relay.url)).messages).toBe(4);
  });

  it('blocked → none on unblock: strangers again, the one-message rule applies again', async () => {
    const x = await register(relay.url, 'alice');
    const y = await register(relay.url, 'bob');
    await befriend(relay.url, x, y);
    await block(x, y.id);
    expectReply(
      await unblock(x, y.id),
      200,
      '已解除对 bob（ID:2）的拉黑，双方好友关系已清除，可重新发消息建立联系',
    );
    expectSoftError(await unblock(x, y.id), NO_BLOCK);
    expectReply(await friends(x), 200, '暂无好友');
    await messages(relay.url, y);
    // The blocked side may now start over.
    expectReply(await send(relay.url, y, x.id, 'friends again?'), 200, REQUESTED);
    expectSoftError(await send(relay.url, y, x.id, 'please'), ONE_MESSAGE);
    expect((await send(relay.url, x, y.id, 'ok')).body.split('\n')[0]).toBe(ACCEPTED);
    expect((await stats(relay.url)).friendships).toBe(1);
  });

  it('after unblock the blocker may also start over', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await befriend(relay.url, x, y);
    await block(y, x.id);
    await unblock(y, x.id);
    await messages(relay.url, x);
    await messages(relay.url, y);
    expectReply(await send(relay.url, y, x.id, 'hi again'), 200, REQUESTED);
    expectSoftError(await send(relay.url, y, x.id, 'hi again'), ONE_MESSAGE);
  });

  it('block errors: self, unknown user, stranger, pending (either side)', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    const z = await register(relay.url, 'z');
    expectSoftError(await block(x, x.id), '不能拉黑自己');
    expectSoftError(await block(x, 999), '用户不存在');
    expectSoftError(await block(x, z.id), ONLY_FRIENDS_BLOCK);
    await sendOk(relay.url, x, y.id, 'hi', REQUESTED);
    expectSoftError(await block(y, x.id), ONLY_FRIENDS_BLOCK);
    expectSoftError(await block(x, y.id), ONLY_FRIENDS_BLOCK);
    expectReply(
      await req(relay.url, 'POST', '/block/abc', { token: x.token }),
      200,
      '请求格式错误：path -> user_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });

  it('unblock errors: unknown user, stranger, pending, accepted friend', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    const z = await register(relay.url, 'z');
    const w = await register(relay.url, 'w');
    expectSoftError(await unblock(x, 999), NO_BLOCK);
    expectSoftError(await unblock(x, z.id), NO_BLOCK);
    await sendOk(relay.url, x, y.id, 'hi', REQUESTED);
    expectSoftError(await unblock(x, y.id), NO_BLOCK);
    expectSoftError(await unblock(y, x.id), NO_BLOCK);
    await befriend(relay.url, x, w);
    expectSoftError(await unblock(x, w.id), NO_BLOCK);
    expectReply(
      await req(relay.url, 'POST', '/unblock/abc', { token: x.token }),
      200,
      '请求格式错误：path -> user_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });
});

describe('concurrent first messages', () => {
  it('crossing first messages end as one request and one accept', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    const [rx, ry] = await Promise.all([send(relay.url, x, y.id, 'hi y'), send(relay.url, y, x.id, 'hi x')]);
    const firsts = [rx.body.split('\n')[0], ry.body.split('\n')[0]].sort();
    expect(firsts).toEqual([REQUESTED, ACCEPTED].sort());
    expect(await stats(relay.url)).toEqual({ users: 2, friendships: 1, messages: 4 });
    const ix = messageIdsOf((await messages(relay.url, x)).body);
    const iy = messageIdsOf((await messages(relay.url, y)).body);
    expect([ix, iy].sort()).toEqual([
      [1, 2],
      [1, 2],
    ]);
  });

  it('a duplicated concurrent first message is refused by the one-message rule, never silently dropped', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    const replies = await Promise.all([1, 2, 3].map((i) => send(relay.url, x, y.id, `hi ${i}`)));
    const bodies = replies.map((r) => r.body).sort();
    expect(bodies).toEqual([REQUESTED, `错误：${ONE_MESSAGE}`, `错误：${ONE_MESSAGE}`].sort());
    expect((await stats(relay.url)).messages).toBe(1);
    expect(messageIdsOf((await messages(relay.url, y)).body)).toEqual([1]);
  });
});

describe('status rules (docs/compat.md with the W-13 fix)', () => {
  it('open: strangers and friends can message', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await befriend(relay.url, x, y);
    expectReply(await send(relay.url, await register(relay.url, 'z'), y.id, 'hi'), 200, REQUESTED);
    expect((await send(relay.url, x, y.id, 'hi')).body.split('\n')[0]).toBe('发送成功');
  });

  it('friends_only refuses strangers', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y', { status: 'friends_only' });
    expectSoftError(await send(relay.url, x, y.id, 'hi'), FRIENDS_ONLY);
    expectReply(await messages(relay.url, y), 200, '收件箱为空');
    expect((await stats(relay.url)).messages).toBe(0);
  });

  it('W-13: friends_only still accepts messages from accepted friends (the reference refuses them)', async () => {
    const x = await register(relay.url, 'alice');
    const y = await register(relay.url, 'bob');
    await befriend(relay.url, x, y);
    await messages(relay.url, y);
    await setStatus(y, 'friends_only');
    await sendOk(relay.url, x, y.id, 'still friends');
    expectReply(
      await messages(relay.url, y),
      200,
      inboxText({ total: 1, blocks: [chatBlock({ time: T0, from: x, content: 'still friends', id: 3 })] }),
    );
    // Strangers are still refused.
    const z = await register(relay.url, 'zed');
    expectSoftError(await send(relay.url, z, y.id, 'hi'), FRIENDS_ONLY);
  });

  it('do_not_disturb refuses strangers and friends alike', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    const z = await register(relay.url, 'z');
    await befriend(relay.url, x, y);
    await setStatus(y, 'do_not_disturb');
    expectSoftError(await send(relay.url, x, y.id, 'friend'), DND);
    expectSoftError(await send(relay.url, z, y.id, 'stranger'), DND);
    expect((await stats(relay.url)).messages).toBe(4);
  });

  it('W-13: a reply to a friends_only initiator’s own request is accepted (the reference refuses it)', async () => {
    const x = await register(relay.url, 'alice', { status: 'friends_only' });
    const y = await register(relay.url, 'bob');
    clock.advance(1);
    expectReply(await send(relay.url, x, y.id, 'hi bob'), 200, REQUESTED);
    clock.advance(1);
    expect((await send(relay.url, y, x.id, 'hi alice')).body.split('\n')[0]).toBe(ACCEPTED);
    expect(await stats(relay.url)).toEqual({ users: 2, friendships: 1, messages: 4 });
    expectReply(
      await messages(relay.url, x),
      200,
      inboxText({
        total: 2,
        blocks: [
          chatBlock({ time: T0 + 2000, from: y, content: 'hi alice', id: 1 }),
          systemBlock({ time: T0 + 2000, content: acceptNotice(y, T0 + 2000), id: 2 }),
        ],
      }),
    );
    // Now friends: the friends_only user receives chats.
    await sendOk(relay.url, y, x.id, 'chat');
  });

  it('W-13: a reply to a do_not_disturb initiator’s own request is accepted (the reference refuses it)', async () => {
    const x = await register(relay.url, 'alice', { status: 'do_not_disturb' });
    const y = await register(relay.url, 'bob');
    expectReply(await send(relay.url, x, y.id, 'hi bob'), 200, REQUESTED);
    expect((await send(relay.url, y, x.id, 'hi alice')).body.split('\n')[0]).toBe(ACCEPTED);
    expect(await stats(relay.url)).toEqual({ users: 2, friendships: 1, messages: 4 });
    expectReply(
      await messages(relay.url, x),
      200,
      inboxText({
        total: 2,
        blocks: [
          chatBlock({ time: T0, from: y, content: 'hi alice', id: 1 }),
          systemBlock({ time: T0, content: acceptNotice(y, T0), id: 2 }),
        ],
      }),
    );
    // Once friends, do_not_disturb still refuses everyone.
    expectSoftError(await send(relay.url, y, x.id, 'chat'), DND);
  });

  it('W-13: the reply is accepted when the initiator switched to friends_only/do_not_disturb after asking', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    const z = await register(relay.url, 'z');
    await sendOk(relay.url, x, y.id, 'hi', REQUESTED);
    await sendOk(relay.url, x, z.id, 'hi', REQUESTED);
    await setStatus(x, 'friends_only');
    expect((await send(relay.url, y, x.id, 'yes')).body.split('\n')[0]).toBe(ACCEPTED);
    await setStatus(x, 'do_not_disturb');
    expect((await send(relay.url, z, x.id, 'yes')).body.split('\n')[0]).toBe(ACCEPTED);
    expect((await stats(relay.url)).friendships).toBe(2);
  });

  it('a pending request to a user who then turns friends_only/do_not_disturb cannot be repeated', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await sendOk(relay.url, x, y.id, 'hi', REQUESTED);
    await setStatus(y, 'friends_only');
    expectSoftError(await send(relay.url, x, y.id, 'again'), ONE_MESSAGE);
    // The recipient can still reply, which accepts.
    expect((await send(relay.url, y, x.id, 'ok')).body.split('\n')[0]).toBe(ACCEPTED);
  });

  it('a do_not_disturb recipient of a request can still reply, which accepts', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await sendOk(relay.url, x, y.id, 'hi', REQUESTED);
    await setStatus(y, 'do_not_disturb');
    expect((await send(relay.url, y, x.id, 'hello')).body.split('\n')[0]).toBe(ACCEPTED);
    expect((await stats(relay.url)).friendships).toBe(1);
    expectSoftError(await send(relay.url, x, y.id, 'chat'), DND);
  });

  it('status does not limit the user’s own sending', async () => {
    const x = await register(relay.url, 'x', { status: 'do_not_disturb' });
    const y = await register(relay.url, 'y');
    const z = await register(relay.url, 'z', { status: 'friends_only' });
    expectReply(await send(relay.url, x, y.id, 'hi'), 200, REQUESTED);
    expectReply(await send(relay.url, z, y.id, 'hi'), 200, REQUESTED);
  });

  it('a status change is immediate and leaves messages already in the inbox', async () => {
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    const z = await register(relay.url, 'z');
    await sendOk(relay.url, x, y.id, 'before', REQUESTED);
    await setStatus(y, 'do_not_disturb');
    expectSoftError(await send(relay.url, z, y.id, 'after'), DND);
    await setStatus(y, 'open');
    expectReply(await send(relay.url, z, y.id, 'now'), 200, REQUESTED);
    expectReply(
      await messages(relay.url, y),
      200,
      inboxText({
        total: 2,
        blocks: [
          requestBlock({ time: T0, from: x, content: 'before', id: 1 }),
          requestBlock({ time: T0, from: z, content: 'now', id: 2 }),
        ],
      }),
    );
  });
});
