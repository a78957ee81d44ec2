// OpenClaw → relay: `POST /api/messages/send` (alias `/messages/send`), docs/bridge.md.
// {to, text, replyToMessageId?, requestId?} (or an Idempotency-Key header) → {"messageId": "…"}.
// `to` is a user (`owc_<id>` → `POST /send`) or a group (`owc_g<gid>@chatroom` → `POST /groups/<gid>/send`).
//
// Idempotency: a key seen within 24 h with the same body returns the stored answer (Idempotent-Replayed:
// true) and sends nothing; with another body it is 409. Concurrent repeats wait for the first. Below that,
// every relay call carries an Idempotency-Key derived from the request's key (or a random one), so the
// bridge's own retries of transient relay errors — and a replay after a bridge crash — deliver once.
// Text over the relay's 1000 characters is sent as consecutive parts (split at a line break or space).

import { createHash, randomUUID } from 'node:crypto';
import { backoffDelay, ClientError, E2eError, type E2eSession, type RelayClient } from '@openwechat/client';
import type { BridgeConfig } from './config.ts';
import { BridgeError } from './errors.ts';
import { parseGroupWxid, parseUserWxid, stableId53 } from './ids.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { Outbox } from './outbox.ts';

/** The relay's content limit (characters = code points). */
export const RELAY_MAX_CHARS = 1000;
export const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;
const MAX_KEY_CHARS = 255;
/** Attempts per relay call for transient failures (network, 5xx), with a short jittered backoff. */
const RELAY_ATTEMPTS = 3;
const RELAY_RETRY_BASE_MS = 200;
const RELAY_RETRY_CAP_MS = 2000;

export interface SendRequest {
  to: string;
  text: string;
  replyToMessageId: string | null;
  /** Idempotency-Key header, else requestId; null: not idempotent across calls. */
  key: string | null;
}

/** Where a send goes: a relay user or a relay group. */
export type SendTarget = { kind: 'user'; id: number } | { kind: 'group'; id: number };

/** The target a `to` value names; null: nothing on this relay (404 conversation_not_found). */
export function parseSendTarget(to: string): SendTarget | null {
  const gid = parseGroupWxid(to);
  if (gid !== null) return { kind: 'group', id: gid };
  const uid = parseUserWxid(to);
  return uid === null ? null : { kind: 'user', id: uid };
}

/** How a target appears in logs and messageIds: `owc_<id>` / `owc_g<gid>@chatroom`. */
function targetLabel(t: SendTarget): string {
  return t.kind === 'user' ? `owc_${t.id}` : `owc_g${t.id}@chatroom`;
}

/**
 * The conversationId logged for a send: the canonical form the records carry (`owc_5` also for a bare
 * `5`), so every log line of the hop — the request's and each relay attempt's — names it the same way.
 */
export function sendConversationId(to: string): string {
  const target = parseSendTarget(to);
  return target ? targetLabel(target) : to;
}

export interface SendResult {
  body: { messageId: string; messageIds?: string[] };
  replayed: boolean;
}

function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Validates the JSON body (400 on anything malformed). */
export function parseSendRequest(raw: Buffer, headerKey: string | undefined): SendRequest {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new BridgeError('invalid_request', 'body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new BridgeError('invalid_request', 'body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.to !== 'string' || b.to.trim() === '')
    throw new BridgeError('invalid_request', 'missing to (a non-empty string)');
  if (typeof b.text !== 'string' || b.text.trim() === '')
    throw new BridgeError('invalid_request', 'missing text (a non-empty string)');
  let replyTo: string | null = null;
  if (b.replyToMessageId !== undefined && b.replyToMessageId !== null) {
    if (typeof b.replyToMessageId !== 'string' && typeof b.replyToMessageId !== 'number')
      throw new BridgeError('invalid_request', 'replyToMessageId must be a string');
    replyTo = String(b.replyToMessageId);
    if (replyTo.length > 128) throw new BridgeError('invalid_request', 'replyToMessageId is too long');
  }
  let key: string | null = null;
  if (headerKey !== undefined) key = headerKey;
  else if (b.requestId !== undefined && b.requestId !== null) {
    if (typeof b.requestId !== 'string')
      throw new BridgeError('invalid_request', 'requestId must be a string');
    key = b.requestId;
  }
  if (key !== null && (key.length === 0 || key.length > MAX_KEY_CHARS))
    throw new BridgeError(
      'invalid_request',
      `requestId / Idempotency-Key must be 1–${MAX_KEY_CHARS} characters`,
    );
  return { to: b.to.trim(), text: b.text, replyToMessageId: replyTo, key };
}

/**
 * Splits text into parts of at most `max` code points whose concatenation is the text: each cut goes after
 * the last line break in the second half of the window, else after the last whitespace, else at `max`.
 */
