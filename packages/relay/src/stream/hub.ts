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

import type { ServerResponse } from 'node:http';
import {
  encodeSseEvent,
  formatMessageBlock,
  messageJson,
  receiptJson,
  SSE_PING,
  type ReceiptView,
} from '@openwechat/protocol';
import type { InboxMessage, Store, WakeBus } from '../store/types.ts';

export type StreamMode = 'legacy' | 'resume';
export type StreamFormat = 'text' | 'json';

const PAGE = 200;

/** Ids are consecutive, starting at `first`. */
function isRun(messages: readonly InboxMessage[], first: number): boolean {
  return messages.every((m, i) => m.id === first + i);
}

/** Union of two id-ordered lists, in id order, each id once. */
function mergeById(a: readonly InboxMessage[], b: readonly InboxMessage[]): InboxMessage[] {
  const byId = new Map<number, InboxMessage>();
  for (const m of a) byId.set(m.id, m);
  for (const m of b) if (!byId.has(m.id)) byId.set(m.id, m);
  return [...byId.values()].sort((x, y) => x.id - y.id);
}

export class StreamConnection {
  cursor: number;
  private pumping = false;
  private closed = false;
  /** Committed messages announced on this instance, not yet written. */
  private pending: InboxMessage[] = [];
  /** The store may hold messages after the cursor that were not announced here. */
  private needRead = true;
  private committedUpTo = 0;
  private pingTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  /** Writes handed to the socket, and the last of them whose bytes were flushed (write callbacks). */
  private writes = 0;
  private flushed = 0;
  /** Legacy stream: ids written here and not yet deleted; flushedAt is set once the socket took them. */
  readonly unsettled: { id: number; flushedAt: number | null }[] = [];

