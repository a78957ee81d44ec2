// Sending to the relay for OpenClaw: text to a user (POST /send, JSON mode), a file (/send/file), to a
// group (/groups/{gid}/send[/file]). Every send carries an Idempotency-Key so a retried delivery is
// stored once; retries happen only where they can succeed (429 with Retry-After, 5xx, network, timeout)
// and every refusal becomes one clear delivery error naming what the relay said.

import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientError, E2eError, retryDelay, type GroupSendResult, type SendResult } from '@openwechat/client';
import { formatTarget, type Target } from './targets.ts';

export interface OutboundFile {
  buffer: Uint8Array;
  fileName: string;
  contentType?: string | undefined;
}

export interface SendRequest {
  target: Target;
  text: string;
  file?: OutboundFile | null;
  idempotencyKey: string;
}

type FileInput = { path: string; filename?: string; contentType?: string };
type KeyOpts = { idempotencyKey?: string };

/**
 * What sends: the RelayClient itself, or the same four methods through end-to-end encryption (src/e2e.ts).
 */
export interface RelaySender {
  send(toId: number, text: string, opts: KeyOpts): Promise<SendResult>;
  sendFile(toId: number, file: FileInput, text: string, opts: KeyOpts): Promise<SendResult>;
  sendGroup(gid: number, text: string, opts: KeyOpts): Promise<GroupSendResult>;
  sendGroupFile(gid: number, file: FileInput, text: string, opts: KeyOpts): Promise<GroupSendResult>;
}

export interface SendOutcome {
  /** The relay's id of the stored copy when it reports one (user sends), else a synthetic id. */
  messageId: string;
  replayed: boolean;
}

/** How often and how long a send is retried (the client's one backoff: exponential, equal jitter). */
export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
}

const defaultRetryPolicy: RetryPolicy = {
  attempts: 4,
  baseMs: 500,
  maxMs: 8_000,
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(signal.reason);
        },
        { once: true },
      );
    }),
  random: Math.random,
};

/** An Idempotency-Key from OpenClaw's durable delivery identity, stable across its retries. */
export function deliveryIdempotencyKey(parts: Array<string | number | null | undefined>): string {
  const material = parts.map((p) => String(p ?? '')).join('\u0000');
  return `oc-${createHash('sha256').update(material).digest('hex').slice(0, 40)}`;
}

/** The key of one part of one of OpenClaw's queued deliveries (live send and recovery derive the same). */
export function queuedPartKey(
  accountId: string | null | undefined,
  queueId: string,
  partIndex: number | undefined,
  kind: 'text' | 'media',
): string {
  return deliveryIdempotencyKey(['openwechat', accountId ?? 'default', queueId, partIndex, kind]);
}

/** A key for a send OpenClaw gave no durable identity to (a retry of it is a new send). */
export function freshIdempotencyKey(): string {
  return `oc-${randomUUID()}`;
}

export function isRetryable(err: unknown): boolean {
  if (!(err instanceof ClientError)) return false;
  if (err.kind === 'network' || err.kind === 'timeout') return true;
  return err.kind === 'relay' && (err.status === 429 || err.status >= 500);
}

const REFUSALS: Partial<Record<string, string>> = {
  blocked_by_recipient: 'the recipient has blocked this account',
  you_blocked_recipient: 'this account has blocked the recipient (unblock first)',
  recipient_dnd: 'the recipient is in do-not-disturb mode',
  recipient_friends_only: 'the recipient accepts messages from friends only',
  request_pending: 'a friend request to this user is still pending',
  rate_limited: 'the relay is rate limiting this account',
  user_not_found: 'no such relay user',
  cannot_message_self: 'this is the account itself',
  content_too_long: 'the text is longer than the relay accepts (1000 characters)',
  file_too_large: 'the file is larger than the relay accepts',
  group_not_found: 'no such group (or this account is not in it)',
  not_group_member: 'this account is not a member of that group',
  invalid_token: 'the relay rejected the token',
  account_disabled: 'the relay has disabled this account',
};

/** One readable error for OpenClaw's delivery log; the relay's code stays on `code`. */
export class RelayDeliveryError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(target: Target, err: unknown) {
    // An end-to-end refusal (policy `required`, a changed key) is this client's, never retried.
    const code =
      err instanceof ClientError ? err.code : err instanceof E2eError ? `e2e_${err.code}` : 'unknown';
    const why = REFUSALS[code] ?? (err instanceof Error ? err.message : String(err));
    super(`openwechat: sending to ${formatTarget(target)} failed: ${why} [${code}]`, { cause: err });
    this.name = 'RelayDeliveryError';
    this.code = code;
    this.retryable = isRetryable(err);
  }
}

