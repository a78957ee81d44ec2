// Black-box tests of POST /send and POST /send/file (docs/compat.md: /send, /send/file, soft errors;
// our decisions: message ids, W-16 preview layout, W-20 persisted sends, real file size limit text).

import { describe, expect, it } from 'vitest';
import { startRelay } from '../helpers/relay.ts';
import {
  HEAVY,
  SEP,
  T0,
  TEXT_TYPE,
  befriend,
  bj,
  chatBlock,
  expectReply,
  expectSoftError,
  inboxText,
  messages,
  register,
  req,
  requestBlock,
  send,
  sendOk,
  sendReplyText,
  stats,
  type User,
  relayPerTest,
} from './client.ts';

const REQUESTED = '发送成功（好友申请已发出，等待对方回复）';
const ACCEPTED = '发送成功（好友关系已建立）';

const { clock, relay } = relayPerTest();

async function users(...names: string[]): Promise<User[]> {
  const out: User[] = [];
  for (const n of names) out.push(await register(relay.url, n));
  return out;
}

describe('POST /send outcomes', () => {
  it('a first message to a stranger is a friend request', async () => {
    const [a, b] = await users('alice', 'bob');
    const r = await send(relay.url, a!, b!.id, 'hi bob');
    expectReply(r, 200, '发送成功（好友申请已发出，等待对方回复）');
    expect(r.headers.get('content-type')).toBe(TEXT_TYPE);
    expectReply(
      await messages(relay.url, b!),
      200,
      '收件箱共 1 条 | 本次读取并清除 1 条 | 剩余 0 条（已全部读取）\n' +
        '════════════════════════════════════════\n' +
        '[1]\n' +
        '类型：好友申请\n' +
        '时间：2026-03-09 10:00:00\n' +
        '发件人：alice（ID:1）\n' +
        '内容：hi bob\n' +
        '操作提示：回复对方（to_id:1）任意消息即可建立好友关系\n' +
        '消息ID：1\n' +
        '════════════════════════════════════════',
    );
  });

  it('a reply accepts and later messages are chats', async () => {
    const [a, b] = await users('alice', 'bob');
    await sendOk(relay.url, a!, b!.id, 'hi', REQUESTED);
    await messages(relay.url, b!); // empty b's inbox so the reply has no preview of the request
    const reply = await send(relay.url, b!, a!.id, 'hello');
    expect(reply.status).toBe(200);
    expect(reply.body.split('\n')[0]).toBe(ACCEPTED);
    await messages(relay.url, a!);
    await messages(relay.url, b!);
    expectReply(await send(relay.url, a!, b!.id, 'chat 1'), 200, '发送成功');
    await sendOk(relay.url, b!, a!.id, 'chat 2'); // b's preview shows 'chat 1'
  });

  it('refuses in the spec order, each as HTTP 200 错误：…', async () => {
    const [a, b, c, fo, dnd] = await users('a', 'b', 'c', 'fo', 'dnd');
    await req(relay.url, 'PATCH', '/me', { token: fo!.token, json: { status: 'friends_only' } });
    await req(relay.url, 'PATCH', '/me', { token: dnd!.token, json: { status: 'do_not_disturb' } });
    // 1. self (even though the id exists), 2. unknown recipient
    expectSoftError(await send(relay.url, a!, a!.id, 'me'), '不能给自己发消息');
    expectSoftError(await send(relay.url, a!, 999, 'x'), '用户不存在');
    // 3. blocked, both ways
    await befriend(relay.url, a!, b!);
    expect((await req(relay.url, 'POST', `/block/${b!.id}`, { token: a!.token })).body).toBe(
      '已拉黑 b（ID:2），其在你收件箱中的消息已清除',
    );
    expectSoftError(await send(relay.url, b!, a!.id, 'x'), '对方已将你拉黑');
    expectSoftError(await send(relay.url, a!, b!.id, 'x'), '你已拉黑该用户，请先解除拉黑');
    // 4. one-message rule
    await sendOk(relay.url, a!, c!.id, 'first', REQUESTED);
    expectSoftError(
      await send(relay.url, a!, c!.id, 'second'),
      '好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。',
    );
    // 5. recipient status
    expectSoftError(await send(relay.url, a!, fo!.id, 'x'), '该用户仅接受好友消息');
    expectSoftError(await send(relay.url, a!, dnd!.id, 'x'), '该用户已开启免打扰，不接受任何消息');
  });

  it('checks the block before the recipient status', async () => {
    const [a, b] = await users('a', 'b');
    await befriend(relay.url, a!, b!);
    await req(relay.url, 'POST', `/block/${b!.id}`, { token: a!.token });
    await req(relay.url, 'PATCH', '/me', { token: a!.token, json: { status: 'do_not_disturb' } });
    expectSoftError(await send(relay.url, b!, a!.id, 'x'), '对方已将你拉黑');
  });

  it('refusals deliver nothing and count nothing', async () => {
    const [a, b, fo] = await users('a', 'b', 'fo');
    await req(relay.url, 'PATCH', '/me', { token: fo!.token, json: { status: 'friends_only' } });
    await sendOk(relay.url, a!, b!.id, 'one', REQUESTED);
    await send(relay.url, a!, b!.id, 'two');
    await send(relay.url, a!, fo!.id, 'x');
    await send(relay.url, a!, a!.id, 'x');
    expect((await stats(relay.url)).messages).toBe(1);
    expect((await messages(relay.url, b!)).body.split('\n')[0]).toBe(
      '收件箱共 1 条 | 本次读取并清除 1 条 | 剩余 0 条（已全部读取）',
    );
    expectReply(await messages(relay.url, fo!), 200, '收件箱为空');
  });
});

