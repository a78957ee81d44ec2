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
// - Cross-instance wake-ups: PostgresWakeBus, LISTEN/NOTIFY on a dedicated connection.
//
// PostgreSQL text cannot hold U+0000, which message content, attachment names and homepages may contain
// (SQLite keeps them): those columns go through a small reversible escape (see encodeText).

import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  RelayError,
  type AttachmentView,
  type FriendView,
  type GroupMemberView,
  type GroupRef,
  type GroupRole,
  type GroupView,
  type StatsView,
} from '@openwechat/protocol';
import {
  addedNotices,
  decideAddMembers,
  decideCreateGroup,
  decideDissolve,
  decideGroupSend,
  decideOwnerAction,
  decideRemoveMember,
  decideUpdateGroup,
  type Candidate,
  type GroupLimits,
  type GroupSendDecision,
  type GroupSendState,
  type Membership,
} from '../domain/groups.ts';
import type { SendDecision, SendState } from '../domain/send.ts';
import {
  pair,
  replayOf,
  toFriendship,
  toGroup,
  toGroupMember,
  toGroupView,
  toPublicUser,
  toUser,
  USER_COLUMNS,
  type FriendshipRow,
  type GroupMemberRow,
  type GroupRow,
  type GroupViewRow,
  type UserRow,
} from './rows.ts';
import { fanOutRuns } from './fan-out.ts';
import { MESSAGE_COUNTER_SHARDS, POSTGRES_MIGRATIONS, type Migration } from './postgres-migrations.ts';
import type {
  DiscoverQuery,
  FileRecord,
  FriendshipRecord,
  GroupChange,
  GroupRemoval,
  GroupSendRequest,
  GroupSendResult,
  GroupUpdate,
  InboxMessage,
  InboxPage,
  NewFile,
  NewGroupRequest,
  NewMessage,
  NewUser,
  SendOptions,
  SendRequest,
  SendResult,
  Store,
  UserRecord,
  WakeBus,
} from './types.ts';

type Queryable = pg.Pool | pg.PoolClient;

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

/**
 * A pooled connection that prepares each parameterised statement once. node-postgres otherwise sends
 * every query as an unnamed statement, which PostgreSQL parses, analyses and plans on every execution:
 * ~45 % of its CPU on the send path before this (docs/benchmarks.md). The name is a digest of the text,
 * so one text is one prepared statement per connection. Queries without parameters (BEGIN, COMMIT, the
 * multi-statement migrations) keep the simple protocol. Behind PgBouncer in transaction mode this needs
 * PgBouncer ≥ 1.21 with `max_prepared_statements` set (docs/scaling.md).
 */
export class PreparingClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    const base = this.query.bind(this) as (...args: unknown[]) => unknown;
    this.query = ((text: unknown, values?: unknown, callback?: unknown) =>
      typeof text === 'string' && Array.isArray(values)
        ? base({ name: statementName(text), text, values }, callback)
        : base(text, values, callback)) as pg.Client['query'];
  }
}

const statementNames = new Map<string, string>();
/** The relay's query texts are fixed; past this many, a text is not prepared (no unbounded growth). */
const MAX_PREPARED = 512;