export function splitText(text: string, max: number): string[] {
  const cps = Array.from(text);
  if (cps.length <= max) return [text];
  const parts: string[] = [];
  let start = 0;
  while (cps.length - start > max) {
    const end = start + max;
    const floor = start + Math.floor(max / 2);
    let cut = -1;
    for (let i = end; i > floor && cut < 0; i--) if (cps[i - 1] === '\n') cut = i;
    for (let i = end; i > floor && cut < 0; i--) if (/\s/.test(cps[i - 1]!)) cut = i;
    if (cut < 0) cut = end;
    parts.push(cps.slice(start, cut).join(''));
    start = cut;
  }
  parts.push(cps.slice(start).join(''));
  return parts;
}

/** The answer of one relay send, as the send API uses it. */
interface RelaySent {
  messageId: number | null;
  recipients: number | null;
}

/** A failed relay call → the send API's error (table in docs/bridge.md). */
export function mapRelayError(a: ClientError): BridgeError {
  if (a.kind === 'network' || a.kind === 'timeout') {
    // The last part of the client's message is the cause (ECONNREFUSED, …); the relay address stays out.
    const cause = a.message.split(': ').at(-1) ?? a.code;
    return BridgeError.retryable('upstream_unavailable', 5, `the relay is unreachable (${cause})`);
  }
  if (a.kind !== 'relay') {
    return new BridgeError('upstream_error', `the relay's answer was not usable (${a.code})`, {
      extra: { relay_code: a.code },
    });
  }
  const extra = { relay_code: a.code };
  const retrySeconds = (fallback: number): number =>
    a.retryAfterMs === null ? fallback : a.retryAfterMs / 1000;
  switch (a.code) {
    case 'user_not_found':
    case 'group_not_found':
    case 'not_group_member':
      return new BridgeError('conversation_not_found', a.message, { extra });
    case 'blocked_by_recipient':
    case 'you_blocked_recipient':
    case 'recipient_friends_only':
    case 'recipient_dnd':
    case 'not_group_owner':
    case 'not_friends_of_owner':
      return new BridgeError('forbidden', a.message, { extra });
    case 'already_member':
    case 'group_full':
    case 'too_many_groups':
    case 'owner_cannot_leave':
      return new BridgeError('group_conflict', a.message, { extra });
    case 'request_pending':
      return new BridgeError('request_pending', a.message, { extra });
    case 'idempotency_conflict':
      return new BridgeError('idempotency_conflict', a.message, { extra });
    case 'content_too_long':
      return new BridgeError('text_too_long', a.message, { extra });
    case 'payload_too_large':
      return new BridgeError('payload_too_large', a.message, { extra });
    case 'validation_failed':
    case 'content_or_file_required':
    case 'invalid_group_name':
      return new BridgeError('unprocessable', a.message, { extra });
    case 'cannot_message_self':
      return new BridgeError('invalid_request', 'the bot cannot message itself', { extra });
    case 'rate_limited': {
      const e = BridgeError.retryable('rate_limited', retrySeconds(1), a.message);
      e.extra.relay_code = a.code;
      return e;
    }
    case 'invalid_token':
      return new BridgeError('upstream_error', 'the relay refused the bridge RELAY_TOKEN', { extra });
  }
  if (a.status === 503) {
    const e = BridgeError.retryable('upstream_unavailable', retrySeconds(5), a.message || undefined);
    e.extra.relay_code = a.code;
    return e;
  }
  if (a.status === 429) return BridgeError.retryable('rate_limited', retrySeconds(1), a.message || undefined);
  return new BridgeError('upstream_error', `the relay answered HTTP ${a.status} (${a.code})`, { extra });
}

function isTransient(a: ClientError): boolean {
  return a.kind === 'network' || a.kind === 'timeout' || (a.kind === 'relay' && a.status >= 500);
}

export class SendService {
  private readonly inFlight = new Map<string, { fingerprint: string; promise: Promise<SendResult> }>();

  constructor(
    private readonly config: BridgeConfig,
    private readonly outbox: Outbox,
    private readonly relay: RelayClient,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly deps: { now: () => number; random: () => number },
    /** The bot's E2E session (BRIDGE_E2E not off); throws while the bot id is not known yet. */
    private readonly e2e: () => E2eSession | null = () => null,
  ) {}

