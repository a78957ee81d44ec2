// The bridge's own copies of relay files, so that a media link works any number of times until it expires.
// The relay deletes a file once the bot has downloaded it completely and the message is acknowledged, and
// the bridge acknowledges as soon as a message is in its outbox; so the bridge downloads each attachment
// *before* it stores the message (keepMediaCopy) and serves `GET /media/<token>` from here.
//
// Layout of BRIDGE_DATA_DIR/media/ (folder 0700, files 0600):
//   <file id>        the bytes
//   <file id>.json   { fileId, name, contentType, size, sha256, expiresAt (Unix s), storedAt (ms) }
//   .tmp-…           a download in progress (removed at start: a crash never leaves a half file under a
//                    final name — both files are written to temporaries, fsynced, then renamed)
// A copy counts only with both files; the sweep removes orphans. Copies are deleted once their link has
// expired (sweep) and, oldest first, when their total exceeds BRIDGE_MEDIA_MAX_MB.

import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { abortableSleep, backoffDelay, ClientError, type RelayClient } from '@openwechat/client';
import { filenameOfDisposition, type AttachmentJson } from '@openwechat/protocol';
import { errInfo, type Logger } from './log.ts';

const TOKEN_CHARS = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const CONTENT_TYPE_RE = new RegExp(
  `^${TOKEN_CHARS}/${TOKEN_CHARS}(?:[ \\t]*;[ \\t]*${TOKEN_CHARS}=(?:${TOKEN_CHARS}|"[^"\\\\\\r\\n]*"))*$`,
);

/** The relay's Content-Type when it is a well-formed media type, else application/octet-stream. */
export function safeContentType(header: string | null): string {
  const v = (header ?? '').trim();
  return v.length <= 200 && CONTENT_TYPE_RE.test(v) ? v : 'application/octet-stream';
}

/** A file id shortened for logs (enough to correlate with relay logs, not a capability anyway). */
export function logFileId(fileId: string): string {
  return fileId.slice(0, 8);
}

/** Sub-folder of BRIDGE_DATA_DIR holding the copies. */
export const MEDIA_DIR = 'media';
const TMP_PREFIX = '.tmp-';

export interface StoredMedia {
  fileId: string;
  /** The file name the relay gave (Content-Disposition), else the attachment's name. */
  name: string;
  /** The relay's Content-Type, already made safe. */
  contentType: string;
  size: number;
  /** Hex SHA-256 of the bytes as stored. */
  sha256: string;
  /** Unix seconds: the link's expiry; the copy is swept from then on. */
  expiresAt: number;
  /** ms since epoch, when the copy was kept (eviction order). */
  storedAt: number;
}

/** A relay file id as a file name: the id's own characters only (ids are already [A-Za-z0-9_-]). */
export function mediaFileName(fileId: string): string {
  const clean = fileId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 128);
  if (!clean) throw new RangeError('empty file id');
  return clean;
}

/** The bytes did not match what the relay announced (size): not kept. */
export class MediaSizeMismatch extends Error {
  override name = 'MediaSizeMismatch';
}

export interface MediaStoreOptions {
  /** Total size cap of all copies, in bytes. */
  maxBytes: number;
  now: () => number;
  log: Logger;
}

export class MediaStore {
  private readonly index = new Map<string, StoredMedia>();

  private constructor(
    readonly dir: string,
    private readonly opts: MediaStoreOptions,
  ) {}

  /**
   * Opens (creating, mode 0700) `<dataDir>/media`, removes temporaries left by a crash and orphan halves,
   * and loads the index of the copies present.
   */
  static open(dataDir: string, opts: MediaStoreOptions): MediaStore {
    const dir = join(dataDir, MEDIA_DIR);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const store = new MediaStore(dir, opts);
    store.load();
    return store;
  }

