// Sending and the inbox (docs/compat.md: /send, /send/file, /messages; docs/protocol.md additions).
// A send commits every resulting message before the sender hears success; only then are the
// recipients' streams woken (the hub never holds the only copy).

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import {
  formatInboxEmpty,
  formatInboxPage,
  formatInboxRead,
  formatSendReply,
  messageJson,
  AckBody,
  E2E_MAX_CHARS,
  E2E_PLACEHOLDER,
  InboxQuery,
  RelayError,
  SEND_SUCCESS,
  SendBody,
  type AttachmentView,
} from '@openwechat/protocol';
import { acknowledge, delivery, publishReceipts } from './acknowledge.ts';
import { sendResultJson } from './send-results.ts';
import type { FastifyRequest } from 'fastify';
import type { Decide } from '../../store/send.ts';
import type { FileStore, MessagingStore, SendResult, UserRecord, UserStore } from '../../store/types.ts';
import { charLength, fromSchema, intField, jsonBody, strField, type Issues } from '../input.ts';
import { readMultipart, type UploadedFile } from '../multipart.ts';
import { grantUploadTime } from '../body-deadlines.ts';
import { sha256Hex, tokenUser, type Ctx, type Output, type StoreCtx } from '../route.ts';

type AuthedCtx = StoreCtx<UserStore & MessagingStore & FileStore> & { user: UserRecord };

/** How many of the sender's own inbox messages a send reply previews. */
export const PREVIEW_SIZE = 5;

export interface SendInput {
  toId: number;
  content: string;
  /** End-to-end ciphertext envelope (docs/e2e.md); null for plaintext. */
  e2e: string | null;
}

export function parseSend(req: { body: unknown }, issues: Issues): SendInput {
  const body = jsonBody(issues, req.body);
  if (!body) return { toId: 0, content: '', e2e: null };
  const { to_id: toId, content, e2e } = fromSchema(issues, 'body', SendBody, body);
  return { toId: toId ?? 0, content: content ?? '', e2e: e2e ?? null };
}

/**
 * The `e2e` text field of a multipart send: at most E2E_MAX_CHARS (busboy cuts a longer field at 64 KB,
 * which is longer still, so a cut field is refused here too). Null when absent.
 */
export function multipartE2e(issues: Issues, raw: string | undefined): string | null {
  if (raw === undefined) return null;
  if (raw.length === 0 || raw.length > E2E_MAX_CHARS) {
    issues.add('body -> e2e', `ensure this value has between 1 and ${E2E_MAX_CHARS} characters`);
    return null;
  }
  return raw;
}

/**
 * The content stored with an encrypted message: always the placeholder, so a text-mode or legacy
 * reader sees it and never ciphertext. A client that sends other text alongside a ciphertext is told
 * (it would otherwise believe the relay delivered that text); a file send may leave content empty.
 */
export function e2eContent(content: string, opts: { emptyAllowed?: boolean } = {}): string {
  const c = content.trim();
  if (c === E2E_PLACEHOLDER || (opts.emptyAllowed && c === '')) return E2E_PLACEHOLDER;
  throw new RelayError('e2e_content_mismatch');
}

/** Retries with the same key within this window get the first answer (Matrix, Stripe: 24 h). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;

/** The Idempotency-Key header, validated; null when absent. */
export function idempotencyKey(ctx: Pick<Ctx, 'req'>): string | null {
  const raw = ctx.req.headers['idempotency-key'];
  if (raw === undefined) return null;
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 255) {
    throw new RelayError('invalid_idempotency_key');
  }
  return raw;
}

