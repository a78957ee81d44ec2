// Open SSE streams and how stored messages reach them.
//
// Every message is committed to the store before anyone is told it was sent; the hub is only the
// wake-up. Each stream keeps a cursor (the last message id it wrote) and, when woken, writes the
// messages after it: straight from the notification when they follow the cursor (the common case, no
// store read), otherwise by reading the inbox from the cursor.
//
// Two modes (DESIGN §3):
// - resume (Last-Event-ID or ?since=): nothing is deleted because a write "succeeded"; messages stay
//   stored until acknowledged by a later resume, GET /messages?after= or POST /messages/ack.
// - legacy (neither): the reference's behaviour — a message counts as delivered once written — made
//   at-least-once (issue 17.7): a written message is kept in the inbox until its bytes were flushed to
//   the socket and the stream then stayed open for a grace period (LEGACY_STREAM_GRACE_SECONDS); only
//   then is it deleted. If the stream dies first (a reset during a backlog replay), the message is still
//   stored and the next stream or GET /messages delivers it again — an exact copy, which the guide's
//   (time, from_id, content) dedup absorbs. A healthy legacy client sees each message once, as before.
//   Nothing is deleted while the same user also holds a resume stream, which must not lose it — on
//   this instance or, through a shared expiring record (the bus), on another (issue 24.3).
//
// Admission: at most SSE_MAX_PER_USER streams per user — one more replaces that user's oldest (a
// reconnect over a stale stream), but at most once per SSE_REPLACE_INTERVAL_SECONDS: more consumers than
// slots would otherwise replace each other forever, each replaying the backlog (issue 24.5), so within
// the interval the newcomer gets 429 with Retry-After — and SSE_MAX_PER_IP per client address, sized for
// a host running several agents and a bridge. Admission is synchronous and happens after the handler's
// last await, so a client that disconnected while its stream was being opened never holds a slot (issue
// 17.2).
//
// Backpressure: a stream writes one message at a time and waits for `drain` when the socket is full, and
// collects no notified copies meanwhile (it reads the store when it gets to them), so a client that reads
// slowly costs the relay one socket buffer and one message. One that stops reading is ended after
// SSE_WRITE_TIMEOUT_SECONDS without a flushed write (issue 24.2).

import type { ReceiptView } from '@openwechat/protocol';
import type { InboxMessage, Store } from '../store/types.ts';
import type { WakeBus } from '../store/wake.ts';
import type { HubObserver, StreamConnection, StreamHost } from './connection.ts';

/** Why a stream may not open: the address is full of other users' streams, or the user's churn. */
export type AdmitRefusal = { kind: 'ip' } | { kind: 'churn'; retryAfterMs: number };

export interface StreamHubOptions {
  pingMs: number;
  maxPerIp: number;
  maxPerUser: number;
  /** After a user's stream was replaced, how long further replacements are refused (0: never). */
  replaceIntervalMs: number;
  /** How long a legacy stream must stay open after a message was flushed before it is deleted. */
  legacyGraceMs: number;
  /** A stream with bytes waiting that flushes none of them for this long is ended. */
  writeTimeoutMs: number;
  /** The relay's clock (tests inject one). */
  now: () => number;
  onError: (err: unknown) => void;
  /** Counters for what streams deliver, (legacy) acknowledge by writing, and streams ended as stalled. */
  observe?: Partial<HubObserver>;
  /**
   * Instances sharing the store (PostgreSQL): where the record of resume streams lives, so a legacy
   * stream on one instance deletes nothing a resume stream on another still needs (issue 24.3).
   */
  bus?: Pick<WakeBus, 'holdResume' | 'releaseResume' | 'resumeHeldElsewhere'> | null;
  /** Receipts recorded by legacy settles: for other instances (the WakeBus), after the local streams. */
  announceReceipts?: (receipts: ReceiptView[]) => void;
}

/** How long a record of this instance's resume streams lasts, and how often it is refreshed. */
const HOLD_TTL_MS = 20_000;
const HOLD_REFRESH_MS = 5_000;

/** How often the hub looks for legacy writes whose grace period has passed (real time). */
const SETTLE_TICK_MS = 500;