function statementName(text: string): string | undefined {
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_PREPARED) {
    name = `owc_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

/** Bytes per stored chunk: small enough that one chunk never holds a connection for long. */
const CHUNK_BYTES = 256 * 1024;

/** How long the bytes of a swept file stay readable for downloads that had already started. */
const FILE_PURGE_GRACE_MS = 3_600_000;

/** Attempts of a transaction that fails with a serialization failure or a deadlock. */
const TX_ATTEMPTS = 8;

/** Namespace of the advisory lock taken while migrating (the second key is the schema). */
const MIGRATION_LOCK = 0x6f7763;

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,47}$/;

/** pg returns BIGINT (and count(*)) as strings; every BIGINT here is a safe integer. */
const TYPES = new pg.TypeOverrides();
TYPES.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

interface MessageRow {
  to_id: number;
  id: number;
  from_id: number | null;
  type: InboxMessage['type'];
  content: string;
  attachment_name: string | null;
  file_id: string | null;
  file_size: number | null;
  file_type: string | null;
  file_expires_at: number | null;
  created_at: number;
  group_id: number | null;
  mentioned: boolean;
  from_name: string | null;
  from_description: string | null;
  group_name: string | null;
}

interface FileRow {
  id: string;
  sender_id: number;
  recipient_id: number;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
  created_at: number;
  expires_at: number;
  downloaded_at: number | null;
  group_id: number | null;
}

/** Never select homepage (up to 512 KB) or token_hash with a user record. */
const MESSAGE_COLUMNS = `m.to_id, m.id, m.from_id, m.type, m.content, m.attachment_name, m.file_id,
  m.file_size, m.file_type, m.file_expires_at, m.created_at, m.group_id, m.mentioned`;
const MESSAGE_SELECT = `
  SELECT ${MESSAGE_COLUMNS}, u.name AS from_name, u.description AS from_description, gr.name AS group_name
  FROM messages m LEFT JOIN users u ON u.id = m.from_id LEFT JOIN groups gr ON gr.id = m.group_id`;
/** Groups as their member `gm.user_id` sees them. */
const GROUP_VIEW_SELECT = `
  SELECT g.id, g.name, g.description, g.owner_id, o.name AS owner_name, g.created_at, gm.role,
         (SELECT count(*) FROM group_members c WHERE c.group_id = g.id) AS member_count
  FROM group_members gm JOIN groups g ON g.id = gm.group_id JOIN users o ON o.id = g.owner_id`;
/** The owner first, then by joining time. */
const GROUP_MEMBERS_SELECT = `
  SELECT u.id, u.name, u.description, gm.role, gm.joined_at
  FROM group_members gm JOIN users u ON u.id = gm.user_id
  WHERE gm.group_id = $1 ORDER BY gm.role = 'owner' DESC, gm.joined_at, u.id`;

// ── Text that PostgreSQL cannot store as is ─────────────────────────────────────────────────────────
// U+0000 → U+E000 U+E001 and U+E000 → U+E000 U+E000: reversible, and a no-op for every other string.

const NUL = '\u0000';
const ESC = '\ue000';

export function encodeText(s: string): string {
  if (!s.includes(NUL) && !s.includes(ESC)) return s;
  return s.replace(/[\u0000\ue000]/g, (c) => (c === NUL ? `${ESC}\ue001` : `${ESC}${ESC}`));
}

export function decodeText(s: string): string {
  if (!s.includes(ESC)) return s;
  return s.replace(/\ue000([\ue000\ue001])/g, (_, c: string) => (c === ESC ? ESC : NUL));
}

function decodeNullable(s: string | null): string | null {
  return s === null ? null : decodeText(s);
}

function encodeNullable(s: string | null): string | null {
  return s === null ? null : encodeText(s);
}

function toMessage(row: MessageRow): InboxMessage {
  const attachment: AttachmentView | null =
    row.attachment_name === null
      ? null
      : {
          name: decodeText(row.attachment_name),
          fileId: row.file_id,
          size: row.file_size,
          contentType: row.file_type,
          expiresAt: row.file_expires_at,
        };
  return {
    toId: row.to_id,
    id: row.id,
    type: row.type,
    createdAt: row.created_at,
    fromId: row.from_id,
    from:
      row.from_id === null || row.from_name === null
        ? null
        : { id: row.from_id, name: row.from_name, description: row.from_description },
    content: decodeText(row.content),
    attachment,
    group: row.group_id === null ? null : { id: row.group_id, name: row.group_name ?? '' },
    mentioned: row.mentioned,
  };
}

function toFile(row: FileRow): FileRecord {
  return {
    id: row.id,
    senderId: row.sender_id,
    recipientId: row.recipient_id,
    groupId: row.group_id,
    name: decodeText(row.name),
    contentType: row.content_type,
    size: row.size,
    sha256: row.sha256,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    downloadedAt: row.downloaded_at,
  };
}

/** An ILIKE pattern matching `keyword` literally anywhere (`\` is the escape character). */
function containsPattern(keyword: string): string {
  return `%${keyword.replace(/[\\%_]/g, '\\$&')}%`;
}

function sqlState(err: unknown): string | undefined {
  return err instanceof pg.DatabaseError ? err.code : undefined;
}

function isUniqueViolation(err: unknown, constraint: string): boolean {
  return err instanceof pg.DatabaseError && err.code === '23505' && err.constraint === constraint;
}

/** Failures after which PostgreSQL has rolled the whole transaction back and a retry is safe. */
function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  // A duplicate idempotency record cannot happen while the sender row is locked first; if it ever did,
  // the retry reads the winner's record and replays it.
  return code === '40001' || code === '40P01' || isUniqueViolation(err, 'idempotency_keys_pkey');
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ── Connection settings ─────────────────────────────────────────────────────────────────────────────

/** The schema named by `-c search_path=…` in the URL's `options` parameter, if it is a plain name. */
export function schemaFromUrl(url: string): string | null {
  let options: string | null;
  try {
    options = new URL(url).searchParams.get('options');
  } catch {
    return null;
  }
  const m = options ? /(?:^|\s)-c\s*search_path=([^\s,]+)(?:\s|$)/.exec(options) : null;
  return m && SCHEMA_RE.test(m[1]!) ? m[1]! : null;
}

/** The URL with `search_path=<schema>` as a connection option (replacing any search_path given). */
export function urlWithSchema(url: string, schema: string): string {
  const u = new URL(url);
  const kept = (u.searchParams.get('options') ?? '').replace(/(?:^|\s)-c\s*search_path=\S+/g, '').trim();
  u.searchParams.set('options', `${kept ? `${kept} ` : ''}-c search_path=${schema}`);
  return u.toString();
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'DATABASE_URL';
  }
}

function checkMigrations(migrations: readonly Migration[]): void {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version <= migrations[i - 1]!.version) {
      throw new Error(`PostgreSQL migrations out of order at version ${migrations[i]!.version}`);
    }
  }
}

/**
 * Creates the schema if asked to, applies the missing migrations in one transaction under an advisory
 * lock (instances starting together take turns; the second finds nothing to do) and refuses a database
 * written by a newer relay.
 */
export async function migratePostgres(
  db: pg.Pool | pg.Client,
  schema: string | null,
  migrations: readonly Migration[] = POSTGRES_MIGRATIONS,
): Promise<void> {
  checkMigrations(migrations);
  const supported = migrations.at(-1)?.version ?? 0;
  const c = db instanceof pg.Pool ? await db.connect() : db;
  let failed = false;
  try {
    await c.query('BEGIN');
    await c.query("SELECT pg_advisory_xact_lock($1, hashtext(coalesce($2, current_schema(), '')))", [
      MIGRATION_LOCK,
      schema,
    ]);
    if (schema) await c.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at BIGINT  NOT NULL
    )`);
    const row = (await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations'))
      .rows[0]!;
    const current = row.v ?? 0;
    if (current > supported) {
      throw new Error(
        `database schema version ${current} is newer than this relay supports (${supported}); upgrade the relay`,
      );
    }
    for (const m of migrations) {
      if (m.version <= current) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        Date.now(),
      ]);
    }
    await c.query('COMMIT');
  } catch (err) {
    failed = true;
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    if (db instanceof pg.Pool) (c as pg.PoolClient).release(failed);
  }
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
    return {
      store: new PostgresStore(pool),
      bus: new PostgresWakeBus(pool, config, channel, instanceId, onError),
    };
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
}

/** What an idempotency record keeps: enough to answer a retry exactly as the first time. */
type RecordedSend = Pick<SendResult, 'outcome' | 'messageId' | 'preview'>;
type RecordedGroupSend = Pick<GroupSendResult, 'group' | 'recipients' | 'preview'>;

