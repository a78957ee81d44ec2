// Talking to the relay as the bot: JSON mode (`Accept: application/json`) for every call, a resume stream
// (`Last-Event-ID` + `?format=json`) for receiving, `POST /messages/ack` once a message is in the outbox,
// `POST /send` (`POST /groups/<gid>/send` for a group) with an Idempotency-Key so any retry is safe, and
// `GET /files/<id>` streamed through to OpenClaw's media links (media.ts).
// docs/protocol.md describes the relay side.

import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { ErrorBody } from '@openwechat/protocol';
import { errInfo, safeUrl, type Logger } from './log.ts';
import { isMessageJson, type RelayMessageJson } from './relay-events.ts';
import { backoffDelay, parseRetryAfter } from './retry.ts';

/** Features our relay advertises on /health that the bridge relies on (the reference relay has none). */
export const REQUIRED_FEATURES = ['json', 'resume', 'idempotency'];

const REQUEST_TIMEOUT_MS = 10_000;

export type RelayAnswer =
  | { kind: 'ok'; status: number; json: unknown; replayed: boolean }
  | { kind: 'error'; status: number; code: string; message: string; retryAfterMs: number | null }
  | { kind: 'network'; error: string };

export class RelayClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly now: () => number = Date.now,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { 'x-token': this.token, accept: 'application/json', ...extra };
  }

  async call(
    method: string,
    path: string,
    body?: unknown,
    extraHeaders: Record<string, string> = {},
  ): Promise<RelayAnswer> {
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.baseUrl + path, {
        method,
        headers: this.headers(
          body === undefined ? extraHeaders : { 'content-type': 'application/json', ...extraHeaders },
        ),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        redirect: 'manual',
      });
      text = await res.text();
    } catch (err) {
      return { kind: 'network', error: errInfo(err).error };
    }
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (res.status >= 200 && res.status < 300 && json !== null) {
      return {
        kind: 'ok',
        status: res.status,
        json,
        replayed: res.headers.get('idempotent-replayed') === 'true',
      };
    }
    const err = (json as ErrorBody | null)?.error;
    return {
      kind: 'error',
      status: res.status,
      code:
        typeof err?.code === 'string'
          ? err.code
          : res.status >= 500
            ? 'internal_error'
            : 'unexpected_response',
      message: typeof err?.message === 'string' ? err.message : text.slice(0, 200),
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), this.now()),
    };
  }

  async health(): Promise<{ features: string[] } | null> {
    try {
      const res = await fetch(`${this.baseUrl}/health`, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const j = (await res.json()) as { features?: unknown };
      return { features: Array.isArray(j.features) ? j.features.map(String) : [] };
    } catch {
      return null;
    }
  }

  send(toId: number, content: string, idempotencyKey: string): Promise<RelayAnswer> {
    return this.call('POST', '/send', { to_id: toId, content }, { 'idempotency-key': idempotencyKey });
  }

  /** `POST /groups/<gid>/send` (docs/groups-api.md): one message to every other member. */
  sendGroup(groupId: number, content: string, idempotencyKey: string): Promise<RelayAnswer> {
    return this.call('POST', `/groups/${groupId}/send`, { content }, { 'idempotency-key': idempotencyKey });
  }

  /** A user's relay name (`GET /users/<id>`, JSON); null when the relay does not answer with one. */
  async userName(id: number): Promise<string | null> {
    const a = await this.call('GET', `/users/${id}`);
    if (a.kind !== 'ok') return null;
    const name = (a.json as { user?: { name?: unknown } }).user?.name;
    return typeof name === 'string' && name !== '' ? name : null;
  }

  ack(upTo: number): Promise<RelayAnswer> {
    return this.call('POST', '/messages/ack', { up_to: upTo });
  }

  /**
   * GET /files/<id> as the bot (JSON errors). The caller streams or cancels the body; `signal` aborts the
   * request and, while it is read, the body.
   */
  openFile(fileId: string, signal: AbortSignal): Promise<Response> {
    return fetch(`${this.baseUrl}/files/${encodeURIComponent(fileId)}`, {
      headers: this.headers(),
      signal,
      redirect: 'manual',
    });
  }

  /** Opens GET /stream as a resume stream from `since`. The caller reads the body. */
  openStream(since: number, signal: AbortSignal): Promise<Response> {
    return fetch(`${this.baseUrl}/stream?format=json`, {
      headers: { 'x-token': this.token, accept: 'text/event-stream', 'last-event-id': String(since) },
      signal,
    });
  }
}

