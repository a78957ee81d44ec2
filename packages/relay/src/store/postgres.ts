// The PostgreSQL backend (`DATABASE_URL=postgres://…`): several relay instances share one database.
// Same semantics as the SQLite reference (sqlite.ts), with PostgreSQL's row locks in place of SQLite's
// single writer:
//
// - Per-recipient message ids come from `UPDATE users SET last_msg_id = last_msg_id + 1 … RETURNING`
//   inside the send transaction. The row lock on the recipient serialises every sender to that inbox
//   until commit, so ids grow in commit order (a stream that has seen id n never misses an id < n).
// - send() first locks the sender's and the recipient's user rows, in id order (no deadlock between two
//   sends), with FOR NO KEY UPDATE (foreign-key checks of other inserts are not blocked). That one lock
//   also settles the races: two strangers writing to each other at once (the second sees the first's
//   pending row and accepts it), and two requests with the same Idempotency-Key (the second reads the
//   first's committed record and replays it). Serialization failures and deadlocks are retried.
// - The lifetime message count is spread over MESSAGE_COUNTER_SHARDS rows, picked by recipient id:
//   sends to one inbox are serialised by its row lock anyway, so they add no wait, and sends to other
//   inboxes only meet on a shard by chance (1 in 32) instead of all queueing on one hot row. It stays
//   transactional and exact (a sequence would not: it is not rolled back, and may jump after a crash).
// - takeInbox locks its user row (read-and-clear readers of one inbox take turns, so `total` is exact
//   and no message is returned twice) and returns only the rows its own DELETE removed.
// - A swept attachment stops being served at once but keeps its bytes for an hour, so a download
//   already under way on any instance completes; a later sweep removes them.
// - Cross-instance wake-ups: PostgresWakeBus, LISTEN/NOTIFY on a dedicated connection. The chat path's
//   write (owc_send_chats2) sends its own in its transaction and says so (SendResult.woken), so the
//   store boundary does not announce it again.
// - PostgreSQL text cannot hold U+0000, which message content, attachment names and homepages may
//   contain (SQLite keeps them): those columns go through a small reversible escape (postgres-text.ts).
//
// The Store is composed of one class per area (compose.ts): the shared ones (groups.ts, keys.ts) over
// PgSql (sql.ts) and PgTx (postgres-messages.ts: this backend's side of the transaction dialect), and
// this backend's own postgres-users.ts and postgres-messaging.ts (with the batched chat path,
// postgres-send-chat.ts), over postgres-connection.ts (pool, prepared statements,
// transactions); the whole-database operations are here.

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { composeStore } from './compose.ts';
import {
  PgDb,
  PreparingClient,
  redact,
  SCHEMA_RE,
  schemaFromUrl,
  TYPES,
  urlWithSchema,
} from './postgres-connection.ts';
import { Files } from './files.ts';
import { Keys } from './keys.ts';
import { Ops } from './ops.ts';
import { PgSql } from './sql.ts';
import { Groups } from './groups.ts';
import { PgTx } from './postgres-messages.ts';
import { runAsync } from './steps.ts';
import { PgMessaging } from './postgres-messaging.ts';
import { migratePostgres } from './postgres-migrations.ts';
import { PgUsers } from './postgres-users.ts';
import { PostgresWakeBus } from './postgres-wake.ts';
import type { Store } from './types.ts';
import type { WakeBus } from './wake.ts';

/** How long the bytes of a swept file stay readable for downloads that had already started. */
const FILE_PURGE_GRACE_MS = 3_600_000;

