import { describe, expect, it } from 'vitest';
import { LoopEpisodes, loopFacts, sharedDefaults } from './loop-guard.ts';

describe('pair loop guard facts', () => {
  it('a chat is the pair (sender, this account) in the conversation with the sender', () => {
    const facts = loopFacts(
      { accountId: 'default', messageId: 41, senderId: 7, groupId: null },
      undefined,
      undefined,
    );
    expect(facts).toEqual({
      scopeId: 'openwechat:default',
      conversationId: 'user:7',
      senderId: 'user:7',
      receiverId: 'account:default',
      eventId: '41',
      defaultEnabled: true,
    });
  });

  it('a group message is keyed by the group; config layers pass through', () => {
    const facts = loopFacts(
      { accountId: 'b', messageId: 3, senderId: 7, groupId: 9 },
      { maxEventsPerWindow: 4 },
      { cooldownSeconds: 10 },
      1234,
    );
    expect(facts).toMatchObject({
      scopeId: 'openwechat:b',
      conversationId: 'group:9',
      senderId: 'user:7',
      config: { maxEventsPerWindow: 4 },
      defaultsConfig: { cooldownSeconds: 10 },
      nowMs: 1234,
    });
  });

  it('reads the shared default from channels.defaults', () => {
    expect(sharedDefaults({ channels: { defaults: { botLoopProtection: { windowSeconds: 5 } } } })).toEqual({
      windowSeconds: 5,
    });
    expect(sharedDefaults({})).toBeUndefined();
  });

  it('an episode is reported once per cooldown, again after a new cooldown starts', () => {
    const episodes = new LoopEpisodes();
    const f = loopFacts(
      { accountId: 'default', messageId: 1, senderId: 7, groupId: null },
      undefined,
      undefined,
    );
    const g = loopFacts(
      { accountId: 'default', messageId: 2, senderId: 8, groupId: null },
      undefined,
      undefined,
    );
    expect(episodes.suppressed(f, 1000)).toBe(true);
    expect(episodes.suppressed(f, 1000)).toBe(false);
    expect(episodes.suppressed(g, 1000)).toBe(true);
    expect(episodes.suppressed(f, 5000)).toBe(true);
  });
});