class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  private closed = false;

  constructor(private readonly pool: pg.Pool) {}

  /** Runs fn in a READ COMMITTED transaction; retried on serialization failure or deadlock. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.pool.connect();
      let broken: Error | undefined;
      try {
        await c.query('BEGIN');
        const result = await fn(c);
        await c.query('COMMIT');
        return result;
      } catch (err) {
        await c.query('ROLLBACK').catch((e: Error) => (broken = e));
        if (attempt >= TX_ATTEMPTS || !isRetryable(err)) throw err;
      } finally {
        c.release(broken);
      }
      // Rolled back and released; a short random pause lets the competing transaction finish.
      await sleep(Math.random() * 5 * attempt);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // Users

  async createUser(user: NewUser): Promise<UserRecord> {
    try {
      // A taken name inserts no row, so it does not use up an id (a sequence is not rolled back): ids
      // stay gapless like SQLite's. Only a concurrent registration of the same name gets the violation.
      const { rows } = await this.pool.query<UserRow>(
        `INSERT INTO users (name, name_key, description, token_hash, status, created_at)
         SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bigint
         WHERE NOT EXISTS (SELECT 1 FROM users WHERE name_key = $2::text)
         RETURNING ${USER_COLUMNS}`,
        [user.name, user.nameKey, user.description, user.tokenHash, user.status, user.createdAt],
      );
      if (!rows[0]) throw new RelayError('name_taken');
      return toUser(rows[0]);
    } catch (err) {
      if (isUniqueViolation(err, 'users_name_key_unique')) throw new RelayError('name_taken');
      throw err;
    }
  }

  async countUsers(): Promise<number> {
    return (await this.pool.query<{ n: number }>('SELECT count(*) AS n FROM users')).rows[0]!.n;
  }

  async getUser(id: number): Promise<UserRecord | null> {
    const row = (await this.pool.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]))
      .rows[0];
    return row ? toUser(row) : null;
  }

  async findUserByTokenHash(tokenHash: string): Promise<UserRecord | null> {
    const row = (
      await this.pool.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE token_hash = $1`, [tokenHash])
    ).rows[0];
    return row ? toUser(row) : null;
  }

  async listUsers(q: {
    query: string | null;
    limit: number;
    offset: number;
  }): Promise<{ total: number; users: UserRecord[] }> {
    const pattern = q.query ? containsPattern(q.query) : null;
    const { rows } = await this.pool.query<UserRow & { total: number }>(
      `SELECT count(*) OVER ()::int AS total, ${USER_COLUMNS} FROM users
       WHERE $1::text IS NULL OR name ILIKE $1 ESCAPE '\\'
       ORDER BY id LIMIT $2 OFFSET $3`,
      [pattern, q.limit, q.offset],
    );
    const total =
      rows[0]?.total ??
      (
        await this.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM users WHERE $1::text IS NULL OR name ILIKE $1 ESCAPE '\\'`,
          [pattern],
        )
      ).rows[0]!.n;
    return { total, users: rows.map(toUser) };
  }

  async setUserDisabled(id: number, disabledAt: number | null): Promise<UserRecord | null> {
    const row = (
      await this.pool.query<UserRow>(
        `UPDATE users SET disabled_at = $1 WHERE id = $2 RETURNING ${USER_COLUMNS}`,
        [disabledAt, id],
      )
    ).rows[0];
    return row ? toUser(row) : null;
  }

  async backup(_file: string): Promise<void> {
    throw new Error(
      'the PostgreSQL backend is backed up with pg_dump (see SERVER.md, "Backups and restores")',
    );
  }

  async advanceMessageIds(by: number): Promise<{ users: number; by: number }> {
    if (!Number.isSafeInteger(by) || by < 1) throw new RangeError(`by must be a positive integer, got ${by}`);
    return this.tx(async (c) => {
      // Every user row locked first, in id order as send() locks them, so this never deadlocks a send
      // that runs meanwhile (it waits, then takes its next id from the advanced value).
      const { max } = (
        await c.query<{ max: number }>(
          `SELECT coalesce(max(last_msg_id), 0) AS max
           FROM (SELECT last_msg_id FROM users ORDER BY id FOR NO KEY UPDATE) locked`,
        )
      ).rows[0]!;
      if (max + by > Number.MAX_SAFE_INTEGER) {
        throw new RangeError(`advancing by ${by} would take message ids past ${Number.MAX_SAFE_INTEGER}`);
      }
      const r = await c.query('UPDATE users SET last_msg_id = last_msg_id + $1', [by]);
      return { users: r.rowCount ?? 0, by };
    });
  }

  async setTokenHash(id: number, tokenHash: string): Promise<boolean> {
    return (
      (await this.pool.query('UPDATE users SET token_hash = $1 WHERE id = $2', [tokenHash, id])).rowCount ===
      1
    );
  }

  async setStatus(id: number, status: UserRecord['status']): Promise<UserRecord | null> {
    const row = (
      await this.pool.query<UserRow>(`UPDATE users SET status = $1 WHERE id = $2 RETURNING ${USER_COLUMNS}`, [
        status,
        id,
      ])
    ).rows[0];
    return row ? toUser(row) : null;
  }

  async touchLastSeen(entries: ReadonlyArray<readonly [id: number, at: number]>): Promise<void> {
    if (entries.length === 0) return;
    // The latest time per user; rows locked in id order like send() does, so the two never deadlock.
    const latest = new Map<number, number>();
    for (const [id, at] of entries) latest.set(id, Math.max(at, latest.get(id) ?? at));
    const ids = [...latest.keys()].sort((a, b) => a - b);
    const ats = ids.map((id) => latest.get(id)!);
    await this.tx(async (c) => {
      await c.query('SELECT 1 FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
      await c.query(
        `UPDATE users u SET last_seen_at = v.at
         FROM unnest($1::bigint[], $2::bigint[]) AS v (id, at)
         WHERE u.id = v.id AND (u.last_seen_at IS NULL OR u.last_seen_at < v.at)`,
        [ids, ats],
      );
    });
  }

  async topActiveUsers(limit: number): Promise<UserRecord[]> {
    const { rows } = await this.pool.query<UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL
       ORDER BY last_seen_at DESC NULLS LAST, id ASC LIMIT $1`,
      [limit],
    );
    return rows.map(toUser);
  }

  async discoverUsers(q: DiscoverQuery): Promise<{ total: number; users: UserRecord[] }> {
    // One statement: the total and the sample come from the same snapshot.
    const keyword = q.keyword === null || q.keyword === '' ? null : containsPattern(q.keyword);
    const { rows } = await this.pool.query<UserRow & { total: number }>(
      `WITH matching AS (
         SELECT ${USER_COLUMNS} FROM users
         WHERE status = 'open' AND disabled_at IS NULL AND id <> $1
           AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\' OR description ILIKE $2 ESCAPE '\\')
       )
       SELECT t.total, s.* FROM (SELECT count(*) AS total FROM matching) t
       LEFT JOIN LATERAL (SELECT * FROM matching ORDER BY random() LIMIT $3) s ON true`,
      [q.excludeId, keyword, q.limit],
    );
    return {
      total: rows[0]?.total ?? 0,
      users: rows.filter((r) => r.id !== null).map(toUser),
    };
  }

  async setHomepage(id: number, html: string): Promise<void> {
    await this.pool.query('UPDATE users SET homepage = $1 WHERE id = $2', [encodeText(html), id]);
  }

  async getHomepage(id: number): Promise<string | null | undefined> {
    const row = (
      await this.pool.query<{ homepage: string | null }>('SELECT homepage FROM users WHERE id = $1', [id])
    ).rows[0];
    return row === undefined ? undefined : decodeNullable(row.homepage);
  }

  // Friendships

  async getFriendship(a: number, b: number): Promise<FriendshipRecord | null> {
    const row = (
      await this.pool.query<FriendshipRow>(
        `SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at
         FROM friendships WHERE user_a = $1 AND user_b = $2`,
        pair(a, b),
      )
    ).rows[0];
    return row ? toFriendship(row) : null;
  }

  async listFriends(userId: number): Promise<FriendView[]> {
    const { rows } = await this.pool.query<UserRow & { since: number }>(
      `SELECT u.id, u.name, u.name_key, u.description, u.status, u.created_at, u.last_seen_at,
              f.updated_at AS since
       FROM friendships f
       JOIN users u ON u.id = CASE WHEN f.user_a = $1 THEN f.user_b ELSE f.user_a END
       WHERE (f.user_a = $1 OR f.user_b = $1) AND f.status = 'accepted'
       ORDER BY f.seq`,
      [userId],
    );
    return rows.map((row) => ({ user: toPublicUser(row), since: row.since }));
  }

  async send(
    req: SendRequest,
    decide: (state: SendState) => SendDecision,
    opts: SendOptions = {},
  ): Promise<SendResult> {
    return this.tx(async (c) => {
      // Both user rows first, in id order: serialises this pair, this sender and this inbox.
      const wanted = [...new Set([req.fromId, req.toId])].filter(Number.isSafeInteger);
      const locked = (
        await c.query<UserRow>(
          `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE`,
          [wanted],
        )
      ).rows.map(toUser);

      const idem = opts.idempotency;
      if (idem) {
        const replay = await replayOfKey<RecordedSend>(c, req.fromId, idem, req.now);
        if (replay) return replay;
      }

      const sender = locked.find((u) => u.id === req.fromId);
      // The caller authenticated the sender; a missing row means its account is gone.
      if (!sender) throw new RelayError('invalid_token');
      const recipient = locked.find((u) => u.id === req.toId) ?? null;
      let friendship: FriendshipRecord | null = null;
      if (recipient && recipient.id !== sender.id) {
        // Locked too: block() on this pair waits for us (or we for it), never interleaves.
        const row = (
          await c.query<FriendshipRow>(
            `SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at
             FROM friendships WHERE user_a = $1 AND user_b = $2 FOR NO KEY UPDATE`,
            pair(sender.id, recipient.id),
          )
        ).rows[0];
        friendship = row ? toFriendship(row) : null;
      }
      const decision = decide({
        sender,
        recipient,
        friendship,
        content: req.content,
        attachment: req.attachment,
        now: req.now,
      });

      const change = decision.friendship;
      if (change.op !== 'none') {
        if (!recipient) throw new Error('send decision changes a friendship without a recipient');
        const [a, b] = pair(sender.id, recipient.id);
        if (change.op === 'create_pending') {
          await c.query(
            `INSERT INTO friendships (user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at)
             VALUES ($1, $2, $3, 'pending', NULL, $4, $4)`,
            [a, b, change.initiatedBy, req.now],
          );
        } else {
          const r = await c.query(
            `UPDATE friendships SET status = 'accepted', updated_at = $1 WHERE user_a = $2 AND user_b = $3`,
            [req.now, a, b],
          );
          if (r.rowCount !== 1) throw new Error('send decision accepts a friendship that does not exist');
        }
      }

      const profiles = new Map<number, UserRecord>(locked.map((u) => [u.id, u]));
      const delivered: InboxMessage[] = [];
      for (const m of decision.messages) {
        const stored = await insertMessage(c, m);
        let from = m.fromId === null ? null : (profiles.get(m.fromId) ?? null);
        if (m.fromId !== null && !from) {
          const row = (await c.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [m.fromId]))
            .rows[0];
          from = row ? toUser(row) : null;
        }
        delivered.push(
          toMessage({
            ...stored,
            from_name: from?.name ?? null,
            from_description: from?.description ?? null,
            group_name: null,
          }),
        );
      }
      const recorded: RecordedSend = {
        outcome: decision.outcome,
        messageId: delivered[0]?.id ?? 0,
        preview: opts.previewLimit ? await peek(c, req.fromId, opts.previewLimit) : null,
      };
      if (idem) {
        await c.query(
          `INSERT INTO idempotency_keys (user_id, key, fingerprint, result, created_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id, key) DO UPDATE
             SET fingerprint = EXCLUDED.fingerprint, result = EXCLUDED.result, created_at = EXCLUDED.created_at`,
          [req.fromId, idem.key, idem.fingerprint, JSON.stringify(recorded), req.now],
        );
      }
      // Last, so the shard row is held only for the commit.
      if (delivered.length > 0) {
        await c.query('UPDATE message_counter SET total = total + $1 WHERE shard = $2', [
          delivered.length,
          req.toId % MESSAGE_COUNTER_SHARDS,
        ]);
      }
      return { ...recorded, delivered, replayed: false };
    });
  }

  async pruneIdempotency(before: number): Promise<number> {
    return (
      (await this.pool.query('DELETE FROM idempotency_keys WHERE created_at < $1', [before])).rowCount ?? 0
    );
  }

  async block(by: number, target: number, now: number): Promise<boolean> {
    return this.tx(async (c) => {
      const [a, b] = pair(by, target);
      const r = await c.query(
        `UPDATE friendships SET status = 'blocked', blocked_by = $1, updated_at = $2
         WHERE user_a = $3 AND user_b = $4 AND status = 'accepted'`,
        [by, now, a, b],
      );
      if (r.rowCount === 0) return false;
      await c.query('DELETE FROM messages WHERE to_id = $1 AND from_id = $2', [by, target]);
      return true;
    });
  }

  async unblock(by: number, target: number): Promise<boolean> {
    const [a, b] = pair(by, target);
    const r = await this.pool.query(
      `DELETE FROM friendships WHERE user_a = $1 AND user_b = $2 AND status = 'blocked' AND blocked_by = $3`,
      [a, b, by],
    );
    return (r.rowCount ?? 0) > 0;
  }

  // Inbox

  async takeInbox(userId: number, opts: { limit: number; fromId: number | null }): Promise<InboxPage> {
    return this.tx(async (c) => {
      // Readers of one inbox take turns; senders to it wait for the (short) read.
      await c.query('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [userId]);
      const byFrom = opts.fromId !== null;
      const total = (
        await c.query<{ n: number }>(
          `SELECT count(*) AS n FROM messages WHERE to_id = $1 ${byFrom ? 'AND from_id = $2' : ''}`,
          byFrom ? [userId, opts.fromId] : [userId],
        )
      ).rows[0]!.n;
      // Only what this DELETE removed is returned: a row acknowledged meanwhile is not handed out again.
      const { rows } = await c.query<MessageRow>(
        `WITH gone AS (
           DELETE FROM messages WHERE to_id = $1 AND id IN (
             SELECT id FROM messages WHERE to_id = $1 ${byFrom ? 'AND from_id = $3' : ''} ORDER BY id LIMIT $2
           ) RETURNING *
         )
         SELECT g.to_id, g.id, g.from_id, g.type, g.content, g.attachment_name, g.file_id, g.file_size,
                g.file_type, g.file_expires_at, g.created_at, g.group_id, g.mentioned,
                u.name AS from_name, u.description AS from_description, gr.name AS group_name
         FROM gone g LEFT JOIN users u ON u.id = g.from_id LEFT JOIN groups gr ON gr.id = g.group_id
         ORDER BY g.id`,
        byFrom ? [userId, opts.limit, opts.fromId] : [userId, opts.limit],
      );
      return { total, messages: rows.map(toMessage) };
    });
  }

  async peekInbox(userId: number, limit: number): Promise<InboxPage> {
    return peek(this.pool, userId, limit);
  }

  async listInbox(userId: number, afterId: number, limit: number): Promise<InboxMessage[]> {
    const { rows } = await this.pool.query<MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3`,
      [userId, afterId, limit],
    );
    return rows.map(toMessage);
  }

  async ackInbox(userId: number, upTo: number): Promise<number> {
    const r = await this.pool.query('DELETE FROM messages WHERE to_id = $1 AND id <= $2', [userId, upTo]);
    return r.rowCount ?? 0;
  }

  async deleteMessages(userId: number, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query('DELETE FROM messages WHERE to_id = $1 AND id = ANY($2::bigint[])', [userId, ids]);
  }

  async lastMessageId(userId: number): Promise<number> {
    const row = (
      await this.pool.query<{ id: number }>('SELECT last_msg_id AS id FROM users WHERE id = $1', [userId])
    ).rows[0];
    return row?.id ?? 0;
  }

  async lastMessageIds(userIds: readonly number[]): Promise<Map<number, number>> {
    if (userIds.length === 0) return new Map();
    const { rows } = await this.pool.query<{ id: number; last: number }>(
      'SELECT id, last_msg_id AS last FROM users WHERE id = ANY($1::bigint[])',
      [userIds],
    );
    return new Map(rows.map((r) => [r.id, r.last]));
  }

  async expireMessages(before: number): Promise<number> {
    return (await this.pool.query('DELETE FROM messages WHERE created_at < $1', [before])).rowCount ?? 0;
  }

  // Files

  async putFile(file: NewFile, chunks: AsyncIterable<Buffer>): Promise<void> {
    // The record goes first (incomplete, never served) so the chunks' foreign key holds; each chunk is
    // written as it arrives; a failure part-way removes both.
    await this.pool.query(
      `INSERT INTO files (id, sender_id, recipient_id, name, content_type, size, sha256, created_at, expires_at,
                          group_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        file.id,
        file.senderId,
        file.recipientId,
        encodeText(file.name),
        file.contentType,
        file.size,
        file.sha256,
        file.createdAt,
        file.expiresAt,
        file.groupId ?? null,
      ],
    );
    try {
      let seq = 0;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (!pendingBytes) return;
        const data = Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
        await this.pool.query('INSERT INTO file_chunks (file_id, seq, data) VALUES ($1, $2, $3)', [
          file.id,
          seq++,
          data,
        ]);
      };
      for await (const chunk of chunks) {
        let c = chunk;
        while (c.length) {
          const take = Math.min(c.length, CHUNK_BYTES - pendingBytes);
          pending.push(c.subarray(0, take));
          pendingBytes += take;
          c = c.subarray(take);
          if (pendingBytes === CHUNK_BYTES) await flush();
        }
      }
      await flush();
      await this.pool.query('UPDATE files SET complete = true WHERE id = $1', [file.id]);
    } catch (err) {
      await this.deleteFile(file.id).catch(() => undefined);
      throw err;
    }
  }

  async getFile(id: string): Promise<FileRecord | null> {
    const row = (
      await this.pool.query<FileRow>(
        `SELECT id, sender_id, recipient_id, name, content_type, size, sha256, created_at, expires_at,
                downloaded_at, group_id
         FROM files WHERE id = $1 AND complete AND deleted_at IS NULL`,
        [id],
      )
    ).rows[0];
    return row ? toFile(row) : null;
  }

  async *readFile(id: string): AsyncIterable<Buffer> {
    // One chunk per query: no connection is held while the socket drains. The chunk count is read
    // first, so the iteration ends with the last chunk instead of one round trip later: the download
    // response then finishes with its last byte (a relay closing right after it does not wait for a
    // connection that was still busy when the close began).
    const count = (
      await this.pool.query<{ n: number }>('SELECT count(*) AS n FROM file_chunks WHERE file_id = $1', [id])
    ).rows[0]!.n;
    for (let seq = 0; seq < count; seq++) {
      const row = (
        await this.pool.query<{ data: Buffer }>(
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
    await this.pool.query('UPDATE files SET downloaded_at = coalesce(downloaded_at, $1) WHERE id = $2', [
      at,
      id,
    ]);
  }

  async deleteFile(id: string): Promise<void> {
    // The chunks go with it (ON DELETE CASCADE).
    await this.pool.query('DELETE FROM files WHERE id = $1', [id]);
  }

  async storedFileBytes(senderId: number): Promise<number> {
    const row = (
      await this.pool.query<{ n: number }>(
        'SELECT coalesce(sum(size), 0)::bigint AS n FROM files WHERE sender_id = $1 AND deleted_at IS NULL',
        [senderId],
      )
    ).rows[0]!;
    return row.n;
  }

  async collectFile(id: string, now: number): Promise<boolean> {
    // As in sweepFiles: it stops being served at once, its bytes go after the grace period.
    const r = await this.pool.query(
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
    const r = await this.pool.query(
      `UPDATE files f SET deleted_at = $1 WHERE f.deleted_at IS NULL AND (
         f.expires_at < $1
         OR (NOT f.complete AND f.created_at < $2)
         OR (f.downloaded_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.file_id = f.id)))`,
      [now, now - 3_600_000],
    );
    await this.pool.query('DELETE FROM files WHERE deleted_at <= $1', [now - FILE_PURGE_GRACE_MS]);
    return r.rowCount ?? 0;
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  // Groups. Lock order, the same in every transaction so none can deadlock another (or a private send):
  // the group row first (FOR NO KEY UPDATE: operations on one group take turns there — a send waiting
  // behind another then locks the member rows after that commit, instead of queueing through 500 row
  // locks and re-checking each updated row), then user rows in id order (FOR NO KEY UPDATE, as send()
  // and touchLastSeen() take them), then friendship rows, and the message-counter shard last. Nobody
  // waits for a group row while holding a user row.

  private async lockGroup(c: pg.PoolClient, groupId: number) {
    const row = (
      await c.query<GroupRow>(
        `SELECT id, name, description, owner_id, created_at, dissolved_at FROM groups WHERE id = $1
         FOR NO KEY UPDATE`,
        [groupId],
      )
    ).rows[0];
    return row ? toGroup(row) : null;
  }

  private async role(c: Queryable, groupId: number, userId: number): Promise<GroupRole | null> {
    const row = (
      await c.query<{ role: GroupRole }>(
        'SELECT role FROM group_members WHERE group_id = $1 AND user_id = $2',
        [groupId, userId],
      )
    ).rows[0];
    return row?.role ?? null;
  }

  /** Locks the group row and reads the user's role in it. */
  private async membership(c: pg.PoolClient, groupId: number, userId: number): Promise<Membership> {
    const group = await this.lockGroup(c, groupId);
    return { group, role: group ? await this.role(c, groupId, userId) : null };
  }

  /** Locks these users' rows in id order; returns the ones that exist. */
  private async lockUsers(c: pg.PoolClient, ids: readonly number[]): Promise<Map<number, UserRecord>> {
    const wanted = [...new Set(ids)].filter(Number.isSafeInteger).sort((x, y) => x - y);
    if (wanted.length === 0) return new Map();
    const { rows } = await c.query<UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE`,
      [wanted],
    );
    return new Map(rows.map((r) => [r.id, toUser(r)]));
  }

  /** What decideAddMembers looks at (users already locked); groupId null: a group being created. */
  private async candidates(
    c: pg.PoolClient,
    ownerId: number,
    groupId: number | null,
    userIds: readonly number[],
    users: Map<number, UserRecord>,
  ): Promise<Candidate[]> {
    const others = [...new Set(userIds)].filter((id) => id !== ownerId && users.has(id));
    const pairs = others.map((id) => pair(ownerId, id));
    const friendships = new Map<number, FriendshipRecord>();
    if (pairs.length) {
      const { rows } = await c.query<FriendshipRow>(
        `SELECT user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at FROM friendships
         WHERE (user_a, user_b) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
         ORDER BY user_a, user_b FOR SHARE`,
        [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
      );
      for (const r of rows) friendships.set(r.user_a === ownerId ? r.user_b : r.user_a, toFriendship(r));
    }
    const members = new Set<number>();
    if (groupId !== null && others.length) {
      const { rows } = await c.query<{ user_id: number }>(
        'SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = ANY($2::bigint[])',
        [groupId, others],
      );
      for (const r of rows) members.add(r.user_id);
    }
    const counts = new Map<number, number>();
    if (others.length) {
      const { rows } = await c.query<{ user_id: number; n: number }>(
        'SELECT user_id, count(*) AS n FROM group_members WHERE user_id = ANY($1::bigint[]) GROUP BY user_id',
        [others],
      );
      for (const r of rows) counts.set(r.user_id, r.n);
    }
    return userIds.map((id) => ({
      id,
      user: users.get(id) ?? null,
      friendship: friendships.get(id) ?? null,
      isMember: id === ownerId || members.has(id),
      groupCount: counts.get(id) ?? 0,
    }));
  }

  /** Stores fan-out messages (recipients locked); the caller counts them (countStored) last. */
  private async storeFanOut(
    c: pg.PoolClient,
    messages: readonly NewMessage[],
    from: UserRecord | null = null,
    group: GroupRef | null = null,
  ): Promise<InboxMessage[]> {
    if (messages.length === 0) return [];
    const rows = await insertFanOut(c, messages);
    return rows.map((r) =>
      toMessage({
        ...r,
        from_name: from?.name ?? null,
        from_description: from?.description ?? null,
        group_name: group?.name ?? null,
      }),
    );
  }

  /** Adds to the lifetime message count; last in a transaction, so the shard row is held only for the commit. */
  private async countStored(c: pg.PoolClient, n: number, shard: number): Promise<void> {
    if (n > 0) {
      await c.query('UPDATE message_counter SET total = total + $1 WHERE shard = $2', [
        n,
        shard % MESSAGE_COUNTER_SHARDS,
      ]);
    }
  }

  private async groupView(c: Queryable, viewerId: number, groupId: number): Promise<GroupView> {
    const row = (
      await c.query<GroupViewRow>(
        `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.id = $2 AND g.dissolved_at IS NULL`,
        [viewerId, groupId],
      )
    ).rows[0];
    if (!row) throw new RelayError('group_not_found');
    return toGroupView(row);
  }

  private async insertMembers(c: pg.PoolClient, groupId: number, ids: readonly number[], now: number) {
    if (ids.length === 0) return;
    await c.query(
      `INSERT INTO group_members (group_id, user_id, role, joined_at)
       SELECT $1, id, 'member', $3 FROM unnest($2::bigint[]) AS id`,
      [groupId, ids, now],
    );
  }

  async createGroup(req: NewGroupRequest): Promise<GroupChange> {
    return this.tx(async (c) => {
      const ids = req.memberIds.filter((id) => id !== req.ownerId);
      const users = await this.lockUsers(c, [req.ownerId, ...ids]);
      const owner = users.get(req.ownerId);
      if (!owner) throw new RelayError('invalid_token');
      const ownerGroups = (
        await c.query<{ n: number }>('SELECT count(*) AS n FROM group_members WHERE user_id = $1', [owner.id])
      ).rows[0]!.n;
      const addIds = decideCreateGroup({
        ownerGroupCount: ownerGroups,
        candidates: await this.candidates(c, owner.id, null, ids, users),
        limits: req.limits,
      });
      const g = toGroup(
        (
          await c.query<GroupRow>(
            `INSERT INTO groups (name, description, owner_id, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id, name, description, owner_id, created_at, dissolved_at`,
            [req.name, req.description, owner.id, req.now],
          )
        ).rows[0]!,
      );
      await c.query(
        `INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)`,
        [g.id, owner.id, req.now],
      );
      await this.insertMembers(c, g.id, addIds, req.now);
      const delivered = await this.storeFanOut(c, addedNotices(owner, g, addIds, req.now));
      const group = await this.groupView(c, owner.id, g.id);
      await this.countStored(c, delivered.length, g.id);
      return { group, added: addIds.map((id) => ({ id, name: users.get(id)?.name ?? '' })), delivered };
    });
  }

  async listGroups(userId: number): Promise<GroupView[]> {
    const { rows } = await this.pool.query<GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.dissolved_at IS NULL ORDER BY g.id`,
      [userId],
    );
    return rows.map(toGroupView);
  }

  async getGroup(
    groupId: number,
    viewerId: number,
  ): Promise<{ group: GroupView; members: GroupMemberView[] } | null> {
    // One snapshot for the group and its member list.
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const row = (
        await c.query<GroupViewRow>(
          `${GROUP_VIEW_SELECT} WHERE gm.user_id = $1 AND g.id = $2 AND g.dissolved_at IS NULL`,
          [viewerId, groupId],
        )
      ).rows[0];
      const members = row ? (await c.query<GroupMemberRow>(GROUP_MEMBERS_SELECT, [groupId])).rows : [];
      await c.query('COMMIT');
      return row ? { group: toGroupView(row), members: members.map(toGroupMember) } : null;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async isGroupMember(groupId: number, userId: number): Promise<boolean> {
    return (await this.role(this.pool, groupId, userId)) !== null;
  }

  async addGroupMembers(req: {
    groupId: number;
    actorId: number;
    userIds: readonly number[];
    now: number;
    limits: GroupLimits;
  }): Promise<GroupChange> {
    return this.tx(async (c) => {
      const group = decideOwnerAction(await this.membership(c, req.groupId, req.actorId));
      const users = await this.lockUsers(c, [group.ownerId, ...req.userIds]);
      const owner = users.get(group.ownerId)!;
      const memberCount = (
        await c.query<{ n: number }>('SELECT count(*) AS n FROM group_members WHERE group_id = $1', [
          group.id,
        ])
      ).rows[0]!.n;
      const addIds = decideAddMembers({
        memberCount,
        candidates: await this.candidates(c, owner.id, group.id, req.userIds, users),
        limits: req.limits,
      });
      await this.insertMembers(c, group.id, addIds, req.now);
      const delivered = await this.storeFanOut(c, addedNotices(owner, group, addIds, req.now));
      const view = await this.groupView(c, req.actorId, group.id);
      await this.countStored(c, delivered.length, group.id);
      return { group: view, added: addIds.map((id) => ({ id, name: users.get(id)?.name ?? '' })), delivered };
    });
  }

  async removeGroupMember(req: {
    groupId: number;
    actorId: number;
    userId: number;
    now: number;
  }): Promise<GroupRemoval> {
    return this.tx(async (c) => {
      const actor = await this.membership(c, req.groupId, req.actorId);
      const targetRole = actor.group ? await this.role(c, req.groupId, req.userId) : null;
      const { left, notices } = decideRemoveMember({
        actor,
        actorId: req.actorId,
        targetId: req.userId,
        targetRole,
        now: req.now,
      });
      const group = actor.group!;
      const target = (await this.lockUsers(c, [req.userId])).get(req.userId);
      await c.query('DELETE FROM group_members WHERE group_id = $1 AND user_id = $2', [group.id, req.userId]);
      const delivered = await this.storeFanOut(c, notices);
      await this.countStored(c, delivered.length, group.id);
      return {
        group: { id: group.id, name: group.name },
        removed: { id: req.userId, name: target?.name ?? `ID:${req.userId}` },
        left,
        delivered,
      };
    });
  }

  async leaveGroup(req: { groupId: number; userId: number; now: number }): Promise<GroupRemoval> {
    return this.removeGroupMember({
      groupId: req.groupId,
      actorId: req.userId,
      userId: req.userId,
      now: req.now,
    });
  }

  async updateGroup(req: GroupUpdate): Promise<GroupView> {
    return this.tx(async (c) => {
      const actor = await this.membership(c, req.groupId, req.actorId);
      const newOwnerRole =
        req.ownerId !== undefined && actor.group ? await this.role(c, req.groupId, req.ownerId) : null;
      const group = decideUpdateGroup({ actor, actorId: req.actorId, newOwnerId: req.ownerId, newOwnerRole });
      const ownerId = req.ownerId ?? group.ownerId;
      await c.query('UPDATE groups SET name = $1, description = $2, owner_id = $3 WHERE id = $4', [
        req.name ?? group.name,
        req.description === undefined ? group.description : req.description,
        ownerId,
        group.id,
      ]);
      if (ownerId !== group.ownerId) {
        await c.query(
          `UPDATE group_members SET role = CASE WHEN user_id = $2 THEN 'owner' ELSE 'member' END
           WHERE group_id = $1 AND user_id IN ($2, $3)`,
          [group.id, ownerId, group.ownerId],
        );
      }
      return this.groupView(c, req.actorId, group.id);
    });
  }

  async dissolveGroup(req: {
    groupId: number;
    actorId: number;
    now: number;
  }): Promise<{ group: GroupRef; delivered: InboxMessage[] }> {
    return this.tx(async (c) => {
      const actor = await this.membership(c, req.groupId, req.actorId);
      const memberIds = actor.group
        ? (
            await c.query<{ user_id: number }>('SELECT user_id FROM group_members WHERE group_id = $1', [
              req.groupId,
            ])
          ).rows.map((r) => r.user_id)
        : [];
      const notices = decideDissolve({ actor, memberIds, now: req.now });
      const group = actor.group!;
      await this.lockUsers(
        c,
        notices.map((n) => n.toId),
      );
      await c.query('UPDATE groups SET dissolved_at = $1 WHERE id = $2', [req.now, group.id]);
      await c.query('DELETE FROM group_members WHERE group_id = $1', [group.id]);
      const delivered = await this.storeFanOut(c, notices);
      await this.countStored(c, delivered.length, group.id);
      return { group: { id: group.id, name: group.name }, delivered };
    });
  }

  async sendToGroup(
    req: GroupSendRequest,
    opts: SendOptions = {},
    decide: (state: GroupSendState) => GroupSendDecision = decideGroupSend,
  ): Promise<GroupSendResult> {
    return this.tx(async (c) => {
      // The group row, then the sender's and every member's user row in id order: the members cannot
      // change meanwhile, and each recipient's next id is taken under its row lock, so ids stay in
      // commit order per inbox whatever private sends run at the same time.
      const group = await this.lockGroup(c, req.groupId);
      const memberRows =
        group && group.dissolvedAt === null
          ? (
              await c.query<{ user_id: number; role: GroupRole }>(
                'SELECT user_id, role FROM group_members WHERE group_id = $1',
                [group.id],
              )
            ).rows
          : [];
      const users = await this.lockUsers(c, [req.fromId, ...memberRows.map((r) => r.user_id)]);

      const idem = opts.idempotency;
      if (idem) {
        const replay = await replayOfKey<RecordedGroupSend>(c, req.fromId, idem, req.now);
        if (replay) return replay;
      }
      const sender = users.get(req.fromId);
      if (!sender) throw new RelayError('invalid_token');
      const role = memberRows.find((r) => r.user_id === req.fromId)?.role ?? null;
      const members = role
        ? memberRows
            .map((r) => users.get(r.user_id))
            .filter((u): u is UserRecord => u !== undefined)
            .sort((x, y) => x.id - y.id)
            .map((u) => ({ id: u.id, name: u.name }))
        : [];
      const decision = decide({
        sender,
        membership: { group, role },
        members,
        content: req.content,
        attachment: req.attachment,
        mentionIds: req.mentionIds,
        now: req.now,
      });
      const delivered = await this.storeFanOut(c, decision.messages, sender, decision.group);
      const recorded: RecordedGroupSend = {
        group: decision.group,
        recipients: delivered.length,
        preview: opts.previewLimit ? await peek(c, req.fromId, opts.previewLimit) : null,
      };
      if (idem) {
        await c.query(
          `INSERT INTO idempotency_keys (user_id, key, fingerprint, result, created_at)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (user_id, key) DO UPDATE
             SET fingerprint = EXCLUDED.fingerprint, result = EXCLUDED.result, created_at = EXCLUDED.created_at`,
          [req.fromId, idem.key, idem.fingerprint, JSON.stringify(recorded), req.now],
        );
      }
      await this.countStored(c, delivered.length, decision.group.id);
      return { ...recorded, delivered, replayed: false };
    });
  }

  async getStats(): Promise<StatsView> {
    const { rows } = await this.pool.query<StatsView>(
      `SELECT (SELECT count(*) FROM users) AS users,
              (SELECT count(*) FROM friendships WHERE status = 'accepted') AS friendships,
              (SELECT coalesce(sum(total), 0)::bigint FROM message_counter) AS messages`,
    );
    return rows[0]!;
  }
}

