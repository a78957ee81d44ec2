import { describe, expect, it } from 'vitest';
import {
  emptyState,
  noteFriendRequest,
  noteNotice,
  notePeerMessage,
  noteReplied,
  noteDelivered,
  noteSent,
  noteSuppressed,
} from './state.ts';
import { renderSummary } from './summary.ts';

const T = Date.UTC(2026, 11, 1, 12, 0, 0);

describe('relay activity summary', () => {
  it('is absent when nothing happened', () => {
    expect(renderSummary('default', emptyState(), T, 800)).toBeNull();
  });

  it('counts unanswered messages per correspondent and lists pending requests', () => {
    const s = emptyState();
    notePeerMessage(s, { id: 2, name: 'alice' }, 'hi', T - 120_000);
    notePeerMessage(s, { id: 2, name: 'alice' }, 'are you there?', T - 60_000);
    notePeerMessage(s, { id: 3, name: 'bob' }, 'yo', T - 30_000);
    noteFriendRequest(s, { id: 4, name: 'carol' }, T - 10_000);
    noteNotice(s, 'bob accepted your friend request', T - 5_000);
    const text = renderSummary('default', s, T, 800)!;
    expect(text).toContain('Unanswered: 3 message(s) from 2 correspondent(s).');
    expect(text).toContain('Pending friend requests (a reply accepts): carol (id 4).');
    expect(text).toContain('- bob (id 3): 1 unread, last 30s ago: "yo"');
    expect(text).toContain('- alice (id 2): 2 unread, last 60s ago: "are you there?"');
    noteReplied(s, 2);
    expect(renderSummary('default', s, T, 800)).toContain(
      'Unanswered: 1 message(s) from 1 correspondent(s).',
    );
  });

  it('says when the loop guard holds a peer back, and stops saying it when the pause ended', () => {
    const s = emptyState();
    notePeerMessage(s, { id: 5, name: 'bot-b' }, 'again', T - 1_000);
    noteSuppressed(s, 5, T + 40_000);
    notePeerMessage(s, { id: 5, name: 'bot-b' }, 'and again', T);
    noteSuppressed(s, 5, T + 40_000);
    expect(renderSummary('default', s, T, 800)).toContain(
      '[loop guard: 2 message(s) not answered; pause ends in 40s]',
    );
    expect(renderSummary('default', s, T + 41_000, 800)).not.toContain('loop guard');
  });

  it('shows per peer the last message sent and whether its client acknowledged it', () => {
    const s = emptyState();
    notePeerMessage(s, { id: 2, name: 'alice' }, 'hi', T - 60_000);
    noteSent(s, { id: 2 }, 17, T - 30_000);
    expect(renderSummary('default', s, T, 800)).toContain(
      'last sent 30s ago (message 17), not delivered yet',
    );
    expect(noteDelivered(s, 2, 16, T - 20_000)).toBe(false); // an older message's receipt changes nothing
    expect(noteDelivered(s, 2, 17, T - 10_000)).toBe(true);
    expect(renderSummary('default', s, T, 800)).toContain('last sent 30s ago (message 17), delivered');
    // A later message sent from elsewhere (the CLI) and already delivered replaces it.
    expect(noteDelivered(s, 2, 20, T - 5_000)).toBe(true);
    expect(renderSummary('default', s, T, 800)).toContain('(message 20), delivered');
    // A peer the account only wrote to appears too (also when the send was made by another process).
    noteSent(s, { id: 9, name: 'bob' }, 3, T);
    expect(renderSummary('default', s, T, 800)).toContain('- bob (id 9): 0 unread; last sent 0s ago');
    expect(noteDelivered(s, 11, 5, T)).toBe(true);
    expect(renderSummary('default', s, T, 800)).toContain(
      '- user 11 (id 11): 0 unread; last sent 0s ago (message 5), delivered',
    );
  });

  it('is bounded in size and in entries', () => {
    const s = emptyState();
    for (let i = 1; i <= 50; i++) notePeerMessage(s, { id: i, name: `user${i}` }, 'x'.repeat(500), T);
    expect(s.peers).toHaveLength(20);
    const text = renderSummary('default', s, T, 300)!;
    expect(text.length).toBeLessThanOrEqual(300);
  });

  it('names end-to-end refusals (never their text) even when nothing else happened', () => {
    const s = emptyState();
    s.e2e = { refused: 1, recentRefused: [{ id: 7, from: 3, code: 'tampered', at: T }], plaintextSent: 0 };
    expect(renderSummary('default', s, T, 800)).toBe(
      '[openwechat relay activity, account default]\n' +
        'Unanswered: 0 message(s) from 0 correspondent(s).\n' +
        'End-to-end encryption: 1 message(s) refused, never shown (last: message 7 from id 3, tampered).',
    );
  });
});