async function deliver(
  ctx: AuthedCtx,
  toId: number,
  content: string,
  attachment: AttachmentView | null,
  /** Identity of the attachment's bytes for idempotency (a retry uploads them again under a new id). */
  attachmentHash: string | null = null,
  /** Instead of the store's rules (decideSend): a refused upload only replays an earlier send. */
  decide?: Decide,
  e2e: string | null = null,
): Promise<{ output: Output; result: SendResult }> {
  const { store, now } = ctx.services;
  const key = idempotencyKey(ctx);
  const result = await store.send(
    { fromId: ctx.user.id, toId, content, attachment, e2e, now: now(), sender: ctx.user },
    {
      previewLimit: PREVIEW_SIZE,
      // What makes two requests "the same": recipient, content and the attachment's name and bytes.
      // Only a keyed request has anything to compare it with. An encrypted retry is encrypted afresh
      // (new randomness, so other ciphertext and other file bytes): the relay cannot compare what it
      // cannot read, so it compares recipient and kind (docs/e2e.md).
      idempotency: key
        ? {
            key,
            fingerprint: sha256Hex(
              JSON.stringify(
                e2e
                  ? [toId, content, attachment?.name ?? null, 'e2e']
                  : [toId, content, attachment?.name ?? null, attachmentHash],
              ),
            ),
            windowMs: IDEMPOTENCY_WINDOW_MS,
          }
        : undefined,
    },
    decide,
  );
  return { output: new SendOutput(result), result };
}

/**
 * A send's answer. Each rendering is made when asked for: a request is answered in one of them (issue
 * 26). A class, not an object literal with getters, which V8 builds through a slow path per reply.
 */
class SendOutput {
  readonly headers: Record<string, string> | undefined;
  constructor(private readonly result: SendResult) {
    this.headers = result.replayed ? { 'idempotent-replayed': 'true' } : undefined;
  }
  get text(): string {
    return formatSendReply(
      SEND_SUCCESS[this.result.outcome],
      this.result.preview ?? { total: 0, messages: [] },
    );
  }
  get json(): unknown {
    return sendResultJson(this.result);
  }
}

export async function send(ctx: AuthedCtx, input: SendInput): Promise<Output> {
  const content = input.e2e ? e2eContent(input.content) : input.content;
  return (await deliver(ctx, input.toId, content, null, null, undefined, input.e2e)).output;
}

export interface SendFileInput {
  toId: number;
  content: string;
  file: UploadedFile | null;
  e2e: string | null;
}

/**
 * Multipart `to_id`, `content`, `file`. The reference checks content and file before the token
 * (docs/compat.md POST /send/file); so do we. The upload is streamed to a temporary file under the data
 * folder with the size limit enforced while streaming.
 */
export async function parseSendFile(req: FastifyRequest, issues: Issues, ctx: Ctx): Promise<SendFileInput> {
  if (!req.isMultipart()) {
    issues.add('body -> to_id', 'Field required');
    return { toId: 0, content: '', file: null, e2e: null };
  }
  const { fields, file } = await readUpload(req, ctx);
  const toId = intField(issues, 'body -> to_id', fields.to_id);
  const content = strField(issues, 'body -> content', fields.content ?? '') ?? '';
  return { toId: toId ?? 0, content, file, e2e: multipartE2e(issues, fields.e2e) };
}

/**
 * The token of a multipart send, checked when its file part begins (issue 24.1): nothing is written
 * under DATA_DIR/uploads, and the long upload time limit is not granted, for an unknown sender. A refused
 * upload is answered there, while the client is still sending (app.ts reads and drops the rest). The
 * reference checks the content before the token; requests without a file still get that order, and one
 * with a file is refused on its fields so far (docs/compat.md).
 */
async function checkUploader(ctx: Ctx, fields: Readonly<Record<string, string>>): Promise<void> {
  const content = (fields.content ?? '').trim();
  if (charLength(content) > 1000) throw new RelayError('content_too_long');
  if (typeof ctx.req.headers['x-token'] !== 'string')
    throw new RelayError('validation_failed', 'header -> X-Token: Field required');
  const user = await tokenUser(ctx);
  if (!user) throw new RelayError('invalid_token');
  if (user.disabledAt !== null) throw new RelayError('account_disabled');
  grantUploadTime(ctx.req);
}

/**
 * Reads a multipart send: the text fields, and the `file` part streamed to a temporary file under the
 * data folder with MAX_UPLOAD_MB enforced while streaming (a part without a filename is no file), once
 * the sender's token was checked.
 */
export async function readUpload(
  req: FastifyRequest,
  ctx: Ctx,
): Promise<{ fields: Record<string, string>; file: UploadedFile | null }> {
  const { fields, file } = await readMultipart(req, {
    fileField: 'file',
    maxFileBytes: Math.floor(ctx.services.config.maxUploadMb * 1024 * 1024),
    toDir: ctx.services.uploadDir,
    beforeFile: (seen) => checkUploader(ctx, seen),
  });
  return { fields, file: file && file.filename ? file : null };
}

