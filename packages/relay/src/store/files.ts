// Attachments (FileStore), written once over sql.ts. The record and its chunks live in the database (any
// instance serves any file); an upload is re-cut into CHUNK_BYTES chunks as it arrives and marked complete
// only after its last chunk. What differs is a policy of the backend (FilePolicy): how the quota check
// and the insert are made one step, and whether a swept file's bytes are kept for a grace period.

import { RelayError } from '@openwechat/protocol';
import { FILE_COLUMNS, fileParams, rechunk } from './rows.ts';
import type { Sql, SqlDb } from './sql.ts';
import { step, type Step } from './steps.ts';
import type { FileRecord, FileStore, NewFile } from './types.ts';

export interface FilePolicy {
  /**
   * Makes one sender's quota check and insert one step inside the admitting transaction (SQLite: its
   * IMMEDIATE transaction already does; PostgreSQL: an advisory lock per sender, see postgres.ts).
   */
  lockQuota(q: Sql, senderId: number): Step<unknown>;
  /**
   * How long the bytes of a swept file stay readable, so a download already under way completes
   * (PostgreSQL: on any instance); null: removed at once (SQLite).
   */
  graceMs: number | null;
}

/** An upload still incomplete after an hour was interrupted (its process died). */
const STALE_UPLOAD_MS = 3_600_000;

const INSERT_FILE = `INSERT INTO files (id, sender_id, recipient_id, name, content_type, size, sha256, created_at,
                                        expires_at, group_id)
  SELECT $1::text, $2::bigint, $3::bigint, $4::text, $5::text, $6::bigint, $7::text, $8::bigint, $9::bigint,
         $10::bigint`;

/** Files `f` whose recipient downloaded them and whose message is gone (acknowledged). */
const DONE_WITH =
  'f.downloaded_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.file_id = f.id)';

export class Files implements FileStore {
  /** The condition "not swept" (always true where swept files are deleted at once). */
  private readonly live: string;

  constructor(
    private readonly sql: SqlDb,
    private readonly policy: FilePolicy,
  ) {
    this.live = policy.graceMs === null ? '' : ' AND deleted_at IS NULL';
  }

  async putFile(
    file: NewFile,
    chunks: AsyncIterable<Buffer>,
    opts: { quotaBytes?: number } = {},
  ): Promise<void> {
    // The record goes first (incomplete, never served) so the chunks' foreign key holds; each chunk is
    // written as it arrives; a failure part-way removes both.
    const values = fileParams(file, this.sql.encode);
    const quota = opts.quotaBytes;
    if (quota === undefined) {
      await this.sql.run(INSERT_FILE, values);
    } else {
      const { policy, live } = this;
      // The INSERT's own snapshot, taken once the quota is held, sees every record committed before: a
      // plain check-then-insert let 17 of 20 concurrent 1 MB uploads through a 4 MB quota on two
      // PostgreSQL instances. Sizes are whole bytes, so ≤ quota is ≤ its floor (UPLOAD_QUOTA_MB may be
      // fractional).
      const admitted = await this.sql.tx(function* (q) {
        yield* step(policy.lockQuota(q, file.senderId));
        const n = yield* step(
          q.run(
            `${INSERT_FILE} WHERE (SELECT coalesce(sum(size), 0) FROM files WHERE sender_id = $2::bigint${live})
               + $6::bigint <= $11::bigint`,
            [...values, Math.floor(quota)],
          ),
        );
        return n === 1;
      });
      if (!admitted) throw new RelayError('upload_quota_exceeded');
    }
    try {
      let seq = 0;
      for await (const data of rechunk(chunks)) {
        await this.sql.run('INSERT INTO file_chunks (file_id, seq, data) VALUES ($1, $2, $3)', [
          file.id,
          seq++,
          data,
        ]);
      }
      await this.sql.run('UPDATE files SET complete = true WHERE id = $1', [file.id]);
    } catch (err) {
      await this.deleteFile(file.id).catch(() => undefined);
      throw err;
    }
  }

  async getFile(id: string): Promise<FileRecord | null> {
    const row = await this.sql.get<FileRecord>(
      `SELECT ${FILE_COLUMNS} FROM files WHERE id = $1 AND complete${this.live}`,
      [id],
    );
    return row ? { ...row, name: this.sql.decode(row.name) } : null;
  }

  async *readFile(id: string): AsyncIterable<Buffer> {
    // One chunk per query: no connection is held (no SQLite iterator locks the connection) while the
    // socket drains. The chunk count is read first, so the iteration ends with the last chunk instead of
    // one round trip later: the download response then finishes with its last byte (a relay closing
    // right after it does not wait for a connection that was still busy when the close began).
    const count = (await this.sql.get<{ n: number }>(
      `SELECT count(*) AS n FROM file_chunks
       WHERE file_id = $1 AND EXISTS (SELECT 1 FROM files WHERE id = $1 AND complete)`,
      [id],
    ))!.n;
    for (let seq = 0; seq < count; seq++) {
      const row = await this.sql.get<{ data: Buffer }>(
        'SELECT data FROM file_chunks WHERE file_id = $1 AND seq = $2',
        [id, seq],
      );
      // Deleted meanwhile (deleteFile, or swept): fail the read, so the response is aborted rather
      // than left short of the Content-Length it announced.
      if (!row) throw new Error(`file ${id} was deleted while being read`);
      yield row.data;
    }
  }

  async markFileDownloaded(id: string, at: number): Promise<void> {
    await this.sql.run('UPDATE files SET downloaded_at = coalesce(downloaded_at, $1) WHERE id = $2', [
      at,
      id,
    ]);
  }

  async deleteFile(id: string): Promise<void> {
    // The chunks go with it (ON DELETE CASCADE).
    await this.sql.run('DELETE FROM files WHERE id = $1', [id]);
  }

  async storedFileBytes(senderId: number): Promise<number> {
    const row = await this.sql.get<{ n: number }>(
      `SELECT coalesce(sum(size), 0)::bigint AS n FROM files WHERE sender_id = $1${this.live}`,
      [senderId],
    );
    return row!.n;
  }

  async collectFile(id: string, now: number): Promise<boolean> {
    return (await this.#sweep(`f.id = $1 AND ${DONE_WITH}`, [id, now], '$2')) > 0;
  }

  async sweepFiles(now: number): Promise<number> {
    // Expired files, interrupted uploads, and files the recipient downloaded whose message is gone.
    const n = await this.#sweep(
      `f.expires_at < $1 OR (NOT f.complete AND f.created_at < $2) OR (${DONE_WITH})`,
      [now, now - STALE_UPLOAD_MS],
      '$1',
    );
    if (this.policy.graceMs !== null) {
      await this.sql.run('DELETE FROM files WHERE deleted_at <= $1', [now - this.policy.graceMs]);
    }
    return n;
  }

  /**
   * The files `f` matching `where` stop being served and counted at once; returns how many. With a
   * grace period they are marked (at the time in parameter `nowParam`) and their bytes removed by a
   * later sweep, else removed now.
   */
  #sweep(where: string, params: unknown[], nowParam: string): Step<number> {
    return this.sql.run(
      this.policy.graceMs === null
        ? `DELETE FROM files AS f WHERE ${where}`
        : `UPDATE files f SET deleted_at = ${nowParam} WHERE f.deleted_at IS NULL AND (${where})`,
      params,
    );
  }
}
