// last_seen_at bookkeeping without a write per request (reference W-19): touches are kept in memory and
// written in one batch per interval. Readers that display activity call flush() first, so what they
// show is never stale.

import type { Store } from '../store/types.ts';

export class LastSeenTracker {
  private pending = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly intervalMs = 1000,
  ) {}

  touch(userId: number, at: number): void {
    this.pending.set(userId, at);
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush().catch(() => {}), this.intervalMs);
      this.timer.unref();
    }
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.pending.size) return;
    const batch = [...this.pending];
    this.pending = new Map();
    await this.store.touchLastSeen(batch);
  }
}
