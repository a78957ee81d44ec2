import { describe, expect, it } from 'vitest';
import { encodeSseEvent, encodeSseRetry, SSE_PING, streamConnectedLog } from './sse.ts';

describe('SSE framing', () => {
  it('writes event, id and one data line per line', () => {
    expect(encodeSseEvent({ event: 'message', id: 42, data: '类型：聊天消息\n内容：hi' })).toBe(
      'event: message\nid: 42\ndata: 类型：聊天消息\ndata: 内容：hi\n\n',
    );
    expect(encodeSseEvent({ data: 'x' })).toBe('data: x\n\n');
    expect(encodeSseEvent({ data: '' })).toBe('data: \n\n');
  });

  it('splits data on \\r\\n, \\r and \\n (W-9)', () => {
    expect(encodeSseEvent({ event: 'message', data: 'a\r\nb\rc\nd\r\n\re' })).toBe(
      'event: message\ndata: a\ndata: b\ndata: c\ndata: d\ndata: \ndata: e\n\n',
    );
    // A forged field cannot escape: it stays inside a data line.
    expect(encodeSseEvent({ data: 'x\r\nevent: log\r\rid: 1' })).toBe(
      'data: x\ndata: event: log\ndata: \ndata: id: 1\n\n',
    );
  });

  it('keeps event and id on one line', () => {
    expect(encodeSseEvent({ event: 'me\nssage', id: '4\r2', data: 'x' })).toBe(
      'event: message\nid: 42\ndata: x\n\n',
    );
  });

  it('has the ping, retry and log lines', () => {
    expect(SSE_PING).toBe(': ping\n\n');
    expect(encodeSseRetry(3000)).toBe('retry: 3000\n\n');
    expect(
      streamConnectedLog({
        requestId: 'ab12cd34',
        userId: 7,
        ip: '203.0.113.9',
        at: Date.UTC(2026, 2, 9, 16, 30, 5, 120),
      }),
    ).toBe('stream_connected request_id=ab12cd34 user_id=7 ip=203.0.113.9 ts=2026-03-09T16:30:05Z');
  });
});
