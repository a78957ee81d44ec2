// Group messages over HTTP (docs/groups-api.md): one stored copy per other member with its own id, the
// group block in every channel (GET /messages, the send preview, SSE text and JSON), mentions by `@name`
// and by mention_ids, idempotent group sends, and group attachments every member can download.

import { beforeEach, describe, expect, it } from 'vitest';
import { openSse } from '../helpers/sse.ts';
import {
  HEAVY,
  inboxText,
  messages,
  register,
  relayPerTest,
  req,
  send,
  sendReplyText,
  type User,
} from '../relay/client.ts';
import {
  clearInboxes,
  createGroupOk,
  groupBlock,
  groupSend,
  groupSendFile,
  ownerWithFriends,
  peekInbox,
  type MessageJson,
} from './helpers.ts';
import { sha256 } from '../helpers/bytes.ts';

const { clock, relay, restart } = relayPerTest({ sseMaxPerIp: 10 });
let base: string;
beforeEach(() => void (base = relay.url));

const reg = (name: string) => register(base, name);
const G = { id: 1, name: '项目组' };
const clear = (...users: User[]): Promise<void> => clearInboxes(base, ...users);

/** owner + f0, f1, f2 in group 1 (项目组); f1's inbox is one id ahead of the others'; inboxes empty. */
async function setup() {
  const { owner, friends } = await ownerWithFriends(base, reg, 3);
  const [f0, f1, f2] = friends as [User, User, User];
  await send(base, owner, f1.id, 'extra');
  await createGroupOk(base, owner, G.name, [f0.id, f1.id, f2.id]);
  await clear(owner, f0, f1, f2);
  clock.advance(10);
  return { owner, f0, f1, f2 };
}

