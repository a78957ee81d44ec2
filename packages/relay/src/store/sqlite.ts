// The embedded SQLite backend (better-sqlite3). Every statement is prepared once at open; every operation
// that reads then writes runs in one IMMEDIATE transaction, so it takes the write lock up front and other
// processes wait (busy_timeout) instead of failing a lock upgrade half-way. better-sqlite3 is synchronous:
// within a process each transaction runs to completion before any other starts, which is what makes
// concurrent send()/takeInbox() calls safe; across processes SQLite's single writer does the same.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
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
import { CommitBatcher } from './sqlite-batch.ts';
import { SAFETY_NET_PAGES, startCheckpointer, type Checkpointer } from './sqlite-checkpoint.ts';
import { SQLITE_MIGRATIONS, type Migration } from './sqlite-migrations.ts';
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
} from './types.ts';

type DB = Database.Database;

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

function toFile(row: FileRow): FileRecord {
  return {
    id: row.id,
    senderId: row.sender_id,
    recipientId: row.recipient_id,
    groupId: row.group_id,
    name: row.name,
    contentType: row.content_type,
    size: row.size,
    sha256: row.sha256,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    downloadedAt: row.downloaded_at,
  };
}

/** Bytes per stored chunk: small enough that one chunk never blocks the event loop for long. */
const CHUNK_BYTES = 256 * 1024;

const BUSY_TIMEOUT_MS = 5000;

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
  /** 0/1 */
  mentioned: number;
  /** The sender's current profile (LEFT JOIN users); null for system notices or a missing sender. */
  from_name: string | null;
  from_description: string | null;
  /** The group's current name (LEFT JOIN groups); null outside groups. */
  group_name: string | null;
}

/** A group as a member sees it (groupViews). */

/** Never select homepage (up to 512 KB) or token_hash with a user record. */
const MESSAGE_SELECT = `
  SELECT m.to_id, m.id, m.from_id, m.type, m.content, m.attachment_name, m.file_id, m.file_size,
         m.file_type, m.file_expires_at, m.created_at, m.group_id, m.mentioned,
         u.name AS from_name, u.description AS from_description, g.name AS group_name
  FROM messages m LEFT JOIN users u ON u.id = m.from_id LEFT JOIN groups g ON g.id = m.group_id`;
/** Groups as their member `gm.user_id` sees them. */
const GROUP_VIEW_SELECT = `
  SELECT g.id, g.name, g.description, g.owner_id, o.name AS owner_name, g.created_at, gm.role,
         (SELECT count(*) FROM group_members c WHERE c.group_id = g.id) AS member_count
  FROM group_members gm JOIN groups g ON g.id = gm.group_id JOIN users o ON o.id = g.owner_id`;

function toMessage(row: MessageRow): InboxMessage {
  const attachment: AttachmentView | null =
    row.attachment_name === null
      ? null
      : {
          name: row.attachment_name,
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
    content: row.content,
    attachment,
    group: row.group_id === null ? null : { id: row.group_id, name: row.group_name ?? '' },
    mentioned: row.mentioned === 1,
  };
}

/** A LIKE pattern matching `keyword` literally anywhere (`\` is the escape character). */
function containsPattern(keyword: string): string {
  return `%${keyword.toLowerCase().replace(/[\\%_]/g, '\\$&')}%`;
}

/**
 * Applies the missing migrations in one IMMEDIATE transaction (two processes opening a fresh file at
 * once cannot both apply them) and refuses a database written by a newer relay.
 */