/** Acknowledges up to the highest id asked for, one request at a time (coalesces bursts). */
export class Acker {
  private wanted = 0;
  private done = 0;
  private running: Promise<void> | null = null;

  constructor(
    private readonly relay: RelayClient,
    private readonly log: Logger,
    private readonly onResult: (ok: boolean) => void = () => {},
  ) {}

  request(upTo: number): void {
    if (upTo > this.wanted) this.wanted = upTo;
    if (!this.running) this.running = this.loop().finally(() => (this.running = null));
  }

  private async loop(): Promise<void> {
    while (this.wanted > this.done) {
      const target = this.wanted;
      const r = await this.relay.ack(target);
      if (r.kind === 'ok') {
        this.done = target;
        this.onResult(true);
      } else {
        // Not fatal: the next resume (Last-Event-ID) acknowledges everything stored anyway.
        this.onResult(false);
        this.log.warn(
          { hop: 'relay_ack', upTo: target, status: r.kind === 'error' ? r.status : r.error },
          'ack failed',
        );
        return;
      }
    }
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }
}

export interface StreamHandlers {
  /** The cursor to resume from (read before every connect). */
  cursor(): number;
  /**
   * The stream opened; `botId` parsed from its `event: log` line. Messages wait until a returned promise
   * settles; a rejection closes this connection (it is retried with backoff).
   */
  onConnected(botId: number): void | Promise<void>;
  /**
   * One message, in id order. Must store it durably before returning (or before its promise resolves; the
   * next message waits, and the idle timeout does not run meanwhile). A rejection closes this connection.
   */
  onMessage(m: RelayMessageJson): void | Promise<void>;
  onDisconnected(reason: string): void;
}

export interface StreamOptions {
  idleTimeoutMs: number;
  retryBaseMs: number;
  retryMaxDelayMs: number;
  random: () => number;
  now: () => number;
}

/**
 * Keeps one resume stream open: reconnects with backoff and jitter, honours Retry-After on a refusal,
 * and reopens a stream that went silent (no data, no `: ping`) for idleTimeoutMs.
 */
export class RelayStream {
  private stopped = false;
  private controller: AbortController | null = null;
  private wakeUp: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  /** Last known state, for /health. */
  connected = false;
  lastError: string | null = null;

