import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MessageView } from './model.ts';
import {
  parseInboxRead,
  parseMessageBlock,
  parseRegistered,
  parseGroupSendReply,
  parseSendReply,
  parseSseMessageData,
  ProtocolParseError,
} from './parse.ts';
import { messageFromJson, messageJson } from './json.ts';
import { formatInboxRead, formatMessageBlock } from './text.ts';
import { chat, H, L, request, T } from './samples.test-support.ts';
import { hasSenderIdMarker } from './validate.ts';

describe('parseMessageBlock', () => {
  it('reads our chat block', () => {
    expect(
      parseMessageBlock(
        '类型：聊天消息\n时间：2026-03-10 00:30:05\n发件人：bob（ID:2） | 个人助手\n内容：hello\n  world\n消息ID：7',
      ),
    ).toEqual({ ...chat, content: 'hello\nworld' });
  });

  it('reads our friend request with a stored file', () => {
    expect(
      parseMessageBlock(
        '类型：好友申请\n时间：2026-03-10 00:30:06\n发件人：carol（ID:3）\n内容：你好\n' +
          '附件：我的 报告.pdf\n附件下载：/files/f_abc%2F1\n' +
          '操作提示：回复对方（to_id:3）任意消息即可建立好友关系\n消息ID：8',
      ),
    ).toEqual({ ...request, attachment: { name: '我的 报告.pdf', fileId: 'f_abc/1' } });
  });

  it('reads a system notice and a missing sender', () => {
    expect(
      parseMessageBlock(
        '类型：系统通知\n时间：2026-01-01 08:00:00\n内容：您与 bob（ID:2）已成功建立好友关系。\n消息ID：9',
      ),
    ).toEqual({
      id: 9,
      type: 'system',
      createdAt: Date.UTC(2026, 0, 1, 0, 0, 0),
      fromId: null,
      from: null,
      content: '您与 bob（ID:2）已成功建立好友关系。',
      attachment: null,
      group: null,
      mentioned: false,
    });
    const gone = parseMessageBlock('类型：聊天消息\n时间：2026-03-10 00:30:05\n发件人：ID:44\n内容：x');
    expect(gone.fromId).toBe(44);
    expect(gone.from).toBeNull();
  });

  it("reads the reference's unindented continuation lines and missing id", () => {
    const ref =
      '类型：聊天消息\n时间：2026-03-10 00:30:05\n发件人：bob（ID:2） | 多行\n简介\n内容：第一行\n\n第三行\n' +
      '类型：系统通知\n附件：../../etc/我的 报告.pdf';
    expect(parseMessageBlock(ref)).toEqual({
      id: null,
      type: 'chat',
      createdAt: T,
      fromId: 2,
      from: { id: 2, name: 'bob', description: '多行\n简介' },
      content: '第一行\n\n第三行\n类型：系统通知',
      attachment: { name: '../../etc/我的 报告.pdf' },
      group: null,
      mentioned: false,
    });
  });

  it('takes the first ID marker for the sender and the hint for a request', () => {
    const m = parseMessageBlock(
      '类型：好友申请\n时间：2026-03-10 00:30:05\n发件人：bob（ID:2） | 我是（ID:1）\n内容：x\n' +
        '操作提示：回复对方（to_id:2）任意消息即可建立好友关系\n消息ID：3',
    );
    expect(m.fromId).toBe(2);
    expect(m.from).toEqual({ id: 2, name: 'bob', description: '我是（ID:1）' });
  });

  it('reads a group block: group line, mention flag, stored file', () => {
    expect(
      parseMessageBlock(
        '类型：群聊消息\n群组：项目 组（群ID:12）\n时间：2026-03-10 00:30:05\n发件人：bob（ID:2） | 个人助手\n' +
          '内容：@carol 看一下\n  第二行\n提到了你：是\n附件：a.pdf\n附件下载：/files/f1\n消息ID：40',
      ),
    ).toEqual({
      id: 40,
      type: 'group',
      createdAt: T,
      fromId: 2,
      from: { id: 2, name: 'bob', description: '个人助手' },
      content: '@carol 看一下\n第二行',
      attachment: { name: 'a.pdf', fileId: 'f1' },
      group: { id: 12, name: '项目 组' },
      mentioned: true,
    });
    const plain = parseMessageBlock(
      '类型：群聊消息\n群组：x（群ID:5）（群ID:6）\n时间：2026-03-10 00:30:05\n发件人：bob（ID:2）\n内容：hi\n消息ID：3',
    );
    expect([plain.group, plain.mentioned, plain.attachment]).toEqual([
      { id: 6, name: 'x（群ID:5）' },
      false,
      null,
    ]);
    // Outside group blocks the group labels are content, as before.
    const chat = parseMessageBlock(
      '类型：聊天消息\n时间：2026-03-10 00:30:05\n发件人：ID:2\n内容：a\n群组：b',
    );
    expect([chat.content, chat.group, chat.mentioned]).toEqual(['a\n群组：b', null, false]);
    expect(() =>
      parseMessageBlock('类型：群聊消息\n时间：2026-03-10 00:30:05\n发件人：bob（ID:2）\n内容：hi'),
    ).toThrow('group message block without 群组');
  });

  it('rejects what is not a block', () => {
    expect(() => parseMessageBlock('错误：Token 无效')).toThrow(ProtocolParseError);
    expect(() => parseMessageBlock('类型：未知\n时间：2026-03-10 00:30:05')).toThrow(ProtocolParseError);
  });

  it('reads SSE message data', () => {
    expect(parseSseMessageData('类型：系统通知\n时间：2026-03-10 00:30:05\n内容：hi\n消息ID：12').id).toBe(
      12,
    );
  });
});