  private load(): void {
    const names = new Set(readdirSync(this.dir));
    for (const n of names) {
      const path = join(this.dir, n);
      if (n.startsWith(TMP_PREFIX)) {
        removeQuietly(path);
        continue;
      }
      if (n.endsWith('.json')) {
        const id = n.slice(0, -'.json'.length);
        const meta = readMeta(path);
        let size = -1;
        if (meta && meta.fileId === id && names.has(id)) {
          try {
            size = statSync(join(this.dir, id)).size;
          } catch {
            size = -1;
          }
        }
        if (meta && size === meta.size) this.index.set(id, meta);
        else {
          removeQuietly(path);
          if (names.has(id)) removeQuietly(join(this.dir, id));
        }
      }
    }
    // Bytes without their description (a crash between the two renames) cannot be served.
    for (const n of names)
      if (!n.startsWith(TMP_PREFIX) && !n.endsWith('.json') && !this.index.has(n) && !names.has(`${n}.json`))
        removeQuietly(join(this.dir, n));
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /** The copy's description, if it is kept. */
  get(fileId: string): StoredMedia | null {
    return this.index.get(fileId) ?? null;
  }

  /** Total bytes of all copies. */
  totalBytes(): number {
    let n = 0;
    for (const m of this.index.values()) n += m.size;
    return n;
  }

  count(): number {
    return this.index.size;
  }

  /**
   * Writes `body` as the copy of `meta.fileId`: streamed to a temporary (0600), size checked against every
   * number in `expectedSizes`, fsynced, its description likewise, then both renamed into place and the
   * folder fsynced. Throws (and leaves nothing behind) on a mismatch, a read error or `signal`.
   */
  async put(
    meta: { fileId: string; name: string; contentType: string; expiresAt: number },
    body: AsyncIterable<Uint8Array>,
    expectedSizes: readonly number[],
    signal?: AbortSignal,
  ): Promise<StoredMedia> {
    const name = mediaFileName(meta.fileId);
    const tag = randomBytes(6).toString('hex');
    const tmpData = join(this.dir, `${TMP_PREFIX}${name}-${tag}`);
    const tmpMeta = `${tmpData}.json`;
    const hash = createHash('sha256');
    let size = 0;
    try {
      const fh = await open(tmpData, 'wx', 0o600);
      try {
        for await (const chunk of body) {
          signal?.throwIfAborted();
          hash.update(chunk);
          size += chunk.length;
          let off = 0;
          while (off < chunk.length) off += (await fh.write(chunk, off)).bytesWritten;
        }
        signal?.throwIfAborted();
        for (const expected of expectedSizes)
          if (size !== expected)
            throw new MediaSizeMismatch(`received ${size} bytes, the relay announced ${expected}`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      const stored: StoredMedia = {
        fileId: meta.fileId,
        name: meta.name,
        contentType: meta.contentType,
        size,
        sha256: hash.digest('hex'),
        expiresAt: meta.expiresAt,
        storedAt: this.opts.now(),
      };
      const mh = await open(tmpMeta, 'wx', 0o600);
      try {
        await mh.writeFile(`${JSON.stringify(stored)}\n`, 'utf8');
        await mh.sync();
      } finally {
        await mh.close();
      }
      await rename(tmpData, join(this.dir, name));
      await rename(tmpMeta, join(this.dir, `${name}.json`));
      await this.syncDir();
      this.index.set(name, stored);
      this.enforceCap(name);
      return stored;
    } catch (err) {
      await unlink(tmpData).catch(() => {});
      await unlink(tmpMeta).catch(() => {});
      throw err;
    }
  }

  private async syncDir(): Promise<void> {
    try {
      const d = await open(this.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch {
      // Some filesystems refuse fsync on a folder; the renames are then as durable as they get.
    }
  }

  /**
   * Opens a kept copy for reading: its description, size (from the open file) and a stream of its bytes.
   * null when there is no copy (never kept, swept, evicted, or removed behind our back).
   */
  async openCopy(fileId: string): Promise<{ meta: StoredMedia; size: number; stream: Readable } | null> {
    const meta = this.index.get(fileId);
    if (!meta) return null;
    let fh;
    try {
      fh = await open(join(this.dir, mediaFileName(fileId)), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.index.delete(fileId);
        return null;
      }
      throw err;
    }
    try {
      const { size } = await fh.stat();
      return { meta, size, stream: fh.createReadStream({ autoClose: true }) };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Deletes one copy (both files), with an info log line. */
  remove(fileId: string, reason: 'expired' | 'size_cap'): void {
    const meta = this.index.get(fileId);
    if (!meta) return;
    this.index.delete(fileId);
    const name = mediaFileName(fileId);
    removeQuietly(join(this.dir, `${name}.json`));
    removeQuietly(join(this.dir, name));
    this.opts.log.info(
      {
        hop: 'media_store',
        fileId: logFileId(fileId),
        reason,
        bytes: meta.size,
        linkExpiresAt: meta.expiresAt,
      },
      'media copy deleted',
    );
  }

  /** Removes copies whose link has expired, then enforces the size cap. */
  sweep(): { expired: number; evicted: number } {
    const nowMs = this.opts.now();
    let expired = 0;
    for (const m of [...this.index.values()])
      if (nowMs >= m.expiresAt * 1000) {
        this.remove(m.fileId, 'expired');
        expired++;
      }
    return { expired, evicted: this.enforceCap(null) };
  }

  /** Deletes the oldest copies (never `keep`) while the total exceeds the cap; how many went. */
  private enforceCap(keep: string | null): number {
    let total = this.totalBytes();
    if (total <= this.opts.maxBytes) return 0;
    const oldest = [...this.index.values()]
      .filter((m) => m.fileId !== keep)
      .sort((a, b) => a.storedAt - b.storedAt || a.fileId.localeCompare(b.fileId));
    let evicted = 0;
    for (const m of oldest) {
      if (total <= this.opts.maxBytes) break;
      this.remove(m.fileId, 'size_cap');
      total -= m.size;
      evicted++;
    }
    return evicted;
  }
}

function readMeta(path: string): StoredMedia | null {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as Partial<StoredMedia>;
    if (
      typeof m.fileId === 'string' &&
      typeof m.name === 'string' &&
      typeof m.contentType === 'string' &&
      Number.isSafeInteger(m.size) &&
      typeof m.sha256 === 'string' &&
      Number.isSafeInteger(m.expiresAt) &&
      Number.isFinite(m.storedAt)
    )
      return m as StoredMedia;
  } catch {
    // unreadable: treated as absent
  }
  return null;
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

// ── Taking a copy from the relay ────────────────────────────────────────────────────────────────────

/**
 * What became of an attachment when its message was taken:
 * kept: a local copy is in the store (the link is served from disk);
 * gone: the relay answered 404/410 (expired, deleted, or not visible to the bot): no link;
 * failed: transient failures persisted (or a local problem): the link falls back to the relay;
 * skipped: nothing to copy (no stored bytes, or larger than the size cap): as failed.
 */
export type CopyOutcome = 'kept' | 'gone' | 'failed' | 'skipped';

export interface CopyOptions {
  /** Attempts in all (1 = no retry). */
  attempts: number;
  retryBaseMs: number;
  retryMaxDelayMs: number;
  random: () => number;
  /** Aborted when the bridge stops: the download is abandoned and the error propagates. */
  signal: AbortSignal;
  log: Logger;
  /** Time allowed for the relay's headers, and for any pause in its body. */
  stallTimeoutMs?: number;
}

/** Attempts of one copy: with the default backoff (1 s base) the waits add up to a few seconds at most. */
export const MEDIA_COPY_ATTEMPTS = 4;
/** Cap of one wait between attempts (so one file never holds the stream up for long). */
export const MEDIA_COPY_MAX_DELAY_MS = 10_000;
const STALL_TIMEOUT_MS = 15_000;

/**
 * Downloads the attachment's file from the relay into the store, retrying transient failures (network,
 * timeout, 408/425/429/5xx, a size mismatch) with the shared backoff. 404/410 are final ("gone"); any other
 * answer gives up at once ("failed").
 */
export async function keepMediaCopy(
  relay: RelayClient,
  store: MediaStore,
  a: AttachmentJson,
  expiresAt: number,
  opts: CopyOptions,
): Promise<CopyOutcome> {
  const fileId = a.file_id;
  if (typeof fileId !== 'string') return 'skipped';
  if (store.get(fileId)) return 'kept';
  const announced = typeof a.size === 'number' && Number.isSafeInteger(a.size) && a.size >= 0 ? a.size : null;
  const logFields = { hop: 'media_store', fileId: logFileId(fileId) };
  if (announced !== null && announced > store.maxBytes) {
    opts.log.warn(
      { ...logFields, bytes: announced, maxBytes: store.maxBytes },
      'attachment larger than BRIDGE_MEDIA_MAX_MB: not copied; its link streams from the relay',
    );
    return 'skipped';
  }
  const stallMs = opts.stallTimeoutMs ?? STALL_TIMEOUT_MS;
  for (let attempt = 1; ; attempt++) {
    opts.signal.throwIfAborted();
    let reason: string;
    let retryable = true;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(opts.signal.reason);
    opts.signal.addEventListener('abort', onAbort, { once: true });
    let stall: NodeJS.Timeout | null = setTimeout(
      () => controller.abort(new Error('the relay stalled')),
      stallMs,
    );
    try {
      const res = await relay.openFile(fileId, { signal: controller.signal });
      if (res.status === 200 && res.body) {
        const length = res.headers.get('content-length');
        const sizes = [
          announced,
          length !== null && /^\d{1,15}$/.test(length) ? Number(length) : null,
        ].filter((n): n is number => n !== null);
        const body = res.body as unknown as AsyncIterable<Uint8Array>;
        const watched = async function* (): AsyncGenerator<Uint8Array> {
          for await (const chunk of body) {
            stall?.refresh();
            yield chunk;
          }
        };
        const stored = await store.put(
          {
            fileId,
            name:
              filenameOfDisposition(res.headers.get('content-disposition')) ??
              (typeof a.name === 'string' ? a.name : 'file'),
            contentType: safeContentType(res.headers.get('content-type')),
            expiresAt,
          },
          watched(),
          sizes,
          controller.signal,
        );
        opts.log.info(
          { ...logFields, bytes: stored.size, sha256: stored.sha256, attempt, linkExpiresAt: expiresAt },
          'media copy kept',
        );
        return 'kept';
      }
      await res.body?.cancel().catch(() => {});
      if (res.status === 404 || res.status === 410) {
        opts.log.info({ ...logFields, relayStatus: res.status }, 'attachment gone from the relay');
        return 'gone';
      }
      reason = `HTTP ${res.status}`;
      retryable = res.status === 408 || res.status === 425 || res.status === 429 || res.status >= 500;
    } catch (err) {
      if (opts.signal.aborted) throw opts.signal.reason ?? err;
      // A local write failure (disk full, permissions) will not heal by retrying soon.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS' || code === 'EDQUOT') retryable = false;
      // A client network error wraps fetch's, whose cause names the socket error (ECONNRESET, …).
      reason = errInfo(err instanceof ClientError && err.cause ? err.cause : err).error;
    } finally {
      if (stall) clearTimeout(stall);
      stall = null;
      opts.signal.removeEventListener('abort', onAbort);
    }
    if (!retryable || attempt >= opts.attempts) {
      opts.log.warn(
        { ...logFields, attempt, reason },
        'media copy failed; the link will stream from the relay while it has the file',
      );
      return 'failed';
    }
    const delay = backoffDelay(
      attempt,
      { baseMs: opts.retryBaseMs, maxMs: opts.retryMaxDelayMs },
      opts.random,
    );
    opts.log.info({ ...logFields, attempt, reason, retry_in_ms: delay }, 'media copy failed; retrying');
    await abortableSleep(delay, opts.signal);
    // Stopping abandons the copy: the message is neither stored nor acknowledged (the relay replays it).
    opts.signal.throwIfAborted();
  }
}
