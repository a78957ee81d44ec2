// The durable outbox (SQLite, WAL). A record is committed here — together with the relay cursor that
// says "got it" — before the relay message is acknowledged, so nothing is lost between the relay and
// OpenClaw whichever process dies when. The body column holds the exact bytes that are signed and sent.
//
// A row is `pending` until a 2xx (`delivered`) or a permanent failure / exhausted retry horizon (`dead`).
// Per conversation only the oldest pending row (the head) is ever attempted: FIFO per conversation.
// The same table, `source` being unique, deduplicates relay replays and repeated generic inbound posts.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export type OutboxState = 'pending' | 'delivered' | 'dead';

export interface OutboxRow {
  seq: number;
  source: string;
  eventId: string;
  conversation: string;
  sender: string;
  body: Buffer;
  state: OutboxState;
  attempts: number;
  enqueuedAt: number;
  nextAttemptAt: number;
  lastAttemptAt: number | null;
  lastStatus: string | null;
  deadReason: string | null;
  finishedAt: number | null;
}

export interface NewOutboxItem {
  source: string;
  eventId: string;
  conversation: string;
  sender: string;
  body: Buffer;
}

export interface StoredSend {
  key: string;
  fingerprint: string;
  response: string;
  createdAt: number;
}

const SCHEMA_VERSION = 1;

const MIGRATION_1 = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  source          TEXT NOT NULL UNIQUE,
  event_id        TEXT NOT NULL,
  conversation    TEXT NOT NULL,
  sender          TEXT NOT NULL,
  body            BLOB NOT NULL,
  state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  enqueued_at     INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  last_attempt_at INTEGER,
  last_status     TEXT,
  dead_reason     TEXT,
  finished_at     INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_conversation ON outbox (state, conversation, seq);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS send_requests (
  key         TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  response    TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);
