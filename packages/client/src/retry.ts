// The one retry policy of every relay user (skill daemon, bridge, OpenClaw channel plugin): exponential
// backoff with "equal jitter" (half the step fixed, half random), so a crowd of clients does not come back
// in step and none retries at once in a hot loop; a `Retry-After` the server sent is a floor; and the
// step goes back to the first one once a connection has proved stable (issue 16: a daemon that never
// reset waited 30–60 s after every later outage).

export interface BackoffPolicy {
  /** The first step (attempt 1 waits between baseMs/2 and baseMs). */
  baseMs: number;
  /** No step is longer than this. */
  maxMs: number;
}

/**
 * The wait before attempt `attempt` (1 = the first retry): uniform in [exp/2, exp] where
 * exp = min(maxMs, baseMs·2^(attempt−1)). `random` returns [0, 1) (tests inject a seeded one).
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 40));
  return Math.floor(step / 2 + random() * (step / 2));
}

/**
 * `Retry-After` in milliseconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). null when absent or
 * unreadable; a date in the past is 0.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | null {
  if (value == null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // An HTTP-date names a weekday and a month; a bare number with a sign or a fraction is not valid.
  if (!/[a-z]/i.test(v)) return null;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - nowMs);
}

/** The wait before the next attempt: the jittered step, but never less than the server asked for. */
export function retryDelay(
  attempt: number,
  retryAfterMs: number | null,
  policy: BackoffPolicy,
  random: () => number,
): number {
  const jittered = backoffDelay(attempt, policy, random);
  return retryAfterMs === null ? jittered : Math.max(jittered, retryAfterMs);
}

/**
 * The reconnect state of one long-lived connection: counts failed attempts, and forgets them when a
 * connection stayed up for `stableMs` (a relay that accepts and drops at once keeps backing off).
 */
export class Backoff {
  private failures = 0;
  private upSince: number | null = null;

  constructor(
    private readonly policy: () => BackoffPolicy,
    private readonly stableMs: number,
    private readonly random: () => number,
    private readonly now: () => number,
  ) {}

  /** The connection is up (now). */
  connected(): void {
    this.upSince = this.now();
  }

  /**
   * The connection attempt failed or the connection ended: returns the attempt number of the next try
   * (1 after a stable connection) and its delay.
   */
  failed(retryAfterMs: number | null = null): { attempt: number; delayMs: number } {
    if (this.upSince !== null && this.now() - this.upSince >= this.stableMs) this.failures = 0;
    this.upSince = null;
    this.failures++;
    return {
      attempt: this.failures,
      delayMs: retryDelay(this.failures, retryAfterMs, this.policy(), this.random),
    };
  }

  /** Attempts since the last stable connection. */
  get attempts(): number {
    return this.failures;
  }
}

/**
 * Waits `ms`, or less when `signal` aborts (it resolves either way: the caller checks the signal). The one
 * abortable wait of the relay users: the stream consumer's backoff, the daemon's download retries, the
 * bridge's media copy retries.
 */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