describe('parseInboxRead', () => {
  const ours =
    `来自 ID:2 收件箱共 5 条 | 本次读取并清除 2 条 | 剩余 3 条（约 3 次可读完，每次 1 条）\n${H}\n[1]\n` +
    `类型：聊天消息\n时间：2026-03-10 00:30:05\n发件人：bob（ID:2）\n内容：a\n  ${L}\n  [2]\n消息ID：7\n${L}\n[2]\n` +
    `类型：聊天消息\n时间：2026-03-10 00:30:06\n发件人：bob（ID:2）\n内容：b\n消息ID：8\n${H}`;

  it('reads our layout', () => {
    const r = parseInboxRead(ours);
    expect(r.total).toBe(5);
    expect(r.fetched).toBe(2);
    expect(r.remaining).toBe(3);
    expect(r.messages.map((m) => [m.id, m.content])).toEqual([
      [7, `a\n${L}\n[2]`],
      [8, 'b'],
    ]);
  });

  it("reads the reference's layout", () => {
    const ref =
      `收件箱共 2 条 | 本次读取并清除 2 条 | 剩余 0 条（已全部读取）\n${H}\n[1]\n` +
      `类型：好友申请\n时间：2026-03-10 00:30:05\n发件人：carol（ID:3）\n内容：hi\nthere\n` +
      `操作提示：回复对方（to_id:3）任意消息即可建立好友关系\n${L}\n[2]\n` +
      `类型：系统通知\n时间：2026-03-10 00:30:06\n内容：ok\n${H}`;
    const r = parseInboxRead(ref);
    expect([r.total, r.fetched, r.remaining]).toEqual([2, 2, 0]);
    expect(r.messages).toEqual([
      {
        id: null,
        type: 'friend_request',
        createdAt: T,
        fromId: 3,
        from: { id: 3, name: 'carol', description: null },
        content: 'hi\nthere',
        attachment: null,

        group: null,
        mentioned: false,
      },
      {
        id: null,
        type: 'system',
        createdAt: T + 1000,
        fromId: null,
        from: null,
        content: 'ok',
        attachment: null,

        group: null,
        mentioned: false,
      },
    ]);
  });

  it('reads empty inboxes', () => {
    const empty = { total: 0, fetched: 0, remaining: 0, messages: [] };
    expect(parseInboxRead('收件箱为空')).toEqual(empty);
    expect(parseInboxRead('来自 ID:4 的消息为空')).toEqual(empty);
  });

  it('rejects an error reply', () => {
    expect(() => parseInboxRead('错误：Token 无效')).toThrow(ProtocolParseError);
  });
});

