// The one resuming-stream consumer: what the skill daemon, the bridge and the OpenClaw channel plugin each
// used to write for themselves. It keeps one `GET /stream` open and hands every message, in order, to the
// caller's handler; only after the handler settled does the message count as handled — the cursor moves
// (the caller's store), and the relay is told (`POST /messages/ack {up_to}`, coalesced; the next resume's
// `Last-Event-ID` and `GET /messages?after=` acknowledge as well). Nothing is lost when the process dies at
// any instant: the relay replays everything after the cursor.
//
// A connection that breaks is reopened after a backoff (retry.ts: exponential, equal jitter, Retry-After a
// floor, the step reset once a connection stayed up for `stableMs`); a rejected token waits the longest
// step. While the stream is down the inbox can be polled (`GET /messages`, lossless `?after=` on our relay,
// read-and-clear on the reference, where it also runs right after each connect). Every state change is an
// event with its reason, for the caller's log.
//
// Our relay (/health lists `resume`): a resume stream from the cursor, JSON format when offered. The
// reference (or `legacy: true`): a legacy stream of text blocks, no ids, no acks, no cursor.

import type { MessageJson } from '@openwechat/protocol';
import type { RelayClient } from './client.ts';
import { ClientError } from './errors.ts';
import { abortableSleep, Backoff } from './retry.ts';
import type { SseStream } from './stream.ts';
import type { Capabilities, Message, Receipt } from './types.ts';

/** One received message, whichever way it came. */
export interface Delivery {
  /** The relay's message id; null on the reference (its text has no ids). */
  id: number | null;
  message: Message;
  /** What the relay sent: the text block or the JSON line; null for a JSON inbox page (no raw text). */
  raw: string | null;
  format: 'json' | 'text';
  /** The wire object as the relay sent it (JSON stream events), else null. */
  json: MessageJson | null;
  via: 'stream' | 'poll';
}

/** Where the cursor lives: each user keeps it its own way (a JSON file, an SQLite row, plugin state). */
export interface CursorStore {
  /** The last handled id (0: none yet). Read before every connect and every poll. */
  load(): number | Promise<number>;
  /**
   * Called once the handler settled for every message up to `id`, before the relay is told. Optional:
   * a handler that stores the cursor with the message itself (in one transaction) needs no save.
   */
  save?(id: number): void | Promise<void>;
}

/** Why the stream is not up. */
export interface StreamFailure {
  /** One line: `<code>[ status=<n>]: <message>`, `stream_ended`, `handler failed: …`. */
  reason: string;
  status: number;
  code: string;
  retryAfterMs: number | null;
  /** Whether polling `/messages` can help meanwhile (not with a rejected token or a wrong relay). */
  fallback: boolean;
  /** A refusal that needs a human (the token): the next try waits the longest step. */
  fatalish: boolean;
}

export type ConsumerState = 'idle' | 'connected' | 'reconnecting' | 'fallback' | 'stopped';

export type ConsumerEvent =
  | {
      type: 'connected';
      mode: 'resume' | 'legacy';
      format: 'json' | 'text';
      /** The cursor the stream resumed from (null: legacy stream). */
      since: number | null;
      capabilities: Capabilities;
      /** Set when this connect ends an outage: how long it lasted and how many attempts it took. */
      recovered: { afterMs: number; attempts: number } | null;
    }
  | { type: 'disconnected'; reason: string; failure: StreamFailure }
  | { type: 'reconnecting'; attempt: number; delayMs: number; reason: string; failure: StreamFailure }
  /** Polling starts for this outage (`via` is the request, e.g. `GET /messages?after=3`). */
  | { type: 'fallback'; phase: 'start'; via: string }
  /** A poll while the stream is down delivered `fetched` messages. */
  | { type: 'fallback'; phase: 'fetched'; fetched: number; lastId: number }
  /** The legacy catch-up after a connect (the reference keeps what arrived while no stream was open). */
  | { type: 'fallback'; phase: 'catch_up'; fetched: number }
  | { type: 'fallback'; phase: 'catch_up_failed'; error: string }
  | { type: 'ack'; upTo: number; ok: boolean; error?: string };

