// The reference's limiter (docs/compat.md, HEAD): a sliding log over a 1 s window, at most `qps` accepted
// requests per key. Rejected requests are not logged. Unlike the reference, idle keys are pruned and the
// reply carries Retry-After (the time until the oldest logged request leaves the window).

export class SlidingWindowLimiter {
  private readonly logs = new Map<string, number[]>();
  private lastSweep = 0;

  constructor(
    private readonly qps: number,
    private readonly now: () => number = () => performance.now(),
    private readonly windowMs = 1000,
  ) {}

  /** Returns 0 when accepted, else the milliseconds until a request would be accepted. */
  hit(key: string): number {
    const t = this.now();
    this.sweep(t);
    let log = this.logs.get(key);
    if (!log) {
      log = [];
      this.logs.set(key, log);
    }
    while (log.length && log[0]! <= t - this.windowMs) log.shift();
    if (log.length >= this.qps) return Math.max(1, log[0]! + this.windowMs - t);
    log.push(t);
    return 0;
  }

  /** Drop keys whose whole log is older than the window, at most once per window. */
  private sweep(t: number): void {
    if (t - this.lastSweep < this.windowMs) return;
    this.lastSweep = t;
    for (const [key, log] of this.logs)
      if (!log.length || log[log.length - 1]! <= t - this.windowMs) this.logs.delete(key);
  }

  get size(): number {
    return this.logs.size;
  }
}
