import { describe, expect, it } from 'vitest';
import { formatConversationLine } from './formats.ts';
import { parseChannelLine, parseConversationLine, parseConversations } from './lines.ts';

const T = '2026-03-09T10:00:00Z';

describe('conversations.md lines of older versions (docs/skill-data.md, "Reading")', () => {
  it('skill 0.x: keys in its order, the recipient named by `to=`', () => {
    expect(
      parseConversationLine(`[${T}] from=#3(carol) type=chat id=19 file=files/r.pdf content=see`),
    ).toEqual({
      time: T,
      direction: 'in',
      fromId: 3,
      fromName: 'carol',
      peerId: 3,
      peerName: 'carol',
      type: 'chat',
      id: 19,
      file: 'files/r.pdf',
      attachment: null,
      content: 'see',
      group: null,
      mentioned: false,
    });
    expect(parseConversationLine(`[${T}] to=#2(bob) type=chat content=hi`)).toMatchObject({
      direction: 'out',
      fromId: 0,
      peerId: 2,
      peerName: 'bob',
    });
  });

  it('the Python skill: extra fields in any order (unknown ones ignored), names with a bare `)`, CRLF', () => {
    expect(
      parseConversationLine(
        `[${T}] from=#2(bob (work)) type=chat mood=happy attachment=a.txt id=7 content=x content=y\r`,
      ),
    ).toMatchObject({
      fromId: 2,
      fromName: 'bob (work)',
      type: 'chat',
      id: 7,
      attachment: 'a.txt',
      content: 'x content=y',
    });
    // An escaped `\)` stays inside the name: what formats.ts writes reads back unchanged.
    const line = formatConversationLine({
      time: T,
      from: { id: 9, name: 'x) type=y' },
      type: 'chat',
      content: 'z',
    });
    expect(parseConversationLine(line)).toMatchObject({ fromName: 'x) type=y', type: 'chat', content: 'z' });
  });

  it('this user’s own `from=` lines without `.out` are outgoing once the reader knows who it is', () => {
    const text = [
      `[${T}] from=#1(alice) type=chat content=sent by the agent`,
      '',
      `[${T}] from=#2(bob) type=chat content=hi`,
      'a note the agent left',
      `[${T}] from=#1(alice) type=chat.out.to2 content=current`,
    ].join('\r\n');
    const read = parseConversations(text, 1);
    expect(read.map((r) => [r.line?.direction ?? null, r.line?.peerId ?? null, r.raw])).toEqual([
      ['out', 0, `[${T}] from=#1(alice) type=chat content=sent by the agent`],
      ['in', 2, `[${T}] from=#2(bob) type=chat content=hi`],
      [null, null, 'a note the agent left'],
      ['out', 2, `[${T}] from=#1(alice) type=chat.out.to2 content=current`],
    ]);
    // Without the id, the same line is what it says: a message from #1.
    expect(parseConversations(text)[0]?.line?.direction).toBe('in');
  });

  it('reads no other timestamp, no line without type= or content=, and keeps unknown escapes literally', () => {
    expect(parseConversationLine('[2026-03-09 10:00:00] from=#2(bob) type=chat content=x')).toBeNull();
    expect(parseConversationLine('[2026-03-09T10:00:00+08:00] from=#2(bob) type=chat content=x')).toBeNull();
    expect(parseConversationLine(`[${T}] from=#2(bob) content=x`)).toBeNull();
    expect(parseConversationLine(`[${T}] from=#2(bob) type=chat`)).toBeNull();
    expect(parseConversationLine(`[${T}] from=#2(bob) type=chat content=C:\\temp\\n\\\\x`)?.content).toBe(
      'C:\\temp\n\\x',
    );
  });
});

describe('sse_channel.log lines', () => {
  it('time, state and details; anything else is null', () => {
    expect(parseChannelLine('2026-03-10T07:58:40.123Z disconnected socket closed\r')).toEqual({
      time: '2026-03-10T07:58:40.123Z',
      state: 'disconnected',
      details: 'socket closed',
    });
    expect(parseChannelLine('2026-03-10T07:58:00Z connected')).toEqual({
      time: '2026-03-10T07:58:00Z',
      state: 'connected',
      details: '',
    });
    expect(parseChannelLine('yesterday connected')).toBeNull();
  });
});
