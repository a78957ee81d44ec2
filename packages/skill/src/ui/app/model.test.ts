import { describe, expect, it } from 'vitest';
import {
  buckets,
  channelStatus,
  contactsOf,
  groupsOf,
  isNewer,
  seenAfter,
  toMessages,
  whoAmI,
  type Msg,
} from './model.ts';

const names: Record<string, string> = { '2': 'bob', '3': 'carol' };
const nameOf = (id: string): string => names[id] ?? '';

const FILE = [
  '[2026-03-09T09:00:00Z] from=#0(system) type=system content=welcome',
  '[2026-03-09T10:00:00Z] from=#2(bob) type=chat content=hi',
  '[2026-03-09T10:01:00Z] from=#1(alice) type=chat.out.to2.attachment:a.txt content=back',
  '[2026-03-09T10:02:00Z] from=#3(carol) type=chat.g7.mention.file:files/x.pdf content=@alice',
  '[2026-03-09T10:03:00Z] from=#1(alice) type=chat.out.g7 content=ok',
  '[2026-03-09T11:00:00Z] to=#3(carol) type=chat content=old style',
  'a stray note',
  '[2026-03-09T12:00:00Z] from=#1(alice) type=chat content=logged by hand',
].join('\n');

describe('messages', () => {
  it('each line as the page shows it: conversation, direction, peer, file, mention', () => {
    const msgs = toMessages(FILE, 1, nameOf);
    expect(msgs.map((m) => [m.key, m.dir, m.peer?.name ?? null, m.file, m.mentioned, m.content])).toEqual([
      ['sys', 'sys', 'system', null, false, 'welcome'],
      ['u:2', 'in', 'bob', null, false, 'hi'],
      // My direct message names its recipient from contacts.json.
      ['u:2', 'out', 'bob', 'a.txt', false, 'back'],
      ['g:g7', 'in', 'carol', 'files/x.pdf', true, '@alice'],
      ['g:g7', 'out', null, null, false, 'ok'],
      ['u:3', 'out', 'carol', null, false, 'old style'],
      // Not a message line: shown as it is, nothing hidden.
      ['sys', 'sys', null, null, false, 'a stray note'],
      // My own line without `.out` (hand-written): outgoing, kept under my own name.
      ['u:1', 'out', 'alice', null, false, 'logged by hand'],
    ]);
    expect(msgs.map((m) => m.idx)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(msgs[6]!.ts).toBeNaN();
  });

  it('splits by friend (groups without messages too), by session and by day, newest first', () => {
    const msgs = toMessages(FILE, 1, nameOf);
    const group = { id: '9', name: 'ops', description: '', role: 'owner', memberCount: 1 };
    const title = (key: string, m: Msg | null): string => `${key}|${m?.content ?? '-'}`;
    const friend = buckets(msgs, 'friend', [group], title, (m) => m.dir === 'in');
    expect(friend.map((b) => [b.id, b.name, b.msgs.length, b.unread])).toEqual([
      ['c:u:1', 'u:1|logged by hand', 1, 0],
      ['c:u:3', 'u:3|old style', 1, 0],
      ['c:g:g7', 'g:g7|ok', 2, 1],
      ['c:u:2', 'u:2|back', 2, 1],
      // The stray note has no time: its conversation sorts by the welcome's.
      ['c:sys', 'sys|a stray note', 2, 0],
      ['c:g:g9', 'g:g9|-', 0, 0],
    ]);
    const session = buckets(msgs, 'session', [], title, () => false);
    expect(session.filter((b) => b.key === 'sys').map((b) => b.msgs.map((m) => m.content))).toEqual([
      ['welcome'],
      ['a stray note'],
    ]);
    // Days are the browser's (its time zone); a line without a time has none.
    const days = buckets(msgs, 'time', [], title, () => false);
    expect(days.map((b) => b.msgs.length).reduce((a, b) => a + b)).toBe(8);
    expect(days.at(-1)).toMatchObject({ id: 'd:—', name: '—' });
    expect(days.at(-1)!.msgs.map((m) => m.content)).toEqual(['a stray note']);
  });

  it('read marks move forward only, by id when both have one, else by time', () => {
    const [m] = toMessages('[2026-03-09T10:00:00Z] from=#2(bob) type=chat id=17 content=hi', null, nameOf);
    expect(isNewer(m!, undefined)).toBe(true);
    expect(isNewer(m!, { id: 17, time: null })).toBe(false);
    expect(isNewer(m!, { id: 16, time: '2026-03-10T00:00:00Z' })).toBe(true);
    expect(seenAfter(m!, { id: 20, time: '2026-03-10T00:00:00Z' })).toEqual({
      id: 20,
      time: '2026-03-10T00:00:00Z',
    });
    expect(seenAfter(m!, undefined)).toEqual({ id: 17, time: '2026-03-09T10:00:00Z' });
  });
});

describe('the JSON files, in the guide’s layouts and skill 0.x’s', () => {
  it('who I am, contacts, groups', () => {
    expect(whoAmI({ my_id: 1, my_name: 'alice' }, null)).toEqual({ id: '1', name: 'alice' });
    expect(whoAmI({ id: 1, name: 'alice' }, null)).toEqual({ id: '1', name: 'alice' });
    expect(whoAmI(null, { me: { id: 4, name: 'dan' } })).toEqual({ id: '4', name: 'dan' });
    expect(whoAmI(null, null)).toBeNull();
    expect(contactsOf({ '2': { name: 'bob', relationship: 'accepted' }, updated_at: 'x' })).toEqual([
      { id: '2', name: 'bob', description: '', relationship: 'accepted', since: '', last_message_at: '' },
    ]);
    expect(contactsOf({ contacts: [{ id: 3, name: 'carol' }, 'junk'] }).map((c) => [c.id, c.name])).toEqual([
      ['3', 'carol'],
    ]);
    expect(
      groupsOf({
        groups: [{ id: 7, name: 'team', member_count: 3 }, { id: 'x' }, { id: 8, member_count: null }],
      }),
    ).toEqual([
      { id: '7', name: 'team', description: '', role: '', memberCount: 3 },
      { id: '8', name: '', description: '', role: '', memberCount: null },
    ]);
  });

  it('the channel state: the last state line of sse_channel.log, else stats.json', () => {
    const log = '2026-03-10T07:58:00Z connected a\n2026-03-10T07:58:30Z server keepalive\nnot a line\n';
    expect(channelStatus(log, null)).toMatchObject({ state: 'connected', details: 'a' });
    expect(channelStatus('', { sse: { state: 'fallback', since: '2026-03-10T07:00:00Z' } })).toMatchObject({
      state: 'fallback',
      ts: Date.UTC(2026, 2, 10, 7),
    });
    expect(channelStatus(null, { sse: { state: 'weird' } })).toBeNull();
  });
});