/** The content and file checks of a multipart send; returns the content to store. */
export function checkSendFile(
  input: { content: string; file: UploadedFile | null },
  maxUploadMb: number,
): string {
  const content = input.content.trim();
  if (!content && !input.file) throw new RelayError('content_or_file_required');
  if (charLength(content) > 1000) throw new RelayError('content_too_long');
  if (input.file?.tooLarge)
    throw new RelayError('file_too_large', `文件大小超过限制（最大 ${maxUploadMb}MB）`);
  return content || '(附件)';
}

export async function sendFile(ctx: AuthedCtx, input: SendFileInput): Promise<Output> {
  const { store } = ctx.services;
  const checked = checkSendFile(input, ctx.services.config.maxUploadMb);
  const e2e = input.e2e;
  const content = e2e ? e2eContent(input.content, { emptyAllowed: true }) : checked;
  const upload = input.file;
  if (!upload?.path) return (await deliver(ctx, input.toId, content, null, null, undefined, e2e)).output;

  // The checks the send decision would make first, so no file is stored for a refused recipient.
  if (input.toId === ctx.user.id) throw new RelayError('cannot_message_self');
  if (!(await store.getUser(input.toId))) throw new RelayError('user_not_found');
  return deliverUpload(
    ctx,
    upload,
    { recipientId: input.toId, groupId: null },
    async (attachment, refusal) => {
      const decide = refusal
        ? () => {
            throw refusal;
          }
        : undefined;
      const { output, result } = await deliver(
        ctx,
        input.toId,
        content,
        attachment,
        upload.sha256,
        decide,
        e2e,
      );
      return { output, replayed: result.replayed };
    },
  );
}

/**
 * The upload half of `/send/file` and `/groups/{gid}/send/file`. The bytes go into the store first
 * (streamed from the temporary upload), then `send` commits the message(s) referencing them. If the
 * send is refused, or is an idempotent replay of an earlier one, the newly stored copy is removed again.
 * Over the sender's UPLOAD_QUOTA_MB nothing is stored; with an Idempotency-Key `send` still runs with
 * the refusal in hand, so a retry of a send that went through gets its original answer (the store
 * replays before deciding) and a first attempt gets the quota error.
 */
export async function deliverUpload(
  ctx: AuthedCtx,
  upload: UploadedFile,
  to: { recipientId: number; groupId: number | null },
  send: (
    attachment: AttachmentView,
    refusal: RelayError | null,
  ) => Promise<{ output: Output; replayed: boolean }>,
): Promise<Output> {
  const { store, config, now } = ctx.services;
  const quota = config.uploadQuotaMb * 1024 * 1024;
  const overQuota = async (): Promise<Output> => {
    const refusal = new RelayError(
      'upload_quota_exceeded',
      `待对方接收的附件总量超过限制（最多 ${config.uploadQuotaMb}MB），请等对方接收后再发送`,
    );
    if (!idempotencyKey(ctx)) throw refusal;
    const pending: AttachmentView = {
      name: upload.filename,
      size: upload.size,
      contentType: upload.mimetype,
    };
    return (await send(pending, refusal)).output;
  };
  const at = now();
  const file = {
    id: randomBytes(16).toString('hex'),
    senderId: ctx.user.id,
    recipientId: to.recipientId,
    groupId: to.groupId,
    name: upload.filename,
    contentType: safeContentType(upload.mimetype),
    size: upload.size,
    sha256: upload.sha256,
    createdAt: at,
    expiresAt: at + config.fileRetentionDays * 86_400_000,
  };
  if (!upload.path) throw new Error('deliverUpload: the upload was not streamed to a file');
  // The store checks the quota and inserts the record in one step (concurrent uploads, instances).
  const bytes = createReadStream(upload.path);
  try {
    await store.putFile(file, bytes, { quotaBytes: quota });
  } catch (err) {
    if (err instanceof RelayError && err.code === 'upload_quota_exceeded') return overQuota();
    throw err;
  } finally {
    bytes.destroy(); // refused before reading: the descriptor is not left open
  }
  const attachment: AttachmentView = {
    name: file.name,
    fileId: file.id,
    size: file.size,
    contentType: file.contentType,
    expiresAt: file.expiresAt,
  };
  let kept = false;
  try {
    const { output, replayed } = await send(attachment, null);
    kept = !replayed;
    return output;
  } finally {
    if (!kept) await store.deleteFile(file.id);
  }
}