export interface StreamConsumerOptions {
  /** The relay client, or a function asked before every connect (e.g. re-reading a config file). */
  client: RelayClient | (() => RelayClient | Promise<RelayClient>);
  cursor: CursorStore;
  /**
   * One message at a time: the next waits until the returned promise settles; then the message counts as
   * handled. A rejection closes the connection (retried with backoff; the relay replays from the cursor).
   */
  onMessage?: (delivery: Delivery) => void | Promise<void>;
  /**
   * Or: everything that arrived while the previous call ran (one fsync per batch, say). The batch counts
   * as handled when the promise settles. Exactly one of onMessage and onBatch.
   */
  onBatch?: (batch: Delivery[]) => void | Promise<void>;
  /** An `event: message` the client could not read (kept raw by the caller; not handled, not acked). */
  onUnreadable?: (ev: { id: number | null; raw: string; error: string }) => void | Promise<void>;
  /** An `event: log` line (e.g. `stream_connected user_id=…`); awaited before the messages after it. */
  onServerLog?: (line: string) => void | Promise<void>;
  /**
   * A delivery receipt for a message this user sent (JSON-mode streams of a relay with `receipts`),
   * awaited like onServerLog. Receipts are not messages: they never reach onMessage, move the cursor or
   * get acknowledged. A receipt that arrives while no stream is up is not replayed: ask
   * `client.receipt()` for the state of a message.
   */
  onReceipt?: (receipt: Receipt) => void | Promise<void>;
  /** State changes, awaited in order (write a log line here). */
  onEvent?: (ev: ConsumerEvent) => void | Promise<void>;
  /** Behave as with the reference relay even on ours (legacy stream, text, read-and-clear). */
  legacy?: boolean;
  /** /health features without which connecting fails (e.g. the bridge needs `resume` and `json`). */
  requireFeatures?: string[];
  backoff?: {
    /** First step; default: the relay's `retry:` field, else 1 s. */
    baseMs?: number;
    /** Longest step (and the wait after a rejected token); default 60 s. */
    maxMs?: number;
    /** A connection that stayed up this long resets the step; default 10 s. */
    stableMs?: number;
  };
  /** A stream silent this long is dead (the relay pings every 30 s); default 75 s. */
  idleTimeoutMs?: number;
  /**
   * Poll `/messages` while the stream is down (and catch up after a legacy connect), `limit` messages a
   * read-and-clear page (a lossless `?after=` page takes at least 100). Default: off.
   */
  fallback?: { intervalMs: number; limit: number | (() => number) } | false;
  /** Coalesces acks for this long (0: at once); default 1 s. */
  ackDelayMs?: number;
  /** At most this many messages wait for the handler; reading pauses beyond. Default 500. */
  maxQueue?: number;
  /** Errors from `client()` that end run() instead of being retried (e.g. a missing config). */
  fatal?: (err: unknown) => boolean;
  random?: () => number;
  now?: () => number;
  /** Waits `ms`, or less when `signal` aborts (tests inject a clock-advancing one). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** What an error means for the connection. */
export function failureOf(err: unknown): StreamFailure {
  if (err instanceof ClientError) {
    const fatalish = err.code === 'invalid_token' || err.status === 401;
    return {
      reason: `${err.code}${err.status ? ` status=${err.status}` : ''}: ${err.message}`,
      status: err.status,
      code: err.code,
      retryAfterMs: err.retryAfterMs,
      fallback: !fatalish && err.code !== 'redirect_refused',
      fatalish,
    };
  }
  return {
    reason: `internal: ${(err as Error)?.message ?? String(err)}`,
    status: 0,
    code: 'internal',
    retryAfterMs: null,
    fallback: true,
    fatalish: false,
  };
}

const ENDED: StreamFailure = {
  reason: 'stream_ended',
  status: 0,
  code: 'stream_ended',
  retryAfterMs: null,
  fallback: true,
  fatalish: false,
};

export class StreamConsumer {
  private readonly o: StreamConsumerOptions;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly sleepFn: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly backoff: Backoff;
  private readonly stopSignal = new AbortController();
  private running: Promise<void> | null = null;
  private stopping = false;

  private client: RelayClient | null = null;
  private stream: SseStream | null = null;
  private serverRetryMs: number | null = null;
  private up = false;
  private outage: { since: number; attempts: number; announced: boolean } | null = null;
  private stateNow: ConsumerState = 'idle';
  private modeNow: 'resume' | 'legacy' | null = null;
  private lastErrorNow: string | null = null;

