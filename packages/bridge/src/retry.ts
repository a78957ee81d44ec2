// Retry policy shared by the webhook sender, the relay stream and relay sends: exponential backoff with
// full jitter (AWS "Exponential Backoff and Jitter"), Retry-After honoured, and which outcomes are worth
// retrying at all (spec/openclaw-bridge.md §3.1, openclaw/openclaw#33403: 4xx are permanent).

/** Full jitter: a uniform wait in [0, min(cap, base·2^(attempt−1))]. `attempt` counts failures from 1. */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 40));
  return Math.floor(random() * exp);
}

/**
 * Retry-After in milliseconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). null when absent or
 * unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | null {
  if (value == null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[a-z]/i.test(v)) return null;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}

/** The wait before the next attempt: the jittered backoff, but never less than the receiver asked for. */
export function nextDelay(
  attempt: number,
  retryAfterMs: number | null,
  baseMs: number,
  capMs: number,
  random: () => number,
): number {
  const jittered = backoffDelay(attempt, baseMs, capMs, random);
  return retryAfterMs === null ? jittered : Math.max(jittered, retryAfterMs);
}

export type Verdict = 'delivered' | 'retry' | 'dead';

/**
 * What a webhook answer means. 2xx: done. Network errors, timeouts, 408, 425, 429 and 5xx: transient.
 * Everything else — other 4xx and 3xx (a redirect means a wrong URL; fetch does not follow it) — is
 * permanent: retrying cannot help, so the message goes to the dead letters for a human to look at.
 */
export function classifyWebhookStatus(status: number | null): Verdict {
  if (status === null) return 'retry';
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'dead';
}
