// Attachments for OpenClaw: a relay file's bytes stay on the relay behind the bot's X-Token, which OpenClaw
// never sees. The AddMsg text instead carries a link to the bridge's own HTTP server, `GET /media/<token>`,
// where the token is an expiring capability:
//
//   <file id>.<expiry, Unix seconds>.<base64url HMAC-SHA256(key, "owc-media-v1\n<account>\n<file id>\n<expiry>")>
//
// The key is BRIDGE_MEDIA_SECRET, else 32 random bytes generated once into BRIDGE_DATA_DIR/media-secret
// (mode 0600). <account> binds the link to the bot account (a hash of RELAY_TOKEN). Tokens are verified in
// constant time; an invalid and an expired token get the same 404. A valid one is served from the bridge's
// own copy of the file (media-store.ts, taken when the message arrived), streamed from disk; without a copy
// (a link from an older version, a failed or skipped copy) the bridge streams the file from the relay
// (`GET /files/<id>` with the bot's token) without holding it in memory.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ClientError, type RelayClient } from '@openwechat/client';
import {
  contentDisposition,
  displayFilename,
  filenameOfDisposition,
  type AttachmentJson,
} from '@openwechat/protocol';
import { BridgeError } from './errors.ts';
import type { Reply } from './http.ts';
import { errInfo } from './log.ts';
import { logFileId, safeContentType, type MediaStore } from './media-store.ts';

// Shared with the media store (which depends on nothing here: no import cycle); re-exported for callers.
export { logFileId, safeContentType };

/** The route prefix of media links. */
export const MEDIA_PATH = '/media/';
/** File name of the generated key inside BRIDGE_DATA_DIR. */
export const MEDIA_SECRET_FILE = 'media-secret';

const TOKEN_VERSION = 'owc-media-v1';
const FILE_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;
const TOKEN_RE = /^([A-Za-z0-9_-]{1,128})\.([1-9]\d{0,11})\.([A-Za-z0-9_-]{43})$/;
/** Time allowed for the relay to answer with headers (the body then streams as long as it takes). */
const RELAY_HEADERS_TIMEOUT_MS = 15_000;

export interface MediaClaims {
  fileId: string;
  /** Unix seconds; the link is valid while now < expiresAt. */
  expiresAt: number;
}

/** Signs and verifies media tokens for one bot account. */
export class MediaSigner {
  constructor(
    private readonly key: Buffer,
    /** The bot account the links belong to (relayAccountId(RELAY_TOKEN)). */
    private readonly account: string,
  ) {
    if (key.length < 16) throw new RangeError('media key too short');
  }

  private mac(fileId: string, expiresAt: number): string {
    return createHmac('sha256', this.key)
      .update(`${TOKEN_VERSION}\n${this.account}\n${fileId}\n${expiresAt}`, 'utf8')
      .digest('base64url');
  }

  sign(fileId: string, expiresAt: number): string {
    if (!FILE_ID_RE.test(fileId)) throw new RangeError(`not a file id: ${JSON.stringify(fileId)}`);
    if (!Number.isSafeInteger(expiresAt) || expiresAt < 1 || expiresAt > 999_999_999_999)
      throw new RangeError('expiresAt must be positive Unix seconds');
    return `${fileId}.${expiresAt}.${this.mac(fileId, expiresAt)}`;
  }

  /** The claims of a genuine, unexpired token; null otherwise (the caller answers both the same way). */
  verify(token: string, nowMs: number): MediaClaims | null {
    const m = TOKEN_RE.exec(token);
    if (!m) return null;
    const fileId = m[1]!;
    const expiresAt = Number(m[2]);
    const expected = Buffer.from(this.mac(fileId, expiresAt), 'latin1');
    const given = Buffer.from(m[3]!, 'latin1');
    // Both are 43 base64url characters here; the comparison itself takes the same time whatever differs.
    const genuine = expected.length === given.length && timingSafeEqual(expected, given);
    if (!genuine || nowMs >= expiresAt * 1000) return null;
    return { fileId, expiresAt };
  }
}

export interface MediaKey {
  key: Buffer;
  /** env: BRIDGE_MEDIA_SECRET; file: read from BRIDGE_DATA_DIR; generated: written there now. */
  source: 'env' | 'file' | 'generated';
  /** The generated file's path (source file/generated). */
  path?: string;
  /** The file is readable by group or others (a warning for the operator). */
  looseMode?: boolean;
}

/**
 * The media key: BRIDGE_MEDIA_SECRET (UTF-8 bytes) when set, else `<dataDir>/media-secret` (64 hex
 * characters), created on first start with mode 0600 — exclusively, so two processes cannot race to
 * different keys. The folder must exist (the outbox creates it, mode 0700).
 */