/** The recorded result of an earlier request with this Idempotency-Key, if it is to be replayed (replayOf). */
async function replayOfKey<R>(
  c: pg.PoolClient,
  userId: number,
  idem: NonNullable<SendOptions['idempotency']>,
  now: number,
): Promise<ReturnType<typeof replayOf<R>>> {
  const prior = (
    await c.query<{ fingerprint: string; result: string; created_at: number }>(
      'SELECT fingerprint, result, created_at FROM idempotency_keys WHERE user_id = $1 AND key = $2',
      [userId, idem.key],
    )
  ).rows[0];
  return replayOf<R>(prior, idem, now);
}

/** Total and oldest `limit` messages of an inbox, from one snapshot (one statement). */
async function peek(db: Queryable, userId: number, limit: number): Promise<InboxPage> {
  const { rows } = await db.query<MessageRow & { total: number }>(
    `SELECT t.total, p.* FROM (SELECT count(*) AS total FROM messages WHERE to_id = $1) t
     LEFT JOIN LATERAL (${MESSAGE_SELECT} WHERE m.to_id = $1 ORDER BY m.id LIMIT $2) p ON true
     ORDER BY p.id`,
    [userId, limit],
  );
  return {
    total: rows[0]?.total ?? 0,
    messages: rows.filter((r) => r.id !== null).map(toMessage),
  };
}

