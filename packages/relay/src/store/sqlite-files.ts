// SQLite: attachments (FileStore). The record and its chunks live in the database file; an upload is
// re-cut into CHUNK_BYTES chunks as it arrives and marked complete only after its last chunk.

import type Database from 'better-sqlite3';
import { RelayError } from '@openwechat/protocol';
import { FILE_COLUMNS, fileParams, rechunk, toFile, type FileRow } from './rows.ts';
import { immediate } from './sqlite-messages.ts';
import type { FileRecord, FileStore, NewFile } from './types.ts';

type DB = Database.Database;

function prepare(db: DB) {
  return {
    insertFile: db.prepare<Array<string | number | null>>(
      `INSERT INTO files (id, sender_id, recipient_id, name, content_type, size, sha256, created_at, expires_at,
                          group_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    insertChunk: db.prepare<[string, number, Buffer]>(
      'INSERT INTO file_chunks (file_id, seq, data) VALUES (?, ?, ?)',
    ),
    completeFile: db.prepare<[string]>('UPDATE files SET complete = 1 WHERE id = ?'),
    getFile: db.prepare<[string], FileRow>(`SELECT ${FILE_COLUMNS} FROM files WHERE id = ? AND complete = 1`),
    getChunk: db.prepare<[string, number], { data: Buffer }>(
      'SELECT data FROM file_chunks WHERE file_id = ? AND seq = ?',
    ),
    markDownloaded: db.prepare<[number, string]>(
      'UPDATE files SET downloaded_at = coalesce(downloaded_at, ?) WHERE id = ?',
    ),
    deleteFile: db.prepare<[string]>('DELETE FROM files WHERE id = ?'),
    deleteChunks: db.prepare<[string]>('DELETE FROM file_chunks WHERE file_id = ?'),
    fileBytes: db.prepare<[number], { n: number }>(
      'SELECT coalesce(sum(size), 0) AS n FROM files WHERE sender_id = ?',
    ),
    collectableFile: db.prepare<[string], { id: string }>(
      `SELECT id FROM files f WHERE f.id = ? AND f.downloaded_at IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.file_id = f.id)`,
    ),
    sweepableFiles: db.prepare<[number, number], { id: string }>(
      `SELECT id FROM files f WHERE f.expires_at < ?
       OR (f.complete = 0 AND f.created_at < ?)
       OR (f.downloaded_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.file_id = f.id))`,
    ),
  };
}

export class SqliteFiles implements FileStore {
  private readonly s: ReturnType<typeof prepare>;
  private readonly deleteTx: (id: string) => void;
  private readonly admitTx: (file: NewFile, quota: number | undefined) => boolean;

  constructor(db: DB) {
    const s = (this.s = prepare(db));
    this.admitTx = immediate(db, (file: NewFile, quota: number | undefined) => {
      if (quota !== undefined && s.fileBytes.get(file.senderId)!.n + file.size > quota) return false;
      s.insertFile.run(...fileParams(file));
      return true;
    });
    this.deleteTx = db.transaction((id: string) => {
      s.deleteChunks.run(id);
      s.deleteFile.run(id);
    });
  }

  async putFile(
    file: NewFile,
    chunks: AsyncIterable<Buffer>,
    opts: { quotaBytes?: number } = {},
  ): Promise<void> {
    const s = this.s;
    // The record goes first so the chunks' foreign key holds; a failure part-way removes both. The
    // quota check and the insert are one IMMEDIATE transaction (one writer at a time, any process).
    if (!this.admitTx(file, opts.quotaBytes)) throw new RelayError('upload_quota_exceeded');
    try {
      let seq = 0;
      for await (const chunk of rechunk(chunks)) s.insertChunk.run(file.id, seq++, chunk);
      s.completeFile.run(file.id);
    } catch (err) {
      this.deleteTx(file.id);
      throw err;
    }
  }

  async getFile(id: string): Promise<FileRecord | null> {
    const row = this.s.getFile.get(id);
    return row ? toFile(row) : null;
  }

  async *readFile(id: string): AsyncIterable<Buffer> {
    // One chunk per query: an open better-sqlite3 iterator would lock the connection while the
    // socket drains.
    // A file swept mid-read ends with an error, not a short body the client would wait on forever.
    const size = this.s.getFile.get(id)?.size;
    if (size === undefined) return; // unknown or incomplete: nothing to read
    let sent = 0;
    for (let seq = 0; sent < size; seq++) {
      const row = this.s.getChunk.get(id, seq);
      if (!row) throw new Error(`file ${id} was removed while being read`);
      sent += row.data.length;
      yield row.data;
    }
  }

  async markFileDownloaded(id: string, at: number): Promise<void> {
    this.s.markDownloaded.run(at, id);
  }

  async deleteFile(id: string): Promise<void> {
    this.deleteTx(id);
  }

  async storedFileBytes(senderId: number): Promise<number> {
    return this.s.fileBytes.get(senderId)!.n;
  }

  async collectFile(id: string): Promise<boolean> {
    if (!this.s.collectableFile.get(id)) return false;
    this.deleteTx(id);
    return true;
  }

  async sweepFiles(now: number): Promise<number> {
    // An upload still incomplete after an hour was interrupted (its process died).
    const ids = this.s.sweepableFiles.all(now, now - 3_600_000).map((r) => r.id);
    for (const id of ids) this.deleteTx(id);
    return ids.length;
  }
}
