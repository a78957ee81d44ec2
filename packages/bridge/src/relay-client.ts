// The bridge's side of the relay connection. Every relay call goes through @openwechat/client (JSON mode,
// typed errors, redirects kept within the relay's origin so RELAY_TOKEN never leaves it), and receiving is
// its StreamConsumer (resume stream from the outbox's cursor, one backoff policy, coalesced acks) — the same
// consumer the skill daemon and the OpenClaw channel plugin use. What stays here is the bridge's own: the
// features it insists on, the bot id from the stream's `stream_connected` line, the JSON shape check, and
// its log lines and metrics. docs/protocol.md describes the relay side.

import { RelayClient, StreamConsumer } from '@openwechat/client';
import { errInfo, safeUrl, type Logger } from './log.ts';
import { isMessageJson, type RelayMessageJson } from './relay-events.ts';

/** Features our relay advertises on /health that the bridge relies on (the reference relay has none). */
const REQUIRED_FEATURES = ['json', 'resume', 'idempotency'];

const REQUEST_TIMEOUT_MS = 10_000;

/**
 * The bot's relay client. JSON mode without asking /health first: a reference relay would answer in text and
 * fail the JSON parse, and the stream refuses it anyway (REQUIRED_FEATURES, checked on every connect).
 */
export function createRelayClient(baseUrl: string, token: string): RelayClient {
  return new RelayClient({ baseUrl, token, mode: 'json', timeoutMs: REQUEST_TIMEOUT_MS });
}

/** A user's relay name (`GET /users/<id>`); null when the relay does not answer with one. */
export async function relayUserName(relay: RelayClient, id: number): Promise<string | null> {
  try {
    const name = (await relay.user(id)).name;
    return name !== '' ? name : null;
  } catch {
    return null;
  }
}

export interface StreamHandlers {
  /** The cursor to resume from (read before every connect): the outbox commits it with each row. */
  cursor(): number;
  /**
   * The stream opened; `botId` parsed from its `event: log` line. Messages wait until a returned promise
   * settles; a rejection closes this connection (it is retried with backoff).
   */
  onConnected(botId: number): void | Promise<void>;
  /**
   * One message, in id order, above the cursor. Must store it durably (and move the cursor) before its
   * promise resolves; then it is acknowledged on the relay. A rejection closes this connection.
   */
  onMessage(m: RelayMessageJson): void | Promise<void>;
  onDisconnected(reason: string): void;
  /** An acknowledgement went through (or failed: harmless, the next resume acknowledges). */
  onAck?(ok: boolean): void;
}

export interface StreamOptions {
  idleTimeoutMs: number;
  retryBaseMs: number;
  retryMaxDelayMs: number;
  random: () => number;
  now: () => number;
}

/** Keeps one resume stream open (StreamConsumer) and logs its life the bridge's way. */
export class RelayStream {
  private readonly consumer: StreamConsumer;
  private loop: Promise<void> | null = null;
  /** The stream_connected line of the current connection was seen (messages before it are refused). */
  private botKnown = false;
  private since: number | null = null;
  private lastFailure: string | null = null;

  constructor(
    private readonly relay: RelayClient,
    handlers: StreamHandlers,
    opts: StreamOptions,
    log: Logger,
  ) {
    this.consumer = new StreamConsumer({
      client: relay,
      cursor: { load: () => handlers.cursor() },
      requireFeatures: REQUIRED_FEATURES,
      onServerLog: async (line) => {
        const m = /user_id=(\d+)/.exec(line);
        if (!m) throw new Error('stream_connected line without user_id');
        const botId = Number(m[1]);
        this.botKnown = true;
        log.info({ hop: 'relay_stream', status: 'connected', since: this.since, botId }, 'relay stream open');
        await handlers.onConnected(botId);
      },
      onMessage: async (d) => {
        if (!this.botKnown) throw new Error('message before the stream_connected line');
        if (!d.json || !isMessageJson(d.json)) throw new Error('stream message has an unexpected shape');
        await handlers.onMessage(d.json);
      },
      onUnreadable: (ev) => {
        throw new Error(`stream message is not JSON (is ?format=json supported?): ${ev.error}`);
      },
      onEvent: (ev) => {
        switch (ev.type) {
          case 'connected':
            this.since = ev.since;
            break;
          case 'disconnected':
            this.botKnown = false;
            handlers.onDisconnected(ev.reason);
            break;
          case 'reconnecting':
            if (ev.failure.status === 401)
              log.error({ hop: 'relay_stream', status: 401 }, 'the relay refused RELAY_TOKEN');
            log.warn(
              { hop: 'relay_stream', status: 'disconnected', reason: ev.reason, retry_in_ms: ev.delayMs },
              'relay stream closed; reconnecting',
            );
            break;
          case 'ack':
            handlers.onAck?.(ev.ok);
            if (!ev.ok) log.warn({ hop: 'relay_ack', upTo: ev.upTo, status: ev.error }, 'ack failed');
            break;
          case 'fallback':
            break;
        }
      },
      backoff: {
        baseMs: opts.retryBaseMs,
        maxMs: Math.min(opts.retryMaxDelayMs, 30_000),
      },
      idleTimeoutMs: opts.idleTimeoutMs,
      // Acks go out as soon as a row is committed; bursts coalesce behind the one request in flight.
      ackDelayMs: 0,
      random: opts.random,
      now: opts.now,
    });
  }

  start(): void {
    this.loop ??= this.consumer.run().catch((err: unknown) => {
      // run() rejects only for a `fatal` error, which the bridge does not declare; keep it visible anyway.
      this.lastFailure = errInfo(err).error;
    });
  }

  /** Stops reading; the message being stored finishes and is acknowledged. */
  async stop(): Promise<void> {
    await this.consumer.stop();
    await this.loop;
  }

  describe(): { url: string; connected: boolean; lastError: string | null } {
    const s = this.consumer.status();
    return {
      url: safeUrl(this.relay.baseUrl),
      connected: s.connected,
      lastError: s.lastError ?? this.lastFailure,
    };
  }
}