/** Stores one message in its recipient's inbox with the recipient's next id (one statement). */
async function insertMessage(
  c: pg.PoolClient,
  m: NewMessage,
): Promise<Omit<MessageRow, 'from_name' | 'from_description' | 'group_name'>> {
  const a = m.attachment;
  // As stored (encoded): toMessage() decodes it like a row read back.
  const row = {
    to_id: m.toId,
    id: 0,
    from_id: m.fromId,
    type: m.type,
    content: encodeText(m.content),
    attachment_name: encodeNullable(a?.name ?? null),
    file_id: a ? (a.fileId ?? null) : null,
    file_size: a ? (a.size ?? null) : null,
    file_type: a ? (a.contentType ?? null) : null,
    file_expires_at: a ? (a.expiresAt ?? null) : null,
    created_at: m.createdAt,
    group_id: m.groupId ?? null,
    mentioned: m.mentioned ?? false,
  };
  if (row.group_id !== null) throw new Error('group messages are stored with insertFanOut()');
  const r = await c.query<{ id: number }>(
    `WITH next AS (
       UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id = $1::bigint RETURNING last_msg_id
     )
     INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                           file_type, file_expires_at, created_at)
     SELECT $1::bigint, next.last_msg_id, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::bigint,
            $8::text, $9::bigint, $10::bigint
     FROM next RETURNING id`,
    [
      row.to_id,
      row.from_id,
      row.type,
      row.content,
      row.attachment_name,
      row.file_id,
      row.file_size,
      row.file_type,
      row.file_expires_at,
      row.created_at,
    ],
  );
  const stored = r.rows[0];
  if (!stored) throw new Error(`message for unknown user ${m.toId}`);
  return { ...row, id: stored.id };
}

