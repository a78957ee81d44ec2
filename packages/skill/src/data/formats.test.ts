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
  it('writes the guide’s layout for incoming, outgoing, attachments, system notices and groups', () => {
    const base = { time: utcSecond(T), file: null, attachment: null } as const;
    expect(
      formatConversationLine({
        ...base,
        direction: 'in',
        peerId: 2,
        peerName: 'bob',
        type: 'chat',
        id: 17,
        content: 'hello',
      }),
    ).toBe('[2026-03-09T10:00:00Z] from=#2(bob) type=chat id=17 content=hello');
    expect(
      formatConversationLine({
        ...base,
        direction: 'out',
        peerId: 2,
        peerName: 'bob',
        type: 'chat',
        id: null,
        content: 'hi',
      }),
    ).toBe('[2026-03-09T10:00:00Z] to=#2(bob) type=chat content=hi');
    expect(
      formatConversationLine({
        ...base,
        direction: 'in',
        peerId: 3,
        peerName: 'carol',
        type: 'chat',
        id: 19,
        file: 'files/3f9c0a1b_my report.pdf',
        content: '(附件)',
      }),
    ).toBe(
      '[2026-03-09T10:00:00Z] from=#3(carol) type=chat id=19 file=files/3f9c0a1b_my_report.pdf content=(附件)',
    );
    expect(
      formatConversationLine({
        ...base,
        direction: 'in',
        peerId: 3,
        peerName: 'carol',
        type: 'chat',
        id: null,
        attachment: 'a b.txt',
        content: 'x',
      }),
    ).toBe('[2026-03-09T10:00:00Z] from=#3(carol) type=chat attachment=a_b.txt content=x');
    expect(
      formatConversationLine({
        ...base,
        group: { id: 'g7', name: 'team' },
        direction: 'in',
        peerId: 2,
        peerName: 'bob',
        type: 'chat',
        id: 20,
        content: 'standup',
      }),
    ).toBe('[2026-03-09T10:00:00Z] group=#g7(team) from=#2(bob) type=chat id=20 content=standup');
    expect(
      formatConversationLine({
        ...base,
        group: { id: 'g7', name: 'team (a)' },
        direction: 'in',
        peerId: 2,
        peerName: 'bob',
        type: 'chat',
        id: 21,
        mentioned: true,
        file: 'files/0123abcd_plan.txt',
        content: '@alice see plan',
      }),
    ).toBe(
      '[2026-03-09T10:00:00Z] group=#g7(team (a\\)) from=#2(bob) type=chat id=21 mentioned=yes file=files/0123abcd_plan.txt content=@alice see plan',
    );
    // Sent to a group: the group is the recipient.
    expect(
      formatConversationLine({
        ...base,
        group: { id: 'g7', name: 'team' },
        direction: 'out',
        peerId: 0,
        peerName: 'team',
        type: 'chat',
        id: null,
        content: 'on my way',
      }),
    ).toBe('[2026-03-09T10:00:00Z] group=#g7(team) to=#g7(team) type=chat content=on my way');
  });

  it('reads group lines back, and refuses a group address outside its own group line', () => {
    expect(
      parseConversationLine(
        '[2026-03-09T10:00:00Z] group=#g7(team) from=#2(bob) type=chat id=21 mentioned=yes file=files/x.txt content=@alice hi',
      ),
    ).toEqual({
      time: '2026-03-09T10:00:00Z',
      group: { id: 'g7', name: 'team' },
      direction: 'in',
      peerId: 2,
      peerName: 'bob',
      type: 'chat',
      id: 21,
      mentioned: true,
      file: 'files/x.txt',
      attachment: null,
      content: '@alice hi',
    });
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] group=#g7(team) to=#g7(team) type=chat content=hi'),
    ).toMatchObject({
      group: { id: 'g7', name: 'team' },
      direction: 'out',
      peerId: 0,
      peerName: 'team',
      mentioned: false,
    });
    expect(parseConversationLine('[2026-03-09T10:00:00Z] to=#g7(team) type=chat content=hi')).toBeNull();
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] group=#g7(team) to=#g8(x) type=chat content=hi'),
    ).toBeNull();
    expect(
      parseConversationLine('[2026-03-09T10:00:00Z] group=#g7(team) from=#g7(team) type=chat content=hi'),
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
          direction: fc.constantFrom('in' as const, 'out' as const),
          peerId: fc.nat(1_000_000),
          peerName: fc.string({ unit: 'binary', maxLength: 30 }),
          type: fc.constantFrom('chat', 'friend_request', 'system'),
          id: fc.option(fc.nat(1_000_000), { nil: null }),
          content: fc.string({ unit: 'binary', maxLength: 200 }),
          group: fc.option(
            fc.record({
              id: fc.nat(1_000_000).map((n) => `g${n}`),
              name: fc.string({ unit: 'binary', maxLength: 30 }),
            }),
            { nil: null },
          ),
          mentioned: fc.boolean(),
        }),
        (l) => {
          const line = formatConversationLine({
            ...l,
            time: '2026-03-09T10:00:00Z',
            file: null,
            attachment: null,
          });
          expect(line.split('\n')).toHaveLength(1);
          const back = parseConversationLine(line);
          // Line breaks other than \r come back as \n (they are all line breaks to a reader).
          const norm = (s: string): string => s.replace(/\r\n|[\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]/g, '\n');
          const group = l.group ? { id: l.group.id, name: norm(l.group.name) } : null;
          const toGroup = group !== null && l.direction === 'out';
          expect(back).toEqual({
            time: '2026-03-09T10:00:00Z',
            group,
            direction: l.direction,
            // An outgoing group line is addressed to the group itself.
            peerId: toGroup ? 0 : l.peerId,
            peerName: toGroup ? group.name : norm(l.peerName),
            type: l.type,
            id: l.id,
            mentioned: l.mentioned,
            file: null,
            attachment: null,
            content: norm(l.content),
          });
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