/** Declared types that a browser could run are served as plain bytes. */
export function safeContentType(declared: string): string {
  const t = declared.trim().toLowerCase();
  if (!/^[\w.+-]+\/[\w.+-]+$/.test(t)) return 'application/octet-stream';
  if (/html|xml|svg|javascript|ecmascript/.test(t)) return 'application/octet-stream';
  return t;
}

/** Content and file problems are reported before an invalid token, as on the reference. */
export function preAuthSendFile(input: SendFileInput, ctx: Ctx): void {
  checkSendFile(input, ctx.services.config.maxUploadMb);
}

/** Whatever happened, the temporary upload does not outlive the request. */
export async function cleanupSendFile(input: { file: UploadedFile | null }): Promise<void> {
  if (input.file?.path) await rm(input.file.path, { force: true });
}

export interface InboxInput {
  limit: number;
  fromId: number | null;
  /** `?after=n`: acknowledge ids ≤ n and page through the rest without deleting it. */
  after: number | null;
}

export function parseInbox(req: { query: unknown }, issues: Issues): InboxInput {
  const q = fromSchema(issues, 'query', InboxQuery, req.query as Record<string, unknown>);
  return { limit: q.limit ?? 100, fromId: q.from_id ?? null, after: q.after ?? null };
}

export async function readInbox(ctx: AuthedCtx, input: InboxInput): Promise<Output> {
  if (input.after !== null) return readInboxAfter(ctx, input.after, input.limit);
  // The reference treats from_id=0 as absent in its texts (a truthiness check) but still filters by it.
  // Read-and-clear: what it returns is delivered (its senders get receipts).
  const d = delivery(ctx.services);
  const page = await ctx.services.store.takeInbox(
    ctx.user.id,
    { limit: input.limit, fromId: input.fromId },
    d,
  );
  publishReceipts(ctx, d.receipts);
  const fetched = page.messages.length;
  const remaining = page.total - fetched;
  ctx.services.metrics.messagesDelivered.inc({ channel: 'inbox' }, fetched);
  ctx.services.metrics.messagesAcknowledged.inc(fetched);
  const json = { total: page.total, fetched, remaining, messages: page.messages.map(messageJson) };
  if (!fetched) return { text: formatInboxEmpty(input.fromId), json };
  return {
    text: formatInboxRead({
      fromId: input.fromId,
      total: page.total,
      limit: input.limit,
      remaining,
      messages: page.messages,
    }),
    json,
  };
}

/**
 * The lossless inbox read: what the client confirms (≤ after) is deleted, the next page is returned
 * and stays stored until a later read or ack confirms it. A lost response loses nothing.
 */
async function readInboxAfter(ctx: AuthedCtx, after: number, limit: number): Promise<Output> {
  const { store } = ctx.services;
  await acknowledge(ctx, after, 'after');
  const page = await store.peekInbox(ctx.user.id, limit);
  const fetched = page.messages.length;
  ctx.services.metrics.messagesDelivered.inc({ channel: 'inbox' }, fetched);
  const json = {
    total: page.total,
    fetched,
    remaining: page.total - fetched,
    messages: page.messages.map(messageJson),
  };
  if (!fetched) return { text: formatInboxEmpty(null), json };
  return { text: formatInboxPage({ total: page.total, limit, messages: page.messages }), json };
}

export function parseAck(req: { body: unknown }, issues: Issues): { upTo: number } {
  const body = jsonBody(issues, req.body);
  if (!body) return { upTo: 0 };
  return { upTo: fromSchema(issues, 'body', AckBody, body).up_to ?? 0 };
}

/** POST /messages/ack {"up_to": n}: delete every message with id ≤ n. */
export async function ack(ctx: AuthedCtx, input: { upTo: number }): Promise<Output> {
  const { acked } = await acknowledge(ctx, input.upTo, 'ack');
  return { text: `已确认 ${acked} 条消息（消息ID ≤ ${input.upTo}）`, json: { acked, up_to: input.upTo } };
}