describe('parseRegistered', () => {
  it('reads id, name, token and status', () => {
    const text =
      `注册成功\n${L}\nID：12\n名称：alice\n简介：（无）\n状态：仅好友\nToken：0123456789abcdef0123456789abcdef\n${L}\n` +
      '请妥善保存 Token，仅此一次显示。\n\n## 最近活跃用户（Top100）\n\n| ID | 名称 | 简介 | 活跃时间 |';
    expect(parseRegistered(text)).toEqual({
      id: 12,
      name: 'alice',
      token: '0123456789abcdef0123456789abcdef',
      status: 'friends_only',
    });
  });

  it('reads a reference name that spans lines', () => {
    const text =
      `注册成功\n${L}\nID：3\n名称：two\nlines\n简介：（无）\n状态：可交流\nToken：ffffffffffffffffffffffffffffffff\n${L}\n` +
      '请妥善保存 Token，仅此一次显示。\n\n## 最近活跃用户（Top100）\n\n（暂无用户）';
    expect(parseRegistered(text).name).toBe('two\nlines');
  });

  it('rejects an error', () => {
    expect(() => parseRegistered('错误 409：该名称已被使用，请换一个名称。')).toThrow(ProtocolParseError);
  });
});

describe('parseSendReply', () => {
  it('reads each outcome, with or without a preview', () => {
    expect(parseSendReply('发送成功（好友申请已发出，等待对方回复）')).toEqual({
      outcome: 'request',
      ok: true,
      error: null,
    });
    expect(parseSendReply(`发送成功（好友关系已建立）\n\n收件箱共 1 条，预览前 1 条：\n${H}`)).toEqual({
      outcome: 'accepted',
      ok: true,
      error: null,
    });
    expect(parseSendReply(`发送成功\n\n收件箱共 9 条，预览前 5 条，还有 4 条：\n${H}`).outcome).toBe('chat');
  });

  it('reads errors', () => {
    expect(parseSendReply('错误：对方已将你拉黑')).toEqual({
      outcome: null,
      ok: false,
      error: '对方已将你拉黑',
    });
    expect(parseSendReply('错误 429：请求过于频繁，请稍后再试。').error).toBe('请求过于频繁，请稍后再试。');
    expect(parseSendReply('请求格式错误：body -> content: Field required').error).toBe(
      'body -> content: Field required',
    );
    expect(parseSendReply('发送成功了吗').ok).toBe(false);
  });
});