export class StreamHub implements StreamHost {
  private readonly byUser = new Map<number, Set<StreamConnection>>();
  private readonly perIp = new Map<string, number>();
  /** When each user's stream was last replaced (only within replaceIntervalMs matters). */
  private readonly lastReplaced = new Map<number, number>();
  readonly pingMs: number;
  readonly legacyGraceMs: number;
  readonly now: () => number;
  readonly onError: (err: unknown) => void;
  readonly observe: HubObserver;
  readonly writeTimeoutMs: number;
  private settleTimer: NodeJS.Timeout | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  /** Users this instance has a record for in the bus, and until when (its clock). */
  private readonly held = new Map<number, number>();
  private refreshing: Promise<void> = Promise.resolve();
  private settling: Promise<void> | null = null;
  private settleAgain: Promise<void> | null = null;

  constructor(
    readonly store: Store,
    private readonly opts: StreamHubOptions,
  ) {
    this.pingMs = opts.pingMs;
    this.legacyGraceMs = opts.legacyGraceMs;
    this.now = opts.now;
    this.onError = opts.onError;
    this.observe = { delivered() {}, acknowledged() {}, stalled() {}, ...opts.observe };
    this.writeTimeoutMs = opts.writeTimeoutMs;
  }

  /**
   * Whether a stream of this user from this address may open now (nothing is reserved: the handler
   * calls it before its store round trips to refuse early, and admit() decides after them). null: it
   * may; otherwise why not.
   */
  refusal(userId: number, ip: string): AdmitRefusal | null {
    const mine = this.byUser.get(userId) ?? new Set<StreamConnection>();
    const ipFull = (this.perIp.get(ip) ?? 0) >= this.opts.maxPerIp;
    // At the address cap, a user's reconnect may still replace its own stream from that address.
    if (ipFull && ![...mine].some((c) => c.ip === ip)) return { kind: 'ip' };
    if (!ipFull && mine.size < this.opts.maxPerUser) return null;
    // Opening means replacing one of the user's streams. A stale stream's reconnect does that once; a
    // user whose streams replaced one another less than SSE_REPLACE_INTERVAL_SECONDS ago has more
    // consumers than slots, and the newcomer is told to wait instead (issue 24.5).
    const last = this.lastReplaced.get(userId);
    if (last === undefined) return null;
    const wait = last + this.opts.replaceIntervalMs - this.now();
    if (wait > 0) return { kind: 'churn', retryAfterMs: wait };
    this.lastReplaced.delete(userId);
    return null;
  }

  /**
   * Makes room for a new stream of this user (synchronously, right before add): closes the user's
   * oldest streams beyond SSE_MAX_PER_USER - 1, and at the address cap the user's oldest stream from
   * that address. Refuses (closing nothing) when the address is full of other users' streams or the
   * user's streams were replaced too recently.
   */
  admit(userId: number, ip: string): AdmitRefusal | null {
    const refused = this.refusal(userId, ip);
    if (refused) return refused;
    const mine = [...(this.byUser.get(userId) ?? [])]; // insertion order: oldest first
    let replaced = 0;
    if ((this.perIp.get(ip) ?? 0) >= this.opts.maxPerIp) {
      const same = mine.find((c) => c.ip === ip);
      same?.close('replaced');
      mine.splice(mine.indexOf(same as StreamConnection), 1);
      replaced += 1;
    }
    while (mine.length >= this.opts.maxPerUser) {
      mine.shift()?.close('replaced');
      replaced += 1;
    }
    if (replaced && this.opts.replaceIntervalMs > 0) this.noteReplacement(userId);
    return null;
  }

  private noteReplacement(userId: number): void {
    const now = this.now();
    // Forget users whose interval is over, so the map holds only recent churn.
    if (this.lastReplaced.size >= 1024)
      for (const [id, at] of this.lastReplaced)
        if (at + this.opts.replaceIntervalMs <= now) this.lastReplaced.delete(id);
    this.lastReplaced.set(userId, now);
  }

  add(conn: StreamConnection): void {
    let set = this.byUser.get(conn.userId);
    if (!set) this.byUser.set(conn.userId, (set = new Set()));
    set.add(conn);
    this.perIp.set(conn.ip, (this.perIp.get(conn.ip) ?? 0) + 1);
  }

