// Streaming multipart reading: text fields are collected, the one file part is streamed to a temporary
// file (or into memory up to a small cap) while its size is counted, so an oversized upload is refused
// without ever being held in memory (reference W-17).

import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { RelayError } from '@openwechat/protocol';

export interface UploadedFile {
  fieldname: string;
  filename: string;
  mimetype: string;
  size: number;
  /** Hex SHA-256 of the bytes (when not tooLarge). */
  sha256: string;
  /** The file exceeded maxFileBytes: nothing of it was kept. */
  tooLarge: boolean;
  /** Where the bytes are, when streamed to disk (caller moves or deletes it). */
  path: string | null;
  /** The bytes, when read into memory. */
  buffer: Buffer | null;
}

export interface MultipartResult {
  fields: Record<string, string>;
  file: UploadedFile | null;
}

/**
 * Counts and hashes the bytes. Past `max` it stops passing them on (they are read and dropped, so
 * the stream ends normally and nothing accumulates) and marks the file too large.
 */
function limiter(max: number, f: UploadedFile): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      f.size += chunk.length;
      if (f.size > max) f.tooLarge = true;
      if (f.tooLarge) return cb();
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      f.sha256 = hash.digest('hex');
      cb();
    },
  });
}

/** Reads and drops a part nobody asked for. */
async function drain(stream: Readable): Promise<void> {
  stream.resume();
  await finished(stream).catch(() => {});
}

/** busboy's errors on a malformed body become the reference's validation error. */
function malformed(err: unknown): never {
  if (err instanceof RelayError) throw err;
  throw new RelayError('validation_failed', `body: ${(err as Error).message || 'malformed multipart body'}`);
}

/** Text fields a multipart request may carry (ours need at most two). */
export const MAX_FIELDS = 20;

export async function readMultipart(
  req: FastifyRequest,
  opts: {
    fileField: string;
    maxFileBytes: number;
    toDir?: string;
    /**
     * Runs when the file part begins, before a byte of it is read or written (issue 24.1): the caller
     * checks who is sending and throws to refuse the upload there, with the fields seen so far.
     */
    beforeFile?: (fields: Readonly<Record<string, string>>) => Promise<void>;
  },
): Promise<MultipartResult> {
  const fields: Record<string, string> = {};
  let file: UploadedFile | null = null;
  let fieldCount = 0;
  // busboy cuts a file one byte past our limit (so it never streams gigabytes) and our counter decides.
  // The field limit is ours, not busboy's: when busboy hits its own limit it stops reading the body but
  // still hands over a file part queued behind the fields, whose stream then never ends (issue 17.1).
  // busboy's limit sits one above ours only as a backstop; we refuse the 21st field before reaching it.
  const limits = { files: 1, fields: MAX_FIELDS + 1, fieldSize: 64 * 1024, fileSize: opts.maxFileBytes + 1 };
  const parts = req.parts({ limits, throwFileSizeLimit: false } as Parameters<typeof req.parts>[0]);
  // A client that goes away mid-file must not leave the pipeline (and its descriptor) waiting.
  const gone = new AbortController();
  const onClose = () => {
    if (!req.raw.complete) gone.abort(new RelayError('validation_failed', 'body: connection closed'));
  };
  req.raw.once('close', onClose);
  try {
    for await (const part of parts) {
      if (part.type === 'field') {
        if (++fieldCount > MAX_FIELDS)
          throw new RelayError('validation_failed', `body: too many fields (at most ${MAX_FIELDS})`);
        if (typeof part.value === 'string' && !(part.fieldname in fields))
          fields[part.fieldname] = part.value;
        continue;
      }
      if (part.fieldname !== opts.fileField || file) {
        await drain(part.file);
        continue;
      }
      if (opts.beforeFile) {
        // The check may wait on the store (PostgreSQL): meanwhile the body can end or break, and busboy
        // then errors the paused file stream with nobody listening — a pipeline started afterwards would
        // wait forever. Catch that error during the check and answer it.
        let broken: unknown = null;
        const onBroken = (err: unknown) => (broken ??= err);
        part.file.on('error', onBroken);
        try {
          await opts.beforeFile(fields);
        } finally {
          part.file.off('error', onBroken);
        }
        if (broken || part.file.destroyed) throw broken ?? new Error('malformed multipart body');
      }
      const f: UploadedFile = {
        fieldname: part.fieldname,
        filename: part.filename,
        mimetype: part.mimetype,
        size: 0,
        sha256: '',
        tooLarge: false,
        path: null,
        buffer: null,
      };
      file = f;
      const signal = gone.signal;
      if (opts.toDir) {
        f.path = join(opts.toDir, `upload-${randomBytes(12).toString('hex')}.part`);
        await pipeline(part.file, limiter(opts.maxFileBytes, f), createWriteStream(f.path, { mode: 0o600 }), {
          signal,
        });
      } else {
        const chunks: Buffer[] = [];
        const counter = limiter(opts.maxFileBytes, f);
        counter.on('data', (c: Buffer) => chunks.push(c));
        await pipeline(part.file, counter, { signal });
        f.buffer = f.tooLarge ? null : Buffer.concat(chunks);
      }
      if (f.tooLarge && f.path) {
        await rm(f.path, { force: true });
        f.path = null;
      }
    }
  } catch (err) {
    // Stop feeding the parser: the rest of the body is discarded by Node once the answer is sent
    // (or cut by the request timeout), never buffered.
    req.raw.unpipe();
    if (file?.path) await rm(file.path, { force: true });
    malformed(err);
  } finally {
    req.raw.off('close', onClose);
  }
  return { fields, file };
}
