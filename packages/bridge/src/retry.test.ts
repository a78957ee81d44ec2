import { describe, expect, it } from 'vitest';
import { backoffDelay, classifyWebhookStatus, nextDelay, parseRetryAfter } from './retry.ts';

describe('retry policy', () => {
  it('full jitter: uniform in [0, min(cap, base·2^(n−1))]', () => {
    expect(backoffDelay(1, 1000, 60_000, () => 0.999999)).toBe(999);
    expect(backoffDelay(3, 1000, 60_000, () => 0.5)).toBe(2000);
    expect(backoffDelay(30, 1000, 60_000, () => 0.5)).toBe(30_000);
    expect(backoffDelay(5, 1000, 60_000, () => 0)).toBe(0);
  });

  it('Retry-After as seconds or HTTP-date; garbage is ignored', () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-1', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });

  it('never waits less than Retry-After asks', () => {
    expect(nextDelay(1, 2000, 1000, 60_000, () => 0.1)).toBe(2000);
    expect(nextDelay(10, 2000, 1000, 60_000, () => 0.5)).toBe(30_000);
    expect(nextDelay(1, null, 1000, 60_000, () => 0.5)).toBe(500);
  });

  it('2xx delivered; network, 408, 425, 429, 5xx retried; other 4xx and 3xx dead', () => {
    expect(classifyWebhookStatus(200)).toBe('delivered');
    expect(classifyWebhookStatus(204)).toBe('delivered');
    for (const s of [null, 408, 425, 429, 500, 502, 503, 504]) expect(classifyWebhookStatus(s)).toBe('retry');
    for (const s of [301, 302, 400, 401, 403, 404, 410, 413, 422])
      expect(classifyWebhookStatus(s)).toBe('dead');
  });
});
