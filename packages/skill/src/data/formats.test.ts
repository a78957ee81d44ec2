import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  escapeField,
  escapeName,
  formatChannelLine,
  formatConversationLine,
  formatPushedEntry,
  parseConversationLine,
  unescapeField,
  utcSecond,
} from './formats.ts';

const T = Date.UTC(2026, 2, 9, 10, 0, 0, 456);

describe('conversation lines', () => {
  const time = utcSecond(T);
  const bob = { id: 2, name: 'bob' };
  const alice = { id: 1, name: 'alice' };

  it('writes the guide’s grammar for every kind of line, extra facts in the type token', () => {
    const cases: Array<[Parameters<typeof formatConversationLine>[0], string]> = [
      [{ time, from: bob, type: 'chat', content: 'hello' }, 'from=#2(bob) type=chat content=hello'],
      [
        { time, from: alice, type: 'chat', out: true, to: 2, content: 'hi' },
        'from=#1(alice) type=chat.out.to2 content=hi',
      ],
      [
        { time, from: alice, type: 'friend_request', out: true, to: 2, content: 'hi' },
        'from=#1(alice) type=friend_request.out.to2 content=hi',
      ],
      [
        {
          time,
          from: { id: 3, name: 'carol' },
          type: 'chat',
          file: 'files/3f9c0a1b_my report.pdf',
          content: '(附件)',
        },
        'from=#3(carol) type=chat.file:files/3f9c0a1b_my_report.pdf content=(附件)',
      ],
      [
        { time, from: { id: 3, name: 'carol' }, type: 'chat', attachment: 'a b.txt', content: 'x' },
        'from=#3(carol) type=chat.attachment:a_b.txt content=x',
      ],
      [
        { time, from: alice, type: 'chat', out: true, to: 3, attachment: 'plan.v2.pdf', content: '(附件)' },
        'from=#1(alice) type=chat.out.to3.attachment:plan.v2.pdf content=(附件)',
      ],
      [
        {
          time,
          from: { id: 0, name: 'system' },
          type: 'system',
          content: '您与 bob（ID:2）已成功建立好友关系。',
        },
        'from=#0(system) type=system content=您与 bob（ID:2）已成功建立好友关系。',
      ],
      [
        { time, from: bob, type: 'chat', group: 7, content: 'standup' },
        'from=#2(bob) type=chat.g7 content=standup',
      ],
      [
        {
          time,
          from: bob,
          type: 'chat',
          group: 7,
          mentioned: true,
          file: 'files/0123abcd_plan.txt',
          content: '@alice see plan',
        },
        'from=#2(bob) type=chat.g7.mention.file:files/0123abcd_plan.txt content=@alice see plan',
      ],
      [
        { time, from: alice, type: 'chat', out: true, group: 7, content: 'on my way' },
        'from=#1(alice) type=chat.out.g7 content=on my way',
      ],
    ];
    const guide = /^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\] from=#\d+\([^)]*\) type=\S+ content=.*$/;
    for (const [input, rest] of cases) {
      const line = formatConversationLine(input);
      expect(line).toBe(`[2026-03-09T10:00:00Z] ${rest}`);
      expect(line).toMatch(guide);
    }
  });

  it('reads the flags back', () => {
    expect(
      parseConversationLine(
        '[2026-03-09T10:00:00Z] from=#2(bob) type=chat.g7.mention.file:files/x.y.txt content=@alice hi',
      ),
    ).toEqual({
      time: '2026-03-09T10:00:00Z',
      group: { id: 'g7', name: '' },
      direction: 'in',
      fromId: 2,
      fromName: 'bob',
      peerId: 2,
      peerName: 'bob',
      type: 'chat',
      id: null,
      mentioned: true,
      file: 'files/x.y.txt',
      attachment: null,
      content: '@alice hi',
    });
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] from=#1(alice) type=chat.out.to2 content=hi'),
    ).toMatchObject({
      direction: 'out',
      fromId: 1,
      peerId: 2,
      peerName: '',
      group: null,
    });
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] from=#1(a) type=chat.out.g7 content=hi'),
    ).toMatchObject({
      direction: 'out',
      peerId: 0,
      group: { id: 'g7', name: '' },
    });
    // A newer skill's unknown flags are ignored.
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] from=#2(b) type=chat.urgent content=x'),
    ).toMatchObject({
      type: 'chat',
      direction: 'in',
    });
  });

  it('still reads the lines of skill 0.x, and refuses a group address outside its own group line', () => {
    expect(
      parseConversationLine(
        '[2026-03-09T10:00:00Z] group=#g7(team) from=#2(bob) type=chat id=21 mentioned=yes file=files/x.txt content=@alice hi',
      ),
    ).toMatchObject({
      group: { id: 'g7', name: 'team' },
      direction: 'in',
      peerId: 2,
      id: 21,
      mentioned: true,
      file: 'files/x.txt',
      content: '@alice hi',
    });
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] group=#g7(team) to=#g7(team) type=chat content=hi'),
    ).toMatchObject({ group: { id: 'g7', name: 'team' }, direction: 'out', peerId: 0 });
    expect(parseConversationLine('[2026-03-09T10:00:05Z] to=#2(bob) type=chat content=accept')).toMatchObject(
      {
        direction: 'out',
        peerId: 2,
      },
    );
    expect(parseConversationLine('[2026-03-09T10:00:00Z] to=#g7(team) type=chat content=hi')).toBeNull();
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] group=#g7(team) to=#g8(x) type=chat content=hi'),
    ).toBeNull();
  });

  it('escapes backslashes and every line break, so one message is one line', () => {
    expect(escapeField('a\\b\nc\r\nd\re\u2028f')).toBe('a\\\\b\\nc\\nd\\re\\nf');
    expect(unescapeField('a\\\\b\\nc\\nd\\re')).toBe('a\\b\nc\nd\re');
    expect(escapeName('x) type=chat content=evil')).toBe('x\\) type=chat content=evil');
  });

  it('reads back what it writes, for any name and content', () => {
    fc.assert(
      fc.property(
        fc.record({
          out: fc.boolean(),
          fromId: fc.nat(1_000_000),
          fromName: fc.string({ unit: 'binary', maxLength: 30 }),
          to: fc.nat(1_000_000),
          type: fc.constantFrom('chat', 'friend_request', 'system'),
          content: fc.string({ unit: 'binary', maxLength: 200 }),
          group: fc.option(fc.nat(1_000_000), { nil: null }),
          mentioned: fc.boolean(),
          attachment: fc.option(
            fc.string({ unit: 'binary', maxLength: 30 }).filter((s) => s.trim() !== ''),
            {
              nil: null,
            },
          ),
        }),
        (l) => {
          const line = formatConversationLine({
            time: '2026-03-09T10:00:00Z',
            from: { id: l.fromId, name: l.fromName },
            type: l.type,
            out: l.out,
            to: l.out && l.group === null ? l.to : null,
            group: l.group,
            mentioned: l.mentioned && !l.out,
            attachment: l.attachment,
            content: l.content,
          });
          expect(line.split('\n')).toHaveLength(1);
          const back = parseConversationLine(line);
          // Line breaks other than \r come back as \n (they are all line breaks to a reader).
          const norm = (s: string): string => s.replace(/\r\n|[\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]/g, '\n');
          expect(back).toMatchObject({
            direction: l.out ? 'out' : 'in',
            fromId: l.fromId,
            fromName: norm(l.fromName),
            peerId: l.out ? (l.group === null ? l.to : 0) : l.fromId,
            type: l.type,
            group: l.group === null ? null : { id: `g${l.group}` },
            mentioned: l.mentioned && !l.out && l.group !== null,
            content: norm(l.content),
          });
          if (l.attachment !== null)
            expect(back!.attachment).toBe(unescapeField(escapeField(l.attachment).replace(/\s+/g, '_')));
        },
      ),
    );
  });

  it('reads lines of the older (Python) skill and ignores anything else', () => {
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] from=#2(bob) type=chat content=hello'),
    ).toMatchObject({
      direction: 'in',
      peerId: 2,
      peerName: 'bob',
      id: null,
      content: 'hello',
    });
    expect(parseConversationLine('# notes')).toBeNull();
    expect(parseConversationLine('')).toBeNull();
  });
});

describe('other records', () => {
  it('inbox_pushed.md entries and sse_channel.log lines', () => {
    expect(formatPushedEntry('2026-03-09T10:00:00Z', 17, '类型：聊天消息\n内容：hi')).toBe(
      '## 2026-03-09T10:00:00Z id=17\n类型：聊天消息\n内容：hi\n\n',
    );
    expect(formatPushedEntry('2026-03-09T10:00:00Z', null, 'x')).toBe(
      '## 2026-03-09T10:00:00Z id=none\nx\n\n',
    );
    expect(formatChannelLine(T, 'connected', 'mode=resume\nsince=3')).toBe(
      '2026-03-09T10:00:00.456Z connected mode=resume since=3\n',
    );
    expect(formatChannelLine(T, 'server', 'stream_connected user_id=1')).toBe(
      '2026-03-09T10:00:00.456Z server stream_connected user_id=1\n',
    );
  });
});