/** Namespace of the per-sender advisory lock that makes an upload's quota check and insert one step. */
const QUOTA_LOCK = 0x6f7771;

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database[?options=-csearch_path%3Dschema] */
  url: string;
  /**
   * Use (and create if missing) this schema instead of the connection's default: sets `search_path` on
   * every pooled connection. Lower-case letters, digits and `_`. Also taken from a `search_path` in the
   * URL's `options` parameter.
   */
  schema?: string;
  /** Pooled connections per instance (default 10). */
  poolSize?: number;
  /** Background errors (an idle pooled connection or the LISTEN connection dropped). */
  onError?: (err: unknown, what: string) => void;
}

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<{ store: Store; bus: WakeBus }> {
  if (opts.schema !== undefined && !SCHEMA_RE.test(opts.schema)) {
    throw new Error(`PostgreSQL schema "${opts.schema}": use lower-case letters, digits and _`);
  }
  const schema = opts.schema ?? schemaFromUrl(opts.url);
  const url = opts.schema ? urlWithSchema(opts.url, opts.schema) : opts.url;
  const onError =
    opts.onError ??
    ((err: unknown, what: string) =>
      process.emitWarning(`PostgreSQL ${what}: ${err instanceof Error ? err.message : String(err)}`));
  const config: pg.ClientConfig = {
    connectionString: url,
    types: TYPES,
    application_name: 'openwechat-relay',
    keepAlive: true,
  };
  const pool = new pg.Pool({
    ...config,
    Client: PreparingClient,
    max: opts.poolSize ?? 10,
    idleTimeoutMillis: 30_000,
  });
  // An idle client whose connection dropped: the pool discards it and opens a new one when needed.
  pool.on('error', (err) => onError(err, 'idle connection lost'));
  // pg-pool listens for a client's errors only while it is idle. A connection that breaks while checked
  // out (PostgreSQL restarting under a transaction) emits 'error' on the client, and with no listener
  // that would end the process. The query in flight is rejected anyway (the request fails and is
  // retried by its client), and the broken client is dropped when it is released.
  pool.on('connect', (client) => client.on('error', () => undefined));
  try {
    try {
      await migratePostgres(pool, schema);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (err instanceof pg.DatabaseError || typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) throw err;
      throw new Error(`cannot connect to PostgreSQL at ${redact(url)}: ${(err as Error).message}`);
    }
    const instanceId = randomBytes(6).toString('hex');
    // NOTIFY channels are per database: a schema gets its own, so deployments sharing a database
    // (and parallel test runs) do not wake each other.
    const channel = schema ? `owc_wake_${schema}` : 'owc_wake';
    // The chat path's writes send their wake-ups themselves, in their transaction (SendResult.woken).
    const wake = { channel, instanceId };
    const db = new PgDb(pool);
    const sql = new PgSql(db);
    let closed = false;
    const store = composeStore(
      {
        kind: 'postgres',
        async close() {
          if (closed) return;
          closed = true;
          await pool.end();
        },
      },
      {
        users: new PgUsers(db, sql),
        messaging: new PgMessaging(db, sql, wake),
        files: new Files(sql, {
          // Two uploads of one sender (on any instance) take turns; ids past 2^31 share a lock with
          // another sender: only an extra wait, never a wrong answer.
          lockQuota: (q, senderId) =>
            q.get('SELECT pg_advisory_xact_lock($1, ($2::bigint % 2147483647)::int)', [QUOTA_LOCK, senderId]),
          graceMs: FILE_PURGE_GRACE_MS,
        }),
        groups: new Groups(sql, (op) => db.tx((c) => runAsync(op(new PgTx(c, db))))),
        keys: new Keys(sql),
        ops: new Ops(sql, {
          messagesTotal: '(SELECT coalesce(sum(total), 0)::bigint FROM message_counter)',
          backup: () =>
            Promise.reject(
              new Error(
                'the PostgreSQL backend is backed up with pg_dump (see SERVER.md, "Backups and restores")',
              ),
            ),
        }),
      },
    );
    // Its own application_name, so pg_stat_activity tells the LISTEN connection from the pool's.
    const listenConfig = { ...config, application_name: 'openwechat-relay-listen' };
    return { store, bus: new PostgresWakeBus(pool, listenConfig, channel, instanceId, onError) };
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
}