export function migrateSqlite(db: DB, migrations: readonly Migration[] = SQLITE_MIGRATIONS): void {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version <= migrations[i - 1]!.version) {
      throw new Error(`SQLite migrations out of order at version ${migrations[i]!.version}`);
    }
  }
  const supported = migrations.at(-1)?.version ?? 0;
  db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at INTEGER NOT NULL
    )`);
    const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
    const current = row.v ?? 0;
    if (current > supported) {
      throw new Error(
        `database schema version ${current} is newer than this relay supports (${supported}); upgrade the relay`,
      );
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of migrations) {
      if (m.version <= current) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, Date.now());
    }
  }).immediate();
}

/** What an idempotency record keeps: enough to answer a retry exactly as the first time. */
type RecordedSend = Pick<SendResult, 'outcome' | 'messageId' | 'preview'>;
type RecordedGroupSend = Pick<GroupSendResult, 'group' | 'recipients' | 'preview'>;

function prepareStatements(db: DB) {
  return {
    insertUser: db.prepare<[string, string, string | null, string, string, number], UserRow>(
      `INSERT INTO users (name, name_key, description, token_hash, status, created_at)
       VALUES (?, ?, ?, ?, ?, ?) RETURNING ${USER_COLUMNS}`,
    ),
    countUsers: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM users'),
    getUser: db.prepare<[number], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = ?`),
    userByToken: db.prepare<[string], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE token_hash = ?`),
    setStatus: db.prepare<[string, number], UserRow>(
      `UPDATE users SET status = ? WHERE id = ? RETURNING ${USER_COLUMNS}`,
    ),
    // Last-seen never goes backwards, whatever order batched entries arrive in.
    touch: db.prepare<[number, number, number]>(
      'UPDATE users SET last_seen_at = ? WHERE id = ? AND (last_seen_at IS NULL OR last_seen_at < ?)',
    ),
    topActive: db.prepare<[number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL
       ORDER BY last_seen_at DESC NULLS LAST, id ASC LIMIT ?`,
    ),
    discoverCount: db.prepare<[number], { n: number }>(
      `SELECT count(*) AS n FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ?`,
    ),
    discover: db.prepare<[number, number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ? ORDER BY random() LIMIT ?`,
    ),
    // fold(): JavaScript's Unicode lower-casing (SQLite's own LIKE folds ASCII only).
    discoverKeywordCount: db.prepare<[number, string, string], { n: number }>(
      `SELECT count(*) AS n FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ?
       AND (fold(name) LIKE ? ESCAPE '\\' OR fold(description) LIKE ? ESCAPE '\\')`,
    ),
    discoverKeyword: db.prepare<[number, string, string, number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE status = 'open' AND disabled_at IS NULL AND id <> ?
       AND (fold(name) LIKE ? ESCAPE '\\' OR fold(description) LIKE ? ESCAPE '\\')
       ORDER BY random() LIMIT ?`,
    ),
    listUsersCount: db.prepare<[string | null, string | null], { n: number }>(
      `SELECT count(*) AS n FROM users WHERE ? IS NULL OR fold(name) LIKE ? ESCAPE '\\'`,
    ),
    listUsers: db.prepare<[string | null, string | null, number, number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE ? IS NULL OR fold(name) LIKE ? ESCAPE '\\'
       ORDER BY id LIMIT ? OFFSET ?`,
    ),
    setDisabled: db.prepare<[number | null, number], UserRow>(
      `UPDATE users SET disabled_at = ? WHERE id = ? RETURNING ${USER_COLUMNS}`,
    ),
    setTokenHash: db.prepare<[string, number]>('UPDATE users SET token_hash = ? WHERE id = ?'),
    setHomepage: db.prepare<[string, number]>('UPDATE users SET homepage = ? WHERE id = ?'),
    getHomepage: db.prepare<[number], { homepage: string | null }>('SELECT homepage FROM users WHERE id = ?'),

    getFriendship: db.prepare<[number, number], FriendshipRow>(
      'SELECT * FROM friendships WHERE user_a = ? AND user_b = ?',
    ),
    insertFriendship: db.prepare<[number, number, number, number, number]>(
      `INSERT INTO friendships (user_a, user_b, initiated_by, status, blocked_by, created_at, updated_at)
       VALUES (?, ?, ?, 'pending', NULL, ?, ?)`,
    ),
    acceptFriendship: db.prepare<[number, number, number]>(
      `UPDATE friendships SET status = 'accepted', updated_at = ? WHERE user_a = ? AND user_b = ?`,
    ),
    // In row creation order (the rowid grows with each insert).
    listFriends: db.prepare<[number, number, number], UserRow & { since: number }>(
      `SELECT u.id, u.name, u.name_key, u.description, u.status, u.created_at, u.last_seen_at,
              f.updated_at AS since
       FROM friendships f
       JOIN users u ON u.id = CASE WHEN f.user_a = ? THEN f.user_b ELSE f.user_a END
       WHERE (f.user_a = ? OR f.user_b = ?) AND f.status = 'accepted'
       ORDER BY f.rowid`,
    ),
    block: db.prepare<[number, number, number, number]>(
      `UPDATE friendships SET status = 'blocked', blocked_by = ?, updated_at = ?
       WHERE user_a = ? AND user_b = ? AND status = 'accepted'`,
    ),
    purgeFrom: db.prepare<[number, number]>('DELETE FROM messages WHERE to_id = ? AND from_id = ?'),
    unblock: db.prepare<[number, number, number]>(
      `DELETE FROM friendships WHERE user_a = ? AND user_b = ? AND status = 'blocked' AND blocked_by = ?`,
    ),

    nextMessageId: db.prepare<[number], { id: number }>(
      'UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id = ? RETURNING last_msg_id AS id',
    ),
    insertMessage: db.prepare<
      [
        number,
        number,
        number | null,
        string,
        string,
        string | null,
        string | null,
        number | null,
        string | null,
        number | null,
        number,
        number | null,
        number,
      ]
    >(
      `INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                             file_type, file_expires_at, created_at, group_id, mentioned)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    addTotal: db.prepare<[number]>(`UPDATE meta SET value = value + ? WHERE key = 'total_messages'`),
    // Fan-out (fanOutRuns): every recipient's next id in one statement, then every copy in one more.
    advanceIds: db.prepare<[string], { to_id: number; id: number }>(
      `UPDATE users SET last_msg_id = last_msg_id + 1 WHERE id IN (SELECT value FROM json_each(?))
       RETURNING id AS to_id, last_msg_id AS id`,
    ),
    insertCopies: db.prepare<
      [
        number | null,
        string,
        string,
        string | null,
        string | null,
        number | null,
        string | null,
        number | null,
        number,
        number | null,
        string,
      ]
    >(
      `INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                             file_type, file_expires_at, created_at, group_id, mentioned)
       SELECT value ->> 0, value ->> 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, value ->> 2 FROM json_each(?)`,
    ),

    countInbox: db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM messages WHERE to_id = ?'),
    countInboxFrom: db.prepare<[number, number], { n: number }>(
      'SELECT count(*) AS n FROM messages WHERE to_id = ? AND from_id = ?',
    ),
    oldest: db.prepare<[number, number], MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = ? ORDER BY m.id LIMIT ?`,
    ),
    oldestFrom: db.prepare<[number, number, number], MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = ? AND m.from_id = ? ORDER BY m.id LIMIT ?`,
    ),
    after: db.prepare<[number, number, number], MessageRow>(
      `${MESSAGE_SELECT} WHERE m.to_id = ? AND m.id > ? ORDER BY m.id LIMIT ?`,
    ),
    deleteUpTo: db.prepare<[number, number]>('DELETE FROM messages WHERE to_id = ? AND id <= ?'),
    deleteFromUpTo: db.prepare<[number, number, number]>(
      'DELETE FROM messages WHERE to_id = ? AND from_id = ? AND id <= ?',
    ),
    deleteIds: db.prepare<[number, string]>(
      'DELETE FROM messages WHERE to_id = ? AND id IN (SELECT value FROM json_each(?))',
    ),
    lastMessageId: db.prepare<[number], { id: number }>('SELECT last_msg_id AS id FROM users WHERE id = ?'),
    lastMessageIds: db.prepare<[string], { id: number; last: number }>(
      'SELECT id, last_msg_id AS last FROM users WHERE id IN (SELECT value FROM json_each(?))',
    ),
    expire: db.prepare<[number]>('DELETE FROM messages WHERE created_at < ?'),

    getIdem: db.prepare<[number, string], { fingerprint: string; result: string; created_at: number }>(
      'SELECT fingerprint, result, created_at FROM idempotency_keys WHERE user_id = ? AND key = ?',
    ),
    putIdem: db.prepare<[number, string, string, string, number]>(
      `INSERT OR REPLACE INTO idempotency_keys (user_id, key, fingerprint, result, created_at)
       VALUES (?, ?, ?, ?, ?)`,
    ),
    pruneIdem: db.prepare<[number]>('DELETE FROM idempotency_keys WHERE created_at < ?'),

    insertFile: db.prepare<
      [string, number, number, string, string, number, string, number, number, number | null]
    >(
      `INSERT INTO files (id, sender_id, recipient_id, name, content_type, size, sha256, created_at, expires_at,
                          group_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    insertChunk: db.prepare<[string, number, Buffer]>(
      'INSERT INTO file_chunks (file_id, seq, data) VALUES (?, ?, ?)',
    ),
    completeFile: db.prepare<[string]>('UPDATE files SET complete = 1 WHERE id = ?'),
    getFile: db.prepare<[string], FileRow>('SELECT * FROM files WHERE id = ? AND complete = 1'),
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

    insertGroup: db.prepare<[string, string | null, number, number], GroupRow>(
      `INSERT INTO groups (name, description, owner_id, created_at) VALUES (?, ?, ?, ?) RETURNING *`,
    ),
    getGroup: db.prepare<[number], GroupRow>('SELECT * FROM groups WHERE id = ?'),
    updateGroup: db.prepare<[string, string | null, number, number]>(
      'UPDATE groups SET name = ?, description = ?, owner_id = ? WHERE id = ?',
    ),
    dissolveGroup: db.prepare<[number, number]>('UPDATE groups SET dissolved_at = ? WHERE id = ?'),
    memberRole: db.prepare<[number, number], { role: GroupRole }>(
      'SELECT role FROM group_members WHERE group_id = ? AND user_id = ?',
    ),
    insertMember: db.prepare<[number, number, string, number]>(
      'INSERT INTO group_members (group_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)',
    ),
    setRole: db.prepare<[string, number, number]>(
      'UPDATE group_members SET role = ? WHERE group_id = ? AND user_id = ?',
    ),
    deleteMember: db.prepare<[number, number]>(
      'DELETE FROM group_members WHERE group_id = ? AND user_id = ?',
    ),
    deleteMembers: db.prepare<[number]>('DELETE FROM group_members WHERE group_id = ?'),
    countMembers: db.prepare<[number], { n: number }>(
      'SELECT count(*) AS n FROM group_members WHERE group_id = ?',
    ),
    countGroupsOf: db.prepare<[number], { n: number }>(
      'SELECT count(*) AS n FROM group_members WHERE user_id = ?',
    ),
    // The owner first, then by joining time.
    members: db.prepare<[number], GroupMemberRow>(
      `SELECT u.id, u.name, u.description, gm.role, gm.joined_at
       FROM group_members gm JOIN users u ON u.id = gm.user_id
       WHERE gm.group_id = ? ORDER BY gm.role = 'owner' DESC, gm.joined_at, u.id`,
    ),
    groupsOf: db.prepare<[number], GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = ? AND g.dissolved_at IS NULL ORDER BY g.id`,
    ),
    groupOf: db.prepare<[number, number], GroupViewRow>(
      `${GROUP_VIEW_SELECT} WHERE gm.user_id = ? AND g.id = ? AND g.dissolved_at IS NULL`,
    ),

    ping: db.prepare<[], { one: number }>('SELECT 1 AS one'),
    stats: db.prepare<[], { users: number; friendships: number; messages: number }>(
      `SELECT (SELECT count(*) FROM users) AS users,
              (SELECT count(*) FROM friendships WHERE status = 'accepted') AS friendships,
              (SELECT value FROM meta WHERE key = 'total_messages') AS messages`,
    ),
  };
}