  constructor(
    private readonly relay: RelayClient,
    private readonly handlers: StreamHandlers,
    private readonly opts: StreamOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.loopDone ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller?.abort();
    this.wakeUp?.();
    await this.loopDone;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wakeUp = done;
    });
  }

  private async loop(): Promise<void> {
    let failures = 0;
    let featuresChecked = false;
    while (!this.stopped) {
      let retryAfterMs: number | null = null;
      let healthy = false;
      try {
        if (!featuresChecked) {
          const h = await this.relay.health();
          if (!h) throw new Error('relay unreachable (/health)');
          const missing = REQUIRED_FEATURES.filter((f) => !h.features.includes(f));
          if (missing.length) {
            // A reference relay would treat our stream as legacy and delete what it pushes: refuse.
            throw new Error(`relay lacks features ${missing.join(', ')} (needs an openwechat relay)`);
          }
          featuresChecked = true;
        }
        const outcome = await this.runOnce();
        healthy = outcome.healthy;
        retryAfterMs = outcome.retryAfterMs;
        this.lastError = outcome.reason;
      } catch (err) {
        this.lastError = errInfo(err).error;
      }
      if (this.connected) {
        this.connected = false;
        this.handlers.onDisconnected(this.lastError ?? 'ended');
      }
      if (this.stopped) break;
      failures = healthy ? 1 : failures + 1;
      const delay = Math.max(
        backoffDelay(
          failures,
          this.opts.retryBaseMs,
          Math.min(this.opts.retryMaxDelayMs, 30_000),
          this.opts.random,
        ),
        retryAfterMs ?? 0,
      );
      this.log.warn(
        { hop: 'relay_stream', status: 'disconnected', reason: this.lastError, retry_in_ms: delay },
        'relay stream closed; reconnecting',
      );
      await this.sleep(delay);
    }
  }

  /** One connection. healthy: it was open and delivering (reset the backoff). */
  private async runOnce(): Promise<{ healthy: boolean; retryAfterMs: number | null; reason: string }> {
    const controller = new AbortController();
    this.controller = controller;
    let idleTimer: NodeJS.Timeout | null = null;
    const armIdle = (): void => {
      if (idleTimer) idleTimer.refresh();
      else
        idleTimer = setTimeout(
          () => controller.abort(new Error('stream idle timeout')),
          this.opts.idleTimeoutMs,
        );
    };
    try {
      armIdle();
      const since = this.handlers.cursor();
      const res = await this.relay.openStream(since, controller.signal);
      if (res.status !== 200 || !res.body) {
        const text = await res.text().catch(() => '');
        let code = '';
        try {
          code = (JSON.parse(text) as ErrorBody).error.code;
        } catch {
          code = text.slice(0, 80);
        }
        if (res.status === 401)
          this.log.error({ hop: 'relay_stream', status: 401 }, 'the relay refused RELAY_TOKEN');
        return {
          healthy: false,
          retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), this.opts.now()),
          reason: `HTTP ${res.status} ${code}`,
        };
      }
      let healthy = false;
      // Events are handled in order after each chunk is parsed, so the connect hook may be awaited
      // before the messages that follow it.
      const events: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (e) => events.push(e) });
      const handle = async (e: EventSourceMessage): Promise<void> => {
        if (e.event === 'log') {
          const m = /user_id=(\d+)/.exec(e.data);
          if (!m) throw new Error('stream_connected line without user_id');
          this.connected = true;
          healthy = true;
          this.log.info(
            { hop: 'relay_stream', status: 'connected', since, botId: Number(m[1]) },
            'relay stream open',
          );
          await this.handlers.onConnected(Number(m[1]));
          return;
        }
        if ((e.event ?? 'message') !== 'message') return;
        if (!this.connected) throw new Error('message before the stream_connected line');
        let data: unknown;
        try {
          data = JSON.parse(e.data);
        } catch {
          throw new Error('stream message is not JSON (is ?format=json supported?)');
        }
        if (!isMessageJson(data)) throw new Error('stream message has an unexpected shape');
        // A handler may take a while (an attachment is copied first): the stream is not read meanwhile, so
        // its silence is not the relay's.
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = null;
        try {
          await this.handlers.onMessage(data);
        } finally {
          armIdle();
        }
      };
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        armIdle();
        parser.feed(decoder.decode(chunk, { stream: true }));
        for (let e = events.shift(); e && !this.stopped; e = events.shift()) {
          try {
            await handle(e);
          } catch (err) {
            controller.abort(err instanceof Error ? err : new Error(String(err)));
            throw err;
          }
        }
        if (this.stopped) break;
      }
      return { healthy, retryAfterMs: null, reason: 'stream ended by the relay' };
    } catch (err) {
      if (this.stopped) return { healthy: false, retryAfterMs: null, reason: 'stopped' };
      const reason =
        controller.signal.aborted && controller.signal.reason instanceof Error
          ? controller.signal.reason.message
          : errInfo(err).error;
      return { healthy: this.connected, retryAfterMs: null, reason };
    } finally {
      if (idleTimer) clearTimeout(idleTimer);
      controller.abort();
      this.controller = null;
    }
  }

  describe(): { url: string; connected: boolean; lastError: string | null } {
    return { url: safeUrl(this.relay.baseUrl), connected: this.connected, lastError: this.lastError };
  }
}
