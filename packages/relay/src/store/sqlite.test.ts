import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXPIRE_SQL, SWEEP_LOOKAHEAD } from './sqlite-messaging.ts';
import { openSqliteStore } from './sqlite.ts';
import { migrateSqlite, SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION } from './sqlite-migrations.ts';
import type { Store } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'relay-sqlite-'));
let seq = 0;
const freshFile = () => join(dir, `store-${++seq}.db`);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('SQLite backend', () => {
  let file: string;
  let store: Store | null;
  /** An open account named `name` (its name key lower-cased) with this token hash. */
  const user = (name: string, tokenHash: string, createdAt: number, description: string | null = null) =>
    store!.createUser({
      name,
      nameKey: name.toLowerCase(),
      description,
      status: 'open',
      tokenHash,
      createdAt,
    });

  beforeEach(() => {
    file = freshFile();
    store = null;
  });
  afterEach(async () => {
    await store?.close();
  });

  function migrationsIn(f: string): Array<{ version: number; name: string; applied_at: number }> {
    const db = new Database(f, { readonly: true });
    try {
      return db
        .prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version')
        .all() as Array<{
        version: number;
        name: string;
        applied_at: number;
      }>;
    } finally {
      db.close();
    }
  }

  it('records every migration at open and re-opening applies nothing', async () => {
    const before = Date.now();
    store = await openSqliteStore({ file });
    expect(store.kind).toBe('sqlite');
    await store.close();
    const first = migrationsIn(file);
    expect(first.map((m) => [m.version, m.name])).toEqual(SQLITE_MIGRATIONS.map((m) => [m.version, m.name]));
    expect(first.at(-1)!.version).toBe(SQLITE_SCHEMA_VERSION);
    for (const m of first) expect(m.applied_at).toBeGreaterThanOrEqual(before);
    store = await openSqliteStore({ file });
    await store.close();
    expect(migrationsIn(file)).toEqual(first);
  });

  it('the Top-100 of /register reads an index, not the whole users table', async () => {
    store = await openSqliteStore({ file });
    await store.close();
    const db = new Database(file, { readonly: true });
    try {
      // The statement topActiveUsers() prepares (sqlite.ts `topActive`).
      const plan = db
        .prepare(
          `EXPLAIN QUERY PLAN SELECT id FROM users WHERE status = 'open' AND disabled_at IS NULL
           ORDER BY last_seen_at DESC NULLS LAST, id ASC LIMIT 100`,
        )
        .all() as Array<{ detail: string }>;
      expect(plan.map((p) => p.detail)).toEqual(['SCAN users USING INDEX users_last_seen']);
    } finally {
      db.close();
    }
  });

  it('expires messages in stored order, reading past a few stamped out of order, and a range of rowids', async () => {
    store = await openSqliteStore({ file });
    const alice = await user('alice', 'ha', 1);
    const bob = await user('bob', 'hb', 1);
    const send = (now: number, from = alice, to = bob) =>
      store!.send({ fromId: from.id, toId: to.id, content: `at ${now}`, attachment: null, now });
    const left = async () => (await store!.peekInbox(bob.id, 10)).messages.map((m) => m.content);
    await send(50); // the friend request
    await send(50, bob, alice); // accepted
    const setup = (await store.peekInbox(alice.id, 10)).total + (await store.peekInbox(bob.id, 10)).total;
    // Stored in this order: the clock stepped forward before "at 5000" and back after it.
    for (const now of [100, 200, 5000, 250]) await send(now);
    expect(await store.expireMessages(201)).toBe(setup + 2);
    expect(await left()).toEqual(['at 5000', 'at 250']);
    // "at 250" follows a message that is not expired: the sweep reads past it.
    expect(await store.expireMessages(260)).toBe(1);
    expect(await left()).toEqual(['at 5000']);
    await store.close();
    store = null;

    // More unexpired messages before an out-of-order one than the sweep reads past: it waits (late,
    // never early) until they expire.
    const db = new Database(file);
    try {
      const insert = db.prepare(
        `INSERT INTO messages (to_id, id, from_id, type, content, created_at) VALUES (?, ?, ?, 'chat', ?, ?)`,
      );
      db.transaction(() => {
        for (let i = 0; i < SWEEP_LOOKAHEAD; i++) insert.run(bob.id, 1000 + i, alice.id, 'at 6000', 6000);
        insert.run(bob.id, 5000, alice.id, 'at 150', 150);
      })();
      // The sweep's statement reads a range of rowids, never the whole table.
      const plan = db.prepare(`EXPLAIN QUERY PLAN ${EXPIRE_SQL.replaceAll('$1', '1')}`).all() as Array<{
        detail: string;
      }>;
      expect(plan.map((p) => p.detail)).toContain('SEARCH messages USING INTEGER PRIMARY KEY (rowid<?)');
    } finally {
      db.close();
    }
    store = await openSqliteStore({ file });
    expect(await store.expireMessages(300)).toBe(0);
    expect((await store.peekInbox(bob.id, 1)).total).toBe(SWEEP_LOOKAHEAD + 2);
    expect(await store.expireMessages(6001)).toBe(SWEEP_LOOKAHEAD + 2);
    expect((await store.peekInbox(bob.id, 1)).total).toBe(0);
  });

  it('upgrades a version-4 database to groups (messages table rebuilt) keeping every message', async () => {
    const db = new Database(file);
    migrateSqlite(
      db,
      SQLITE_MIGRATIONS.filter((m) => m.version <= 4),
    );
    db.exec(`INSERT INTO users (name, name_key, token_hash, status, created_at, last_msg_id)
             VALUES ('a', 'a', 'ha', 'open', 1, 0), ('b', 'b', 'hb', 'open', 1, 2)`);
    db.exec(`INSERT INTO messages (to_id, id, from_id, type, content, attachment_name, file_id, created_at)
             VALUES (2, 1, 1, 'friend_request', 'hi', NULL, NULL, 5), (2, 2, NULL, 'system', 'n', 'x.pdf', 'f1', 6)`);
    db.close();
    store = await openSqliteStore({ file });
    expect(migrationsIn(file).map((m) => m.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
    const page = await store.peekInbox(2, 10);
    expect(
      page.messages.map((m) => [m.id, m.type, m.content, m.group, m.mentioned, m.attachment?.fileId]),
    ).toEqual([
      [1, 'friend_request', 'hi', null, false, undefined],
      [2, 'system', 'n', null, false, 'f1'],
    ]);
    const check = new Database(file, { readonly: true });
    try {
      const indexes = check
        .prepare(
          `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' ORDER BY name`,
        )
        .all()
        .map((r) => (r as { name: string }).name);
      // Version 10 dropped messages_to_from: the primary key (to_id, id) serves those queries; version
      // 12 messages_created_at: expiry reads the messages in rowid order.
      expect(indexes).toContain('messages_file_id');
      expect(indexes).not.toContain('messages_to_from');
      expect(indexes).not.toContain('messages_created_at');
      expect(check.pragma('foreign_key_check')).toEqual([]);
    } finally {
      check.close();
    }
  });

  it('moves homepages out of the users row (migration 11), keeping every page', async () => {
    const db = new Database(file);
    migrateSqlite(
      db,
      SQLITE_MIGRATIONS.filter((m) => m.version < 11),
    );
    db.exec(`INSERT INTO users (name, name_key, token_hash, status, created_at, homepage)
             VALUES ('a', 'a', 'ha', 'open', 1, '<p>a</p>'), ('b', 'b', 'hb', 'open', 1, NULL)`);
    db.close();
    store = await openSqliteStore({ file });
    expect(await store.getHomepage(1)).toBe('<p>a</p>');
    expect(await store.getHomepage(2)).toBeNull();
    expect(await store.getHomepage(3)).toBeUndefined();
    await store.setHomepage(2, '<p>b</p>');
    await store.setHomepage(1, '<p>a2</p>');
    // Not for a user that does not exist (no row, no error), as the UPDATE of the users row did.
    await store.setHomepage(3, '<p>c</p>');
    expect([await store.getHomepage(1), await store.getHomepage(2), await store.getHomepage(3)]).toEqual([
      '<p>a2</p>',
      '<p>b</p>',
      undefined,
    ]);
    await store.close();
    store = null;
    const check = new Database(file, { readonly: true });
    try {
      const columns = (check.pragma('table_info(users)') as Array<{ name: string }>).map((c) => c.name);
      expect(columns).not.toContain('homepage');
      expect(check.prepare('SELECT count(*) AS n FROM homepages').get()).toEqual({ n: 2 });
      expect(check.pragma('foreign_key_check')).toEqual([]);
    } finally {
      check.close();
    }
  });

  it('leaves the database file in WAL mode', async () => {
    store = await openSqliteStore({ file });
    await store.close();
    const db = new Database(file);
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });

  it('refuses a database written by a newer relay, with a clear message, and changes nothing', async () => {
    store = await openSqliteStore({ file });
    await store.close();
    store = null;
    const future = SQLITE_SCHEMA_VERSION + 5;
    const db = new Database(file);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
      future,
      'x',
      1,
    );
    db.close();
    await expect(openSqliteStore({ file })).rejects.toThrow(
      `database schema version ${future} is newer than this relay supports (${SQLITE_SCHEMA_VERSION}); upgrade the relay`,
    );
    expect(migrationsIn(file).map((m) => m.version)).toEqual([
      ...SQLITE_MIGRATIONS.map((m) => m.version),
      future,
    ]);
  });

  it('keeps data across close and re-open', async () => {
    const now = 1_772_000_000_000;
    store = await openSqliteStore({ file });
    const alice = await user('alice', 'h-alice', now);
    const bob = await user('bob', 'h-bob', now, 'b');
    const sent = await store.send({ fromId: alice.id, toId: bob.id, content: 'hi', attachment: null, now });
    await store.setHomepage(bob.id, '<p>bob</p>');
    await store.touchLastSeen([[bob.id, now + 5]]);
    const friendship = await store.getFriendship(alice.id, bob.id);
    await store.close();

    store = await openSqliteStore({ file });
    expect(await store.findUserByTokenHash('h-alice')).toEqual(alice);
    expect(await store.getUser(bob.id)).toEqual({ ...bob, lastSeenAt: now + 5 });
    expect(await store.getHomepage(bob.id)).toBe('<p>bob</p>');
    expect(await store.getFriendship(alice.id, bob.id)).toEqual(friendship);
    expect(await store.peekInbox(bob.id, 10)).toEqual({ total: 1, messages: sent.delivered });
    expect(await store.lastMessageId(bob.id)).toBe(1);
    expect(await store.getStats()).toEqual({ users: 2, friendships: 0, messages: 1 });
    await expect(user('ALICE', 'h2', now)).rejects.toMatchObject({ code: 'name_taken' });
  });

  it('a token lookup answered from memory sees every change to the user, from this connection or another', async () => {
    store = await openSqliteStore({ file });
    const alice = await user('alice', 'h-alice', 1);
    const bob = await user('bob', 'h-bob', 1);
    expect(await store.findUserByTokenHash('h-alice')).toEqual(alice);
    // A caller annotating its record does not change what the next lookup answers.
    const mine = (await store.findUserByTokenHash('h-alice'))!;
    mine.status = 'do_not_disturb';
    expect(await store.findUserByTokenHash('h-alice')).toEqual(alice);

    // Through the store (this connection).
    await store.setUserDisabled(alice.id, 7);
    expect(await store.findUserByTokenHash('h-alice')).toMatchObject({ disabledAt: 7 });
    await store.setStatus(alice.id, 'friends_only');
    expect(await store.findUserByTokenHash('h-alice')).toMatchObject({ status: 'friends_only' });
    await store.touchLastSeen([[alice.id, 9]]);
    expect(await store.findUserByTokenHash('h-alice')).toMatchObject({ lastSeenAt: 9 });
    await store.setTokenHash(alice.id, 'h-alice-2');
    expect(await store.findUserByTokenHash('h-alice')).toBeNull();
    expect(await store.findUserByTokenHash('h-alice-2')).toMatchObject({ id: alice.id });
    // A send advances the recipient's last_msg_id: not part of the record, and still correct after it.
    await store.send({ fromId: alice.id, toId: bob.id, content: 'hi', attachment: null, now: 2 });
    expect(await store.findUserByTokenHash('h-bob')).toEqual(bob);

    // Another connection (the admin CLI is another process) disables bob and moves alice's token.
    expect(await store.findUserByTokenHash('h-bob')).toMatchObject({ disabledAt: null });
    const other = new Database(file);
    try {
      other.prepare('UPDATE users SET disabled_at = 11 WHERE id = ?').run(bob.id);
      other.prepare('UPDATE users SET token_hash = ? WHERE id = ?').run('h-alice-3', alice.id);
    } finally {
      other.close();
    }
    // Seen from the next turn of the event loop on (data_version is read once per turn).
    await new Promise((resolve) => setImmediate(resolve));
    expect(await store.findUserByTokenHash('h-bob')).toMatchObject({ disabledAt: 11 });
    expect(await store.findUserByTokenHash('h-alice-2')).toBeNull();
    expect(await store.findUserByTokenHash('h-alice-3')).toMatchObject({ id: alice.id });
  });

  it("a send's recipient and friendship answered from memory see every change, from this connection or another", async () => {
    store = await openSqliteStore({ file });
    const alice = await user('alice', 'h-alice', 1);
    const bob = await user('bob', 'h-bob', 1);
    const carol = await user('carol', 'h-carol', 1);
    const send = (from: typeof alice, to: typeof alice, content: string) =>
      store!.send({ fromId: from.id, toId: to.id, content, attachment: null, now: 2, sender: from });
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => 'sent',
        (e: { code?: string }) => e.code,
      );
    await send(alice, bob, 'hi');
    await send(bob, alice, 'hello'); // accepts: friends now, both cached by the sends
    expect(await refusal(send(alice, bob, 'chat'))).toBe('sent');

    // Through the store (this connection): the recipient's status, then the friendship.
    await store.setStatus(bob.id, 'do_not_disturb');
    expect(await refusal(send(alice, bob, 'dnd'))).toBe('recipient_dnd');
    await store.setStatus(bob.id, 'open');
    expect(await refusal(send(alice, bob, 'open'))).toBe('sent');
    expect(await store.block(bob.id, alice.id, 3)).toBe(true);
    expect(await refusal(send(alice, bob, 'blocked'))).toBe('blocked_by_recipient');
    expect(await store.unblock(bob.id, alice.id)).toBe(true);
    expect(await refusal(send(alice, bob, 'request again'))).toBe('sent');

    // Another connection (the admin CLI), committing in the very turn of the send: the batch reads
    // data_version under its write lock.
    await send(alice, carol, 'hi');
    await send(carol, alice, 'hello');
    const other = new Database(file);
    try {
      const sent = refusal(send(alice, carol, 'after the block'));
      other
        .prepare(`UPDATE friendships SET status = 'blocked', blocked_by = ? WHERE user_a = ? AND user_b = ?`)
        .run(carol.id, alice.id, carol.id);
      expect(await sent).toBe('blocked_by_recipient');
      const dnd = refusal(send(bob, carol, 'to a dnd stranger'));
      other.prepare(`UPDATE users SET status = 'do_not_disturb' WHERE id = ?`).run(carol.id);
      expect(await dnd).toBe('recipient_dnd');
    } finally {
      other.close();
    }
  });

  it('a send failing after it wrote leaves the other sends of its batch stored and answered', async () => {
    store = await openSqliteStore({ file });
    const alice = await user('alice', 'h-alice', 1);
    const bob = await user('bob', 'h-bob', 1);
    await store.send({ fromId: alice.id, toId: bob.id, content: 'hi', attachment: null, now: 2 });
    await store.send({ fromId: bob.id, toId: alice.id, content: 'hello', attachment: null, now: 2 });
    // The message insert fails after the recipient's id counter has advanced: the send wrote, then failed.
    const other = new Database(file);
    other.exec(`CREATE TRIGGER refuse_boom BEFORE INSERT ON messages WHEN NEW.content = 'boom'
                BEGIN SELECT RAISE(ABORT, 'boom refused'); END`);
    other.close();
    const last = await store.lastMessageId(bob.id);
    const sends = ['one', 'boom', 'two'].map((content) =>
      store!.send({ fromId: alice.id, toId: bob.id, content, attachment: null, now: 3, sender: alice }),
    );
    const results = await Promise.allSettled(sends);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.delivered[0]!.id : r.reason))).toEqual([
      last + 1,
      expect.objectContaining({ message: 'boom refused' }),
      last + 2,
    ]);
    const inbox = await store.peekInbox(bob.id, 10);
    expect(inbox.messages.slice(-2).map((m) => [m.id, m.content])).toEqual([
      [last + 1, 'one'],
      [last + 2, 'two'],
    ]);
    expect(await store.lastMessageId(bob.id)).toBe(last + 2);
  });

  it('a token-hash collision is not reported as name_taken', async () => {
    store = await openSqliteStore({ file });
    const base = { description: null, status: 'open' as const, tokenHash: 'same', createdAt: 1 };
    await store.createUser({ ...base, name: 'a', nameKey: 'a' });
    const err = await store.createUser({ ...base, name: 'b', nameKey: 'b' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { code?: string }).code).not.toBe('name_taken');
    expect(await store.countUsers()).toBe(1);
  });

  it('matches discovery keywords case-insensitively beyond ASCII', async () => {
    store = await openSqliteStore({ file });
    const base = { status: 'open' as const, createdAt: 1 };
    const me = await store.createUser({
      ...base,
      name: 'me',
      nameKey: 'me',
      description: null,
      tokenHash: 't0',
    });
    const elan = await store.createUser({
      ...base,
      name: 'ÉLAN',
      nameKey: 'élan',
      description: null,
      tokenHash: 't1',
    });
    const r = await store.discoverUsers({ excludeId: me.id, keyword: 'élan', limit: 10 });
    expect(r).toEqual({ total: 1, users: [elan] });
  });
});
