// PostgreSQL: attachments (FileStore). The bytes live in the database (bytea chunks), so any instance
// serves any file. A swept attachment stops being served at once but keeps its bytes for an hour, so a
// download already under way on any instance completes; a later sweep removes them.

import { RelayError } from '@openwechat/protocol';
import type { PgDb } from './postgres-connection.ts';
import { decodeText, encodeText } from './postgres-text.ts';
import { FILE_COLUMNS, fileParams, rechunk, toFile, type FileRow } from './rows.ts';
import type { FileRecord, FileStore, NewFile } from './types.ts';

/** How long the bytes of a swept file stay readable for downloads that had already started. */
const FILE_PURGE_GRACE_MS = 3_600_000;

/** Namespace of the per-sender advisory lock that makes the quota check and the insert one step. */
const QUOTA_LOCK = 0x6f7771;

export class PgFiles implements FileStore {
  constructor(private readonly db: PgDb) {}

  /**
   * Inserts the record if the sender's stored bytes plus this file stay within `quota`. Two uploads of
   * one sender (on any instance) take turns on an advisory lock, and the INSERT's own snapshot, taken
   * after the lock is granted, sees every record committed before: a plain check-then-insert let 17 of
   * 20 concurrent 1 MB uploads through a 4 MB quota on two instances.
   */
  private async admit(values: unknown[], quota: number): Promise<boolean> {
    return this.db.tx(async (c) => {
      // Ids past 2^31 share a lock with another sender: only an extra wait, never a wrong answer.
      await c.query('SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::int)', [
        QUOTA_LOCK,
        values[1],
      ]);
      const r = await c.query(
        `INSERT INTO files (id, sender_id, recipient_id, name, content_type, size, sha256, created_at, expires_at,
                            group_id)
         SELECT $1::text, $2::bigint, $3::bigint, $4::text, $5::text, $6::bigint, $7::text, $8::bigint, $9::bigint,
                $10::bigint
         WHERE (SELECT coalesce(sum(size), 0) FROM files WHERE sender_id = $2::bigint AND deleted_at IS NULL)
               + $6::bigint <= $11::bigint`,
        // Sizes are whole bytes, so ≤ quota is ≤ its floor (UPLOAD_QUOTA_MB may be fractional).
        [...values, Math.floor(quota)],
      );
      return r.rowCount === 1;
    });
  }

  async putFile(
    file: NewFile,
    chunks: AsyncIterable<Buffer>,
    opts: { quotaBytes?: number } = {},
  ): Promise<void> {
    // The record goes first (incomplete, never served) so the chunks' foreign key holds; each chunk is
    // written as it arrives; a failure part-way removes both.
    const values = fileParams(file, encodeText);
    if (opts.quotaBytes === undefined) {
      await this.db.pool.query(
        `INSERT INTO files (id, sender_id, recipient_id, name, content_type, size, sha256, created_at, expires_at,
                            group_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        values,
      );
    } else if (!(await this.admit(values, opts.quotaBytes))) {
      throw new RelayError('upload_quota_exceeded');
    }
    try {
      let seq = 0;
      for await (const data of rechunk(chunks)) {
        await this.db.pool.query('INSERT INTO file_chunks (file_id, seq, data) VALUES ($1, $2, $3)', [
          file.id,
          seq++,
          data,
        ]);
      }
      await this.db.pool.query('UPDATE files SET complete = true WHERE id = $1', [file.id]);
    } catch (err) {
      await this.deleteFile(file.id).catch(() => undefined);
      throw err;
    }
  }

  async getFile(id: string): Promise<FileRecord | null> {
    const row = (
      await this.db.pool.query<FileRow>(
        `SELECT ${FILE_COLUMNS} FROM files WHERE id = $1 AND complete AND deleted_at IS NULL`,
        [id],
      )
    ).rows[0];
    return row ? toFile(row, decodeText) : null;
  }

  async *readFile(id: string): AsyncIterable<Buffer> {
    // One chunk per query: no connection is held while the socket drains. The chunk count is read
    // first, so the iteration ends with the last chunk instead of one round trip later: the download
    // response then finishes with its last byte (a relay closing right after it does not wait for a
    // connection that was still busy when the close began).
    const count = (
      await this.db.pool.query<{ n: number }>('SELECT count(*) AS n FROM file_chunks WHERE file_id = $1', [
        id,
      ])
    ).rows[0]!.n;
    for (let seq = 0; seq < count; seq++) {
      const row = (
        await this.db.pool.query<{ data: Buffer }>(
          'SELECT data FROM file_chunks WHERE file_id = $1 AND seq = $2',
          [id, seq],
        )
      ).rows[0];
      // Deleted meanwhile (deleteFile, or purged): fail the read, so the response is aborted rather
      // than left short of the Content-Length it announced.
      if (!row) throw new Error(`file ${id} was deleted while being read`);
      yield row.data;
    }
  }

  async markFileDownloaded(id: string, at: number): Promise<void> {
    await this.db.pool.query('UPDATE files SET downloaded_at = coalesce(downloaded_at, $1) WHERE id = $2', [
      at,
      id,
    ]);
  }

  async deleteFile(id: string): Promise<void> {
    // The chunks go with it (ON DELETE CASCADE).
    await this.db.pool.query('DELETE FROM files WHERE id = $1', [id]);
  }

  async storedFileBytes(senderId: number): Promise<number> {
    const row = (
      await this.db.pool.query<{ n: number }>(
        'SELECT coalesce(sum(size), 0)::bigint AS n FROM files WHERE sender_id = $1 AND deleted_at IS NULL',
        [senderId],
      )
    ).rows[0]!;
    return row.n;
  }

  async collectFile(id: string, now: number): Promise<boolean> {
    // As in sweepFiles: it stops being served at once, its bytes go after the grace period.
    const r = await this.db.pool.query(
      `UPDATE files f SET deleted_at = $2 WHERE f.id = $1 AND f.deleted_at IS NULL
         AND f.downloaded_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.file_id = f.id)`,
      [id, now],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async sweepFiles(now: number): Promise<number> {
    // Expired files, uploads still incomplete after an hour (their process died), and files the
    // recipient downloaded whose message is gone (acknowledged) stop being served and counted at once.
    // Their bytes stay for FILE_PURGE_GRACE_MS more, so a download already under way on any instance
    // completes instead of being cut short; a later sweep removes them.
    const r = await this.db.pool.query(
      `UPDATE files f SET deleted_at = $1 WHERE f.deleted_at IS NULL AND (
         f.expires_at < $1
         OR (NOT f.complete AND f.created_at < $2)
         OR (f.downloaded_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.file_id = f.id)))`,
      [now, now - 3_600_000],
    );
    await this.db.pool.query('DELETE FROM files WHERE deleted_at <= $1', [now - FILE_PURGE_GRACE_MS]);
    return r.rowCount ?? 0;
  }
}