async function withTempFile<T>(file: OutboundFile, run: (path: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'openwechat-out-'));
  const path = join(dir, 'upload');
  try {
    await writeFile(path, file.buffer);
    return await run(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function sendOnce(client: RelaySender, req: SendRequest): Promise<SendOutcome> {
  const opts = { idempotencyKey: req.idempotencyKey };
  const { target, text, file } = req;
  if (target.kind === 'user') {
    const result = file
      ? await withTempFile(file, (path) =>
          client.sendFile(
            target.id,
            { path, filename: file.fileName, ...(file.contentType ? { contentType: file.contentType } : {}) },
            text,
            opts,
          ),
        )
      : await client.send(target.id, text, opts);
    return {
      messageId: result.messageId !== null ? String(result.messageId) : req.idempotencyKey,
      replayed: result.replayed,
    };
  }
  const result = file
    ? await withTempFile(file, (path) =>
        client.sendGroupFile(
          target.id,
          { path, filename: file.fileName, ...(file.contentType ? { contentType: file.contentType } : {}) },
          text,
          opts,
        ),
      )
    : await client.sendGroup(target.id, text, opts);
  return { messageId: req.idempotencyKey, replayed: result.replayed };
}

/** Sends with retries where they can help; throws RelayDeliveryError otherwise. */
export async function sendToRelay(
  client: RelaySender,
  req: SendRequest,
  policy: RetryPolicy = defaultRetryPolicy,
  signal?: AbortSignal,
): Promise<SendOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await sendOnce(client, req);
    } catch (err) {
      if (!isRetryable(err) || attempt >= policy.attempts || signal?.aborted) {
        throw new RelayDeliveryError(req.target, err);
      }
      const asked = err instanceof ClientError ? err.retryAfterMs : null;
      await policy.sleep(retryDelay(attempt, asked, policy, policy.random), signal);
    }
  }
}

// ───────────── reconciliation after a crash ─────────────

/** What the relay remembers of a send by its Idempotency-Key (`RelayClient.sentByKey`). */
interface SentByKey {
  result: { messageId?: number | string | null; message_id?: number | string | null } & Record<
    string,
    unknown
  >;
  receipt?: { state?: string; message_id?: number; at?: number } | null;
}

export interface KeyLookup {
  sentByKey(idempotencyKey: string): Promise<SentByKey | null>;
}

export type Reconciliation =
  | { status: 'sent'; messageId: string }
  | { status: 'not_sent' }
  | { status: 'unresolved'; error: string; retryable: boolean };

/**
 * Whether a queued delivery whose send was interrupted reached the relay. Part i of the delivery was sent
 * with the key `keyOf(i)`; the relay answers whether a send with a key landed (it remembers keys 24 h).
 * - one part, and it landed → `sent` with the relay's message id: OpenClaw acknowledges the entry;
 * - one part, not landed → `not_sent`: OpenClaw sends it again, with the same key;
 * - several parts → `not_sent` whatever landed: OpenClaw replays the delivery with the same keys, and the
 *   relay stores each part that already landed once (it answers the replay with the original result), so
 *   the replay sends exactly the missing parts. A fresh send is provably safe either way;
 * - the relay cannot be asked (network, 5xx, 429) → `unresolved`, retryable: OpenClaw asks again later.
 */
export async function reconcileQueuedDelivery(
  lookup: KeyLookup,
  keyOf: (partIndex: number) => string,
  parts: number,
): Promise<Reconciliation> {
  if (parts !== 1) return { status: 'not_sent' };
  try {
    const found = await lookup.sentByKey(keyOf(0));
    if (!found) return { status: 'not_sent' };
    const id = found.result.messageId ?? found.result.message_id;
    return { status: 'sent', messageId: id !== null && id !== undefined ? String(id) : keyOf(0) };
  } catch (err) {
    return {
      status: 'unresolved',
      error: `openwechat: could not ask the relay whether the send landed: ${(err as Error)?.message ?? err}`,
      retryable: !(err instanceof ClientError) || isRetryable(err),
    };
  }
}
