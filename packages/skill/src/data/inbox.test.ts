import { appendFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Message } from '@openwechat/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SkillConfig } from './config.ts';
import { readContacts } from './contacts.ts';
import { refreshDerived } from './derived.ts';
import { groupNoticeOf } from './groups.ts';
import { lineKey } from './formats.ts';
import { InboxWriter, readCursor } from './inbox.ts';

const T = Date.UTC(2026, 2, 9, 10, 0, 0);
let dir: string;
const config: SkillConfig = {
  base_url: 'http://127.0.0.1:1',
  token: 't',
  my_id: 2,
  my_name: 'bob',
  batch_size: 5,
};

function msg(id: number | null, content: string, extra: Partial<Message> = {}): Message {
  return {
    id,
    type: 'chat',
    createdAt: T,
    fromId: 1,
    from: { id: 1, name: 'alice', description: null },
    content,
    attachment: null,
    group: null,
    mentioned: false,
    ...extra,
  };
}

const read = (name: string): Promise<string> => readFile(join(dir, name), 'utf8').catch(() => '');

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'owc-inbox-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('InboxWriter', () => {
  it('stores each message once, in order, with raw entries and a cursor', async () => {
    const w = await InboxWriter.open(dir, config);
    const fresh = await w.store([
      { message: msg(1, 'a') },
      { message: msg(2, 'b\nc') },
      { message: msg(1, 'a') },
    ]);
    expect(fresh.map((m) => m.id)).toEqual([1, 2]);
    expect(await w.store([{ message: msg(2, 'b\nc') }, { message: msg(3, 'd') }])).toHaveLength(1);
    expect(await read('conversations.md')).toBe(
      [
        '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=a',
        '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=b\\nc',
        '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=d',
        '',
      ].join('\n'),
    );
    expect(await read('inbox_pushed.md')).toBe(
      [
        '## 2026-03-09T10:00:00Z id=1',
        '类型：聊天消息',
        '时间：2026-03-09 18:00:00',
        '发件人：alice（ID:1）',
        '内容：a',
        '消息ID：1',
        '',
        '## 2026-03-09T10:00:00Z id=2',
        '类型：聊天消息',
        '时间：2026-03-09 18:00:00',
        '发件人：alice（ID:1）',
        '内容：b',
        '  c',
        '消息ID：2',
        '',
        '## 2026-03-09T10:00:00Z id=3',
        '类型：聊天消息',
        '时间：2026-03-09 18:00:00',
        '发件人：alice（ID:1）',
        '内容：d',
        '消息ID：3',
        '',
        '',
      ].join('\n'),
    );
    expect((await readCursor(dir))?.last_id).toBe(3);
    // The ids live beside the lines: `<id> <key of the line's (time, from_id, content)>`.
    expect((await read('conversations.idx')).trim().split('\n')).toEqual(
      [
        [1, 'a'],
        [2, 'b\nc'],
        [3, 'd'],
      ].map(([id, c]) => `${id} ${lineKey('2026-03-09T10:00:00Z', 1, c as string)}`),
    );
    expect((await readContacts(dir)).get(1)).toMatchObject({ name: 'alice', relationship: 'accepted' });
  });

  it('without ids, deduplicates by (time, from_id, content)', async () => {
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(null, 'x') }, { message: msg(null, 'x') }, { message: msg(null, 'y') }]);
    await w.store([{ message: msg(null, 'x') }]);
    const w2 = await InboxWriter.open(dir, config);
    expect(
      await w2.store([{ message: msg(null, 'y') }, { message: msg(null, 'x', { createdAt: T + 1000 }) }]),
    ).toHaveLength(1);
    expect((await read('conversations.md')).trim().split('\n')).toEqual([
      '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=x',
      '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=y',
      '[2026-03-09T10:00:01Z] from=#1(alice) type=chat content=x',
    ]);
    expect((await read('inbox_pushed.md')).match(/^## /gm)).toHaveLength(3);
  });

  it('after a crash between the append and the cursor, the stored lines count and the cursor catches up', async () => {
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(1, 'a') }]);
    // What a killed batch leaves: the line on disk, neither its idx entry nor the cursor.
    await appendFile(
      join(dir, 'conversations.md'),
      '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=b\n',
    );
    const w2 = await InboxWriter.open(dir, config);
    expect(w2.lastId).toBe(1);
    // The relay replays 2: its line is matched by (time, from, content) and only its idx entry is written.
    expect(await w2.store([{ message: msg(2, 'b') }, { message: msg(3, 'c') }])).toHaveLength(1);
    expect(w2.lastId).toBe(3);
    expect((await read('conversations.md')).match(/content=b\n/g)).toHaveLength(1);
    expect(
      (await read('conversations.idx'))
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0]),
    ).toEqual(['1', '2', '3']);
    // A second message with the same text in the same second still gets a line of its own.
    expect(await w2.store([{ message: msg(4, 'b') }])).toHaveLength(1);
    expect((await read('conversations.md')).match(/content=b\n/g)).toHaveLength(2);
  });

  it('sets a torn record aside and writes the message again', async () => {
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(1, 'a') }]);
    const conv = join(dir, 'conversations.md');
    const pushed = join(dir, 'inbox_pushed.md');
    await appendFile(conv, '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=hal');
    await appendFile(pushed, '## 2026-03-09T10:00:00Z id=2\n类型：聊天消息\n');
    const w2 = await InboxWriter.open(dir, config);
    expect(w2.lastId).toBe(1);
    await w2.store([{ message: msg(2, 'half and whole') }]);
    expect((await read('conversations.md')).trim().split('\n')).toEqual([
      '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=a',
      '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=half and whole',
    ]);
    expect((await read('inbox_pushed.md')).match(/^## .* id=2$/gm)).toHaveLength(1);
    expect(await read('conversations.md.torn')).toMatch(
      / \[2026-03-09T10:00:00Z\] from=#1\(alice\) type=chat content=hal\n$/,
    );
    expect(await read('inbox_pushed.md.torn')).toMatch(
      / ## 2026-03-09T10:00:00Z id=2\\n类型：聊天消息\\n\n$/,
    );
  });

  it('never touches bytes the cursor already covers, and repairs a file that lacks its last newline', async () => {
    await writeFile(
      join(dir, 'conversations.md'),
      '[2026-03-01T00:00:00Z] from=#9(old) type=chat content=from v1',
    );
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(1, 'a') }]);
    expect(await read('conversations.md')).toBe(
      '[2026-03-01T00:00:00Z] from=#9(old) type=chat content=from v1\n[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=a\n',
    );
  });

  it('a new account starts after the old one’s lines (ids restart on another relay)', async () => {
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(1, 'old account') }]);
    const other = { ...config, base_url: 'http://127.0.0.1:2', my_id: 7 };
    const w2 = await InboxWriter.open(dir, other);
    expect(w2.lastId).toBe(0);
    expect(await w2.store([{ message: msg(1, 'new account') }])).toHaveLength(1);
    expect((await read('conversations.md')).trim().split('\n')).toHaveLength(2);
    expect(await readCursor(dir)).toMatchObject({ account: 'http://127.0.0.1:2#7', last_id: 1 });
  });

  it('switchTo(): the same writer — the one cursor the stream consumer reads — follows another account and back', async () => {
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(1, 'a') }, { message: msg(2, 'b') }]);
    expect(w.load()).toBe(2);
    const other = { ...config, base_url: 'http://127.0.0.1:2', my_id: 7 };
    await w.switchTo(other);
    // Ids start over on the other relay: its message 1 is new, not a duplicate of the first account's.
    expect(w.load()).toBe(0);
    expect(await w.store([{ message: msg(1, 'on the other relay') }])).toHaveLength(1);
    expect(w.load()).toBe(1);
    expect(await readCursor(dir)).toMatchObject({ account: 'http://127.0.0.1:2#7', last_id: 1 });
    // Back to the first account: its own lines are behind the cursor file's start, so it starts after
    // everything on disk, and a replay of its message 2 is stored as new there (ids restart per account).
    await w.switchTo(config);
    expect(w.account).toBe('http://127.0.0.1:1#2');
    expect(w.load()).toBe(0);
    expect((await read('conversations.md')).trim().split('\n')).toHaveLength(3);
  });

  it('records attachments saved by the download hook (once, with a stable name)', async () => {
    const w = await InboxWriter.open(dir, config);
    const m = msg(1, '(附件)', {
      attachment: { name: 'my report.pdf', fileId: '3f9c0a1b00000000000000000000ffff' },
    });
    const calls: string[] = [];
    await w.store([{ message: m }], async (_m, rel) => {
      calls.push(rel);
      await writeFile(join(dir, rel), 'x').catch(async () => {
        const { mkdir } = await import('node:fs/promises');
        await mkdir(join(dir, 'files'), { recursive: true });
        await writeFile(join(dir, rel), 'x');
      });
      return rel;
    });
    expect(calls).toEqual(['files/3f9c0a1b_my_report.pdf']);
    expect(await read('conversations.md')).toBe(
      '[2026-03-09T10:00:00Z] from=#1(alice) type=chat.file:files/3f9c0a1b_my_report.pdf content=(附件)\n',
    );
    await truncate(join(dir, 'conversations.md'), 0);
    const w2 = await InboxWriter.open(dir, { ...config, my_id: 3 });
    await w2.store([{ message: m }], async () => {
      throw new Error('must not download a file that is already saved');
    });
  });

  it('stores group messages as group lines (mentioned, attachments), counted per group', async () => {
    const w = await InboxWriter.open(dir, config);
    const team = { id: 7, name: 'team' };
    const g = (id: number, content: string, extra: Partial<Message> = {}): Message =>
      msg(id, content, {
        type: 'group',
        group: team,
        fromId: 3,
        from: { id: 3, name: 'carol', description: null },
        ...extra,
      });
    await w.store(
      [
        { message: g(1, 'hi all') },
        { message: g(2, '@bob look', { mentioned: true }) },
        {
          message: g(3, '(附件)', {
            attachment: { name: 'plan.txt', fileId: '0123abcd00000000000000000000ffff' },
          }),
        },
        { message: msg(4, '你已被移出群组 old（群ID:5）', { type: 'system', fromId: null, from: null }) },
      ],
      async (_m, rel) => rel,
    );
    expect((await read('conversations.md')).trim().split('\n')).toEqual([
      '[2026-03-09T10:00:00Z] from=#3(carol) type=chat.g7 content=hi all',
      '[2026-03-09T10:00:00Z] from=#3(carol) type=chat.g7.mention content=@bob look',
      '[2026-03-09T10:00:00Z] from=#3(carol) type=chat.g7.file:files/0123abcd_plan.txt content=(附件)',
      '[2026-03-09T10:00:00Z] from=#0(system) type=system content=你已被移出群组 old（群ID:5）',
    ]);
    expect(await read('inbox_pushed.md')).toContain(
      '## 2026-03-09T10:00:00Z id=2\n类型：群聊消息\n群组：team（群ID:7）\n时间：2026-03-09 18:00:00\n发件人：carol（ID:3）\n内容：@bob look\n提到了你：是\n消息ID：2\n\n',
    );
    // A group member is known by name, but is not a friend for it.
    expect((await readContacts(dir)).get(3)).toMatchObject({
      name: 'carol',
      relationship: 'none',
      last_message_at: null,
    });
    // Our answer to the group clears its unread count; a private chat counts on its own.
    await appendFile(
      join(dir, 'conversations.md'),
      '[2026-03-09T10:00:01Z] from=#2(bob) type=chat.out.g7 content=ok\n',
    );
    await w.store([{ message: g(5, 'thanks', { createdAt: T + 2000 }) }, { message: msg(6, 'private') }]);
    const { stats, snapshot } = await refreshDerived(dir, { now: T });
    expect(stats).toMatchObject({
      messages_received: 6,
      messages_sent: 1,
      by_type: { chat: 1, friend_request: 0, system: 1, group: 4 },
      last_message_id: 6,
    });
    expect(snapshot.unread_by_contact).toEqual({ '1': 1, g7: 1 });
    expect(snapshot.recent.map((r) => [r.id, r.group?.id ?? null, r.mentioned ?? null])).toEqual([
      [1, 'g7', false],
      [2, 'g7', true],
      [3, 'g7', false],
      [4, null, null],
      [5, 'g7', false],
      [6, null, null],
    ]);
  });
});