`;

interface RawRow {
  seq: number;
  source: string;
  event_id: string;
  conversation: string;
  sender: string;
  body: Buffer;
  state: OutboxState;
  attempts: number;
  enqueued_at: number;
  next_attempt_at: number;
  last_attempt_at: number | null;
  last_status: string | null;
  dead_reason: string | null;
  finished_at: number | null;
}

function toRow(r: RawRow): OutboxRow {
  return {
    seq: r.seq,
    source: r.source,
    eventId: r.event_id,
    conversation: r.conversation,
    sender: r.sender,
    body: r.body,
    state: r.state,
    attempts: r.attempts,
    enqueuedAt: r.enqueued_at,
    nextAttemptAt: r.next_attempt_at,
    lastAttemptAt: r.last_attempt_at,
    lastStatus: r.last_status,
    deadReason: r.dead_reason,
    finishedAt: r.finished_at,
  };
}

/** The pending rows that are the oldest of their conversation. */
const HEAD = `o.state = 'pending' AND o.seq = (
  SELECT MIN(p.seq) FROM outbox p WHERE p.state = 'pending' AND p.conversation = o.conversation)`;

export const OUTBOX_FILE = 'bridge.sqlite';

export class Outbox {
  private readonly db: Database.Database;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  static open(dataDir: string): Outbox {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const db = new Database(join(dataDir, OUTBOX_FILE));
    db.pragma('journal_mode = WAL');
    // FULL: a row the relay was told about (acked) must survive a power cut, not only a process kill.
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION)
      throw new Error(`outbox schema version ${version} is newer than this bridge (${SCHEMA_VERSION})`);
    if (version < 1) {
      db.exec(MIGRATION_1);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
    return new Outbox(db);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  getMeta(key: string): string | null {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
      { value: string } | undefined;
    return r?.value ?? null;
  }

  setMeta(key: string, value: string): void {
    this.db
      .prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  /** The last relay message id stored for a cursor key (0 when none). */
  getCursor(key: string): number {
    const v = this.getMeta(key);
    return v === null ? 0 : Number(v);
  }

  /**
   * Stores an item (unless its source is already known) and moves the relay cursor, in one transaction.
   * `item` null: the message was suppressed; only the cursor moves.
   */
  enqueue(
    item: NewOutboxItem | null,
    now: number,
    cursor?: { key: string; value: number },
  ): { inserted: boolean; seq: number | null } {
    return this.db.transaction(() => {
      let inserted = false;
      let seq: number | null = null;
      if (item) {
        const res = this.db
          .prepare(
            `INSERT INTO outbox (source, event_id, conversation, sender, body, enqueued_at, next_attempt_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO NOTHING`,
          )
          .run(item.source, item.eventId, item.conversation, item.sender, item.body, now, now);
        inserted = res.changes > 0;
        seq = inserted
          ? Number(res.lastInsertRowid)
          : ((this.db.prepare('SELECT seq FROM outbox WHERE source = ?').get(item.source) as { seq: number })
              ?.seq ?? null);
      }
      if (cursor && cursor.value > this.getCursor(cursor.key)) this.setMeta(cursor.key, String(cursor.value));
      return { inserted, seq };
    })();
  }

  /** Heads that are due, oldest first, skipping conversations already in flight. */
  dueHeads(now: number, busy: ReadonlySet<string>, limit: number): OutboxRow[] {
    if (limit <= 0) return [];
    const rows = this.db
      .prepare(
        `SELECT o.* FROM outbox o WHERE ${HEAD} AND o.next_attempt_at <= ? ORDER BY o.next_attempt_at, o.seq LIMIT ?`,
      )
      .all(now, limit + busy.size) as RawRow[];
    return rows
      .filter((r) => !busy.has(r.conversation))
      .slice(0, limit)
      .map(toRow);
  }

  /** When the earliest head not in flight becomes due (null: nothing pending). */
  nextDueAt(busy: ReadonlySet<string>): number | null {
    const rows = this.db
      .prepare(
        `SELECT o.conversation, o.next_attempt_at FROM outbox o WHERE ${HEAD} ORDER BY o.next_attempt_at LIMIT ?`,
      )
      .all(busy.size + 1) as Array<{ conversation: string; next_attempt_at: number }>;
    return rows.find((r) => !busy.has(r.conversation))?.next_attempt_at ?? null;
  }

  markAttempt(seq: number, now: number): number {
    const r = this.db
      .prepare(
        'UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE seq = ? RETURNING attempts',
      )
      .get(now, seq) as { attempts: number } | undefined;
    return r?.attempts ?? 0;
  }

  markDelivered(seq: number, now: number, status: string): void {
    this.db
      .prepare(
        `UPDATE outbox SET state = 'delivered', last_status = ?, finished_at = ? WHERE seq = ? AND state = 'pending'`,
      )
      .run(status, now, seq);
  }

  markRetry(seq: number, nextAttemptAt: number, status: string): void {
    this.db
      .prepare(`UPDATE outbox SET next_attempt_at = ?, last_status = ? WHERE seq = ? AND state = 'pending'`)
      .run(nextAttemptAt, status, seq);
  }

  markDead(seq: number, now: number, status: string, reason: string): void {
    this.db
      .prepare(
        `UPDATE outbox SET state = 'dead', last_status = ?, dead_reason = ?, finished_at = ?
         WHERE seq = ? AND state = 'pending'`,
      )
      .run(status, reason, now, seq);
  }

  get(seq: number): OutboxRow | null {
    const r = this.db.prepare('SELECT * FROM outbox WHERE seq = ?').get(seq) as RawRow | undefined;
    return r ? toRow(r) : null;
  }

  findBySource(source: string): OutboxRow | null {
    const r = this.db.prepare('SELECT * FROM outbox WHERE source = ?').get(source) as RawRow | undefined;
    return r ? toRow(r) : null;
  }

  list(state: OutboxState, limit = 1000): OutboxRow[] {
    return (
      this.db
        .prepare('SELECT * FROM outbox WHERE state = ? ORDER BY seq LIMIT ?')
        .all(state, limit) as RawRow[]
    ).map(toRow);
  }

  /**
   * Dead letters back to pending: due now, attempts and horizon restarted. They keep their original
   * position (seq), so within their conversation they go before anything queued after them.
   */
  replayDead(seqs: readonly number[] | 'all', now: number): number {
    const sql = `UPDATE outbox SET state = 'pending', attempts = 0, enqueued_at = ?, next_attempt_at = ?,
                 dead_reason = NULL, finished_at = NULL WHERE state = 'dead'`;
    if (seqs === 'all') return this.db.prepare(sql).run(now, now).changes;
    const stmt = this.db.prepare(`${sql} AND seq = ?`);
    return this.db.transaction(() => seqs.reduce((n, s) => n + stmt.run(now, now, s).changes, 0))();
  }

  deleteDead(seqs: readonly number[] | 'all'): number {
    if (seqs === 'all') return this.db.prepare(`DELETE FROM outbox WHERE state = 'dead'`).run().changes;
    const stmt = this.db.prepare(`DELETE FROM outbox WHERE state = 'dead' AND seq = ?`);
    return this.db.transaction(() => seqs.reduce((n, s) => n + stmt.run(s).changes, 0))();
  }

  counts(): { pending: number; delivered: number; dead: number; oldestPendingAt: number | null } {
    const rows = this.db
      .prepare('SELECT state, COUNT(*) AS n, MIN(enqueued_at) AS oldest FROM outbox GROUP BY state')
      .all() as Array<{ state: OutboxState; n: number; oldest: number }>;
    const out = { pending: 0, delivered: 0, dead: 0, oldestPendingAt: null as number | null };
    for (const r of rows) {
      out[r.state] = r.n;
      if (r.state === 'pending') out.oldestPendingAt = r.oldest;
    }
    return out;
  }

  /** Forgets delivered rows and send records older than the retention (dead letters stay until handled). */
  prune(before: number): void {
    this.db.prepare(`DELETE FROM outbox WHERE state = 'delivered' AND finished_at < ?`).run(before);
    this.db.prepare('DELETE FROM send_requests WHERE created_at < ?').run(before);
  }

  getSend(key: string): StoredSend | null {
    const r = this.db
      .prepare('SELECT key, fingerprint, response, created_at FROM send_requests WHERE key = ?')
      .get(key) as { key: string; fingerprint: string; response: string; created_at: number } | undefined;
    return r
      ? { key: r.key, fingerprint: r.fingerprint, response: r.response, createdAt: r.created_at }
      : null;
  }

  putSend(s: StoredSend): void {
    this.db
      .prepare(
        `INSERT INTO send_requests (key, fingerprint, response, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, response = excluded.response,
         created_at = excluded.created_at`,
      )
      .run(s.key, s.fingerprint, s.response, s.createdAt);
  }

  deleteSend(key: string): void {
    this.db.prepare('DELETE FROM send_requests WHERE key = ?').run(key);
  }
}
