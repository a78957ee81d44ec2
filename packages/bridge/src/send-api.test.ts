import { ClientError, type ClientErrorCode } from '@openwechat/client';
import { describe, expect, it } from 'vitest';
import { BridgeError } from './errors.ts';
import { parseUserWxid, relayNewMsgId, userWxid } from './ids.ts';
import { mapRelayError, parseSendRequest, relayKeyFor, splitText } from './send-api.ts';

describe('send API helpers', () => {
  it('splitText keeps every character, prefers line breaks, respects the limit in code points', () => {
    const text = `${'a'.repeat(700)}\n${'b'.repeat(700)} ${'c'.repeat(10)}`;
    const parts = splitText(text, 1000);
    expect(parts.join('')).toBe(text);
    expect(parts[0]).toBe(`${'a'.repeat(700)}\n`);
    for (const p of parts) expect(Array.from(p).length).toBeLessThanOrEqual(1000);
    const emoji = '😀'.repeat(2500);
    const eparts = splitText(emoji, 1000);
    expect(eparts.map((p) => Array.from(p).length)).toEqual([1000, 1000, 500]);
    expect(splitText('short', 1000)).toEqual(['short']);
  });

  it('parses requests; the Idempotency-Key header wins over requestId', () => {
    const body = Buffer.from(
      JSON.stringify({ to: 'owc_3', text: 'hi', requestId: 'r1', replyToMessageId: 42 }),
    );
    expect(parseSendRequest(body, undefined)).toEqual({
      to: 'owc_3',
      text: 'hi',
      replyToMessageId: '42',
      key: 'r1',
    });
    expect(parseSendRequest(body, 'h1').key).toBe('h1');
    for (const bad of [
      '{',
      '[]',
      '{"to":"owc_3"}',
      '{"text":"x"}',
      '{"to":"owc_3","text":"  "}',
      '{"to":1,"text":"x"}',
    ]) {
      expect(() => parseSendRequest(Buffer.from(bad), undefined)).toThrow(BridgeError);
    }
    expect(() => parseSendRequest(body, 'k'.repeat(256))).toThrow(/1–255/);
  });

  it('user ids never contain ":" and round-trip', () => {
    expect(userWxid(42)).toBe('owc_42');
    expect(parseUserWxid('owc_42')).toBe(42);
    expect(parseUserWxid('42')).toBe(42);
    expect(parseUserWxid('wxid_abc')).toBeNull();
    expect(parseUserWxid('38120000001@chatroom')).toBeNull();
    expect(parseUserWxid('owc_0')).toBeNull();
  });

  it('NewMsgId is stable, positive and ≤ 2^53 − 1', () => {
    const a = relayNewMsgId(7, 1, 1767225600000);
    expect(relayNewMsgId(7, 1, 1767225600000)).toBe(a);
    expect(relayNewMsgId(7, 2, 1767225600000)).not.toBe(a);
    expect(relayNewMsgId(8, 1, 1767225600000)).not.toBe(a);
    for (let i = 1; i < 2000; i++) {
      const id = relayNewMsgId(1, i, 1767225600000 + i);
      expect(Number.isSafeInteger(id) && id > 0).toBe(true);
    }
  });

  it('relay keys stay within 255 characters', () => {
    expect(relayKeyFor('abc')).toBe('oc:abc');
    expect(relayKeyFor('x'.repeat(255)).length).toBeLessThanOrEqual(255);
  });

  it('maps relay errors to the table', () => {
    const e = (code: string, status: number, retryAfterMs: number | null = null) =>
      mapRelayError(new ClientError('relay', code as ClientErrorCode, 'm', { status, retryAfterMs }));
    expect(e('user_not_found', 404).status).toBe(404);
    for (const c of [
      'blocked_by_recipient',
      'you_blocked_recipient',
      'recipient_friends_only',
      'recipient_dnd',
    ])
      expect(e(c, 403).status).toBe(403);
    expect(e('request_pending', 409).code).toBe('request_pending');
    expect(e('content_too_long', 400).status).toBe(413);
    expect(e('validation_failed', 422).status).toBe(422);
    const limited = e('rate_limited', 429, 3000);
    expect([limited.status, limited.headers['retry-after'], limited.extra.retry_after]).toEqual([
      429,
      '3',
      3,
    ]);
    expect(e('internal_error', 500).status).toBe(502);
    expect(e('registration_closed', 503).status).toBe(503);
    const down = mapRelayError(
      new ClientError('network', 'network_error', 'POST /send at http://127.0.0.1:9: ECONNREFUSED'),
    );
    expect([down.status, down.message]).toEqual([503, 'the relay is unreachable (ECONNREFUSED)']);
    expect(mapRelayError(new ClientError('protocol', 'redirect_refused', 'x')).status).toBe(502);
  });
});