describe('group sends', () => {
  it('store one copy per other member, each with its own id, shown as a group block', async () => {
    const { owner, f0, f1, f2 } = await setup();
    const t = clock.t;
    const r = await groupSend(base, owner, 1, '大家好\n第二行');
    expect(r).toMatchObject({ status: 200, body: '发送成功（群组 项目组，送达 3 位成员）' });
    const block = (id: number) =>
      groupBlock({ group: G, time: t, from: owner, content: '大家好\n第二行', id });
    expect((await messages(base, f1)).body).toBe(inboxText({ total: 1, blocks: [block(5)] }));
    expect((await messages(base, f0)).body).toBe(inboxText({ total: 1, blocks: [block(4)] }));
    expect((await peekInbox(base, f2)).map((m) => m.id)).toEqual([4]);
    // Nothing for the sender.
    expect((await messages(base, owner)).body).toBe('收件箱为空');
    // The sender's inbox preview, as on /send.
    clock.advance(1);
    const r2 = await groupSend(base, f2, 1, 'reply');
    expect(r2.body).toBe(
      sendReplyText('发送成功（群组 项目组，送达 3 位成员）', 1, [
        groupBlock({ group: G, time: t, from: owner, content: '大家好\n第二行', id: 4 }),
      ]),
    );
    // The group's current name is shown.
    await req(base, 'PATCH', '/groups/1', { token: owner.token, json: { name: '新名' } });
    expect((await messages(base, owner)).body).toBe(
      inboxText({
        total: 1,
        blocks: [
          groupBlock({ group: { id: 1, name: '新名' }, time: t + 1000, from: f2, content: 'reply', id: 7 }),
        ],
      }),
    );
  });

  it('mentions: `@name` at a word end and mention_ids; only the mentioned copies say so', async () => {
    const { owner, f0, f1, f2 } = await setup();
    const t = clock.t;
    await groupSend(base, f0, 1, '@f1，看一下 @f2x @owner\u2005好吗');
    await groupSend(base, f2, 1, 'ping', { mentionIds: [owner.id, 999_999, f2.id] });
    await groupSend(base, owner, 1, '@f0');
    const flags = async (u: User) => (await peekInbox(base, u)).map((m) => [m.content, m.mentioned]);
    expect(await flags(owner)).toEqual([
      ['@f1，看一下 @f2x @owner\u2005好吗', true],
      ['ping', true],
    ]);
    expect(await flags(f1)).toEqual([
      ['@f1，看一下 @f2x @owner\u2005好吗', true],
      ['ping', false],
      ['@f0', false],
    ]);
    expect(await flags(f2)).toEqual([
      ['@f1，看一下 @f2x @owner\u2005好吗', false],
      ['@f0', false],
    ]);
    expect(await flags(f0)).toEqual([
      ['ping', false],
      ['@f0', true],
    ]);
    expect((await messages(base, f1)).body).toBe(
      inboxText({
        total: 3,
        blocks: [
          groupBlock({
            group: G,
            time: t,
            from: f0,
            content: '@f1，看一下 @f2x @owner\u2005好吗',
            id: 5,
            mentioned: true,
          }),
          groupBlock({ group: G, time: t, from: f2, content: 'ping', id: 6 }),
          groupBlock({ group: G, time: t, from: owner, content: '@f0', id: 7 }),
        ],
      }),
    );
  });

  it('JSON: group messages carry group and mentioned; private ones group null, mentioned false', async () => {
    const { owner, f0, f1 } = await setup();
    await send(base, owner, f0.id, 'private');
    await groupSend(base, f1, 1, '@f0 hi');
    const got = await peekInbox(base, f0);
    expect(got.map((m) => [m.type, m.group, m.mentioned])).toEqual([
      ['chat', null, false],
      ['group', { id: 1, name: '项目组' }, true],
    ]);
    const r = await groupSend(base, f0, 1, 'back', { jsonMode: true });
    const body = JSON.parse(r.body) as { inbox: { total: number; preview: MessageJson[] } };
    expect(body).toMatchObject({
      result: 'group',
      message: '发送成功（群组 项目组，送达 3 位成员）',
      group_id: 1,
      recipients: 3,
      inbox: { total: 2 },
    });
    expect(body.inbox.preview).toEqual(got);
  });

  it('reach open streams, text and JSON, with each recipient’s own id', async () => {
    const { owner, f0, f1 } = await setup();
    const text = await openSse(base, { token: f1.token, headers: { 'Last-Event-ID': '4' } });
    const json = await openSse(base, {
      token: f0.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': '3' },
    });
    try {
      const t = clock.t;
      await groupSend(base, owner, 1, '@f1 live', { mentionIds: [f0.id] });
      const [ev] = await text.waitForMessages(1);
      expect(ev).toEqual({
        event: 'message',
        id: '5',
        data: groupBlock({ group: G, time: t, from: owner, content: '@f1 live', id: 5, mentioned: true }),
      });
      const [je] = await json.waitForMessages(1);
      expect(je!.id).toBe('4');
      expect(JSON.parse(je!.data)).toMatchObject({
        id: 4,
        type: 'group',
        from_id: owner.id,
        content: '@f1 live',
        group: { id: 1, name: '项目组' },
        mentioned: true,
      });
    } finally {
      text.close();
      json.close();
    }
  });

  it('are idempotent with Idempotency-Key, and stop reaching removed members', async () => {
    const { owner, f0, f1, f2 } = await setup();
    const first = await groupSend(base, f0, 1, 'once', { key: 'g-1' });
    const again = await groupSend(base, f0, 1, 'once', { key: 'g-1' });
    expect(again.body).toBe(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect((await peekInbox(base, f1)).map((m) => m.content)).toEqual(['once']);

    await req(base, 'DELETE', `/groups/1/members/${f2.id}`, { token: owner.token });
    const r = await groupSend(base, f0, 1, 'after');
    expect(r.body).toBe('发送成功（群组 项目组，送达 2 位成员）');
    expect((await peekInbox(base, f2)).map((m) => [m.type, m.content])).toEqual([
      ['group', 'once'],
      ['system', '你已被移出群组 项目组（群ID:1）'],
    ]);
    expect((await groupSend(base, f2, 1, 'me?')).body).toBe('错误：群组不存在');
    expect(await messages(base, owner).then((x) => x.body.split('\n')[0])).toBe(
      '收件箱共 2 条 | 本次读取并清除 2 条 | 剩余 0 条（已全部读取）',
    );
  });
});

describe('group attachments', () => {
  it('are stored once and every member may download them; others may not', async () => {
    const { owner, f0, f1, f2 } = await setup();
    const stranger = await reg('stranger');
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256));
    const t = clock.t;
    const r = await groupSendFile(base, owner, 1, {
      bytes,
      name: '报告.pdf',
      content: '请看 @f2',
      mentionIds: ` ${f0.id},`,
      type: 'application/pdf',
    });
    expect(r.body).toBe('发送成功（群组 项目组，送达 3 位成员）');
    const copies = await Promise.all([f0, f1, f2].map((u) => peekInbox(base, u).then((m) => m[0]!)));
    const fileId = copies[0]!.attachment!.file_id!;
    expect(new Set(copies.map((m) => m.attachment!.file_id))).toEqual(new Set([fileId]));
    expect(copies.map((m) => m.mentioned)).toEqual([true, false, true]);
    expect((await messages(base, f1)).body).toBe(
      inboxText({
        total: 1,
        blocks: [
          groupBlock({
            group: G,
            time: t,
            from: owner,
            content: '请看 @f2',
            id: 5,
            file: { name: '报告.pdf', id: fileId },
          }),
        ],
      }),
    );
    const download = async (u: User) => {
      const res = await fetch(`${base}/files/${fileId}`, { headers: { 'X-Token': u.token } });
      return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
    };
    for (const u of [owner, f0, f1, f2]) {
      const d = await download(u);
      expect(d.status).toBe(200);
      expect(sha256(d.bytes)).toBe(sha256(bytes));
    }
    const refused = await download(stranger);
    expect([refused.status, refused.bytes.toString()]).toEqual([404, '错误 404：文件不存在或已过期']);
    // A member who leaves loses access; the others keep it.
    await req(base, 'POST', '/groups/1/leave', { token: f2.token });
    expect((await download(f2)).status).toBe(404);
    expect((await download(f1)).status).toBe(200);
    // A file-only message stores `(附件)` as its content.
    const only = await groupSendFile(base, f0, 1, { bytes: Buffer.from('x'), name: 'a.txt' }, true);
    expect(JSON.parse(only.body)).toMatchObject({ recipients: 2 });
    expect((await peekInbox(base, owner)).at(-1)).toMatchObject({
      content: '(附件)',
      attachment: { name: 'a.txt' },
    });
  });

  it('an Idempotency-Key retry is replayed without a second copy; the upload quota applies', async () => {
    await restart({ uploadQuotaMb: 0.01 });
    base = relay.url;
    const { owner, f0, f1 } = await setup();
    const small = Buffer.from('small file');
    const first = await groupSendFile(base, owner, 1, {
      bytes: small,
      name: 's.txt',
      content: 'x',
      key: 'f-1',
    });
    const again = await groupSendFile(base, owner, 1, {
      bytes: small,
      name: 's.txt',
      content: 'x',
      key: 'f-1',
    });
    expect(again.body).toBe(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await peekInbox(base, f0)).length).toBe(1);

    const big = Buffer.alloc(20_000, 1);
    const quota = '错误：待对方接收的附件总量超过限制（最多 0.01MB），请等对方接收后再发送';
    expect((await groupSendFile(base, owner, 1, { bytes: big, name: 'b.bin' })).body).toBe(quota);
    expect((await groupSendFile(base, owner, 1, { bytes: big, name: 'b.bin', key: 'f-2' })).body).toBe(quota);
    // A retry of the first send still gets its original answer.
    expect(
      (await groupSendFile(base, owner, 1, { bytes: small, name: 's.txt', content: 'x', key: 'f-1' })).body,
    ).toBe(first.body);
    expect((await peekInbox(base, f1)).length).toBe(1);
    expect(HEAVY.length).toBe(40);
  });
});