describe('stats.json last_message_id', () => {
  it('matches the lines it counts, even before the daemon has moved the cursor', async () => {
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(1, 'a') }, { message: msg(2, 'b') }]);
    // The daemon appends a line and its idx entry, then moves the cursor; a refresh may run in between.
    await appendFile(
      join(dir, 'conversations.md'),
      '[2026-03-09T10:00:00Z] from=#1(alice) type=chat content=c\n',
    );
    await appendFile(join(dir, 'conversations.idx'), `3 ${lineKey('2026-03-09T10:00:00Z', 1, 'c')}\n`);
    expect((await readCursor(dir))?.last_id).toBe(2);
    const { stats } = await refreshDerived(dir, { now: T });
    expect(stats).toMatchObject({ messages_received: 3, last_message_id: 3 });
  });

  it('ignores ids of lines that belong to an earlier account', async () => {
    const before = await InboxWriter.open(dir, { ...config, my_id: 9 });
    await before.store([{ message: msg(90, 'old account') }]);
    // Another account on the same data folder starts after the old lines; its ids start again.
    const w = await InboxWriter.open(dir, config);
    await w.store([{ message: msg(1, 'new account') }]);
    const { stats } = await refreshDerived(dir, { now: T });
    expect(stats).toMatchObject({ messages_received: 2, last_message_id: 1 });
  });
});

describe('group notices', () => {
  it('reads the membership notices of docs/groups-api.md', () => {
    expect(groupNoticeOf('你已被 alice（ID:1）加入群组 team（群ID:7）')).toEqual({
      kind: 'added',
      gid: 7,
      name: 'team',
      by: { id: 1, name: 'alice' },
    });
    expect(groupNoticeOf('你已被移出群组 a（群ID:2）（群ID:9）')).toEqual({
      kind: 'removed',
      gid: 9,
      name: 'a（群ID:2）',
    });
    expect(groupNoticeOf('群组 team（群ID:7）已被群主解散')).toEqual({
      kind: 'dissolved',
      gid: 7,
      name: 'team',
    });
    expect(groupNoticeOf('您与 bob（ID:2）已成功建立好友关系。')).toBeNull();
  });
});