export function loadMediaKey(dataDir: string, envSecret: string): MediaKey {
  if (envSecret) return { key: Buffer.from(envSecret, 'utf8'), source: 'env' };
  const path = join(dataDir, MEDIA_SECRET_FILE);
  let fd: number | null = null;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (fd !== null) {
    const hex = randomBytes(32).toString('hex');
    try {
      writeSync(fd, `${hex}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(path, 0o600);
    return { key: Buffer.from(hex, 'hex'), source: 'generated', path };
  }
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(text))
    throw new Error(
      `${path} is not 64 hex characters; delete it to generate a new media key (old media links stop working)`,
    );
  const looseMode = (statSync(path).mode & 0o077) !== 0;
  return { key: Buffer.from(text, 'hex'), source: 'file', path, looseMode };
}

/**
 * When a link to this attachment expires (Unix seconds): `maxAgeMs` after the message was created, and no
 * later than the relay file's expiry unless the bridge keeps its own copy (`localCopy`: the relay's copy no
 * longer matters). Derived from the message (and whether a copy was kept), so a replayed message gives the
 * same bytes. null: nothing to link (no stored bytes, or an unusable file id).
 */
export function mediaLinkExpiry(
  a: AttachmentJson,
  createdAtMs: number,
  maxAgeMs: number,
  localCopy = false,
): number | null {
  if (typeof a.file_id !== 'string' || !FILE_ID_RE.test(a.file_id)) return null;
  const cap = createdAtMs + maxAgeMs;
  const relayExpiry = typeof a.expires_at === 'string' && !localCopy ? Date.parse(a.expires_at) : NaN;
  const until = Number.isFinite(relayExpiry) ? Math.min(relayExpiry, cap) : cap;
  const seconds = Math.floor(until / 1000);
  return seconds > 0 ? seconds : null;
}

/** 0 B, 999 B, 1.5 KB, 12 KB, 3.4 MB … (1 KB = 1024 B; one decimal below 10). */
export function humanSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '? B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  const shown = v < 10 ? Math.round(v * 10) / 10 : Math.round(v);
  // 1023.96 KB rounds to 1024: show the next unit instead.
  if (shown >= 1024 && u < units.length - 1) return `1 ${units[u + 1]}`;
  return `${shown} ${units[u]}`;
}

/** A value safe inside one text line (no control, line or bidi characters). */
function oneLine(s: string): string {
  return s.replace(/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]+/gu, ' ').trim();
}

/** Ends the attachment line instead of a URL when the relay no longer had the file (404/410). */
export const MEDIA_GONE_NOTE = '（文件已过期或已删除）';

/**
 * The attachment's line in the AddMsg text, one line: `[附件] <name>`, then ` (<size>, <type>)` for what is
 * known, then the media URL when there is one, else `note` (e.g. MEDIA_GONE_NOTE) when given. The old
 * form, `[附件] <name>`, is always its prefix.
 */
export function attachmentLine(a: AttachmentJson, url: string | null, note: string | null = null): string {
  const name = displayFilename(typeof a.name === 'string' ? a.name : 'file');
  const facts: string[] = [];
  if (typeof a.size === 'number' && Number.isFinite(a.size) && a.size >= 0) facts.push(humanSize(a.size));
  if (typeof a.content_type === 'string' && oneLine(a.content_type)) facts.push(oneLine(a.content_type));
  let line = `[附件] ${name}`;
  if (facts.length) line += ` (${facts.join(', ')})`;
  if (url) line += ` ${url}`;
  else if (note) line += ` ${oneLine(note)}`;
  return line;
}

/** The headers of a media answer (the same from a local copy or from the relay). */
function mediaHeaders(contentType: string, name: string, length: number | null): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': contentType,
    'content-disposition': contentDisposition(name),
    'x-content-type-options': 'nosniff',
    'content-security-policy': "sandbox; default-src 'none'",
    'cache-control': 'private, no-store',
    'referrer-policy': 'no-referrer',
  };
  if (length !== null) headers['content-length'] = String(length);
  return headers;
}

/**
 * Serves one media request: verifies the token, then streams the bridge's copy from disk, or — without a
 * copy — the file from the relay. Errors are BridgeErrors (404 media_not_found for any bad token, 404
 * file_gone when neither holds the file any more, 502 upstream_error when the relay cannot be reached or
 * fails).
 */
export async function serveMedia(
  token: string,
  signer: MediaSigner,
  relay: RelayClient,
  nowMs: number,
  store: MediaStore | null = null,
): Promise<Reply> {
  const claims = signer.verify(token, nowMs);
  if (!claims) throw new BridgeError('media_not_found');
  const logFields = { fileId: logFileId(claims.fileId), linkExpiresAt: claims.expiresAt };
  const copy = store ? await store.openCopy(claims.fileId) : null;
  if (copy) {
    return {
      status: 200,
      headers: mediaHeaders(copy.meta.contentType, copy.meta.name, copy.size),
      body: null,
      stream: copy.stream,
      log: { ...logFields, source: 'local' },
    };
  }
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error('the relay did not answer in time')),
    RELAY_HEADERS_TIMEOUT_MS,
  );
  let res: Response;
  try {
    res = await relay.openFile(claims.fileId, { signal: controller.signal });
  } catch (err) {
    const e = new BridgeError('upstream_error', 'the relay is unreachable');
    const cause = err instanceof ClientError && err.cause ? err.cause : err;
    Object.assign(e.logFields, logFields, { relayError: errInfo(cause).error });
    throw e;
  } finally {
    clearTimeout(timer);
  }
  if (res.status !== 200 || !res.body) {
    const code = await relayErrorCode(res);
    const e =
      res.status === 404 || res.status === 410
        ? new BridgeError('file_gone', undefined, { extra: { relay_code: code ?? 'file_not_found' } })
        : new BridgeError('upstream_error', `the relay answered HTTP ${res.status}`, {
            extra: code ? { relay_code: code } : {},
          });
    Object.assign(e.logFields, logFields, { relayStatus: res.status });
    throw e;
  }
  const length = res.headers.get('content-length');
  const headers = mediaHeaders(
    safeContentType(res.headers.get('content-type')),
    filenameOfDisposition(res.headers.get('content-disposition')) ?? 'file',
    length !== null && /^\d{1,15}$/.test(length) ? Number(length) : null,
  );
  const body = Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
  return { status: 200, headers, body: null, stream: body, log: { ...logFields, source: 'relay' } };
}

async function relayErrorCode(res: Response): Promise<string | null> {
  try {
    const text = await res.text();
    const code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' && /^[a-z_]{1,64}$/.test(code) ? code : null;
  } catch {
    return null;
  }
}
