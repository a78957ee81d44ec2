import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay, parseRetryAfter, retryDelay } from './retry.ts';

const policy = { baseMs: 1000, maxMs: 60_000 };

describe('the retry policy', () => {
  it('equal jitter: uniform in [step/2, step], step = min(max, base·2^(n−1))', () => {
    expect(backoffDelay(1, policy, () => 0)).toBe(500);
    expect(backoffDelay(1, policy, () => 0.999999)).toBe(999);
    expect(backoffDelay(3, policy, () => 0.5)).toBe(3000);
    expect(backoffDelay(30, policy, () => 0)).toBe(30_000);
    expect(backoffDelay(30, policy, () => 0.999999)).toBe(59_999);
  });

  it('Retry-After as seconds or HTTP-date; garbage is ignored', () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter(' 120 ', now)).toBe(120_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-1', now)).toBeNull();
    expect(parseRetryAfter('1.5', now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });

  it('never waits less than Retry-After asks', () => {
    expect(retryDelay(1, 2000, policy, () => 0.1)).toBe(2000);
    expect(retryDelay(10, 2000, policy, () => 0.5)).toBe(45_000);
    expect(retryDelay(1, null, policy, () => 0.5)).toBe(750);
  });

  it('Backoff: steps grow per failure and start over after a stable connection, not after a short one', () => {
    let now = 0;
    const b = new Backoff(
      () => ({ baseMs: 100, maxMs: 10_000 }),
      5000,
      () => 0.999999,
      () => now,
    );
    expect([b.failed(), b.failed(), b.failed()].map((f) => [f.attempt, f.delayMs])).toEqual([
      [1, 99],
      [2, 199],
      [3, 399],
    ]);
    // Up for less than stableMs: the relay accepted and dropped; keep backing off.
    b.connected();
    now += 4999;
    expect(b.failed().attempt).toBe(4);
    // Up long enough: the next outage starts from the first step.
    b.connected();
    now += 5000;
    expect([b.failed().attempt, b.failed().attempt]).toEqual([1, 2]);
    expect(b.attempts).toBe(2);
  });
});
