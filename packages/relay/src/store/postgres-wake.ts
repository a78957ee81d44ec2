// Cross-instance wake-ups for PostgreSQL: LISTEN/NOTIFY on a dedicated connection.

import pg from 'pg';
import type { WakeBus } from './types.ts';

/** NOTIFY payloads must stay under 8000 bytes: user ids are sent in batches of this many characters. */
const MAX_IDS_CHARS = 7000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;
/** A query on the LISTEN connection this often notices a connection that died silently. */
const LISTEN_CHECK_MS = 30_000;

/**
 * LISTEN/NOTIFY as the WakeBus. `announce` sends `<instance id>:<id>,<id>,…` on the channel; a dedicated
 * connection LISTENs and hands other instances' announcements to the subscriber (its own are skipped:
 * the local hub was woken directly). A dropped LISTEN connection is re-opened with backoff; the
 * periodic catch-up of the streams covers whatever was announced meanwhile.
 */
export class PostgresWakeBus implements WakeBus {
  private listener: pg.Client | null = null;
  private onWake: ((userIds: number[]) => void) | null = null;
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private backoffMs = RECONNECT_MIN_MS;
  /** How many times the LISTEN connection was (re)established; for tests and metrics. */
  connects = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: pg.ClientConfig,
    readonly channel: string,
    readonly instanceId: string,
    private readonly onError: (err: unknown, what: string) => void,
  ) {}

  /** Ids announced in this turn of the event loop, sent together by the next flush. */
  private pending = new Set<number>();
  private flushing: Promise<void> | null = null;

  /**
   * Batched: every announcement of one turn of the event loop (the sends that committed together)
   * goes out as one NOTIFY after it, instead of one round trip per send.
   */
  announce(userIds: readonly number[]): Promise<void> {
    if (this.closed || userIds.length === 0) return Promise.resolve();
    for (const id of userIds) this.pending.add(id);
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
    return this.flushing;
  }

  private async flush(): Promise<void> {
    const ids = [...this.pending];
    this.pending = new Set();
    this.flushing = null;
    if (this.closed) return;
    let batch = '';
    const send = async () => {
      if (batch)
        await this.pool.query('SELECT pg_notify($1, $2)', [this.channel, `${this.instanceId}:${batch}`]);
      batch = '';
    };
    for (const id of ids) {
      const s = String(id);
      if (batch.length + s.length + 1 > MAX_IDS_CHARS) await send();
      batch = batch ? `${batch},${s}` : s;
    }
    await send();
  }

  async subscribe(onWake: (userIds: number[]) => void): Promise<void> {
    this.onWake = onWake;
    if (this.listener || this.closed) return;
    // The first connection must work: a relay that cannot listen should not start.
    await this.connect();
    this.checkTimer = setInterval(() => void this.check(), LISTEN_CHECK_MS);
    this.checkTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => undefined);
  }

  /** Drops the LISTEN connection as if the network had (tests: the reconnect path). */
  dropListenConnection(): void {
    const l = this.listener;
    if (l) this.lost(l, new Error('dropped on purpose'));
  }

  private handle(msg: pg.Notification): void {
    if (msg.channel !== this.channel || !msg.payload || !this.onWake) return;
    const colon = msg.payload.indexOf(':');
    if (colon < 0 || msg.payload.slice(0, colon) === this.instanceId) return;
    const ids = msg.payload
      .slice(colon + 1)
      .split(',')
      .map(Number)
      .filter((n) => Number.isSafeInteger(n) && n > 0);
    if (ids.length) this.onWake(ids);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config);
    client.on('notification', (msg) => this.handle(msg));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    this.backoffMs = RECONNECT_MIN_MS;
    this.connects++;
  }

  private lost(client: pg.Client, err: unknown): void {
    if (this.listener !== client) return;
    this.listener = null;
    if (this.closed) return;
    this.onError(err ?? new Error('connection ended'), 'LISTEN connection lost; reconnecting');
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, RECONNECT_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect().catch((err: unknown) => {
        this.onError(err, 'LISTEN reconnect failed');
        this.scheduleReconnect();
      });
    }, delay);
    this.retryTimer.unref();
  }

  private async check(): Promise<void> {
    const l = this.listener;
    if (!l) return;
    await l.query('SELECT 1').catch((err: unknown) => this.lost(l, err));
  }
}
