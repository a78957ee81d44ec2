// Assembles the bridge: outbox, relay stream → AddMsg records, webhook deliverer, send API, generic
// inbound, health and metrics. Nothing runs at import; startBridge() returns a running instance that
// main.ts (or a test, with an injected clock, randomness and log stream) stops with close().
//
// The path of one relay message:
//   relay stream event (resume, JSON) → ChatEvent → AddMsg bytes (serialised once)
//   → outbox row + relay cursor, one SQLite transaction → POST /messages/ack (the client's stream consumer)
//   → deliverer: signed POST to OPENCLAW_WEBHOOK_URL, retried until 2xx, dead letter, or horizon.
// An attachment's line in the text carries a media link, `<BRIDGE_PUBLIC_URL>/media/<token>`, that this
// server answers from its own copy of the file (media-store.ts): the copy is taken from the relay before the
// message is stored, because the relay deletes the file once the bot has downloaded it and acknowledged.
// Without a copy the link streams the file from the relay (media.ts).

import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { E2eError, E2eSession } from '@openwechat/client';
import { messageFromJson, type AttachmentJson } from '@openwechat/protocol';
import type { DestinationStream } from 'pino';
import { buildAddMsg, serializeRecord } from './addmsg.ts';
import type { BridgeConfig } from './config.ts';
import { Deliverer } from './delivery.ts';
import { BridgeError } from './errors.ts';
import { createHttpServer, type Handlers } from './http.ts';
import { inboundItem } from './inbound.ts';
import { createLogger, errInfo, safeUrl, type Logger } from './log.ts';
import { relayAccountId, userWxid } from './ids.ts';
import {
  loadMediaKey,
  MEDIA_GONE_NOTE,
  MEDIA_PATH,
  MediaSigner,
  mediaLinkExpiry,
  serveMedia,
} from './media.ts';
import {
  keepMediaCopy,
  MEDIA_COPY_ATTEMPTS,
  MEDIA_COPY_MAX_DELAY_MS,
  MediaStore,
  type CopyOutcome,
} from './media-store.ts';
import { Metrics } from './metrics.ts';
import { Outbox } from './outbox.ts';
import { createRelayClient, RelayStream, relayUserName } from './relay-client.ts';
import { relayDisposition, relaySource, type RelayMessageJson } from './relay-events.ts';
import { parseSendRequest, sendConversationId, SendService } from './send-api.ts';

export interface BridgeDeps {
  /** Clock (ms since epoch) for stored times, retry schedules, CreateTime-independent stamps. */
  now?: () => number;
  /** Randomness for backoff jitter, in [0, 1). */
  random?: () => number;
  /** Where JSON log lines go (default stdout). */
  logStream?: DestinationStream;
  logger?: Logger;
}

export interface Bridge {
  /** e.g. http://127.0.0.1:8088 */
  url: string;
  config: BridgeConfig;
  outbox: Outbox;
  /** The local copies of attachments; null when media links are off. */
  media: MediaStore | null;
  metrics: Metrics;
  log: Logger;
  close(): Promise<void>;
}

const PRUNE_INTERVAL_MS = 3_600_000;
/** How often expired media copies are swept (and once at start). */
export const MEDIA_SWEEP_INTERVAL_MS = 600_000;