describe('POST /send validation', () => {
  it('accepts 1000 characters of content and refuses 1001', async () => {
    const [a, b] = await users('a', 'b');
    const long = '字'.repeat(1001);
    expectReply(
      await send(relay.url, a!, b!.id, long),
      200,
      '请求格式错误：body -> content: String should have at most 1000 characters',
    );
    const ok = '字'.repeat(1000);
    expectReply(await send(relay.url, a!, b!.id, ok), 200, REQUESTED);
    expect((await messages(relay.url, b!)).body).toContain(`\n内容：${ok}\n`);
  });

  it('counts content length in characters (code points), not UTF-16 units', async () => {
    const [a, b] = await users('a', 'b');
    expectReply(
      await send(relay.url, a!, b!.id, '😀'.repeat(1001)),
      200,
      '请求格式错误：body -> content: String should have at most 1000 characters',
    );
    expectReply(await send(relay.url, a!, b!.id, '😀'.repeat(1000)), 200, REQUESTED);
  });

  it('refuses empty content but accepts a single space (not trimmed)', async () => {
    const [a, b] = await users('a', 'b');
    expectReply(
      await send(relay.url, a!, b!.id, ''),
      200,
      '请求格式错误：body -> content: String should have at least 1 character',
    );
    expectReply(await send(relay.url, a!, b!.id, ' '), 200, REQUESTED);
    expectReply(
      await messages(relay.url, b!),
      200,
      inboxText({ total: 1, blocks: [requestBlock({ time: T0, from: a!, content: ' ', id: 1 })] }),
    );
  });

  it('refuses a missing or non-integer to_id', async () => {
    const [a] = await users('a');
    expectReply(
      await req(relay.url, 'POST', '/send', { token: a!.token, json: { content: 'x' } }),
      200,
      '请求格式错误：body -> to_id: Field required',
    );
    expectReply(
      await req(relay.url, 'POST', '/send', { token: a!.token, json: { to_id: 'abc', content: 'x' } }),
      200,
      '请求格式错误：body -> to_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });

  it('malformed JSON → 200 请求格式错误：body -> <offset>: JSON decode error', async () => {
    const [a] = await users('a');
    const r = await req(relay.url, 'POST', '/send', {
      token: a!.token,
      body: '{"to_id": 2, "content": ',
      headers: { 'Content-Type': 'application/json' },
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^请求格式错误：body -> \d+: JSON decode error$/);
  });

  it('validation errors win over a bad token', async () => {
    await users('a', 'b');
    expectReply(
      await req(relay.url, 'POST', '/send', {
        token: 'ffffffffffffffffffffffffffffffff',
        json: { to_id: 2, content: '' },
      }),
      200,
      '请求格式错误：body -> content: String should have at least 1 character',
    );
    expectReply(
      await req(relay.url, 'POST', '/send', {
        token: 'ffffffffffffffffffffffffffffffff',
        json: { to_id: 2, content: 'x' },
      }),
      200,
      '错误：Token 无效',
    );
  });
});

describe('POST /send inbox preview (W-16)', () => {
  it('appends nothing when the caller inbox is empty', async () => {
    const [a, b] = await users('a', 'b');
    expectReply(await send(relay.url, a!, b!.id, 'hi'), 200, REQUESTED);
  });

  it('lays the preview out like GET /messages (one item)', async () => {
    const [a, b, c] = await users('alice', 'bob', 'carol');
    await sendOk(relay.url, b!, a!.id, '你好 alice', REQUESTED);
    clock.advance(1);
    expectReply(
      await send(relay.url, a!, c!.id, 'hi carol'),
      200,
      '发送成功（好友申请已发出，等待对方回复）\n' +
        '\n' +
        '收件箱共 1 条，预览前 1 条：\n' +
        '════════════════════════════════════════\n' +
        '[1]\n' +
        '类型：好友申请\n' +
        '时间：2026-03-09 10:00:00\n' +
        '发件人：bob（ID:2）\n' +
        '内容：你好 alice\n' +
        '操作提示：回复对方（to_id:2）任意消息即可建立好友关系\n' +
        '消息ID：1\n' +
        '════════════════════════════════════════',
    );
  });

  it('separates items with SEP, oldest first', async () => {
    const [a, b, c, d] = await users('a', 'b', 'c', 'd');
    await sendOk(relay.url, b!, a!.id, 'from b', REQUESTED);
    clock.advance(1);
    await sendOk(relay.url, c!, a!.id, 'from c', REQUESTED);
    clock.advance(1);
    const r = await send(relay.url, a!, d!.id, 'to d');
    expectReply(
      r,
      200,
      `${REQUESTED}\n\n收件箱共 2 条，预览前 2 条：\n${HEAVY}\n[1]\n` +
        requestBlock({ time: T0, from: b!, content: 'from b', id: 1 }) +
        `\n${SEP}\n[2]\n` +
        requestBlock({ time: T0 + 1000, from: c!, content: 'from c', id: 2 }) +
        `\n${HEAVY}`,
    );
  });

  it('previews at most 5 and says how many more there are; it does not consume the inbox', async () => {
    const [a, target] = await users('a', 'target');
    const senders = await users('s1', 's2', 's3', 's4', 's5', 's6', 's7');
    const blocks: string[] = [];
    for (const [i, s] of senders.entries()) {
      await sendOk(relay.url, s, a!.id, `m${i + 1}`, REQUESTED);
      blocks.push(requestBlock({ time: clock.t, from: s, content: `m${i + 1}`, id: i + 1 }));
      clock.advance(1);
    }
    expectReply(
      await send(relay.url, a!, target!.id, 'x'),
      200,
      sendReplyText(REQUESTED, 7, blocks.slice(0, 5)),
    );
    expect((await send(relay.url, a!, target!.id, 'x')).body).toBe(
      '错误：好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。',
    );
    expectReply(await messages(relay.url, a!), 200, inboxText({ total: 7, blocks }));
  });

  it('shows the accept notice in the replier preview (W-20: everything is stored)', async () => {
    const [a, b] = await users('alice', 'bob');
    await sendOk(relay.url, a!, b!.id, 'hi', REQUESTED);
    clock.advance(2);
    const r = await send(relay.url, b!, a!.id, 'hello');
    const notice = `您与 alice（ID:1）已成功建立好友关系。（${bj(T0 + 2000)} 北京时间）`;
    expectReply(
      r,
      200,
      `${ACCEPTED}\n\n收件箱共 2 条，预览前 2 条：\n${HEAVY}\n[1]\n` +
        requestBlock({ time: T0, from: a!, content: 'hi', id: 1 }) +
        `\n${SEP}\n[2]\n` +
        `类型：系统通知\n时间：${bj(T0 + 2000)}\n内容：${notice}\n消息ID：2` +
        `\n${HEAVY}`,
    );
  });

  it('shows a sender description and indents multi-line content in the preview', async () => {
    const a = await register(relay.url, 'a');
    const b = await register(relay.url, 'b', { description: '个人助手' });
    const c = await register(relay.url, 'c');
    await sendOk(relay.url, b, a.id, 'line1\nline2', REQUESTED);
    expectReply(
      await send(relay.url, a, c.id, 'x'),
      200,
      `${REQUESTED}\n\n收件箱共 1 条，预览前 1 条：\n${HEAVY}\n[1]\n` +
        '类型：好友申请\n时间：2026-03-09 10:00:00\n发件人：b（ID:2） | 个人助手\n内容：line1\n  line2\n' +
        `操作提示：回复对方（to_id:2）任意消息即可建立好友关系\n消息ID：1\n${HEAVY}`,
    );
  });
});

function form(
  fields: Record<string, string>,
  file?: { name: string; data: Uint8Array; type?: string },
): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  if (file)
    f.append(
      'file',
      new Blob([file.data as BlobPart], { type: file.type ?? 'application/octet-stream' }),
      file.name,
    );
  return f;
}

async function sendFile(
  base: string,
  from: { token: string },
  fields: Record<string, string>,
  file?: { name: string; data: Uint8Array; type?: string },
) {
  return req(base, 'POST', '/send/file', { token: from.token, body: form(fields, file) });
}

/** The single message block of a one-message inbox body, as lines. */
function onlyBlockLines(body: string): string[] {
  const lines = body.split('\n');
  expect(lines[0]).toBe('收件箱共 1 条 | 本次读取并清除 1 条 | 剩余 0 条（已全部读取）');
  expect(lines[1]).toBe(HEAVY);
  expect(lines[2]).toBe('[1]');
  expect(lines.at(-1)).toBe(HEAVY);
  return lines.slice(3, -1);
}

describe('POST /send/file', () => {
  const pdf = {
    name: 'report.pdf',
    data: new TextEncoder().encode('%PDF-1.4 hello'),
    type: 'application/pdf',
  };

  it('requires content or file', async () => {
    const [a, b] = await users('a', 'b');
    expectSoftError(
      await sendFile(relay.url, a!, { to_id: String(b!.id) }),
      'content 或 file 至少需提供一个',
    );
    expectSoftError(
      await sendFile(relay.url, a!, { to_id: String(b!.id), content: '   ' }),
      'content 或 file 至少需提供一个',
    );
    expectReply(await messages(relay.url, b!), 200, '收件箱为空');
  });

  it('checks the content before the token', async () => {
    await users('a', 'b');
    expectSoftError(
      await sendFile(relay.url, { token: 'ffffffffffffffffffffffffffffffff' }, { to_id: '2' }),
      'content 或 file 至少需提供一个',
    );
    expectSoftError(
      await sendFile(relay.url, { token: 'ffffffffffffffffffffffffffffffff' }, { to_id: '2', content: 'x' }),
      'Token 无效',
    );
  });

  it('requires to_id', async () => {
    const [a] = await users('a');
    expectReply(
      await sendFile(relay.url, a!, { content: 'x' }),
      200,
      '请求格式错误：body -> to_id: Field required',
    );
  });

  it('refuses a non-integer to_id', async () => {
    const [a] = await users('a');
    expectReply(
      await sendFile(relay.url, a!, { to_id: 'abc', content: 'x' }),
      200,
      '请求格式错误：body -> to_id: Input should be a valid integer, unable to parse string as an integer',
    );
  });

  it('limits content to 1000 characters after stripping', async () => {
    const [a, b] = await users('a', 'b');
    expectSoftError(
      await sendFile(relay.url, a!, { to_id: String(b!.id), content: 'x'.repeat(1001) }),
      'content 最多 1000 字',
    );
    expectReply(
      await sendFile(relay.url, a!, { to_id: String(b!.id), content: `  ${'y'.repeat(1000)}  ` }),
      200,
      REQUESTED,
    );
    expect(onlyBlockLines((await messages(relay.url, b!)).body)[3]).toBe(`内容：${'y'.repeat(1000)}`);
  });

  it('sends content without a file like /send', async () => {
    const [a, b] = await users('alice', 'bob');
    expectReply(await sendFile(relay.url, a!, { to_id: String(b!.id), content: ' hi ' }), 200, REQUESTED);
    expectReply(
      await messages(relay.url, b!),
      200,
      inboxText({ total: 1, blocks: [requestBlock({ time: T0, from: a!, content: 'hi', id: 1 })] }),
    );
  });

  it('substitutes (附件) for empty content and shows 附件：<name> to the recipient', async () => {
    const [a, b] = await users('alice', 'bob');
    expectReply(await sendFile(relay.url, a!, { to_id: String(b!.id) }, pdf), 200, REQUESTED);
    const lines = onlyBlockLines((await messages(relay.url, b!)).body);
    expect(lines.slice(0, 5)).toEqual([
      '类型：好友申请',
      '时间：2026-03-09 10:00:00',
      '发件人：alice（ID:1）',
      '内容：(附件)',
      '附件：report.pdf',
    ]);
    const rest = lines.slice(5).filter((l) => !/^附件下载：\/files\/\S+$/.test(l));
    expect(rest).toEqual(['操作提示：回复对方（to_id:1）任意消息即可建立好友关系', '消息ID：1']);
  });

  it('shows 附件：<name> in a chat between friends', async () => {
    const [a, b] = await users('alice', 'bob');
    await befriend(relay.url, a!, b!);
    await messages(relay.url, a!);
    await messages(relay.url, b!);
    clock.advance(1);
    expectReply(
      await sendFile(relay.url, a!, { to_id: String(b!.id), content: 'see attached' }, pdf),
      200,
      '发送成功',
    );
    const lines = onlyBlockLines((await messages(relay.url, b!)).body);
    expect(lines.slice(0, 5)).toEqual([
      '类型：聊天消息',
      `时间：${bj(T0 + 1000)}`,
      '发件人：alice（ID:1）',
      '内容：see attached',
      '附件：report.pdf',
    ]);
    expect(lines.at(-1)).toBe('消息ID：3'); // b#1 request, b#2 accept notice
    expect(lines.slice(5, -1).every((l) => /^附件下载：\/files\/\S+$/.test(l))).toBe(true);
  });

  it('applies the same send rules (unknown user, one-message rule)', async () => {
    const [a, b] = await users('a', 'b');
    expectSoftError(await sendFile(relay.url, a!, { to_id: '999', content: 'x' }, pdf), '用户不存在');
    expectSoftError(
      await sendFile(relay.url, a!, { to_id: String(a!.id), content: 'x' }),
      '不能给自己发消息',
    );
    await sendOk(relay.url, a!, b!.id, 'first', REQUESTED);
    expectSoftError(
      await sendFile(relay.url, a!, { to_id: String(b!.id), content: 'x' }, pdf),
      '好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。',
    );
  });

  it('refuses a file over maxUploadMb with 错误：文件大小超过限制（最大 <n>MB）', async () => {
    const small = await startRelay({ maxUploadMb: 1, now: clock.now });
    try {
      const a = await register(small.url, 'a');
      const b = await register(small.url, 'b');
      const big = new Uint8Array(1024 * 1024 + 1).fill(65);
      expectSoftError(
        await sendFile(small.url, a, { to_id: String(b.id), content: 'big' }, { name: 'big.bin', data: big }),
        '文件大小超过限制（最大 1MB）',
      );
      expectReply(await messages(small.url, b), 200, '收件箱为空');
      expect((await stats(small.url)).messages).toBe(0);
    } finally {
      await small.close();
    }
  });

  it('accepts a file of exactly maxUploadMb', async () => {
    const small = await startRelay({ maxUploadMb: 1, now: clock.now });
    try {
      const a = await register(small.url, 'a');
      const c = await register(small.url, 'c');
      const exact = new Uint8Array(1024 * 1024).fill(66);
      expectReply(
        await sendFile(small.url, a, { to_id: String(c.id), content: 'ok' }, { name: 'ok.bin', data: exact }),
        200,
        REQUESTED,
      );
      expect((await messages(small.url, c)).body).toContain('\n附件：ok.bin\n');
    } finally {
      await small.close();
    }
  });
});

describe('message ids and persistence', () => {
  it('every persisted send is delivered, with ids increasing by 1 per recipient', async () => {
    const [a, b, c] = await users('a', 'b', 'c');
    await befriend(relay.url, a!, b!); // a→b request (b#1), b→a chat (a#1), notices b#2 and a#2
    await sendOk(relay.url, c!, b!.id, 'from c', REQUESTED); // b#3
    await sendOk(relay.url, a!, b!.id, 'chat', '发送成功'); // b#4
    const body = (await messages(relay.url, b!)).body;
    expect([...body.matchAll(/^消息ID：(\d+)$/gm)].map((m) => Number(m[1]))).toEqual([1, 2, 3, 4]);
    expect(body).toContain(chatBlock({ time: T0, from: a!, content: 'chat', id: 4 }));
    const aBody = (await messages(relay.url, a!)).body;
    expect([...aBody.matchAll(/^消息ID：(\d+)$/gm)].map((m) => Number(m[1]))).toEqual([1, 2]);
  });
});
