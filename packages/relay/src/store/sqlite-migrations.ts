// Versioned schema of the SQLite backend. Append new migrations at the end with the next version;
// never edit one that has shipped. openSqliteStore() applies the missing ones in order, inside one
// transaction, and records each in schema_migrations; a database newer than this list is refused.

import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE users (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        name         TEXT    NOT NULL,
        -- Lower-cased NFKC name: the uniqueness rule (BOB collides with bob).
        name_key     TEXT    NOT NULL UNIQUE,
        description  TEXT,
        -- Hex SHA-256 of the token; the token itself is never stored.
        token_hash   TEXT    NOT NULL UNIQUE,
        status       TEXT    NOT NULL CHECK (status IN ('open', 'friends_only', 'do_not_disturb')),
        created_at   INTEGER NOT NULL,
        last_seen_at INTEGER,
        homepage     TEXT,
        -- The last message id assigned in this user's inbox: ids are per recipient and never reused.
        last_msg_id  INTEGER NOT NULL DEFAULT 0
      );

      CREATE TABLE friendships (
        user_a       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        user_b       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        initiated_by INTEGER NOT NULL,
        status       TEXT    NOT NULL CHECK (status IN ('pending', 'accepted', 'blocked')),
        blocked_by   INTEGER,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (user_a, user_b),
        CHECK (user_a < user_b)
      );
      CREATE INDEX friendships_user_b ON friendships (user_b);

      CREATE TABLE messages (
        to_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        id              INTEGER NOT NULL,
        -- NULL: a system notice.
        from_id         INTEGER,
        type            TEXT    NOT NULL CHECK (type IN ('chat', 'friend_request', 'system')),
        content         TEXT    NOT NULL,
        attachment_name TEXT,
        file_id         TEXT,
        file_size       INTEGER,
        file_type       TEXT,
        file_expires_at INTEGER,
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (to_id, id)
      );
      CREATE INDEX messages_created_at ON messages (created_at);
      CREATE INDEX messages_to_from ON messages (to_id, from_id);

      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      );
      INSERT INTO meta (key, value) VALUES ('total_messages', 0);
    `,
  },
  {
    version: 2,
    name: 'idempotency keys',
    sql: `
      -- One row per (sender, Idempotency-Key): the request's fingerprint and the result it produced,
      -- written in the same transaction as the messages, so a retry can never deliver twice.
      CREATE TABLE idempotency_keys (
        user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        key         TEXT    NOT NULL,
        fingerprint TEXT    NOT NULL,
        result      TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (user_id, key)
      );
      CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
    `,
  },
  {
    version: 3,
    name: 'stored attachments',
    sql: `
      CREATE TABLE files (
        id            TEXT    PRIMARY KEY,
        sender_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        recipient_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        name          TEXT    NOT NULL,
        content_type  TEXT    NOT NULL,
        size          INTEGER NOT NULL,
        sha256        TEXT    NOT NULL,
        created_at    INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        downloaded_at INTEGER,
        -- 0 while the bytes are being written: an interrupted upload is never served, and is swept.
        complete      INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX files_sender ON files (sender_id);
      CREATE INDEX files_expires_at ON files (expires_at);
      -- The bytes, in chunks of at most 256 KiB, read one chunk at a time.
      CREATE TABLE file_chunks (
        file_id TEXT    NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        data    BLOB    NOT NULL,
        PRIMARY KEY (file_id, seq)
      );
      CREATE INDEX messages_file_id ON messages (file_id) WHERE file_id IS NOT NULL;
    `,
  },
  {
    version: 4,
    name: 'disabled users',
    sql: `ALTER TABLE users ADD COLUMN disabled_at INTEGER;`,
  },
  {
    version: 5,
    name: 'group chats',
    sql: `
      -- A dissolved group keeps its row (stored messages still name it) and loses its members.
      CREATE TABLE groups (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        name         TEXT    NOT NULL,
        description  TEXT,
        owner_id     INTEGER NOT NULL REFERENCES users (id),
        created_at   INTEGER NOT NULL,
        dissolved_at INTEGER
      );
      CREATE TABLE group_members (
        group_id  INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
        user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        role      TEXT    NOT NULL CHECK (role IN ('owner', 'member')),
        joined_at INTEGER NOT NULL,
        PRIMARY KEY (group_id, user_id)
      );
      CREATE INDEX group_members_user ON group_members (user_id);

      -- Group messages are stored once per recipient in messages (own ids, streams, acks, expiry). The
      -- type CHECK gains 'group'; SQLite cannot alter a CHECK, so the table is rebuilt (it holds only
      -- unacknowledged messages). group_id has no foreign key: group rows are never deleted, and the
      -- per-row check would cost every fan-out insert.
      CREATE TABLE messages_v5 (
        to_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        id              INTEGER NOT NULL,
        -- NULL: a system notice.
        from_id         INTEGER,
        type            TEXT    NOT NULL CHECK (type IN ('chat', 'friend_request', 'system', 'group')),
        content         TEXT    NOT NULL,
        attachment_name TEXT,
        file_id         TEXT,
        file_size       INTEGER,
        file_type       TEXT,
        file_expires_at INTEGER,
        created_at      INTEGER NOT NULL,
        group_id        INTEGER,
        -- 1 when this recipient's copy of a group message mentions it.
        mentioned       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (to_id, id)
      );
      INSERT INTO messages_v5 (to_id, id, from_id, type, content, attachment_name, file_id, file_size,
                               file_type, file_expires_at, created_at)
        SELECT to_id, id, from_id, type, content, attachment_name, file_id, file_size, file_type,
               file_expires_at, created_at
        FROM messages;
      DROP TABLE messages;
      ALTER TABLE messages_v5 RENAME TO messages;
      CREATE INDEX messages_created_at ON messages (created_at);
      CREATE INDEX messages_to_from ON messages (to_id, from_id);
      CREATE INDEX messages_file_id ON messages (file_id) WHERE file_id IS NOT NULL;

      -- A group attachment is stored once; its recipient_id is the sender, group_id the group.
      ALTER TABLE files ADD COLUMN group_id INTEGER REFERENCES groups (id);
    `,
  },
  {
    version: 6,
    name: 'top-100 index',
    sql: `
      -- Every /register reply lists the 100 most recently active open users. Without this index that
      -- was a scan and sort of the whole users table per registration. SQLite sorts NULL lowest, so
      -- DESC already puts never-seen users last, as the query asks.
      CREATE INDEX users_last_seen ON users (last_seen_at DESC, id) WHERE status = 'open' AND disabled_at IS NULL;
    `,
  },
  {
    version: 7,
    name: 'delivery receipts',
    sql: `
      -- One row per acknowledged message a user sent (docs/protocol.md, Receipts), written when the
      -- message leaves the recipient's inbox (ack, read-and-clear, legacy stream write): a send writes
      -- nothing, "accepted" is the message still being stored. created_at is the message's, so the
      -- retention sweep expires a receipt with the message it is about.
      CREATE TABLE receipts (
        to_id        INTEGER NOT NULL,
        message_id   INTEGER NOT NULL,
        from_id      INTEGER NOT NULL,
        group_id     INTEGER,
        created_at   INTEGER NOT NULL,
        delivered_at INTEGER NOT NULL,
        PRIMARY KEY (to_id, message_id)
      ) WITHOUT ROWID;
      CREATE INDEX receipts_created_at ON receipts (created_at);
    `,
  },
  {
    // Version 9 (8 is another change's number; gaps are allowed, order is what counts).
    version: 9,
    name: 'end-to-end encryption',
    sql: `
      -- The ciphertext envelope of an encrypted message (docs/e2e.md); content then holds the fixed
      -- placeholder. The relay stores it as given and never reads it.
      ALTER TABLE messages ADD COLUMN e2e TEXT;

      -- Each account's published key bundle: the signed public keys only (private keys never leave
      -- the client). identity_since changes when the identity key does, so the change is visible.
      CREATE TABLE key_bundles (
        user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        identity_key   TEXT    NOT NULL,
        encryption_key TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        signature      TEXT    NOT NULL,
        updated_at     INTEGER NOT NULL,
        identity_since INTEGER NOT NULL
      );
    `,
  },
  {
    version: 10,
    name: 'fewer message indexes',
    sql: `
      -- Every query by recipient and sender reads one inbox, which the primary key (to_id, id) finds:
      -- this index only cost every stored message one more B-tree write (issue 26).
      DROP INDEX messages_to_from;
    `,
  },
  {
    version: 11,
    name: 'homepages in their own table',
    sql: `
      -- A homepage (up to 512 KB) out of the users row: SQLite rewrites a whole row on every UPDATE,
      -- and a user's row is updated by every message to its inbox (the id counter) and by its activity
      -- (last_seen_at). With the page inline, each message to a user with a 512 KB page cost ~375 µs of
      -- CPU instead of ~3 (issue 26, docs/benchmarks.md).
      CREATE TABLE homepages (
        user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        html    TEXT    NOT NULL
      );
      INSERT INTO homepages (user_id, html) SELECT id, homepage FROM users WHERE homepage IS NOT NULL;
      ALTER TABLE users DROP COLUMN homepage;
    `,
  },
  {
    version: 12,
    name: 'no index on messages.created_at',
    sql: `
      -- Every message wrote this index too. The retention sweep finds expired messages in rowid order
      -- instead (EXPIRE_SQL in sqlite-messaging.ts), issue 26.
      DROP INDEX IF EXISTS messages_created_at;
    `,
  },
];

/** The schema version this code writes. */
export const SQLITE_SCHEMA_VERSION = SQLITE_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/**
 * Applies the missing migrations in one IMMEDIATE transaction (two processes opening a fresh file at
 * once cannot both apply them) and refuses a database written by a newer relay.
 */
export function migrateSqlite(
  db: Database.Database,
  migrations: readonly Migration[] = SQLITE_MIGRATIONS,
): void {
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