/**
 * Stores messages that differ only in their recipient (and mention flag) — group copies, a group's
 * notices — with one statement per run of identical messages: the recipients' counters are advanced by
 * one set-based UPDATE … RETURNING and the rows inserted from it. Each recipient appears once per run.
 * The caller must already hold the recipients' user rows (locked in id order), so the UPDATE, whatever
 * order it visits them in, waits for nobody. Returns the stored rows in input order.
 */
async function insertFanOut(
  c: pg.PoolClient,
  messages: readonly NewMessage[],
): Promise<Array<Omit<MessageRow, 'from_name' | 'from_description' | 'group_name'>>> {
  const out: Array<Omit<MessageRow, 'from_name' | 'from_description' | 'group_name'>> = [];
  for (const run of fanOutRuns(messages)) {
    const first = run[0]!;
    const a = first.attachment;
    const shared = {
      from_id: first.fromId,
      type: first.type,
      content: encodeText(first.content),
      attachment_name: encodeNullable(a?.name ?? null),
      file_id: a ? (a.fileId ?? null) : null,
      file_size: a ? (a.size ?? null) : null,
      file_type: a ? (a.contentType ?? null) : null,
      file_expires_at: a ? (a.expiresAt ?? null) : null,
      created_at: first.createdAt,
      group_id: first.groupId ?? null,
    };
    const { rows } = await c.query<{ to_id: number; id: number }>(
      `WITH next AS (
         UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id = ANY($1::bigint[]) RETURNING id, last_msg_id
       )
       INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                             file_type, file_expires_at, created_at, group_id, mentioned)
       SELECT next.id, next.last_msg_id, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::bigint,
              $8::text, $9::bigint, $10::bigint, $11::bigint, next.id = ANY($12::bigint[])
       FROM next RETURNING to_id, id`,
      [
        run.map((m) => m.toId),
        shared.from_id,
        shared.type,
        shared.content,
        shared.attachment_name,
        shared.file_id,
        shared.file_size,
        shared.file_type,
        shared.file_expires_at,
        shared.created_at,
        shared.group_id,
        run.filter((m) => m.mentioned).map((m) => m.toId),
      ],
    );
    const idOf = new Map(rows.map((r) => [r.to_id, r.id]));
    for (const m of run) {
      const id = idOf.get(m.toId);
      if (id === undefined) throw new Error(`message for unknown user ${m.toId}`);
      out.push({ ...shared, to_id: m.toId, id, mentioned: m.mentioned ?? false });
    }
  }
  return out;
}