  constructor(
    private readonly hub: StreamHub,
    readonly userId: number,
    readonly ip: string,
    readonly mode: StreamMode,
    readonly format: StreamFormat,
    private readonly res: ServerResponse,
    cursor: number,
  ) {
    this.cursor = cursor;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Bytes this stream holds in the relay's memory and has not flushed: what the socket buffers, plus
   * the notified messages waiting to be written (their content).
   */
  get queuedBytes(): number {
    let n = this.res.destroyed ? 0 : this.res.writableLength;
    for (const m of this.pending) n += m.content.length * 3;
    return n;
  }

  /**
   * Writes raw SSE text and restarts the idle heartbeat. Returns false when the socket is gone.
   * `onFlushed` runs once the bytes were handed to the kernel.
   */
  write(chunk: string, onFlushed?: () => void): boolean {
    if (this.closed || this.res.destroyed) return false;
    const seq = ++this.writes;
    this.res.write(chunk, (err) => {
      if (err) return;
      this.flushed = seq;
      onFlushed?.();
    });
    this.armPing();
    this.armStall();
    return true;
  }

  /**
   * A client that stops reading must not make the relay hold its messages (issue 24.2): every
   * SSE_WRITE_TIMEOUT_SECONDS the stream checks that, if bytes were waiting, some of them were flushed;
   * if none were, the stream is ended. (The bytes it may hold meanwhile are bounded by writeAll's
   * backpressure and the cap on `pending`.)
   */
  private armStall(): void {
    if (this.stallTimer) return;
    const since = this.flushed;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.closed || this.flushed === this.writes) return; // nothing waiting: rearmed by the next write
      if (this.flushed === since) return this.close('stalled');
      this.armStall();
    }, this.hub.writeTimeoutMs);
    this.stallTimer.unref();
  }

  /** Resolves once the socket wants more (drain) or is gone. */
  private drained(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  private armPing(): void {
    if (this.pingTimer) this.pingTimer.refresh();
    else {
      this.pingTimer = setTimeout(() => {
        this.pingTimer = null;
        this.write(SSE_PING);
      }, this.hub.pingMs);
      this.pingTimer.unref();
    }
  }

  private encode(m: InboxMessage): string {
    const data = this.format === 'json' ? JSON.stringify(messageJson(m)) : formatMessageBlock(m);
    return encodeSseEvent({ event: 'message', id: m.id, data });
  }

  /** Counts what writeAll wrote; a legacy stream's writes make sure the settle tick runs. */
  private counted(written: number, settles: boolean): void {
    if (!written) return;
    this.hub.observe.delivered(written);
    if (settles) this.hub.scheduleSettle();
  }

  /**
   * Writes messages in id order. A legacy stream remembers what it wrote; the hub deletes each once it
   * has been flushed and the stream stayed open for the grace period (see settle). Returns how many.
   */

  private async writeAll(messages: InboxMessage[]): Promise<number> {
    let written = 0;
    let waited = 0;
    const settles = this.mode === 'legacy' && !this.hub.hasResumeStream(this.userId);
    // LEGACY_STREAM_GRACE_SECONDS=0 is the reference: written is delivered, flushed or not (issue 24.7).
    const atWrite = this.hub.legacyGraceMs === 0;
    for (const m of messages) {
      if (m.id <= this.cursor) continue;
      const entry = { id: m.id, flushedAt: atWrite ? this.hub.now() : null };
      const onFlushed = settles && !atWrite ? () => (entry.flushedAt = this.hub.now()) : undefined;
      if (!this.write(this.encode(m), onFlushed)) break;
      this.cursor = m.id;
      written += 1;
      if (settles) this.unsettled.push(entry);
      // Backpressure per message: the relay holds at most one socket buffer and one message unflushed
      // for a stream (a batch may be 200 messages; a stalled client would otherwise hold them all).
      if (this.res.writableNeedDrain && !this.res.destroyed) {
        this.counted(written, settles);
        waited += written;
        written = 0;
        await this.drained();
      }
    }
    this.counted(written, settles);
    return written + waited;
  }

  /**
   * A receipt for a message this user sent: only a JSON-mode stream shows it (text-mode and reference
   * clients see nothing new). No `id:` line — it is not an inbox message and must not move the
   * client's Last-Event-ID. Written at once, between message events (each event is one write).
   */
  writeReceipt(r: ReceiptView): void {
    if (this.format !== 'json') return;
    this.write(encodeSseEvent({ event: 'receipt', data: JSON.stringify(receiptJson(r)) }));
  }

  /** New messages were committed for this user (this instance): queue them and write. */
  notify(messages: InboxMessage[]): void {
    if (this.closed) return;
    if (this.res.writableNeedDrain || this.pending.length + messages.length > PAGE) {
      // A stream that is behind (its socket is full: the client reads slowly or not at all) collects no
      // copies: the messages are stored, and it reads them from the store when it gets to them (issue
      // 24.2). What it holds is then one socket buffer and one message.
      this.pending.length = 0;
      this.needRead = true;
    } else this.pending.push(...messages);
    void this.pump();
  }

  /**
   * Something may be in the store that this stream has not seen (another instance's commit, the initial
   * replay, a catch-up). `committedUpTo` (from lastMessageIds) lets the cursor skip ids that are gone:
   * ids are assigned in commit order, so anything ≤ it that a read does not return was acknowledged.
   */
  refresh(committedUpTo = 0): void {
    this.needRead = true;
    this.committedUpTo = Math.max(this.committedUpTo, committedUpTo);
    void this.pump();
  }

  /**
   * The one writer of this stream; concurrent wake-ups coalesce into its loop. Notified messages that
   * continue at the cursor are written without a store read (the common case). Otherwise the inbox is
   * read from the cursor and merged with the notified copies — which matters for legacy streams: another
   * legacy stream of the same user may already have deleted a message it wrote.
   */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed) {
        const pending = this.pending.splice(0).filter((m) => m.id > this.cursor);
        let batch: InboxMessage[];
        if (!this.needRead && pending.length && isRun(pending, this.cursor + 1)) {
          batch = pending;
        } else if (this.needRead || pending.length) {
          this.needRead = false;
          const read = await this.hub.store.listInbox(this.userId, this.cursor, PAGE);
          if (read.length === PAGE) this.needRead = true; // more pages after this one
          batch = mergeById(read, pending);
          if (!batch.length && this.committedUpTo > this.cursor) this.cursor = this.committedUpTo;
        } else break;
        // Nothing written although there was something to write: the socket is gone.
        if ((await this.writeAll(batch)) === 0 && batch.some((m) => m.id > this.cursor)) break;
      }
    } catch (err) {
      this.hub.onError(err);
    } finally {
      this.pumping = false;
      // A wake-up that arrived during the final await is not left waiting.
      if (!this.closed && (this.pending.length || this.needRead)) void this.pump();
    }
  }

  /**
   * Ends the stream (server side) and releases its slot. With a reason (shutdown, replaced), the client
   * is told first; a resume client then reconnects — to this instance once restarted, or another — and
   * resumes. What a legacy stream wrote but had not settled stays in the inbox (delivered again).
   */
  close(reason?: string): void {
    if (this.closed) return;
    const stalled = reason === 'stalled';
    // A stalled client would never read the goodbye; its socket is closed at once.
    if (reason && !stalled)
      this.write(encodeSseEvent({ event: 'log', data: `stream_closing reason=${reason}` }));
    this.closed = true;
    this.unsettled.length = 0;
    this.pending.length = 0;
    if (this.pingTimer) clearTimeout(this.pingTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.hub.remove(this);
    if (stalled) {
      this.hub.observe.stalled();
      this.res.destroy();
    } else if (!this.res.writableEnded) this.res.end();
  }
}

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

export interface HubObserver {
  delivered(n: number): void;
  acknowledged(n: number): void;
  stalled(): void;
}

/** How often the hub looks for legacy writes whose grace period has passed (real time). */
const SETTLE_TICK_MS = 500;

export class StreamHub {
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
  async settleBeforeRequest(userId: number): Promise<void> {
    if (this.opts.legacyGraceMs !== 0) return;
    for (const c of this.byUser.get(userId) ?? []) if (c.unsettled.length) return this.settle();
    // A run under way took its entries already and may still be deleting them.
    if (this.settling) await this.settling;
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