export async function startBridge(config: BridgeConfig, deps: BridgeDeps = {}): Promise<Bridge> {
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const log = deps.logger ?? createLogger(config.logLevel, deps.logStream);
  const metrics = new Metrics();
  const outbox = Outbox.open(config.dataDir);
  const relay = createRelayClient(config.relayBaseUrl, config.relayToken);

  // The relay cursor belongs to the account: keyed by a hash of its token (changing RELAY_TOKEN to another
  // account starts at 0, and the outbox's unique source keys absorb any replay).
  const account = relayAccountId(config.relayToken);
  const cursorKey = `relay_cursor:${account}`;
  const botKey = `relay_bot_id:${account}`;
  let botId = Number(outbox.getMeta(botKey) ?? 0);
  // The bot's relay name, for the `@<name>\u2005` text of group mentions: read once per bot id (relay names
  // never change), kept as `<id>:<name>`.
  const botNameKey = `relay_bot_name:${account}`;
  const storedName = /^(\d+):(.*)$/s.exec(outbox.getMeta(botNameKey) ?? '');
  let botName: { id: number; name: string } | null = storedName
    ? { id: Number(storedName[1]), name: storedName[2]! }
    : null;

  // Media links: signed with BRIDGE_MEDIA_SECRET or the key generated into the data folder, bound to this
  // account. The URL base is known once the server listens (BRIDGE_PORT=0 picks a port).
  const signer = config.mediaLinks ? openMediaSigner(config, account, outbox, log) : null;
  let media: MediaStore | null = null;
  if (signer) {
    try {
      media = MediaStore.open(config.dataDir, { maxBytes: config.mediaMaxMb * 1024 * 1024, now, log });
    } catch (err) {
      outbox.close();
      throw err;
    }
  }
  let mediaBase = config.publicUrl;
  const mediaMaxAgeMs = config.mediaLinkMaxHours * 3_600_000;
  /** The link of an attachment; with a local copy it no longer depends on the relay file's expiry. */
  const mediaUrlFor =
    (copy: CopyOutcome | null) =>
    (a: AttachmentJson, createdAtMs: number): string | null => {
      if (!signer || copy === 'gone') return null;
      const expiresAt = mediaLinkExpiry(a, createdAtMs, mediaMaxAgeMs, copy === 'kept');
      return expiresAt === null ? null : `${mediaBase}${MEDIA_PATH}${signer.sign(a.file_id!, expiresAt)}`;
    };
  // Aborted by close(): a copy in progress is abandoned, its message neither stored nor acknowledged (the
  // relay replays it on the next start).
  const stopping = new AbortController();

  const deliverer = new Deliverer(config, outbox, log, metrics, { now, random });

  /**
   * Copies a forwarded message's attachment into the media store before the message is stored (the relay
   * deletes the file once it is acknowledged). Transient failures are retried a few times with the shared
   * backoff (each wait at most MEDIA_COPY_MAX_DELAY_MS), then the link falls back to the relay.
   */
  const copyAttachment = async (m: RelayMessageJson): Promise<CopyOutcome | null> => {
    const a = m.attachment;
    if (!media || !a || typeof a !== 'object' || typeof a.file_id !== 'string') return null;
    const createdAtMs = Date.parse(m.created_at);
    const expiresAt = mediaLinkExpiry(a, createdAtMs, mediaMaxAgeMs, true);
    if (expiresAt === null) return null;
    if (expiresAt * 1000 <= now()) return 'skipped';
    const outcome = await keepMediaCopy(relay, media, a, expiresAt, {
      attempts: MEDIA_COPY_ATTEMPTS,
      retryBaseMs: config.retryBaseMs,
      retryMaxDelayMs: Math.min(config.retryMaxDelayMs, MEDIA_COPY_MAX_DELAY_MS),
      random,
      signal: stopping.signal,
      log,
    });
    metrics.inc('bridge_media_copies_total', { outcome });
    return outcome;
  };

  // End-to-end encryption (BRIDGE_E2E): the bridge is the bot account's E2E client. Its session needs the
  // bot id (the stream's first line, or the one stored from an earlier run); keys in dataDir/e2e/.
  let e2e: E2eSession | null = null;
  const e2eSession = (): E2eSession | null => {
    if (config.e2e === 'off') return null;
    if (!botId) {
      throw BridgeError.retryable(
        'upstream_unavailable',
        5,
        'the bot account is not known yet (end-to-end encryption needs its id): the relay stream has not connected',
      );
    }
    if (e2e?.userId !== botId) {
      e2e = new E2eSession({
        client: relay,
        userId: botId,
        store: join(config.dataDir, 'e2e'),
        policy: config.e2e,
      });
    }
    return e2e;
  };

  /**
   * Opens an end-to-end encrypted message before anything is built from it: the record OpenClaw gets holds
   * the decrypted text and the attachment's real name, size and type. null: refused (never forwarded).
   */
  const openE2e = async (
    m: RelayMessageJson,
  ): Promise<{ m: RelayMessageJson; encrypted: boolean } | null> => {
    const session = e2eSession();
    if (!session) return { m, encrypted: false };
    try {
      const o = await session.open(messageFromJson(m));
      if (!o.encrypted) return { m, encrypted: false };
      const a = m.attachment;
      const attachment =
        a && o.file ? { ...a, name: o.file.name, size: o.file.size, content_type: o.file.content_type } : a;
      const { e2e: _sealed, ...rest } = m;
      return { m: { ...rest, content: o.text, attachment } as RelayMessageJson, encrypted: true };
    } catch (err) {
      if (!(err instanceof E2eError)) throw err;
      metrics.inc('bridge_relay_messages_total', { outcome: 'e2e_refused' });
      log.error(
        {
          hop: 'relay_in',
          relayMessageId: m.id,
          sender: m.from_id,
          status: 'e2e_refused',
          code: err.code,
          reason: err.message,
        },
        'relay message refused by end-to-end encryption; not forwarded',
      );
      return null;
    }
  };

  // Called once per relay message above the cursor (the stream consumer skips replays of older ones and
  // acknowledges each message once this returns: the row and the cursor are committed by then).
  const onMessage = async (received: RelayMessageJson): Promise<void> => {
    const opened = await openE2e(received);
    if (!opened) {
      // Refused: acknowledged on the relay like a filtered message (its copy is ciphertext nobody can use).
      outbox.enqueue(null, now(), { key: cursorKey, value: received.id });
      return;
    }
    const m = opened.m;
    const mapping = {
      botRelayId: botId,
      botName: botName?.id === botId ? botName.name : null,
      systemNotices: config.systemNotices,
      groupRequireMention: config.groupRequireMention,
      mediaUrl: mediaUrlFor(null),
    };
    // An encrypted attachment has no media link: the relay's bytes are ciphertext (the line still names it).
    if (opened.encrypted) mapping.mediaUrl = () => null;
    let disposition = relayDisposition(m, mapping);
    if (disposition.status === 'forward' && m.attachment && !opened.encrypted) {
      // Only what reaches OpenClaw is copied; a throw (the bridge stopping) leaves the message on the relay.
      const copy = await copyAttachment(m);
      if (copy !== null) {
        disposition = relayDisposition(m, {
          ...mapping,
          mediaUrl: mediaUrlFor(copy),
          mediaNote: copy === 'gone' ? MEDIA_GONE_NOTE : null,
        });
      }
    }
    const cursor = { key: cursorKey, value: m.id };
    if (disposition.status !== 'forward') {
      // Acknowledged on the relay like any stored message; never a dead letter.
      outbox.enqueue(null, now(), cursor);
      const status = disposition.status;
      metrics.inc('bridge_relay_messages_total', { outcome: status });
      const fields: Record<string, unknown> = { hop: 'relay_in', relayMessageId: m.id, type: m.type, status };
      if (disposition.status === 'filtered') {
        fields.sender = disposition.event.sender.id;
        if (disposition.event.conversation.type === 'group')
          fields.conversationId = disposition.event.conversation.roomId;
        fields.reason = 'group message does not mention the bot (BRIDGE_GROUP_REQUIRE_MENTION)';
      }
      log.info(fields, `relay message ${status}`);
    } else {
      const forward = disposition.event;
      const record = buildAddMsg(forward);
      const item = {
        source: relaySource(botId, m.id),
        eventId: String(record.NewMsgId),
        conversation: record.FromUserName.string,
        sender: forward.sender.id,
        body: serializeRecord(record, { format: config.recordFormat, appid: config.gewechatAppid }),
      };
      const { inserted } = outbox.enqueue(item, now(), cursor);
      metrics.inc('bridge_relay_messages_total', { outcome: inserted ? 'queued' : 'duplicate' });
      log.info(
        {
          hop: 'relay_in',
          eventId: item.eventId,
          relayMessageId: m.id,
          type: m.type,
          sender: item.sender,
          mentioned: m.mentioned === true ? true : undefined,
          conversationId: item.conversation,
          status: inserted ? 'queued' : 'duplicate',
          // From the relay's commit to our outbox commit.
          latency_ms: Math.max(0, now() - Date.parse(m.created_at)),
        },
        'relay message stored',
      );
      if (inserted) deliverer.kick();
    }
  };

  const stream = new RelayStream(
    relay,
    {
      cursor: () => outbox.getCursor(cursorKey),
      onConnected: async (id) => {
        if (id !== botId) {
          botId = id;
          outbox.setMeta(botKey, String(id));
        }
        // Publishes the bot's keys (generated on first use) before any message is opened.
        await e2eSession()?.init();
        metrics.inc('bridge_relay_stream_connects_total');
        metrics.set('bridge_relay_stream_connected', {}, 1);
        if (botName?.id !== id) {
          // Before any message is mapped; a failure closes this connection and it is retried.
          const name = await relayUserName(relay, id);
          if (name === null) throw new Error(`could not read the bot's name (GET /users/${id})`);
          botName = { id, name };
          outbox.setMeta(botNameKey, `${id}:${name}`);
          log.info({ hop: 'relay_stream', botId: id, botName: name }, 'bot name read from the relay');
        }
      },
      onMessage,
      onDisconnected: () => metrics.set('bridge_relay_stream_connected', {}, 0),
      onAck: (ok) => metrics.inc('bridge_relay_acks_total', { result: ok ? 'ok' : 'failed' }),
    },
    {
      idleTimeoutMs: config.streamIdleTimeoutSeconds * 1000,
      retryBaseMs: config.retryBaseMs,
      retryMaxDelayMs: config.retryMaxDelayMs,
      random,
      now,
    },
    log,
  );

  const sender = new SendService(config, outbox, relay, log, metrics, { now, random }, e2eSession);

  metrics.set('bridge_relay_stream_connected', {}, 0);
  metrics.onCollect(() => {
    const c = outbox.counts();
    for (const state of ['pending', 'dead', 'delivered'] as const)
      metrics.set('bridge_outbox_messages', { state }, c[state]);
    metrics.set(
      'bridge_outbox_oldest_pending_age_seconds',
      {},
      c.oldestPendingAt === null ? 0 : Math.max(0, (now() - c.oldestPendingAt) / 1000),
    );
    if (media) {
      metrics.set('bridge_media_copies', {}, media.count());
      metrics.set('bridge_media_copies_bytes', {}, media.totalBytes());
    }
  });

  const handlers: Handlers = {
    async send(ctx) {
      const header = ctx.headers['idempotency-key'];
      const req = parseSendRequest(ctx.body, typeof header === 'string' ? header : undefined);
      const fields = {
        requestKey: req.key ?? undefined,
        sender: botId ? userWxid(botId) : undefined,
        conversationId: sendConversationId(req.to),
        replyTo: req.replyToMessageId ?? undefined,
      };
      try {
        const result = await sender.send(req);
        return {
          status: 200,
          body: result.body,
          headers: result.replayed ? { 'idempotent-replayed': 'true' } : ({} as Record<string, string>),
          log: {
            ...fields,
            messageId: result.body.messageId,
            parts: result.body.messageIds?.length ?? 1,
            replayed: result.replayed,
          },
        };
      } catch (err) {
        // The request's one log line (written by the HTTP layer) carries these too.
        if (err instanceof BridgeError) Object.assign(err.logFields, fields);
        throw err;
      }
    },
    async inbound(ctx) {
      const item = inboundItem(ctx.body);
      const { inserted } = outbox.enqueue(item, now());
      if (inserted) deliverer.kick();
      return {
        status: 202,
        body: { accepted: true, eventId: item.eventId, duplicate: !inserted },
        log: {
          eventId: item.eventId,
          sender: item.sender,
          conversationId: item.conversation,
          duplicate: !inserted,
        },
      };
    },
    media: signer
      ? (ctx) => serveMedia(ctx.path.slice(MEDIA_PATH.length), signer, relay, now(), media)
      : undefined,
    health() {
      const c = outbox.counts();
      const s = stream.describe();
      return {
        status: 200,
        body: {
          status: s.connected ? 'ok' : 'degraded',
          relay: {
            ...s,
            botId: botId || null,
            botName: botName?.id === botId ? botName.name : null,
            cursor: outbox.getCursor(cursorKey),
          },
          webhook: { url: safeUrl(config.webhookUrl), signing: config.signing },
          outbox: {
            pending: c.pending,
            dead: c.dead,
            oldestPendingAgeSeconds:
              c.oldestPendingAt === null ? null : Math.round((now() - c.oldestPendingAt) / 1000),
          },
        },
      };
    },
    async metrics() {
      return { status: 200, body: await metrics.render(), contentType: metrics.contentType };
    },
    onRequest(route, status) {
      if (route === '/api/messages/send' || route === '/messages/send')
        metrics.inc('bridge_send_requests_total', { status: String(status) });
      else if (route === '/im/inbound') metrics.inc('bridge_inbound_total', { status: String(status) });
      else if (route === MEDIA_PATH) metrics.inc('bridge_media_requests_total', { status: String(status) });
    },
  };

  const server = await createHttpServer(config, handlers, log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  if (!mediaBase) mediaBase = url;

  deliverer.start();
  stream.start();
  const prune = (): void => outbox.prune(now() - config.outboxRetentionDays * 86_400_000);
  prune();
  const pruneTimer = setInterval(prune, PRUNE_INTERVAL_MS);
  pruneTimer.unref();
  const sweepMedia = (): void => {
    try {
      media?.sweep();
    } catch (err) {
      log.error({ hop: 'media_store', ...errInfo(err) }, 'media sweep failed');
    }
  };
  sweepMedia();
  const mediaTimer = setInterval(sweepMedia, MEDIA_SWEEP_INTERVAL_MS);
  mediaTimer.unref();

  log.info(
    {
      hop: 'startup',
      url,
      relay: safeUrl(config.relayBaseUrl),
      webhook: safeUrl(config.webhookUrl),
      signing: config.signing,
      dataDir: config.dataDir,
      media: signer ? `${mediaBase}${MEDIA_PATH}…` : 'off',
    },
    `openwechat bridge listening on ${url}`,
  );

  let closing: Promise<void> | null = null;
  return {
    url,
    config,
    outbox,
    media,
    metrics,
    log,
    close() {
      closing ??= (async () => {
        clearInterval(pruneTimer);
        clearInterval(mediaTimer);
        stopping.abort(new Error('the bridge is stopping'));
        const serverClosed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        await stream.stop();
        await deliverer.stop();
        server.closeAllConnections();
        await serverClosed;
        outbox.close();
        log.info({ hop: 'shutdown' }, 'bridge stopped');
      })();
      return closing;
    },
  };
}

/** The media link signer: BRIDGE_MEDIA_SECRET, else the key file in BRIDGE_DATA_DIR (created on first start). */
function openMediaSigner(config: BridgeConfig, account: string, outbox: Outbox, log: Logger): MediaSigner {
  let mediaKey: ReturnType<typeof loadMediaKey>;
  try {
    mediaKey = loadMediaKey(config.dataDir, config.mediaSecret);
  } catch (err) {
    outbox.close();
    throw err;
  }
  if (mediaKey.source === 'generated')
    log.info({ hop: 'startup', path: mediaKey.path }, 'media link key generated (mode 0600)');
  if (mediaKey.looseMode)
    log.warn(
      { hop: 'startup', path: mediaKey.path },
      'the media link key file is readable by others: chmod 600 it',
    );
  return new MediaSigner(mediaKey.key, account);
}