// ── Cross-instance wake-ups ─────────────────────────────────────────────────────────────────────────

/** NOTIFY payloads must stay under 8000 bytes: user ids are sent in batches of this many characters. */
const MAX_IDS_CHARS = 7000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;
/** A query on the LISTEN connection this often notices a connection that died silently. */
const LISTEN_CHECK_MS = 30_000;

/**
 * LISTEN/NOTIFY as the WakeBus. `announce` sends `<instance id>:<id>,<id>,…` on the channel; a dedicated
 * connection LISTENs and hands other instances' announcements to the subscriber (its own are skipped:
 * the local hub was woken directly). A dropped LISTEN connection is re-opened with backoff; the
 * periodic catch-up of the streams covers whatever was announced meanwhile.
 */
export class PostgresWakeBus implements WakeBus {
  private listener: pg.Client | null = null;
  private onWake: ((userIds: number[]) => void) | null = null;
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private backoffMs = RECONNECT_MIN_MS;
  /** How many times the LISTEN connection was (re)established; for tests and metrics. */
  connects = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly config: pg.ClientConfig,
    readonly channel: string,
    readonly instanceId: string,
    private readonly onError: (err: unknown, what: string) => void,
  ) {}

  async announce(userIds: readonly number[]): Promise<void> {
    if (this.closed || userIds.length === 0) return;
    let batch = '';
    const flush = async () => {
      if (batch)
        await this.pool.query('SELECT pg_notify($1, $2)', [this.channel, `${this.instanceId}:${batch}`]);
      batch = '';
    };
    for (const id of userIds) {
      const s = String(id);
      if (batch.length + s.length + 1 > MAX_IDS_CHARS) await flush();
      batch = batch ? `${batch},${s}` : s;
    }
    await flush();
  }

  async subscribe(onWake: (userIds: number[]) => void): Promise<void> {
    this.onWake = onWake;
    if (this.listener || this.closed) return;
    // The first connection must work: a relay that cannot listen should not start.
    await this.connect();
    this.checkTimer = setInterval(() => void this.check(), LISTEN_CHECK_MS);
    this.checkTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    const l = this.listener;
    this.listener = null;
    await l?.end().catch(() => undefined);
  }

  /** Drops the LISTEN connection as if the network had (tests: the reconnect path). */
  dropListenConnection(): void {
    const l = this.listener;
    if (l) this.lost(l, new Error('dropped on purpose'));
  }

  private handle(msg: pg.Notification): void {
    if (msg.channel !== this.channel || !msg.payload || !this.onWake) return;
    const colon = msg.payload.indexOf(':');
    if (colon < 0 || msg.payload.slice(0, colon) === this.instanceId) return;
    const ids = msg.payload
      .slice(colon + 1)
      .split(',')
      .map(Number)
      .filter((n) => Number.isSafeInteger(n) && n > 0);
    if (ids.length) this.onWake(ids);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client(this.config);
    client.on('notification', (msg) => this.handle(msg));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    this.backoffMs = RECONNECT_MIN_MS;
    this.connects++;
  }

  private lost(client: pg.Client, err: unknown): void {
    if (this.listener !== client) return;
    this.listener = null;
    if (this.closed) return;
    this.onError(err ?? new Error('connection ended'), 'LISTEN connection lost; reconnecting');
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, RECONNECT_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect().catch((err: unknown) => {
        this.onError(err, 'LISTEN reconnect failed');
        this.scheduleReconnect();
      });
    }, delay);
    this.retryTimer.unref();
  }

  private async check(): Promise<void> {
    const l = this.listener;
    if (!l) return;
    await l.query('SELECT 1').catch((err: unknown) => this.lost(l, err));
  }
}