function isUniqueViolation(err: unknown, column: string): boolean {
  return (
    err instanceof Database.SqliteError &&
    err.code === 'SQLITE_CONSTRAINT_UNIQUE' &&
    err.message.includes(column)
  );
}

export async function openSqliteStore(opts: {
  file: string;
  /** NORMAL (default): a commit survives a process crash; FULL: also a power loss (SQLITE_SYNCHRONOUS). */
  synchronous?: 'NORMAL' | 'FULL';
}): Promise<Store> {
  const inMemory = opts.file === ':memory:' || opts.file === '';
  if (!inMemory) mkdirSync(dirname(opts.file), { recursive: true });
  const db = new Database(opts.file, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('foreign_keys = ON');
    db.function('fold', { deterministic: true }, (s: unknown) =>
      typeof s === 'string' ? s.toLowerCase() : null,
    );
    migrateSqlite(db);
    if (inMemory) return new SqliteStore(db, null);
    db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
    return new SqliteStore(db, startCheckpointer(opts.file));
  } catch (err) {
    db.close();
    throw err;
  }
}

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly s: ReturnType<typeof prepareStatements>;
  private readonly deleteFileTx: (id: string) => void;

  private readonly sendTx: (
    req: SendRequest,
    decide: (state: SendState) => SendDecision,
    opts: SendOptions,
  ) => SendResult;
  private readonly takeTx: (userId: number, limit: number, fromId: number | null) => InboxPage;
  private readonly peekTx: (userId: number, limit: number) => InboxPage;
  private readonly blockTx: (by: number, target: number, now: number) => boolean;
  private readonly touchTx: (entries: ReadonlyArray<readonly [number, number]>) => void;
  private readonly discoverTx: (q: DiscoverQuery) => { total: number; users: UserRecord[] };
  /** Runs a closure in one IMMEDIATE transaction (the group operations). */
  private readonly run: <T>(fn: () => T) => T;
  private readonly peek: (userId: number, limit: number) => InboxPage;

  private readonly batch: CommitBatcher;

  constructor(
    private readonly db: DB,
    private readonly checkpointer: Checkpointer | null,
  ) {
    const s = (this.s = prepareStatements(db));
    // Messages stored by the batch's sends, added to the lifetime count once per batch (the meta row
    // would otherwise be rewritten by every send). A send counts itself only after its last statement,
    // so a send rolled back to its savepoint is not counted; a failed COMMIT discards the batch and
    // its count together.
    let batchTotal = 0;
    this.batch = new CommitBatcher(db, () => {
      if (batchTotal > 0) s.addTotal.run(batchTotal);
      batchTotal = 0;
    });
    this.deleteFileTx = db.transaction((id: string) => {
      s.deleteChunks.run(id);
      s.deleteFile.run(id);
    });

    const getUser = (id: number): UserRecord | null => {
      const row = s.getUser.get(id);
      return row ? toUser(row) : null;
    };
    const getFriendship = (a: number, b: number): FriendshipRecord | null => {
      const row = s.getFriendship.get(...pair(a, b));
      return row ? toFriendship(row) : null;
    };

    const peek = (userId: number, limit: number): InboxPage => {
      const total = s.countInbox.get(userId)!.n;
      // Most senders' inboxes are empty: no second read then.
      return { total, messages: total > 0 ? s.oldest.all(userId, limit).map(toMessage) : [] };
    };

    this.sendTx = immediate(
      db,
      (req: SendRequest, decide: (state: SendState) => SendDecision, opts: SendOptions) => {
        const idem = opts.idempotency;
        if (idem) {
          const prior = s.getIdem.get(req.fromId, idem.key);
          const replay = replayOf<RecordedSend>(prior, idem, req.now);
          if (replay) return replay;
        }
        const sender = req.sender?.id === req.fromId ? req.sender : getUser(req.fromId);
        // The caller authenticated the sender; a missing row means its account is gone.
        if (!sender) throw new RelayError('invalid_token');
        const recipient = getUser(req.toId);
        const friendship =
          recipient && recipient.id !== sender.id ? getFriendship(sender.id, recipient.id) : null;
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
            s.insertFriendship.run(a, b, change.initiatedBy, req.now, req.now);
          } else if (s.acceptFriendship.run(req.now, a, b).changes !== 1) {
            throw new Error('send decision accepts a friendship that does not exist');
          }
        }

        const profiles = new Map<number, UserRecord>([[sender.id, sender]]);
        if (recipient) profiles.set(recipient.id, recipient);
        const delivered = decision.messages.map((m) => {
          const stored = insertMessage(s, m);
          const from = m.fromId === null ? null : (profiles.get(m.fromId) ?? getUser(m.fromId));
          return toMessage({
            ...stored,
            from_name: from?.name ?? null,
            from_description: from?.description ?? null,
            group_name: null,
          });
        });
        const recorded: RecordedSend = {
          outcome: decision.outcome,
          messageId: delivered[0]?.id ?? 0,
          preview: opts.previewLimit ? peek(req.fromId, opts.previewLimit) : null,
        };
        if (idem) s.putIdem.run(req.fromId, idem.key, idem.fingerprint, JSON.stringify(recorded), req.now);
        batchTotal += delivered.length; // last: nothing below can throw
        return { ...recorded, delivered, replayed: false };
      },
    );

    this.takeTx = immediate(db, (userId: number, limit: number, fromId: number | null) => {
      const total = (fromId === null ? s.countInbox.get(userId) : s.countInboxFrom.get(userId, fromId))!.n;
      const rows = fromId === null ? s.oldest.all(userId, limit) : s.oldestFrom.all(userId, fromId, limit);
      const last = rows.at(-1);
      // The rows are the oldest matching ones, so "matching and id ≤ the last one" is exactly them.
      if (last) {
        if (fromId === null) s.deleteUpTo.run(userId, last.id);
        else s.deleteFromUpTo.run(userId, fromId, last.id);
      }
      return { total, messages: rows.map(toMessage) };
    });

    this.peekTx = db.transaction(peek);
    this.peek = peek;
    const runTx = db.transaction((fn: () => unknown) => fn());
    this.run = <T>(fn: () => T): T => runTx.immediate(fn) as T;

    this.blockTx = immediate(db, (by: number, target: number, now: number) => {
      const [a, b] = pair(by, target);
      if (s.block.run(by, now, a, b).changes === 0) return false;
      s.purgeFrom.run(by, target);
      return true;
    });

    this.touchTx = immediate(db, (entries: ReadonlyArray<readonly [number, number]>) => {
      for (const [id, at] of entries) s.touch.run(at, id, at);
    });

    this.discoverTx = db.transaction((q: DiscoverQuery) => {
      if (q.keyword === null || q.keyword === '') {
        return {
          total: s.discoverCount.get(q.excludeId)!.n,
          users: s.discover.all(q.excludeId, q.limit).map(toUser),
        };
      }
      const p = containsPattern(q.keyword);
      return {
        total: s.discoverKeywordCount.get(q.excludeId, p, p)!.n,
        users: s.discoverKeyword.all(q.excludeId, p, p, q.limit).map(toUser),
      };
    });
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    if (this.db.open) this.db.close();
  }

  // Users

  async createUser(user: NewUser): Promise<UserRecord> {
    try {
      const row = this.s.insertUser.get(
        user.name,
        user.nameKey,
        user.description,
        user.tokenHash,
        user.status,
        user.createdAt,
      );
      return toUser(row!);
    } catch (err) {
      if (isUniqueViolation(err, 'users.name_key')) throw new RelayError('name_taken');
      throw err;
    }
  }

  async countUsers(): Promise<number> {
    return this.s.countUsers.get()!.n;
  }

  async getUser(id: number): Promise<UserRecord | null> {
    const row = this.s.getUser.get(id);
    return row ? toUser(row) : null;
  }

  async findUserByTokenHash(tokenHash: string): Promise<UserRecord | null> {
    const row = this.s.userByToken.get(tokenHash);
    return row ? toUser(row) : null;
  }

  async setStatus(id: number, status: UserRecord['status']): Promise<UserRecord | null> {
    const row = this.s.setStatus.get(status, id);
    return row ? toUser(row) : null;
  }

  async listUsers(q: {
    query: string | null;
    limit: number;
    offset: number;
  }): Promise<{ total: number; users: UserRecord[] }> {
    const pattern = q.query ? containsPattern(q.query) : null;
    return {
      total: this.s.listUsersCount.get(pattern, pattern)!.n,
      users: this.s.listUsers.all(pattern, pattern, q.limit, q.offset).map(toUser),
    };
  }

  async setUserDisabled(id: number, disabledAt: number | null): Promise<UserRecord | null> {
    const row = this.s.setDisabled.get(disabledAt, id);
    return row ? toUser(row) : null;
  }

  async backup(file: string): Promise<void> {
    // SQLite's online backup API: a consistent snapshot, copied in steps while the relay keeps serving.
    await this.db.backup(file);
  }

  async advanceMessageIds(by: number): Promise<{ users: number; by: number }> {
    if (!Number.isSafeInteger(by) || by < 1) throw new RangeError(`by must be a positive integer, got ${by}`);
    return this.run(() => {
      const { max } = this.db.prepare('SELECT coalesce(max(last_msg_id), 0) AS max FROM users').get() as {
        max: number;
      };
      if (max + by > Number.MAX_SAFE_INTEGER) {
        throw new RangeError(`advancing by ${by} would take message ids past ${Number.MAX_SAFE_INTEGER}`);
      }
      const users = this.db.prepare('UPDATE users SET last_msg_id = last_msg_id + ?').run(by).changes;
      // When ids were last advanced, for an operator inspecting the file (PostgreSQL has no meta table).
      this.db
        .prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('ids_advanced_at', ?)`)
        .run(Date.now());
      return { users, by };
    });
  }

  async setTokenHash(id: number, tokenHash: string): Promise<boolean> {
    return this.s.setTokenHash.run(tokenHash, id).changes === 1;
  }

  async touchLastSeen(entries: ReadonlyArray<readonly [id: number, at: number]>): Promise<void> {
    if (entries.length > 0) this.touchTx(entries);
  }

  async topActiveUsers(limit: number): Promise<UserRecord[]> {
    return this.s.topActive.all(limit).map(toUser);
  }

  async discoverUsers(q: DiscoverQuery): Promise<{ total: number; users: UserRecord[] }> {
    return this.discoverTx(q);
  }

  async setHomepage(id: number, html: string): Promise<void> {
    this.s.setHomepage.run(html, id);
  }

  async getHomepage(id: number): Promise<string | null | undefined> {
    const row = this.s.getHomepage.get(id);
    return row === undefined ? undefined : row.homepage;
  }

  // Friendships

  async getFriendship(a: number, b: number): Promise<FriendshipRecord | null> {
    const row = this.s.getFriendship.get(...pair(a, b));
    return row ? toFriendship(row) : null;
  }

  async listFriends(userId: number): Promise<FriendView[]> {
    return this.s.listFriends
      .all(userId, userId, userId)
      .map((row) => ({ user: toPublicUser(row), since: row.since }));
  }

  async send(
    req: SendRequest,
    decide: (state: SendState) => SendDecision,
    opts: SendOptions = {},
  ): Promise<SendResult> {
    return this.batch.submit(() => this.sendTx(req, decide, opts));
  }

  async pruneIdempotency(before: number): Promise<number> {
    return this.s.pruneIdem.run(before).changes;
  }

  async block(by: number, target: number, now: number): Promise<boolean> {
    return this.blockTx(by, target, now);
  }

  async unblock(by: number, target: number): Promise<boolean> {
    const [a, b] = pair(by, target);
    return this.s.unblock.run(a, b, by).changes > 0;
  }

  // Inbox

  async takeInbox(userId: number, opts: { limit: number; fromId: number | null }): Promise<InboxPage> {
    return this.takeTx(userId, opts.limit, opts.fromId);
  }

  async peekInbox(userId: number, limit: number): Promise<InboxPage> {
    return this.peekTx(userId, limit);
  }

  async listInbox(userId: number, afterId: number, limit: number): Promise<InboxMessage[]> {
    return this.s.after.all(userId, afterId, limit).map(toMessage);
  }

  async ackInbox(userId: number, upTo: number): Promise<number> {
    return this.s.deleteUpTo.run(userId, upTo).changes;
  }

  async deleteMessages(userId: number, ids: readonly number[]): Promise<void> {
    if (ids.length > 0) this.s.deleteIds.run(userId, JSON.stringify(ids));
  }

  async lastMessageId(userId: number): Promise<number> {
    return this.s.lastMessageId.get(userId)?.id ?? 0;
  }

  // Files

  async putFile(file: NewFile, chunks: AsyncIterable<Buffer>): Promise<void> {
    const s = this.s;
    // The record goes first so the chunks' foreign key holds; a failure part-way removes both.
    s.insertFile.run(
      file.id,
      file.senderId,
      file.recipientId,
      file.name,
      file.contentType,
      file.size,
      file.sha256,
      file.createdAt,
      file.expiresAt,
      file.groupId ?? null,
    );
    try {
      let seq = 0;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = () => {
        if (!pendingBytes) return;
        s.insertChunk.run(file.id, seq++, Buffer.concat(pending, pendingBytes));
        pending = [];
        pendingBytes = 0;
      };
      for await (const chunk of chunks) {
        let c = chunk;
        while (c.length) {
          const take = Math.min(c.length, CHUNK_BYTES - pendingBytes);
          pending.push(c.subarray(0, take));
          pendingBytes += take;
          c = c.subarray(take);
          if (pendingBytes === CHUNK_BYTES) flush();
        }
      }
      flush();
      s.completeFile.run(file.id);
    } catch (err) {
      this.deleteFileTx(file.id);
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
    this.deleteFileTx(id);
  }

  async storedFileBytes(senderId: number): Promise<number> {
    return this.s.fileBytes.get(senderId)!.n;
  }

  async collectFile(id: string): Promise<boolean> {
    if (!this.s.collectableFile.get(id)) return false;
    this.deleteFileTx(id);
    return true;
  }

  async sweepFiles(now: number): Promise<number> {
    // An upload still incomplete after an hour was interrupted (its process died).
    const ids = this.s.sweepableFiles.all(now, now - 3_600_000).map((r) => r.id);
    for (const id of ids) this.deleteFileTx(id);
    return ids.length;
  }

  async lastMessageIds(userIds: readonly number[]): Promise<Map<number, number>> {
    const rows = this.s.lastMessageIds.all(JSON.stringify(userIds));
    return new Map(rows.map((r) => [r.id, r.last]));
  }

  async ping(): Promise<void> {
    this.s.ping.get();
  }

  async expireMessages(before: number): Promise<number> {
    return this.s.expire.run(before).changes;
  }

  // Groups: every change runs in one IMMEDIATE transaction; the rules are domain/groups.ts.

  private user(id: number): UserRecord | null {
    const row = this.s.getUser.get(id);
    return row ? toUser(row) : null;
  }

  private membership(groupId: number, userId: number): Membership {
    const row = this.s.getGroup.get(groupId);
    return {
      group: row ? toGroup(row) : null,
      role: row ? (this.s.memberRole.get(groupId, userId)?.role ?? null) : null,
    };
  }

  /** What decideAddMembers looks at for each id (groupId null: a group being created). */
  private candidates(ownerId: number, groupId: number | null, userIds: readonly number[]): Candidate[] {
    return userIds.map((id) => {
      const user = this.user(id);
      const f = user && id !== ownerId ? this.s.getFriendship.get(...pair(ownerId, id)) : undefined;
      return {
        id,
        user,
        friendship: f ? toFriendship(f) : null,
        isMember: id === ownerId || (groupId !== null && this.s.memberRole.get(groupId, id) !== undefined),
        groupCount: user ? this.s.countGroupsOf.get(id)!.n : 0,
      };
    });
  }

  /** Stores messages (notices, group copies) with their recipients' next ids; adds them to the total. */
  private storeMessages(
    messages: readonly NewMessage[],
    from: UserRecord | null = null,
    group: GroupRef | null = null,
  ): InboxMessage[] {
    const joined = {
      from_name: from?.name ?? null,
      from_description: from?.description ?? null,
      group_name: group?.name ?? null,
    };
    const delivered: InboxMessage[] = [];
    for (const run of fanOutRuns(messages)) {
      if (run.length === 1) {
        delivered.push(toMessage({ ...insertMessage(this.s, run[0]!), ...joined }));
        continue;
      }
      const next = new Map(
        this.s.advanceIds.all(JSON.stringify(run.map((m) => m.toId))).map((r) => [r.to_id, r.id]),
      );
      const first = run[0]!;
      const a = first.attachment;
      const shared = {
        from_id: first.fromId,
        type: first.type,
        content: first.content,
        attachment_name: a?.name ?? null,
        file_id: a ? (a.fileId ?? null) : null,
        file_size: a ? (a.size ?? null) : null,
        file_type: a ? (a.contentType ?? null) : null,
        file_expires_at: a ? (a.expiresAt ?? null) : null,
        created_at: first.createdAt,
        group_id: first.groupId ?? null,
      };
      const rows = run.map((m) => {
        const id = next.get(m.toId);
        if (id === undefined) throw new Error(`message for unknown user ${m.toId}`);
        return { ...shared, to_id: m.toId, id, mentioned: m.mentioned ? 1 : 0 };
      });
      this.s.insertCopies.run(
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
        JSON.stringify(rows.map((r) => [r.to_id, r.id, r.mentioned])),
      );
      for (const r of rows) delivered.push(toMessage({ ...r, ...joined }));
    }
    if (delivered.length > 0) this.s.addTotal.run(delivered.length);
    return delivered;
  }

  private groupView(viewerId: number, groupId: number): GroupView {
    const row = this.s.groupOf.get(viewerId, groupId);
    if (!row) throw new RelayError('group_not_found');
    return toGroupView(row);
  }

  private addMembers(
    groupId: number,
    ids: readonly number[],
    now: number,
  ): Array<{ id: number; name: string }> {
    return ids.map((id) => {
      this.s.insertMember.run(groupId, id, 'member', now);
      return { id, name: this.user(id)?.name ?? '' };
    });
  }

  async createGroup(req: NewGroupRequest): Promise<GroupChange> {
    return this.run(() => {
      const owner = this.user(req.ownerId);
      if (!owner) throw new RelayError('invalid_token');
      const ids = req.memberIds.filter((id) => id !== owner.id);
      const addIds = decideCreateGroup({
        ownerGroupCount: this.s.countGroupsOf.get(owner.id)!.n,
        candidates: this.candidates(owner.id, null, ids),
        limits: req.limits,
      });
      const g = this.s.insertGroup.get(req.name, req.description, owner.id, req.now)!;
      this.s.insertMember.run(g.id, owner.id, 'owner', req.now);
      const added = this.addMembers(g.id, addIds, req.now);
      const delivered = this.storeMessages(addedNotices(owner, g, addIds, req.now));
      return { group: this.groupView(owner.id, g.id), added, delivered };
    });
  }

  async listGroups(userId: number): Promise<GroupView[]> {
    return this.s.groupsOf.all(userId).map(toGroupView);
  }

  async getGroup(
    groupId: number,
    viewerId: number,
  ): Promise<{ group: GroupView; members: GroupMemberView[] } | null> {
    return this.run(() => {
      const row = this.s.groupOf.get(viewerId, groupId);
      if (!row) return null;
      return { group: toGroupView(row), members: this.s.members.all(groupId).map(toGroupMember) };
    });
  }

  async isGroupMember(groupId: number, userId: number): Promise<boolean> {
    return this.s.memberRole.get(groupId, userId) !== undefined;
  }

  async addGroupMembers(req: {
    groupId: number;
    actorId: number;
    userIds: readonly number[];
    now: number;
    limits: NewGroupRequest['limits'];
  }): Promise<GroupChange> {
    return this.run(() => {
      const group = decideOwnerAction(this.membership(req.groupId, req.actorId));
      const owner = this.user(group.ownerId)!;
      const addIds = decideAddMembers({
        memberCount: this.s.countMembers.get(group.id)!.n,
        candidates: this.candidates(owner.id, group.id, req.userIds),
        limits: req.limits,
      });
      const added = this.addMembers(group.id, addIds, req.now);
      const delivered = this.storeMessages(addedNotices(owner, group, addIds, req.now));
      return { group: this.groupView(req.actorId, group.id), added, delivered };
    });
  }

  async removeGroupMember(req: {
    groupId: number;
    actorId: number;
    userId: number;
    now: number;
  }): Promise<GroupRemoval> {
    return this.run(() => {
      const actor = this.membership(req.groupId, req.actorId);
      const targetRole = actor.group ? (this.s.memberRole.get(req.groupId, req.userId)?.role ?? null) : null;
      const { left, notices } = decideRemoveMember({
        actor,
        actorId: req.actorId,
        targetId: req.userId,
        targetRole,
        now: req.now,
      });
      this.s.deleteMember.run(req.groupId, req.userId);
      const group = actor.group!;
      return {
        group: { id: group.id, name: group.name },
        removed: { id: req.userId, name: this.user(req.userId)?.name ?? `ID:${req.userId}` },
        left,
        delivered: this.storeMessages(notices),
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
    return this.run(() => {
      const actor = this.membership(req.groupId, req.actorId);
      const newOwnerRole =
        req.ownerId !== undefined && actor.group
          ? (this.s.memberRole.get(req.groupId, req.ownerId)?.role ?? null)
          : null;
      const group = decideUpdateGroup({ actor, actorId: req.actorId, newOwnerId: req.ownerId, newOwnerRole });
      const ownerId = req.ownerId ?? group.ownerId;
      this.s.updateGroup.run(
        req.name ?? group.name,
        req.description === undefined ? group.description : req.description,
        ownerId,
        group.id,
      );
      if (ownerId !== group.ownerId) {
        this.s.setRole.run('member', group.id, group.ownerId);
        this.s.setRole.run('owner', group.id, ownerId);
      }
      return this.groupView(req.actorId, group.id);
    });
  }

  async dissolveGroup(req: {
    groupId: number;
    actorId: number;
    now: number;
  }): Promise<{ group: GroupRef; delivered: InboxMessage[] }> {
    return this.run(() => {
      const actor = this.membership(req.groupId, req.actorId);
      const memberIds = actor.group ? this.s.members.all(req.groupId).map((m) => m.id) : [];
      const notices = decideDissolve({ actor, memberIds, now: req.now });
      const group = actor.group!;
      this.s.dissolveGroup.run(req.now, group.id);
      this.s.deleteMembers.run(group.id);
      return { group: { id: group.id, name: group.name }, delivered: this.storeMessages(notices) };
    });
  }

  async sendToGroup(
    req: GroupSendRequest,
    opts: SendOptions = {},
    decide: (state: GroupSendState) => GroupSendDecision = decideGroupSend,
  ): Promise<GroupSendResult> {
    return this.run(() => {
      const idem = opts.idempotency;
      if (idem) {
        const prior = this.s.getIdem.get(req.fromId, idem.key);
        const replay = replayOf<RecordedGroupSend>(prior, idem, req.now);
        if (replay) return replay;
      }
      const sender = this.user(req.fromId);
      if (!sender) throw new RelayError('invalid_token');
      const membership = this.membership(req.groupId, req.fromId);
      // By id, as on PostgreSQL (the order of the copies in `delivered`).
      const members = membership.role ? this.s.members.all(req.groupId).sort((x, y) => x.id - y.id) : [];
      const decision = decide({
        sender,
        membership,
        members,
        content: req.content,
        attachment: req.attachment,
        mentionIds: req.mentionIds,
        now: req.now,
      });
      const delivered = this.storeMessages(decision.messages, sender, decision.group);
      const recorded: RecordedGroupSend = {
        group: decision.group,
        recipients: delivered.length,
        preview: opts.previewLimit ? this.peek(req.fromId, opts.previewLimit) : null,
      };
      if (idem) this.s.putIdem.run(req.fromId, idem.key, idem.fingerprint, JSON.stringify(recorded), req.now);
      return { ...recorded, delivered, replayed: false };
    });
  }

  async getStats(): Promise<StatsView> {
    return this.s.stats.get()!;
  }
}

/** Stores one message in its recipient's inbox with the recipient's next id. */
function insertMessage(
  s: ReturnType<typeof prepareStatements>,
  m: NewMessage,
): Omit<MessageRow, 'from_name' | 'from_description' | 'group_name'> {
  const next = s.nextMessageId.get(m.toId);
  if (!next) throw new Error(`message for unknown user ${m.toId}`);
  const a = m.attachment;
  const row = {
    to_id: m.toId,
    id: next.id,
    from_id: m.fromId,
    type: m.type,
    content: m.content,
    attachment_name: a?.name ?? null,
    file_id: a ? (a.fileId ?? null) : null,
    file_size: a ? (a.size ?? null) : null,
    file_type: a ? (a.contentType ?? null) : null,
    file_expires_at: a ? (a.expiresAt ?? null) : null,
    created_at: m.createdAt,
    group_id: m.groupId ?? null,
    mentioned: m.mentioned ? 1 : 0,
  };
  s.insertMessage.run(
    row.to_id,
    row.id,
    row.from_id,
    row.type,
    row.content,
    row.attachment_name,
    row.file_id,
    row.file_size,
    row.file_type,
    row.file_expires_at,
    row.created_at,
    row.group_id,
    row.mentioned,
  );
  return row;
}

/** A transaction that takes the write lock at BEGIN (read-then-write operations). */
function immediate<A extends unknown[], R>(db: DB, fn: (...args: A) => R): (...args: A) => R {
  const tx = db.transaction(fn);
  return (...args: A) => tx.immediate(...args);
}