  async send(req: SendRequest): Promise<SendResult> {
    const target = parseSendTarget(req.to);
    if (target === null)
      throw new BridgeError('conversation_not_found', `unknown recipient ${JSON.stringify(req.to)}`);
    if (charLength(req.text) > this.config.maxTextChars)
      throw new BridgeError('text_too_long', `text is longer than ${this.config.maxTextChars} characters`);
    if (req.key === null) return this.execute(target, req.text, `oc-auto:${randomUUID()}`);

    // A user is fingerprinted by its number (as before groups), a group by `g<gid>`.
    const to = target.kind === 'user' ? target.id : `g${target.id}`;
    const fingerprint = createHash('sha256')
      .update(JSON.stringify([to, req.text, req.replyToMessageId]))
      .digest('hex');
    const running = this.inFlight.get(req.key);
    if (running) {
      if (running.fingerprint !== fingerprint) throw new BridgeError('idempotency_conflict');
      return { ...(await running.promise), replayed: true };
    }
    const stored = this.outbox.getSend(req.key);
    if (stored && stored.createdAt > this.deps.now() - IDEMPOTENCY_WINDOW_MS) {
      if (stored.fingerprint !== fingerprint) throw new BridgeError('idempotency_conflict');
      return { body: JSON.parse(stored.response) as SendResult['body'], replayed: true };
    }
    const key = req.key;
    const promise = this.execute(target, req.text, relayKeyFor(key)).then((result) => {
      this.outbox.putSend({
        key,
        fingerprint,
        response: JSON.stringify(result.body),
        createdAt: this.deps.now(),
      });
      return result;
    });
    this.inFlight.set(key, { fingerprint, promise });
    try {
      return await promise;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async execute(target: SendTarget, text: string, relayKey: string): Promise<SendResult> {
    const parts = splitText(text, RELAY_MAX_CHARS);
    const ids: string[] = [];
    for (const [i, part] of parts.entries()) {
      const key = parts.length === 1 ? relayKey : `${relayKey}#${i + 1}`;
      const answer = await this.sendPart(target, part, key);
      ids.push(messageIdFor(target, answer.messageId ?? undefined, key));
    }
    const body: SendResult['body'] = { messageId: ids[0]! };
    if (ids.length > 1) body.messageIds = ids;
    return { body, replayed: false };
  }

  private async sendPart(target: SendTarget, content: string, key: string): Promise<RelaySent> {
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      let answer: RelaySent | null = null;
      let failure: ClientError | null = null;
      let sealed: { encrypted: boolean; plaintextReason: string | null } | null = null;
      try {
        const e2e = this.e2e();
        if (target.kind === 'user') {
          const r = e2e
            ? await e2e.send(target.id, content, { idempotencyKey: key })
            : { result: await this.relay.send(target.id, content, { idempotencyKey: key }) };
          if ('encrypted' in r) sealed = r;
          answer = { messageId: r.result.messageId, recipients: null };
        } else {
          const r = e2e
            ? await e2e.sendGroup(target.id, content, { idempotencyKey: key })
            : { result: await this.relay.sendGroup(target.id, content, { idempotencyKey: key }) };
          if ('encrypted' in r) sealed = r;
          answer = { messageId: null, recipients: r.result.recipients };
        }
      } catch (err) {
        if (err instanceof E2eError) {
          // Nothing was sent: the policy refused (no keys under `required`, a changed key).
          this.metrics.inc('bridge_relay_send_attempts_total', { status: 'e2e_refused' });
          throw new BridgeError('e2e_refused', err.message, { extra: { e2e_code: err.code } });
        }
        if (!(err instanceof ClientError)) throw err;
        failure = err;
      }
      if (sealed && !sealed.encrypted) {
        this.log.warn(
          {
            hop: 'relay_send',
            conversationId: targetLabel(target),
            encrypted: false,
            reason: sealed.plaintextReason,
          },
          'sent without end-to-end encryption (BRIDGE_E2E=preferred)',
        );
      }
      const status = failure
        ? failure.kind === 'network' || failure.kind === 'timeout'
          ? 'network'
          : String(failure.status)
        : '200';
      this.metrics.inc('bridge_relay_send_attempts_total', { status });
      this.log.debug(
        {
          hop: 'relay_send',
          conversationId: targetLabel(target),
          attempt,
          status,
          code: failure?.kind === 'relay' ? failure.code : undefined,
          recipients: answer?.recipients ?? undefined,
          encrypted: sealed?.encrypted,
          latency_ms: Math.round(performance.now() - started),
        },
        'relay send',
      );
      if (answer) return answer;
      const err = failure!;
      if (!isTransient(err) || attempt >= RELAY_ATTEMPTS) throw mapRelayError(err);
      const wait = Math.max(
        backoffDelay(attempt, { baseMs: RELAY_RETRY_BASE_MS, maxMs: RELAY_RETRY_CAP_MS }, this.deps.random),
        err.retryAfterMs ?? 0,
      );
      // A relay asking for a long pause: hand that to the caller instead of holding the request.
      if (wait > RELAY_RETRY_CAP_MS) throw mapRelayError(err);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * The messageId of one sent part: `out_<user>_<relay message id>` for a user. A group send is one row per
 * member, so the relay's answer names no single message; unless it carries a `message_id`, the id is
 * `out_g<gid>_<53-bit hash of the relay Idempotency-Key>`, which a retried or replayed send reproduces.
 */
export function messageIdFor(target: SendTarget, relayMessageId: unknown, relayKey: string): string {
  const known = typeof relayMessageId === 'number' || typeof relayMessageId === 'string';
  if (target.kind === 'user') return `out_${target.id}_${known ? String(relayMessageId) : 'unknown'}`;
  return `out_g${target.id}_${known ? String(relayMessageId) : stableId53('group-send', target.id, relayKey)}`;
}

/** The relay-side Idempotency-Key (≤ 255 chars) for a caller's key. */
export function relayKeyFor(key: string): string {
  const prefixed = `oc:${key}`;
  return prefixed.length <= 200 ? prefixed : `oc-sha256:${createHash('sha256').update(key).digest('hex')}`;
}