  remove(conn: StreamConnection): void {
    const set = this.byUser.get(conn.userId);
    if (set?.delete(conn)) {
      if (!set.size) this.byUser.delete(conn.userId);
      const n = (this.perIp.get(conn.ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(conn.ip);
      else this.perIp.set(conn.ip, n);
    }
  }

  hasResumeStream(userId: number): boolean {
    for (const c of this.byUser.get(userId) ?? []) if (c.mode === 'resume') return true;
    return false;
  }

  /**
   * Records, where other instances look (the bus), that this instance holds a resume stream of the
   * user; called before the stream is admitted, so no other instance's legacy stream deletes what it
   * will need. Refreshed every HOLD_REFRESH_MS while the user has a resume stream here, and deleted by
   * the first refresh after the last one closed (so a client that reconnects at once costs no round
   * trip: its record is still fresh).
   */
  async holdResume(userId: number): Promise<void> {
    const bus = this.opts.bus;
    if (!bus) return;
    const now = this.now();
    if ((this.held.get(userId) ?? 0) - now > HOLD_TTL_MS - 2 * HOLD_REFRESH_MS) return;
    // A release under way must not land after this.
    await this.refreshing;
    await bus.holdResume([userId], now + HOLD_TTL_MS);
    this.held.set(userId, now + HOLD_TTL_MS);
    this.holdTimer ??= setInterval(() => void this.refreshHolds(), HOLD_REFRESH_MS);
    this.holdTimer.unref();
  }

  /** Extends the records of users with resume streams here; deletes the others'. One run at a time. */
  private refreshHolds(): Promise<void> {
    const run = async () => {
      const bus = this.opts.bus;
      if (!bus) return;
      const now = this.now();
      const holding = [...this.held.keys()].filter((id) => this.hasResumeStream(id));
      const gone = [...this.held.keys()].filter((id) => !this.hasResumeStream(id));
      // Forgotten before the round trip: a stream opening meanwhile writes its record again, after this.
      for (const id of gone) this.held.delete(id);
      try {
        if (gone.length) await bus.releaseResume(gone);
        if (holding.length) await bus.holdResume(holding, now + HOLD_TTL_MS);
        for (const id of holding) this.held.set(id, now + HOLD_TTL_MS);
      } catch (err) {
        this.onError(err);
      }
      if (!this.held.size && this.holdTimer) {
        clearInterval(this.holdTimer);
        this.holdTimer = null;
      }
    };
    this.refreshing = this.refreshing.then(run);
    return this.refreshing;
  }

  /** Deletes the records of users without a resume stream here (shutdown, before the store closes). */
  flushReleases(): Promise<void> {
    return this.refreshHolds();
  }

  /**
   * With LEGACY_STREAM_GRACE_SECONDS=0 what a legacy stream wrote is deleted before the relay answers
   * the user's next request, as on the reference (issue 24.7): the request waits for this settle run.
   * Other grace periods are left to the tick.
   */
  settleBeforeRequest(userId: number): Promise<void> | undefined {
    if (this.opts.legacyGraceMs !== 0) return undefined;
    for (const c of this.byUser.get(userId) ?? []) if (c.unsettled.length) return this.settle();
    // A run under way took its entries already and may still be deleting them.
    return this.settling ?? undefined;
  }

  /** A legacy stream wrote something to settle: make sure the settle tick runs. */
  scheduleSettle(): void {
    if (this.settleTimer) return;
    const tick = Math.max(20, Math.min(SETTLE_TICK_MS, this.opts.legacyGraceMs));
    this.settleTimer = setInterval(() => void this.settle(), tick);
    this.settleTimer.unref();
  }

  /**
   * Deletes what open legacy streams wrote, flushed, and kept open for the grace period since. A stream
   * that closed dropped its list, so its messages stay stored. Resolves when the deletions are done.
   */
  settle(): Promise<void> {
    if (!this.settling) {
      this.settling = this.settleOnce().finally(() => (this.settling = null));
      return this.settling;
    }
    // A run is under way with a deadline taken before this call (the clock may have moved since, or a
    // write been flushed): run once more after it. Callers meanwhile share that one extra run.
    this.settleAgain ??= this.settling.then(() => {
      this.settleAgain = null;
      return this.settle();
    });
    return this.settleAgain;
  }

  private async settleOnce(): Promise<void> {
    const now = this.now();
    const due = now - this.opts.legacyGraceMs;
    let pending = false;
    const byUser = new Map<number, number[]>();
    for (const [userId, set] of [...this.byUser]) {
      const ids: number[] = [];
      for (const c of set) {
        let n = 0;
        while (n < c.unsettled.length) {
          const flushedAt = c.unsettled[n]?.flushedAt ?? null;
          if (flushedAt === null || flushedAt > due) break;
          n += 1;
        }
        for (const e of c.unsettled.splice(0, n)) ids.push(e.id);
        if (c.unsettled.length) pending = true;
      }
      // Nothing is deleted while the user holds a resume stream, here or (below) on another instance:
      // the messages stay stored until the resume client acknowledges them.
      if (ids.length && !this.hasResumeStream(userId)) byUser.set(userId, ids);
    }
    if (byUser.size && this.opts.bus) {
      try {
        const held = await this.opts.bus.resumeHeldElsewhere([...byUser.keys()], now);
        for (const id of held) byUser.delete(id);
      } catch (err) {
        // Unknown: delete nothing now (the messages stay stored and are delivered again).
        this.onError(err);
        byUser.clear();
      }
    }
    for (const [userId, ids] of byUser) {
      try {
        // A legacy write counts as delivered (the reference's rule): the deletion records the receipts.
        const delivery = { at: this.now(), receipts: [] as ReceiptView[] };
        await this.store.deleteMessages(userId, ids, delivery);
        this.observe.acknowledged(ids.length);
        if (delivery.receipts.length) {
          this.deliverReceipts(delivery.receipts);
          this.opts.announceReceipts?.(delivery.receipts);
        }
      } catch (err) {
        this.onError(err);
      }
    }
    if (!pending && this.settleTimer) {
      clearInterval(this.settleTimer);
      this.settleTimer = null;
    }
  }

  /** Wakes the streams of each recipient of freshly committed messages (already in id order). */
  publish(messages: readonly InboxMessage[]): void {
    const byRecipient = new Map<number, InboxMessage[]>();
    for (const m of messages) {
      if (!this.byUser.has(m.toId)) continue;
      let list = byRecipient.get(m.toId);
      if (!list) byRecipient.set(m.toId, (list = []));
      list.push(m);
    }
    for (const [userId, list] of byRecipient) for (const c of this.byUser.get(userId) ?? []) c.notify(list);
  }

  /** Receipts recorded (here or on another instance): to their senders' JSON-mode streams here. */
  deliverReceipts(receipts: readonly ReceiptView[]): void {
    for (const r of receipts) for (const c of this.byUser.get(r.fromId) ?? []) c.writeReceipt(r);
  }

  /** Another instance committed messages for these users: read them from the store. */
  wake(userIds: readonly number[]): void {
    for (const id of userIds) for (const c of this.byUser.get(id) ?? []) c.refresh();
  }

  /**
   * The safety net under cross-instance notifications: one query for the newest id of every connected
   * inbox, and a store read only for the streams that are behind.
   */
  async catchUp(): Promise<void> {
    if (!this.byUser.size) return;
    const last = await this.store.lastMessageIds([...this.byUser.keys()]);
    for (const [userId, set] of this.byUser) {
      const newest = last.get(userId) ?? 0;
      for (const c of set) if (c.cursor < newest) c.refresh(newest);
    }
  }

  /** Bytes held unflushed by every open stream (see StreamConnection.queuedBytes; /metrics). */
  queuedBytes(): number {
    let n = 0;
    for (const set of this.byUser.values()) for (const c of set) n += c.queuedBytes;
    return n;
  }

  get openStreams(): number {
    let n = 0;
    for (const set of this.byUser.values()) n += set.size;
    return n;
  }

  /** Ends every stream (graceful shutdown: clients reconnect and resume). */
  closeAll(reason = 'shutdown'): void {
    for (const set of [...this.byUser.values()]) for (const c of [...set]) c.close(reason);
    if (this.settleTimer) clearInterval(this.settleTimer);
    this.settleTimer = null;
    if (this.holdTimer) clearInterval(this.holdTimer);
    this.holdTimer = null;
  }
}
