import fc from 'fast-check';
import {
  formatBlocked,
  formatFriends,
  formatHomepageUpdated,
  formatStatusUpdated,
  formatUnblocked,
  formatUserDetail,
  formatUserList,
  type PublicUser,
} from '@openwechat/protocol';
import { describe, expect, it } from 'vitest';
import {
  parseBlockReply,
  parseFriends,
  parseHomepageUpdated,
  parseStatusUpdated,
  parseUserDetail,
  parseUserList,
} from './text.ts';

const T = Date.UTC(2026, 2, 9, 10, 0, 0);

const user = (
  id: number,
  name: string,
  description: string | null,
  status: PublicUser['status'] = 'open',
): PublicUser => ({
  id,
  name,
  description,
  status,
  createdAt: T,
  lastSeenAt: T + 60_000,
});

describe('text replies read back', () => {
  it('user list, user detail, friends', () => {
    const users = [user(2, 'bob', '个人助手'), user(3, 'carol', null, 'friends_only')];
    expect(parseUserList(formatUserList({ total: 7, users }))).toEqual({
      total: 7,
      users: [
        { id: 2, name: 'bob', description: '个人助手', status: 'open', createdAt: T, lastSeenAt: T + 60_000 },
        {
          id: 3,
          name: 'carol',
          description: null,
          status: 'friends_only',
          createdAt: T,
          lastSeenAt: T + 60_000,
        },
      ],
    });
    expect(parseUserList('暂无可交流的用户')).toEqual({ total: 0, users: [] });
    expect(parseUserDetail(formatUserDetail(user(9, 'x（y）', 'multi\nline', 'do_not_disturb')))).toEqual({
      id: 9,
      name: 'x（y）',
      description: 'multi\nline',
      status: 'do_not_disturb',
      createdAt: T,
      lastSeenAt: T + 60_000,
    });
    expect(
      parseFriends(
        formatFriends([
          { user: users[0]!, since: T + 5000 },
          { user: users[1]!, since: T },
        ]),
      ),
    ).toEqual([
      {
        id: 2,
        name: 'bob',
        description: '个人助手',
        status: null,
        createdAt: null,
        lastSeenAt: T + 60_000,
        friendsSince: T + 5000,
      },
      {
        id: 3,
        name: 'carol',
        description: null,
        status: null,
        createdAt: null,
        lastSeenAt: T + 60_000,
        friendsSince: T,
      },
    ]);
    expect(parseFriends('暂无好友')).toEqual([]);
  });

  it('status, block, unblock, homepage', () => {
    expect(parseStatusUpdated(formatStatusUpdated('friends_only'))).toBe('friends_only');
    expect(parseBlockReply(formatBlocked({ id: 4, name: 'eve' }))).toEqual({ id: 4, name: 'eve' });
    expect(parseBlockReply(formatUnblocked({ id: 4, name: 'eve' }))).toEqual({ id: 4, name: 'eve' });
    expect(parseHomepageUpdated(formatHomepageUpdated('http://h/homepage/4'))).toEqual({
      url: 'http://h/homepage/4',
    });
  });

  it('any printable name and description survive a list', () => {
    const printable = fc
      .string({ minLength: 1, maxLength: 20 })
      .filter((s) => !/[\x00-\x1f\x7f]|（ID:/.test(s) && s.trim() === s);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(printable, fc.option(printable, { nil: null })), { minLength: 1, maxLength: 4 }),
        (rows) => {
          const users = rows.map(([name, desc], i) => user(i + 1, name, desc === '（无）' ? null : desc));
          const back = parseUserList(formatUserList({ total: users.length, users }));
          expect(back.users.map((u) => [u.id, u.name, u.description])).toEqual(
            users.map((u) => [u.id, u.name, u.description]),
          );
        },
      ),
    );
  });
});
