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
// - legacy (neither): the reference's behaviour — a message counts as delivered once written, so it
//   is deleted after the write (unless the same user also holds a resume stream, which must not lose it).

import type { ServerResponse } from 'node:http';
import { encodeSseEvent, formatMessageBlock, messageJson, SSE_PING } from '@openwechat/protocol';
import type { InboxMessage, Store } from '../store/types.ts';

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

  /** Writes raw SSE text and restarts the idle heartbeat. Returns false when the socket is gone. */
  write(chunk: string): boolean {
    if (this.closed || this.res.destroyed) return false;
    this.res.write(chunk);
    this.armPing();
    return true;
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

  /** Writes messages in id order; legacy streams then delete what they wrote. Returns how many. */
  private async writeAll(messages: InboxMessage[]): Promise<number> {
    const written: number[] = [];
    for (const m of messages) {
      if (m.id <= this.cursor) continue;
      if (!this.write(this.encode(m))) break;
      this.cursor = m.id;
      written.push(m.id);
    }
    if (written.length) {
      this.hub.observe.delivered(written.length);
      if (this.mode === 'legacy' && !this.hub.hasResumeStream(this.userId)) {
        await this.hub.store.deleteMessages(this.userId, written);
        this.hub.observe.acknowledged(written.length);
      }
    }
    if (this.res.writableNeedDrain) await new Promise((r) => this.res.once('drain', r));
    return written.length;
  }

  /** New messages were committed for this user (this instance): queue them and write. */
  notify(messages: InboxMessage[]): void {
    if (this.closed) return;
    this.pending.push(...messages);
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
   * Ends the stream (server side) and releases its slot. With a reason (shutdown), the client is told
   * first; a resume client then reconnects — to this instance once restarted, or another — and resumes.
   */
  close(reason?: string): void {
    if (this.closed) return;
    if (reason) this.write(encodeSseEvent({ event: 'log', data: `stream_closing reason=${reason}` }));
    this.closed = true;
    if (this.pingTimer) clearTimeout(this.pingTimer);
    this.hub.remove(this);
    if (!this.res.writableEnded) this.res.end();
  }
}

export class StreamHub {
  private readonly byUser = new Map<number, Set<StreamConnection>>();
  private readonly perIp = new Map<string, number>();

  constructor(
    readonly store: Store,
    readonly pingMs: number,
    private readonly maxPerIp: number,
    readonly onError: (err: unknown) => void,
    /** Counters for what streams deliver and (legacy) acknowledge by writing. */
    readonly observe: { delivered(n: number): void; acknowledged(n: number): void } = {
      delivered() {},
      acknowledged() {},
    },
  ) {}

  /** Reserves a connection slot for an IP; false when the cap is reached. */
  reserve(ip: string): boolean {
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.maxPerIp) return false;
    this.perIp.set(ip, n + 1);
    return true;
  }

  release(ip: string): void {
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  add(conn: StreamConnection): void {
    let set = this.byUser.get(conn.userId);
    if (!set) this.byUser.set(conn.userId, (set = new Set()));
    set.add(conn);
  }

  remove(conn: StreamConnection): void {
    const set = this.byUser.get(conn.userId);
    if (set?.delete(conn)) {
      if (!set.size) this.byUser.delete(conn.userId);
      this.release(conn.ip);
    }
  }

  hasResumeStream(userId: number): boolean {
    for (const c of this.byUser.get(userId) ?? []) if (c.mode === 'resume') return true;
    return false;
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

  get openStreams(): number {
    let n = 0;
    for (const set of this.byUser.values()) n += set.size;
    return n;
  }

  /** Ends every stream (graceful shutdown: clients reconnect and resume). */
  closeAll(reason = 'shutdown'): void {
    for (const set of [...this.byUser.values()]) for (const c of [...set]) c.close(reason);
  }
}
