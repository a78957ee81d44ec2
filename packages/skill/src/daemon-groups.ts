// groups.json upkeep for the inbox daemon: on a relay with the `groups` feature the user's groups are
// refreshed on every connect (membership may have changed while we were away) and soon after a group
// message or a membership notice is stored. One refresh at a time; a request meanwhile runs once more.

import { ClientError, type RelayClient } from '@openwechat/client';
import { refreshGroups } from './data/groups.ts';

export class GroupsKeeper {
  /** Whether groups.json is kept: the relay lists `groups` (not with --legacy). */
  enabled = false;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly client: () => RelayClient,
    private readonly delayMs: number,
    private readonly print: (line: string) => void,
  ) {}

  /** Refreshes now (or joins the refresh under way, which then runs once more). */
  refreshNow(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.enabled) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          try {
            await refreshGroups(this.dir, this.client());
          } catch (err) {
            if (err instanceof ClientError && err.kind === 'unsupported') {
              // Not a relay with groups after all: stop asking.
              this.enabled = false;
              return;
            }
            this.print(`cannot refresh groups.json: ${(err as Error).message}`);
            return;
          }
        } while (this.again && !this.stopped);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** A refresh soon (coalesces bursts of group traffic). */
  schedule(): void {
    if (!this.enabled || this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refreshNow();
    }, this.delayMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    await this.running;
  }
}
