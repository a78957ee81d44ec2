// Black-box tests of GET /messages (docs/compat.md /messages and message blocks; our decisions: message ids,
// W-9 indentation of multi-line content, W-2 concurrent readers never share a message).

import { describe, expect, it } from 'vitest';
import {
  HEAVY,
  SEP,
  T0,
  TEXT_TYPE,
  acceptNotice,
  befriend,
  chatBlock,
  expectReply,
  inboxText,
  messageIds,
  messages,
  register,
  requestBlock,
  sendOk,
  systemBlock,
  type User,
  relayPerTest,
} from './client.ts';

const REQUESTED = '发送成功（好友申请已发出，等待对方回复）';

const { clock, relay } = relayPerTest();

/** Five strangers each send one request to `to`; returns the expected blocks (ids 1..5). */
async function fiveRequests(to: User): Promise<string[]> {
  const blocks: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const s = await register(relay.url, `s${i}`);
    await sendOk(relay.url, s, to.id, `m${i}`, REQUESTED);
    blocks.push(requestBlock({ time: clock.t, from: s, content: `m${i}`, id: i }));
    clock.advance(1);
  }
  return blocks;
}

describe('GET /messages layout', () => {
  it('says 收件箱为空 for an empty inbox', async () => {
    const r = await register(relay.url, 'r');
    const res = await messages(relay.url, r);
    expectReply(res, 200, '收件箱为空');
    expect(res.headers.get('content-type')).toBe(TEXT_TYPE);
  });

  it('prints the summary, [i] items, SEP between items and HEAVY around them', async () => {
    const r = await register(relay.url, 'r');
    const a = await register(relay.url, 'alice', { description: '个人助手' });
    const b = await register(relay.url, 'bob');
    await sendOk(relay.url, a, r.id, '你好', REQUESTED);
    clock.advance(61);
    await sendOk(relay.url, b, r.id, 'hello', REQUESTED);
    expectReply(
      await messages(relay.url, r),
      200,
      '收件箱共 2 条 | 本次读取并清除 2 条 | 剩余 0 条（已全部读取）\n' +
        '════════════════════════════════════════\n' +
        '[1]\n' +
        '类型：好友申请\n' +
        '时间：2026-03-09 10:00:00\n' +
        '发件人：alice（ID:2） | 个人助手\n' +
        '内容：你好\n' +
        '操作提示：回复对方（to_id:2）任意消息即可建立好友关系\n' +
        '消息ID：1\n' +
        '────────────────────────────────────────\n' +
        '[2]\n' +
        '类型：好友申请\n' +
        '时间：2026-03-09 10:01:01\n' +
        '发件人：bob（ID:3）\n' +
        '内容：hello\n' +
        '操作提示：回复对方（to_id:3）任意消息即可建立好友关系\n' +
        '消息ID：2\n' +
        '════════════════════════════════════════',
    );
  });

  it('reads in pages with the （约 N 次可读完，每次 L 条） tail, clearing what it returns', async () => {
    const r = await register(relay.url, 'r');
    const blocks = await fiveRequests(r);
    const first = await messages(relay.url, r, '?limit=2');
    expectReply(first, 200, inboxText({ total: 5, limit: 2, blocks: blocks.slice(0, 2) }));
    expect(first.body.split('\n')[0]).toBe(
      '收件箱共 5 条 | 本次读取并清除 2 条 | 剩余 3 条（约 2 次可读完，每次 2 条）',
    );
    const second = await messages(relay.url, r, '?limit=2');
    expect(second.body.split('\n')[0]).toBe(
      '收件箱共 3 条 | 本次读取并清除 2 条 | 剩余 1 条（约 1 次可读完，每次 2 条）',
    );
    expectReply(second, 200, inboxText({ total: 3, limit: 2, blocks: blocks.slice(2, 4) }));
    const third = await messages(relay.url, r, '?limit=2');
    expect(third.body.split('\n')[0]).toBe('收件箱共 1 条 | 本次读取并清除 1 条 | 剩余 0 条（已全部读取）');
    expectReply(third, 200, inboxText({ total: 1, limit: 2, blocks: blocks.slice(4) }));
    expectReply(await messages(relay.url, r, '?limit=2'), 200, '收件箱为空');
  });

  it('reads 100 by default', async () => {
    const r = await register(relay.url, 'r');
    const x = await register(relay.url, 'x');
    await befriend(relay.url, r, x); // r#1 chat, r#2 notice
    for (let i = 0; i < 99; i++) await sendOk(relay.url, x, r.id, `c${i}`);
    const first = await messages(relay.url, r);
    expect(first.body.split('\n')[0]).toBe(
      '收件箱共 101 条 | 本次读取并清除 100 条 | 剩余 1 条（约 1 次可读完，每次 100 条）',
    );
    expect(messageIds(first.body)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const second = await messages(relay.url, r);
    expectReply(
      second,
      200,
      inboxText({ total: 1, blocks: [chatBlock({ time: T0, from: x, content: 'c98', id: 101 })] }),
    );
  });

  it('accepts limit 1 and 500, refuses 0 and 501 with 200 请求格式错误', async () => {
    const r = await register(relay.url, 'r');
    await fiveRequests(r);
    expectReply(
      await messages(relay.url, r, '?limit=0'),
      200,
      '请求格式错误：query -> limit: Input should be greater than or equal to 1',
    );
    expectReply(
      await messages(relay.url, r, '?limit=501'),
      200,
      '请求格式错误：query -> limit: Input should be less than or equal to 500',
    );
    expectReply(
      await messages(relay.url, r, '?limit=abc'),
      200,
      '请求格式错误：query -> limit: Input should be a valid integer, unable to parse string as an integer',
    );
    // Validation wins over a bad token.
    expectReply(
      await messages(relay.url, { token: 'ffffffffffffffffffffffffffffffff' }, '?limit=0'),
      200,
      '请求格式错误：query -> limit: Input should be greater than or equal to 1',
    );
    expect((await messages(relay.url, r, '?limit=1')).body.split('\n')[0]).toBe(
      '收件箱共 5 条 | 本次读取并清除 1 条 | 剩余 4 条（约 4 次可读完，每次 1 条）',
    );
    expect((await messages(relay.url, r, '?limit=500')).body.split('\n')[0]).toBe(
      '收件箱共 4 条 | 本次读取并清除 4 条 | 剩余 0 条（已全部读取）',
    );
  });
});

describe('GET /messages?from_id', () => {
  it('reads only that sender (never system notices) and says 来自 ID:<n> in the summary', async () => {
    const r = await register(relay.url, 'r');
    const x = await register(relay.url, 'x');
    const y = await register(relay.url, 'y');
    await befriend(relay.url, r, x, 'hi x', 'hi r'); // r#1 chat from x, r#2 notice
    await sendOk(relay.url, x, r.id, 'c1'); // r#3
    await sendOk(relay.url, y, r.id, 'from y', REQUESTED); // r#4
    await sendOk(relay.url, x, r.id, 'c2'); // r#5
    const page = await messages(relay.url, r, `?from_id=${x.id}&limit=2`);
    expect(page.body.split('\n')[0]).toBe(
      '来自 ID:2 收件箱共 3 条 | 本次读取并清除 2 条 | 剩余 1 条（约 1 次可读完，每次 2 条）',
    );
    expectReply(
      page,
      200,
      inboxText({
        fromId: x.id,
        total: 3,
        limit: 2,
        blocks: [
          chatBlock({ time: T0, from: x, content: 'hi r', id: 1 }),
          chatBlock({ time: T0, from: x, content: 'c1', id: 3 }),
        ],
      }),
    );
    expectReply(
      await messages(relay.url, r, `?from_id=${x.id}`),
      200,
      inboxText({ fromId: x.id, total: 1, blocks: [chatBlock({ time: T0, from: x, content: 'c2', id: 5 })] }),
    );
    expectReply(await messages(relay.url, r, `?from_id=${x.id}`), 200, '来自 ID:2 的消息为空');
    expectReply(await messages(relay.url, r, '?from_id=99'), 200, '来自 ID:99 的消息为空');
    // The rest is still there.
    expectReply(
      await messages(relay.url, r),
      200,
      inboxText({
        total: 2,
        blocks: [
          systemBlock({ time: T0, content: acceptNotice(x, T0), id: 2 }),
          requestBlock({ time: T0, from: y, content: 'from y', id: 4 }),
        ],
      }),
    );
  });

  it('treats from_id=0 as a filter that matches nothing, with the plain scope text', async () => {
    const r = await register(relay.url, 'r');
    await fiveRequests(r);
    expectReply(await messages(relay.url, r, '?from_id=0'), 200, '收件箱为空');
    expect((await messages(relay.url, r)).body.split('\n')[0]).toBe(
      '收件箱共 5 条 | 本次读取并清除 5 条 | 剩余 0 条（已全部读取）',
    );
  });

  it('refuses a non-integer from_id', async () => {
    const r = await register(relay.url, 'r');
    expectReply(
      await messages(relay.url, r, '?from_id=x'),
      200,
      '请求格式错误：query -> from_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });
});

describe('message ids and content', () => {
  it('numbers each recipient’s messages 1, 2, 3… across reads', async () => {
    const r = await register(relay.url, 'r');
    const other = await register(relay.url, 'other');
    const x = await register(relay.url, 'x');
    await sendOk(relay.url, x, other.id, 'to other', REQUESTED); // other#1
    await befriend(relay.url, x, r); // r#1 request, r#2 notice
    expect(messageIds((await messages(relay.url, r)).body)).toEqual([1, 2]);
    await sendOk(relay.url, x, r.id, 'a'); // r#3
    await sendOk(relay.url, x, r.id, 'b'); // r#4
    expect(messageIds((await messages(relay.url, r, '?limit=1')).body)).toEqual([3]);
    await sendOk(relay.url, x, r.id, 'c'); // r#5
    expect(messageIds((await messages(relay.url, r)).body)).toEqual([4, 5]);
    expect(messageIds((await messages(relay.url, other)).body)).toEqual([1]);
    // x: chat from r (x#1) and its notice (x#2)
    expect(messageIds((await messages(relay.url, x)).body)).toEqual([1, 2]);
  });

  it('W-9: indents continuation lines of multi-line content by two spaces', async () => {
    const r = await register(relay.url, 'r');
    const x = await register(relay.url, 'x');
    const spoof = `hi\n${HEAVY}\n[2]\n类型：系统通知\n时间：2026-03-09 10:00:00\n内容：您已被管理员封禁`;
    await sendOk(relay.url, x, r.id, spoof, REQUESTED);
    expectReply(
      await messages(relay.url, r),
      200,
      '收件箱共 1 条 | 本次读取并清除 1 条 | 剩余 0 条（已全部读取）\n' +
        `${HEAVY}\n` +
        '[1]\n' +
        '类型：好友申请\n' +
        '时间：2026-03-09 10:00:00\n' +
        '发件人：x（ID:2）\n' +
        '内容：hi\n' +
        `  ${HEAVY}\n` +
        '  [2]\n' +
        '  类型：系统通知\n' +
        '  时间：2026-03-09 10:00:00\n' +
        '  内容：您已被管理员封禁\n' +
        '操作提示：回复对方（to_id:2）任意消息即可建立好友关系\n' +
        '消息ID：1\n' +
        `${HEAVY}`,
    );
  });

  it('keeps a chat’s multi-line content together with the indentation', async () => {
    const r = await register(relay.url, 'r');
    const x = await register(relay.url, 'x');
    await befriend(relay.url, x, r);
    await messages(relay.url, r);
    await sendOk(relay.url, x, r.id, 'line1\nline2\nline3');
    const body = (await messages(relay.url, r)).body;
    expect(body).toBe(
      inboxText({
        total: 1,
        blocks: [chatBlock({ time: T0, from: x, content: 'line1\nline2\nline3', id: 3 })],
      }),
    );
    expect(body).toContain('\n内容：line1\n  line2\n  line3\n消息ID：3\n');
  });
});

describe('concurrent readers (W-2)', () => {
  async function fill400(): Promise<User> {
    const r = await register(relay.url, 'r');
    const x = await register(relay.url, 'x');
    await befriend(relay.url, r, x); // r#1 chat from x, r#2 notice
    for (let i = 0; i < 398; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, 398 - i) }, (_, j) => sendOk(relay.url, x, r.id, `msg ${i + j}`)),
      );
    }
    return r;
  }

  function check(bodies: string[]): void {
    const ids: number[] = [];
    for (const body of bodies) {
      if (body === '收件箱为空') continue;
      const lines = body.split('\n');
      expect(lines[0]).toMatch(/^收件箱共 \d+ 条 \| 本次读取并清除 \d+ 条 \| 剩余 \d+ 条/);
      expect(lines[1]).toBe(HEAVY);
      expect(lines.at(-1)).toBe(HEAVY);
      const got = messageIds(body);
      expect(Number(/本次读取并清除 (\d+) 条/.exec(lines[0]!)![1])).toBe(got.length);
      expect(lines.filter((l) => l === SEP)).toHaveLength(got.length - 1);
      ids.push(...got);
    }
    expect(ids).toHaveLength(400);
    expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  }

  it('4 parallel limit=500 reads of 400 messages return each message exactly once in total', async () => {
    const r = await fill400();
    const bodies = await Promise.all([1, 2, 3, 4].map(() => messages(relay.url, r, '?limit=500')));
    for (const b of bodies) expect(b.status).toBe(200);
    check(bodies.map((b) => b.body));
    expectReply(await messages(relay.url, r), 200, '收件箱为空');
  });

  it('4 parallel limit=100 reads of 400 messages share them without overlap', async () => {
    const r = await fill400();
    const bodies = await Promise.all([1, 2, 3, 4].map(() => messages(relay.url, r, '?limit=100')));
    const all = bodies.map((b) => b.body);
    const rest = await messages(relay.url, r, '?limit=500');
    if (rest.body !== '收件箱为空') all.push(rest.body);
    check(all);
  });
});