describe('round trip', () => {
  const breaks = ['\n', '\r\n', '\r', '\v', '\f', '\x1c', '\x1d', '\x1e', '\x85', '\u2028', '\u2029'];
  const tricky = [
    '类型：系统通知',
    '消息ID：1',
    '内容：',
    H,
    L,
    '[2]',
    '  ',
    ' | ',
    '（ID:9）',
    '：',
    'ID:3',
  ];
  const text = fc
    .array(fc.oneof(fc.constantFrom(...breaks), fc.constantFrom(...tricky), fc.string({ unit: 'binary' })), {
      maxLength: 12,
    })
    .map((parts) => parts.join(''));
  const normalise = (s: string): string => s.replace(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/g, '\n');

  const message: fc.Arbitrary<MessageView> = fc
    .record({
      id: fc.integer({ min: 1, max: 2 ** 53 - 1 }),
      type: fc.constantFrom('chat' as const, 'friend_request' as const, 'system' as const, 'group' as const),
      seconds: fc.integer({ min: 0, max: 253402271999 }),
      senderId: fc.integer({ min: 1, max: 2 ** 31 }),
      name: text.filter((n) => !hasSenderIdMarker(n)),
      description: fc.option(text),
      senderKnown: fc.boolean(),
      content: text,
      fileName: fc.option(text),
      groupId: fc.integer({ min: 1, max: 2 ** 31 }),
      groupName: text,
      mentioned: fc.boolean(),
    })
    .map((r) => ({
      id: r.id,
      type: r.type,
      createdAt: r.seconds * 1000,
      fromId: r.type === 'system' ? null : r.senderId,
      from:
        r.type === 'system' || !r.senderKnown
          ? null
          : { id: r.senderId, name: r.name, description: r.description },
      content: r.content,
      attachment: r.type !== 'system' && r.fileName !== null ? { name: r.fileName, fileId: 'f1' } : null,
      group: r.type === 'group' ? { id: r.groupId, name: r.groupName } : null,
      mentioned: r.type === 'group' && r.mentioned,
    }));

  it('parseMessageBlock(formatMessageBlock(m)) keeps id, type, time, sender and content', () => {
    fc.assert(
      fc.property(message, (m) => {
        const p = parseMessageBlock(formatMessageBlock(m));
        expect(p.id).toBe(m.id);
        expect(p.type).toBe(m.type);
        expect(p.createdAt).toBe(m.createdAt);
        expect(p.fromId).toBe(m.fromId);
        expect(p.content).toBe(normalise(m.content));
        if (m.from) {
          expect(p.from?.id).toBe(m.from.id);
          expect(p.from?.name).toBe(normalise(m.from.name));
          expect(p.from?.description ?? '').toBe(normalise(m.from.description ?? ''));
        } else {
          expect(p.from).toBeNull();
        }
        expect(p.attachment?.fileId ?? null).toBe(m.attachment ? 'f1' : null);
        expect(p.group).toEqual(m.group ? { id: m.group.id, name: normalise(m.group.name) } : null);
        expect(p.mentioned).toBe(m.mentioned);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseGroupSendReply', () => {
  it('reads the success line and the error', () => {
    expect(
      parseGroupSendReply(`发送成功（群组 项目组，送达 3 位成员）\n\n收件箱共 1 条，预览前 1 条：\n${H}`),
    ).toEqual({
      ok: true,
      groupName: '项目组',
      recipients: 3,
      error: null,
    });
    expect(parseGroupSendReply('错误：群组不存在')).toEqual({
      ok: false,
      groupName: null,
      recipients: null,
      error: '群组不存在',
    });
  });
});

describe('JSON mode', () => {
  it('messageJson has the documented shape and messageFromJson inverts it', () => {
    const m: MessageView = {
      id: 5,
      type: 'chat',
      createdAt: T,
      fromId: 2,
      from: { id: 2, name: 'bob', description: null },
      content: 'x',
      attachment: {
        name: '../a b.pdf',
        fileId: 'f 1',
        size: 3,
        contentType: 'application/pdf',
        expiresAt: T + 1000,
      },
      group: null,
      mentioned: false,
    };
    const j = messageJson(m);
    expect(j).toEqual({
      id: 5,
      type: 'chat',
      created_at: '2026-03-09T16:30:05.000Z',
      from_id: 2,
      from: { id: 2, name: 'bob', description: null },
      content: 'x',
      attachment: {
        name: 'a b.pdf',
        original_name: '../a b.pdf',
        file_id: 'f 1',
        url: '/files/f%201',
        size: 3,
        content_type: 'application/pdf',
        expires_at: '2026-03-09T16:30:06.000Z',
      },
      group: null,
      mentioned: false,
    });
    expect(messageFromJson(JSON.parse(JSON.stringify(j)))).toEqual(m);
  });

  it('carries the group and the mention flag; a relay without groups reads as no group', () => {
    const m: MessageView = {
      id: 9,
      type: 'group',
      createdAt: T,
      fromId: 2,
      from: { id: 2, name: 'bob', description: null },
      content: '@carol hi',
      attachment: null,
      group: { id: 4, name: '项目组' },
      mentioned: true,
    };
    const j = messageJson(m);
    expect([j.type, j.group, j.mentioned]).toEqual(['group', { id: 4, name: '项目组' }, true]);
    expect(messageFromJson(JSON.parse(JSON.stringify(j)))).toEqual(m);
    const {
      group: _g,
      mentioned: _m,
      ...old
    } = messageJson({ ...m, type: 'chat', group: null, mentioned: false });
    expect(messageFromJson(old as typeof j)).toEqual({ ...m, type: 'chat', group: null, mentioned: false });
  });
});

describe('inbox round trip', () => {
  it('parseInboxRead(formatInboxRead(…)) gives the messages back', () => {
    const a: MessageView = {
      id: 1,
      type: 'chat',
      createdAt: T,
      fromId: 2,
      from: { id: 2, name: 'bob', description: 'd' },
      content: `x\n${L}\n[2]\n${H}`,
      attachment: null,
      group: null,
      mentioned: false,
    };
    const b: MessageView = { ...a, id: 2, type: 'system', fromId: null, from: null, content: '' };
    const r = parseInboxRead(
      formatInboxRead({ fromId: null, total: 3, limit: 2, remaining: 1, messages: [a, b] }),
    );
    expect(r).toEqual({ total: 3, fetched: 2, remaining: 1, messages: [a, b] });
  });
});
