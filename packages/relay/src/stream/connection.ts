// One open SSE stream: its cursor, its writes with backpressure, its pump from the store (how a stream
// is woken and what it writes is described in hub.ts). It knows the hub that holds it only through
// StreamHost, so the dependency between the two modules is one-way (hub.ts imports this file).

import type { ServerResponse } from 'node:http';
import {
  encodeSseEvent,
  formatMessageBlock,
  messageJson,
  receiptJson,
  SSE_PING,
  type ReceiptView,
} from '@openwechat/protocol';
import type { InboxMessage, MessagingStore } from '../store/types.ts';

export interface HubObserver {
  delivered(n: number): void;
  acknowledged(n: number): void;
  stalled(): void;
}

/** What a stream needs from the hub that holds it (StreamHub implements it). */
export interface StreamHost {
  readonly pingMs: number;
  readonly legacyGraceMs: number;
  readonly writeTimeoutMs: number;
  readonly now: () => number;
  readonly observe: HubObserver;
  readonly store: Pick<MessagingStore, 'listInbox'>;
  onError(err: unknown): void;
  hasResumeStream(userId: number): boolean;
  /** A legacy stream wrote something to settle. */
  scheduleSettle(): void;
  /** The stream closed: release its slot. */
  remove(conn: StreamConnection): void;
}

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
    private readonly hub: StreamHost,
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
