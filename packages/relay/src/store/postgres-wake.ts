// Cross-instance wake-ups for PostgreSQL: LISTEN/NOTIFY on a dedicated connection.

import pg from 'pg';
import type { ReceiptView } from '@openwechat/protocol';
import type { WakeBus } from './wake.ts';

/** NOTIFY payloads must stay under 8000 bytes: user ids are sent in batches of this many characters. */
const MAX_IDS_CHARS = 7000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;
/** A query on the LISTEN connection this often notices a connection that died silently. */
const LISTEN_CHECK_MS = 30_000;
/** Resume-stream records this long past their expiry are deleted by the next refresh. */
const PRUNE_HOLDS_AFTER_MS = 600_000;

/**
 * Receipts travel as `<instance id>:r:<receipt>|<receipt>|…`, each `<from> <to> <message id> <group id
 * or -> <delivered at>` (no commas: an instance that predates receipts reads no user id from it).
 */
const RECEIPTS_TAG = 'r:';

function encodeReceipt(r: ReceiptView): string {
  return `${r.fromId} ${r.toId} ${r.messageId} ${r.groupId ?? '-'} ${r.deliveredAt ?? '-'}`;
}

function decodeReceipt(s: string): ReceiptView | null {
  const [from, to, id, group, at] = s.split(' ');
  const n = (v: string | undefined) => (v === undefined || v === '-' ? null : Number(v));
  const r = { fromId: n(from), toId: n(to), messageId: n(id), groupId: n(group), deliveredAt: n(at) };
  const ok = (v: number | null) => v === null || Number.isSafeInteger(v);
  if (r.fromId === null || r.toId === null || r.messageId === null || !Object.values(r).every(ok))
    return null;
  return r as ReceiptView;
}

/**
 * What one turn of the event loop announces goes out as one NOTIFY after it (several when it exceeds
 * the payload limit) instead of one round trip per item. One flush at a time: each is a pg_notify on
 * whichever pool connection is free, and two in flight could commit in either order (seen: an ack's
 * receipts arriving after those of a later read on another instance).
 */
class NotifyBatches<T> {
  private pending: T[] = [];
  private flushing: Promise<void> | null = null;
  private sent: Promise<void> = Promise.resolve();

  constructor(
    private readonly notify: (payload: string) => Promise<void>,
    private readonly tag: string,
    private readonly separator: string,
    private readonly encode: (item: T) => string,
  ) {}

  add(items: readonly T[]): Promise<void> {
    if (items.length === 0) return Promise.resolve();
    this.pending.push(...items);
    this.flushing ??= this.sent = Promise.all([
      this.sent.catch(() => undefined),
      new Promise<void>((resolve) => setImmediate(resolve)),
    ]).then(() => this.flush());
    return this.flushing;
  }

  private async flush(): Promise<void> {
    const items = new Set(this.pending);
    this.pending = [];
    this.flushing = null;
    let batch = '';
    for (const item of items) {
      const s = this.encode(item);
      if (batch && batch.length + s.length + 1 > MAX_IDS_CHARS) {
        await this.notify(this.tag + batch);
        batch = '';
      }
      batch = batch ? `${batch}${this.separator}${s}` : s;
    }
    if (batch) await this.notify(this.tag + batch);
  }
}

/**
 * LISTEN/NOTIFY as the WakeBus. `announce` sends `<instance id>:<id>,<id>,…` on the channel; a dedicated
 * connection LISTENs and hands other instances' announcements to the subscriber (its own are skipped:
 * the local hub was woken directly). A dropped LISTEN connection is re-opened with backoff; the
 * periodic catch-up of the streams covers whatever was announced meanwhile.
 */
export class PostgresWakeBus implements WakeBus {
  private listener: pg.Client | null = null;
  private onWake: ((userIds: number[]) => void) | null = null;
  private onReceipts: ((receipts: ReceiptView[]) => void) | null = null;
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

  /** Ids announced in one turn of the event loop, sent together (the sends that committed together). */
  private readonly wakes = new NotifyBatches<number>((p) => this.notify(p), '', ',', String);
  /**
   * Receipts are data, not a hint: the receipt event is built from them, so an instance holding the
   * sender's stream needs no store read. A lost notification loses that event (the query still tells).
   */
  private readonly receipts = new NotifyBatches<ReceiptView>(
    (p) => this.notify(p),
    RECEIPTS_TAG,
    '|',
    encodeReceipt,
  );

  announce(userIds: readonly number[]): Promise<void> {
    return this.closed ? Promise.resolve() : this.wakes.add(userIds);
  }

  announceReceipts(receipts: readonly ReceiptView[]): Promise<void> {
    return this.closed ? Promise.resolve() : this.receipts.add(receipts);
  }

  private async notify(payload: string): Promise<void> {
    if (!this.closed)
      await this.pool.query('SELECT pg_notify($1, $2)', [this.channel, `${this.instanceId}:${payload}`]);
  }

  async subscribe(
    onWake: (userIds: number[]) => void,
    onReceipts?: (receipts: ReceiptView[]) => void,
  ): Promise<void> {
    this.onWake = onWake;
    this.onReceipts = onReceipts ?? null;
    if (this.listener || this.closed) return;
    // The first connection must work: a relay that cannot listen should not start.
    await this.connect();
    this.checkTimer = setInterval(() => void this.check(), LISTEN_CHECK_MS);
    this.checkTimer.unref();
  }

  async holdResume(userIds: readonly number[], until: number): Promise<void> {
    if (!userIds.length) return;
    await this.pool.query(
      `INSERT INTO resume_holds (user_id, instance, expires_at)
       SELECT u, $2, $3 FROM unnest($1::bigint[]) AS u
       ON CONFLICT (user_id, instance) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [userIds, this.instanceId, until],
    );
    // Rows of instances that died holding streams, long expired.
    await this.pool.query('DELETE FROM resume_holds WHERE expires_at < $1', [until - PRUNE_HOLDS_AFTER_MS]);
  }

  async releaseResume(userIds: readonly number[]): Promise<void> {
    if (!userIds.length) return;
    await this.pool.query('DELETE FROM resume_holds WHERE instance = $1 AND user_id = ANY ($2::bigint[])', [
      this.instanceId,
      userIds,
    ]);
  }

  async resumeHeldElsewhere(userIds: readonly number[], now: number): Promise<Set<number>> {
    if (!userIds.length) return new Set();
    const { rows } = await this.pool.query<{ user_id: string }>(
      `SELECT DISTINCT user_id FROM resume_holds
       WHERE user_id = ANY ($1::bigint[]) AND instance <> $2 AND expires_at > $3`,
      [userIds, this.instanceId, now],
    );
    return new Set(rows.map((r) => Number(r.user_id)));
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
    if (msg.payload.startsWith(RECEIPTS_TAG, colon + 1)) {
      const receipts = msg.payload
        .slice(colon + 1 + RECEIPTS_TAG.length)
        .split('|')
        .map(decodeReceipt)
        .filter((r) => r !== null);
      if (receipts.length && this.onReceipts) this.onReceipts(receipts);
      return;
    }
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