  // Messages wait here for the handler, in arrival order; one worker drains them.
  private queue: Delivery[] = [];
  private working: Promise<void> | null = null;
  private workerError: unknown = null;
  /** Highest id handled (resume mode); what the cursor holds. */
  private handled = 0;

  // Acks: one request at a time, for the highest handled id; the relay forgets everything up to it.
  private ackWanted = 0;
  private acked = 0;
  private ackTimer: NodeJS.Timeout | null = null;
  private acking: Promise<void> | null = null;

  constructor(opts: StreamConsumerOptions) {
    if (!opts.onMessage === !opts.onBatch) {
      throw new TypeError('StreamConsumer needs exactly one of onMessage and onBatch');
    }
    this.o = opts;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.sleepFn = opts.sleep ?? abortableSleep;
    this.backoff = new Backoff(
      () => ({
        baseMs: opts.backoff?.baseMs ?? this.serverRetryMs ?? 1000,
        maxMs: this.maxMs,
      }),
      opts.backoff?.stableMs ?? 10_000,
      this.random,
      this.now,
    );
  }

  private get maxMs(): number {
    return this.o.backoff?.maxMs ?? 60_000;
  }

  /** Runs until stop() (resolves) or a fatal error (rejects). Calling it again returns the same run. */
  run(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** Closes the stream, lets the handler finish what it holds, sends the last ack. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stream?.close();
    this.stopSignal.abort();
    await this.running?.catch(() => {});
    await this.drain();
    if (this.ackTimer) {
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    await this.flushAcks();
    this.stateNow = 'stopped';
  }

  /** For health pages. */
  status(): {
    state: ConsumerState;
    connected: boolean;
    mode: 'resume' | 'legacy' | null;
    lastError: string | null;
    cursor: number;
    acked: number;
  } {
    return {
      state: this.stateNow,
      connected: this.up,
      mode: this.modeNow,
      lastError: this.lastErrorNow,
      cursor: this.handled,
      acked: this.acked,
    };
  }

  /** Sends the pending ack now (and waits for it). */
  async flushAcks(): Promise<void> {
    if (this.ackTimer) {
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    this.startAcking();
    while (this.acking) await this.acking;
  }

  private async emit(ev: ConsumerEvent): Promise<void> {
    await this.o.onEvent?.(ev);
  }

  private async currentClient(): Promise<RelayClient> {
    const c = typeof this.o.client === 'function' ? await this.o.client() : this.o.client;
    if (c !== this.client) {
      // Another account or relay: ids start over, and nothing was acknowledged there yet.
      this.client = c;
      this.acked = 0;
      this.ackWanted = 0;
      this.handled = 0;
    }
    return c;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const failure = await this.connectOnce();
      if (!failure || this.stopping) break;
      this.lastErrorNow = failure.reason;
      if (this.up) {
        this.up = false;
        await this.emit({ type: 'disconnected', reason: failure.reason, failure });
      }
      this.outage ??= { since: this.now(), attempts: 0, announced: false };
      this.outage.attempts++;
      const next = this.backoff.failed(failure.retryAfterMs);
      const delayMs = failure.fatalish ? Math.max(this.maxMs, failure.retryAfterMs ?? 0) : next.delayMs;
      this.stateNow = 'reconnecting';
      await this.emit({
        type: 'reconnecting',
        attempt: next.attempt,
        delayMs,
        reason: failure.reason,
        failure,
      });
      await this.waitOut(delayMs, failure);
    }
  }

  /** The wait before the next connect; with fallback on, `/messages` fills in meanwhile. */
  private async waitOut(delayMs: number, failure: StreamFailure): Promise<void> {
    const until = this.now() + delayMs;
    const fallback = this.o.fallback;
    while (!this.stopping) {
      if (fallback && failure.fallback && this.client) {
        try {
          const resume = await this.resumeMode(this.client);
          if (this.outage && !this.outage.announced) {
            this.outage.announced = true;
            this.stateNow = 'fallback';
            const cursor = resume ? await this.loadCursor() : 0;
            await this.emit({
              type: 'fallback',
              phase: 'start',
              via: `GET /messages${resume ? `?after=${cursor}` : ''}`,
            });
          }
          const n = await this.poll();
          if (n) await this.emit({ type: 'fallback', phase: 'fetched', fetched: n, lastId: this.handled });
        } catch {
          // The relay is unreachable too; the next connect attempt will say so.
        }
      }
      const left = until - this.now();
      if (left <= 0) break;
      await this.sleepFn(fallback ? Math.min(fallback.intervalMs, left) : left, this.stopSignal.signal);
    }
  }

  private async resumeMode(client: RelayClient): Promise<boolean> {
    return !this.o.legacy && (await client.capabilities()).resume;
  }

  private async loadCursor(): Promise<number> {
    const c = await this.o.cursor.load();
    if (c > this.handled) this.handled = c;
    return this.handled;
  }

  /** One connection: open, read until it ends. Returns why it ended (null when stopping). */
  private async connectOnce(): Promise<StreamFailure | null> {
    let client: RelayClient;
    try {
      client = await this.currentClient();
    } catch (err) {
      if (this.o.fatal?.(err)) throw err;
      return failureOf(err);
    }
    try {
      const caps = await client.capabilities(true);
      const required = this.o.requireFeatures ?? [];
      // Asked of /health itself: a client in `json` mode assumes the features without asking.
      const offered = required.length ? ((await client.health()).features ?? []) : [];
      const missing = required.filter((f) => !offered.includes(f));
      if (missing.length) {
        return {
          reason: `relay lacks features ${missing.join(', ')} (needs an openwechat relay)`,
          status: 0,
          code: 'unsupported',
          retryAfterMs: null,
          fallback: false,
          fatalish: false,
        };
      }
      const resume = !this.o.legacy && caps.resume;
      const mode = resume ? 'resume' : 'legacy';
      const since = resume ? await this.loadCursor() : null;
      const format = resume && caps.json ? 'json' : 'text';
      this.stream = await client.openStream({ since, format, idleTimeoutMs: this.o.idleTimeoutMs });
      if (this.stopping) return null;
      this.modeNow = mode;
      // Last-Event-ID acknowledged everything up to the cursor.
      if (since !== null && since > this.acked) this.acked = since;
      this.up = true;
      this.stateNow = 'connected';
      this.lastErrorNow = null;
      this.backoff.connected();
      const recovered = this.outage
        ? { afterMs: Math.max(0, this.now() - this.outage.since), attempts: this.outage.attempts }
        : null;
      this.outage = null;
      await this.emit({ type: 'connected', mode, format, since, capabilities: caps, recovered });
      if (!resume && this.o.fallback) {
        // The reference keeps what arrived while no stream was open in the inbox; collect it now.
        try {
          const n = await this.poll();
          if (n) await this.emit({ type: 'fallback', phase: 'catch_up', fetched: n });
        } catch (err) {
          // The stream is up; what is left in the inbox is collected after the next connect.
          await this.emit({ type: 'fallback', phase: 'catch_up_failed', error: (err as Error).message });
        }
      }
      const stream = this.stream;
      const maxQueue = this.o.maxQueue ?? 500;
      for await (const ev of stream.events()) {
        switch (ev.type) {
          case 'log':
            await this.o.onServerLog?.(ev.data);
            break;
          case 'retry':
            this.serverRetryMs = ev.ms;
            break;
          case 'receipt':
            await this.o.onReceipt?.(ev.receipt);
            break;
          case 'message':
            this.enqueue({
              id: ev.id,
              message: ev.message,
              raw: ev.raw,
              format: stream.format,
              json: ev.json ?? null,
              via: 'stream',
            });
            // Backpressure: stop reading (no idle clock runs meanwhile) until the handler catches up.
            if (this.queue.length >= maxQueue) await this.drain();
            break;
          case 'unreadable':
            await this.o.onUnreadable?.({ id: ev.id, raw: ev.raw, error: ev.error });
            break;
          case 'ping':
            break;
        }
        if (this.workerError || this.stopping) break;
      }
      if (this.stopping) return null;
      await this.drain();
      return this.takeWorkerFailure() ?? ENDED;
    } catch (err) {
      if (this.stopping) return null;
      await this.drain();
      return this.takeWorkerFailure() ?? failureOf(err);
    } finally {
      this.stream?.close();
      this.stream = null;
    }
  }

  private takeWorkerFailure(): StreamFailure | null {
    if (!this.workerError) return null;
    const err = this.workerError;
    this.workerError = null;
    return { ...failureOf(err), reason: `handler failed: ${(err as Error)?.message ?? String(err)}` };
  }

  /** Reads `/messages` until it is empty; returns how many messages were handled. */
  private async poll(): Promise<number> {
    const client = this.client;
    const fallback = this.o.fallback;
    if (!client || !fallback) return 0;
    let handled = 0;
    for (let page = 0; page < 1000 && !this.stopping; page++) {
      await this.drain();
      const resume = await this.resumeMode(client);
      // `?after=` pages are lossless, so they can be large; a read-and-clear batch stays at `limit`
      // (what a lost answer can cost). Pages are paced under the relay's per-user rate limit.
      const pageLimit = typeof fallback.limit === 'function' ? fallback.limit() : fallback.limit;
      const limit = resume ? Math.max(pageLimit, 100) : pageLimit;
      if (page > 0) await this.sleepFn(60, this.stopSignal.signal);
      const after = resume ? await this.loadCursor() : 0;
      const res = resume ? await client.readInbox({ after, limit }) : await client.readInbox({ limit });
      // `?after=` acknowledged everything up to `after`.
      if (resume && after > this.acked) this.acked = after;
      const format = res.blocks ? 'text' : 'json';
      const batch = res.messages.map((message, i): Delivery => ({
        id: message.id,
        message,
        raw: res.blocks?.[i] ?? null,
        format,
        json: null,
        via: 'poll',
      }));
      this.enqueue(batch, resume);
      await this.drain();
      const failed = this.workerError;
      if (failed) {
        this.workerError = null;
        throw failed;
      }
      handled += batch.length;
      if (res.messages.length === 0 || res.remaining === 0) break;
    }
    return handled;
  }

  private enqueue(d: Delivery | Delivery[], resume = this.modeNow === 'resume'): void {
    const list = Array.isArray(d) ? d : [d];
    // A replay of what is already handled (a poll and a resume overlapping): acknowledged, not handled again.
    for (const x of list) if (!(resume && x.id !== null && x.id <= this.handled)) this.queue.push(x);
    if (this.working || !this.queue.length) return;
    const worker = (async () => {
      while (this.queue.length && !this.workerError) {
        const batch = this.queue.splice(0, this.queue.length);
        try {
          await this.dispatch(batch, resume);
        } catch (err) {
          this.workerError = err;
          this.queue = [];
          this.stream?.close();
        }
      }
    })();
    // Assigned after the call: a worker that finished synchronously must not stay registered.
    this.working = worker;
    void worker.finally(() => {
      if (this.working === worker) this.working = null;
    });
  }

  private async dispatch(batch: Delivery[], resume: boolean): Promise<void> {
    if (this.o.onMessage) {
      for (const d of batch) {
        await this.o.onMessage(d);
        await this.markHandled(d.id, resume);
      }
      return;
    }
    await this.o.onBatch!(batch);
    let last: number | null = null;
    for (const d of batch) if (d.id !== null && (last === null || d.id > last)) last = d.id;
    await this.markHandled(last, resume);
  }

  private async markHandled(id: number | null, resume: boolean): Promise<void> {
    if (!resume || id === null || id <= this.handled) return;
    this.handled = id;
    await this.o.cursor.save?.(id);
    if (id > this.ackWanted) this.ackWanted = id;
    this.scheduleAck();
  }

  private async drain(): Promise<void> {
    while (this.working) await this.working;
  }

  private scheduleAck(): void {
    if (this.ackTimer || this.stopping) return;
    const delay = this.o.ackDelayMs ?? 1000;
    if (delay <= 0) {
      this.startAcking();
      return;
    }
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.startAcking();
    }, delay);
  }

  private startAcking(): void {
    if (this.acking || this.ackWanted <= this.acked || !this.client) return;
    const client = this.client;
    const acking = (async () => {
      while (this.ackWanted > this.acked && client === this.client) {
        const upTo = this.ackWanted;
        try {
          await client.ack(upTo);
          if (upTo > this.acked) this.acked = upTo;
          await this.emit({ type: 'ack', upTo, ok: true });
        } catch (err) {
          // Not fatal: the next resume (Last-Event-ID) or `?after=` acknowledges it anyway.
          await this.emit({ type: 'ack', upTo, ok: false, error: (err as Error).message });
          return;
        }
      }
    })();
    this.acking = acking;
    void acking.finally(() => {
      if (this.acking === acking) this.acking = null;
    });
  }
}
