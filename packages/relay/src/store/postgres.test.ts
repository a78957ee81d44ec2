// The PostgreSQL backend (its Store contract run is tests/store/postgres.test.ts): its migrations, what
// only a shared database can show (two pools = two relay instances on one schema), and the WakeBus.
// Every schema made here is owc_test_… and dropped at the end; `public` is never touched.

import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nameKey, RelayError } from '@openwechat/protocol';
import { decideSend } from '../domain/send.ts';
import {
  dropSchemas,
  PG_URL,
  pgAvailable,
  querySchema,
  schemaName,
  schemaUrl,
} from '../../../../tests/helpers/pg.ts';
import { openPostgresStore } from './postgres.ts';
import { isStoreUnavailable, PreparingClient, schemaFromUrl, urlWithSchema } from './postgres-connection.ts';
import { decodeText, encodeText } from './postgres-text.ts';
import { PostgresWakeBus } from './postgres-wake.ts';
import { migratePostgres, POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from './postgres-migrations.ts';
import type { Store, UserRecord } from './types.ts';
import type { WakeBus } from './wake.ts';

const T0 = 1_772_000_000_000;
const available = await pgAvailable();
const schemas: string[] = [];

function fresh(tag: string): string {
  const s = schemaName(tag);
  schemas.push(s);
  return s;
}

afterAll(async () => {
  if (available) await dropSchemas(schemas);
});

describe.skipIf(!available)('PostgreSQL backend', () => {
  const open: Array<{ store: Store; bus: WakeBus }> = [];

  async function openStore(schema: string, url = PG_URL) {
    const opened = await openPostgresStore({ url, schema });
    open.push(opened);
    return opened;
  }

  afterEach(async () => {
    for (const o of open.splice(0)) {
      await o.bus.close();
      await o.store.close();
    }
  });

  function migrationsIn(schema: string) {
    return querySchema<{ version: number; name: string; applied_at: string }>(
      schema,
      'SELECT version, name, applied_at FROM schema_migrations ORDER BY version',
    );
  }

  let userSeq = 0;
  function newUser(store: Store, name: string): Promise<UserRecord> {
    userSeq++;
    return store.createUser({
      name,
      nameKey: nameKey(name),
      description: null,
      status: 'open',
      tokenHash: `pg-${userSeq}-${name}`,
      createdAt: T0,
    });
  }

  /** Two instances on a fresh schema, and friends x and y (a message each way, through a). */
  async function friendsOnTwoInstances(tag: string) {
    const schema = fresh(tag);
    const a = await openStore(schema);
    const b = await openStore(schema);
    const x = await newUser(a.store, 'x');
    const y = await newUser(a.store, 'y');
    await a.store.send({ fromId: x.id, toId: y.id, content: 'hi', attachment: null, now: T0 });
    await a.store.send({ fromId: y.id, toId: x.id, content: 'hi back', attachment: null, now: T0 + 1 });
    return { a, b, x, y };
  }

  describe('migrations', () => {
    it('creates the schema, records every migration, and re-opening applies nothing', async () => {
      const schema = fresh('mig');
      const before = Date.now();
      const { store } = await openStore(schema);
      expect(store.kind).toBe('postgres');
      const first = await migrationsIn(schema);
      expect(first.map((m) => [m.version, m.name])).toEqual(
        POSTGRES_MIGRATIONS.map((m) => [m.version, m.name]),
      );
      expect(first.at(-1)!.version).toBe(POSTGRES_SCHEMA_VERSION);
      for (const m of first) expect(Number(m.applied_at)).toBeGreaterThanOrEqual(before);
      await openStore(schema);
      expect(await migrationsIn(schema)).toEqual(first);
      // Nothing leaked into public.
      const inPublic = await querySchema<{ n: string }>(
        schema,
        `SELECT count(*) AS n FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name IN ('users', 'messages', 'schema_migrations')`,
      );
      expect(inPublic[0]!.n).toBe('0');
    });

    it('upgrades a version-5 schema to groups keeping every message', async () => {
      const schema = fresh('upgrade');
      const c = new pg.Client({ connectionString: schemaUrl(schema) });
      await c.connect();
      try {
        await migratePostgres(
          c,
          schema,
          POSTGRES_MIGRATIONS.filter((m) => m.version <= 5),
        );
        await c.query(`INSERT INTO users (id, name, name_key, token_hash, status, created_at, last_msg_id)
                       VALUES (1, 'a', 'a', 'ha', 'open', 1, 0), (2, 'b', 'b', 'hb', 'open', 1, 1)`);
        await c.query(`INSERT INTO messages (to_id, id, from_id, type, content, created_at)
                       VALUES (2, 1, 1, 'friend_request', 'hi', 5)`);
      } finally {
        await c.end();
      }
      const { store } = await openStore(schema);
      expect((await migrationsIn(schema)).map((m) => m.version)).toEqual(
        POSTGRES_MIGRATIONS.map((m) => m.version),
      );
      const page = await store.peekInbox(2, 10);
      expect(page.messages.map((m) => [m.id, m.type, m.content, m.group, m.mentioned])).toEqual([
        [1, 'friend_request', 'hi', null, false],
      ]);
    });

    it('moves homepages out of the users row (migration 12), keeping every page', async () => {
      const schema = fresh('homepages');
      const c = new pg.Client({ connectionString: schemaUrl(schema) });
      await c.connect();
      try {
        await migratePostgres(
          c,
          schema,
          POSTGRES_MIGRATIONS.filter((m) => m.version < 12),
        );
        await c.query(`INSERT INTO users (id, name, name_key, token_hash, status, created_at, homepage)
                       VALUES (1, 'a', 'a', 'ha', 'open', 1, '<p>a</p>'), (2, 'b', 'b', 'hb', 'open', 1, NULL)`);
      } finally {
        await c.end();
      }
      const { store } = await openStore(schema);
      expect([await store.getHomepage(1), await store.getHomepage(2), await store.getHomepage(3)]).toEqual([
        '<p>a</p>',
        null,
        undefined,
      ]);
      await store.setHomepage(2, '<p>b</p>');
      await store.setHomepage(3, '<p>c</p>');
      expect([await store.getHomepage(2), await store.getHomepage(3)]).toEqual(['<p>b</p>', undefined]);
      const columns = await querySchema<{ column_name: string }>(
        schema,
        `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'users'`,
        [schema],
      );
      // Kept, unread, for instances of the previous release during a rolling upgrade.
      expect(columns.map((r) => r.column_name)).toContain('homepage');
      const moved = await querySchema<{ user_id: string; html: string }>(
        schema,
        'SELECT user_id, html FROM homepages ORDER BY user_id',
      );
      expect(moved.map((r) => [Number(r.user_id), r.html])).toEqual([
        [1, '<p>a</p>'],
        [2, '<p>b</p>'],
      ]);
    });

    it('instances starting at once on a fresh schema migrate it once', async () => {
      const schema = fresh('race');
      await Promise.all([openStore(schema), openStore(schema), openStore(schema)]);
      expect((await migrationsIn(schema)).map((m) => m.version)).toEqual(
        POSTGRES_MIGRATIONS.map((m) => m.version),
      );
    });

    it('refuses a database written by a newer relay, with a clear message, and changes nothing', async () => {
      const schema = fresh('newer');
      const { store, bus } = await openPostgresStore({ url: PG_URL, schema });
      await bus.close();
      await store.close();
      const future = POSTGRES_SCHEMA_VERSION + 5;
      await querySchema(
        schema,
        'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
        [future, 'x', 1],
      );
      await expect(openPostgresStore({ url: PG_URL, schema })).rejects.toThrow(
        `database schema version ${future} is newer than this relay supports (${POSTGRES_SCHEMA_VERSION}); upgrade the relay`,
      );
      expect((await migrationsIn(schema)).map((m) => m.version)).toEqual([
        ...POSTGRES_MIGRATIONS.map((m) => m.version),
        future,
      ]);
    });

    it('takes the schema from the URL’s options (the DATABASE_URL form) and creates it', async () => {
      const schema = fresh('url');
      const url = schemaUrl(schema);
      expect(schemaFromUrl(url)).toBe(schema);
      const opened = await openPostgresStore({ url });
      open.push(opened);
      const u = await newUser(opened.store, 'url_user');
      const rows = await querySchema<{ id: number }>(schema, 'SELECT id FROM users');
      expect(rows.map((r) => Number(r.id))).toEqual([u.id]);
    });

    it('keeps data across close and re-open', async () => {
      const schema = fresh('reopen');
      const a = await openStore(schema);
      const alice = await newUser(a.store, 'alice');
      const bob = await newUser(a.store, 'bob');
      const sent = await a.store.send({
        fromId: alice.id,
        toId: bob.id,
        content: 'hi',
        attachment: null,
        now: T0,
      });
      const b = await openStore(schema);
      expect(await b.store.getUser(alice.id)).toEqual(alice);
      expect(await b.store.peekInbox(bob.id, 10)).toEqual({ total: 1, messages: sent.delivered });
      expect(await b.store.getStats()).toEqual({ users: 2, friendships: 0, messages: 1 });
    });

    it('a connection that breaks inside a transaction fails that call only; the process and pool live on', async () => {
      // The relay's connections carry this test's own application_name (the URL's wins over the
      // relay's), so only they are terminated.
      const app = `owc_lost_${Math.random().toString(36).slice(2, 10)}`;
      const schema = fresh('lost');
      const url = `${schemaUrl(schema)}&application_name=${app}`;
      const opened = await openPostgresStore({ url });
      open.push(opened);
      const alice = await newUser(opened.store, 'lost_alice');
      // Hold alice's row, so the store's transaction (advance-ids locks every user row) waits inside
      // PostgreSQL with its connection checked out of the pool; then terminate that connection, as a
      // PostgreSQL restart does.
      const holder = new pg.Client({ connectionString: schemaUrl(schema) });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT id FROM users WHERE id = $1 FOR UPDATE', [alice.id]);
        const blocked = opened.store.advanceMessageIds(5).then(
          () => null,
          (err: unknown) => err as pg.DatabaseError,
        );
        let terminated = 0;
        for (let i = 0; i < 200 && terminated === 0; i++) {
          await new Promise((r) => setTimeout(r, 25));
          terminated = (
            await holder.query(
              `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE application_name = $1 AND wait_event_type = 'Lock'`,
              [app],
            )
          ).rowCount!;
        }
        expect(terminated).toBe(1);
        // Before the fix the client's 'error' event had no listener here and the process died.
        const err = await blocked;
        expect(err?.code).toBe('57P01');
        expect(isStoreUnavailable(err)).toBe(true);
        await holder.query('ROLLBACK');
      } finally {
        await holder.end();
      }
      // The pool dropped the broken connection and serves the next call on a new one.
      expect(await opened.store.advanceMessageIds(5)).toEqual({ users: 1, by: 5 });
      expect(await opened.store.getUser(alice.id)).toMatchObject({ id: alice.id });
    });

    it('tells "PostgreSQL cannot be reached" (answered 503) from every other failure (500)', async () => {
      const refused = await new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:1/test' })
        .connect()
        .catch((e: unknown) => e);
      expect(isStoreUnavailable(refused)).toBe(true);
      const starting = new pg.DatabaseError('the database system is starting up', 0, 'error');
      starting.code = '57P03';
      expect(isStoreUnavailable(starting)).toBe(true);
      expect(isStoreUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
      expect(isStoreUnavailable(new Error('wrapped', { cause: refused }))).toBe(true);
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        for (const sql of ['SELEC 1', 'SELECT 1/0', "SELECT 'x'::int"]) {
          const err = await c.query(sql).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(pg.DatabaseError);
          expect(isStoreUnavailable(err)).toBe(false);
        }
      } finally {
        await c.end();
      }
      expect(isStoreUnavailable(new Error('something else'))).toBe(false);
      expect(isStoreUnavailable(new RelayError('user_not_found'))).toBe(false);
      expect(isStoreUnavailable('ECONNREFUSED')).toBe(false);
    });

    it('refuses an unreachable server with a message naming it, without the password', async () => {
      const err = await openPostgresStore({
        url: 'postgres://postgres:secret@127.0.0.1:1/test',
        schema: fresh('x'),
      }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(
        /^cannot connect to PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test/,
      );
      expect((err as Error).message).not.toContain('secret');
    });
  });

  describe('prepared statements', () => {
    it('prepares a parameterised text once per connection; BEGIN and friends stay simple queries', async () => {
      const c = new PreparingClient(PG_URL);
      await c.connect();
      try {
        const prepared = async () =>
          (
            await c.query<{ name: string; statement: string }>(
              'SELECT name, statement FROM pg_prepared_statements',
            )
          ).rows;
        expect(await prepared()).toEqual([]);
        for (const x of [1, 2, 3]) {
          expect((await c.query<{ x: number }>('SELECT $1::int AS x', [x])).rows).toEqual([{ x }]);
        }
        await c.query('BEGIN');
        await c.query('COMMIT');
        const rows = await prepared();
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ statement: 'SELECT $1::int AS x' });
        expect(rows[0]!.name).toMatch(/^owc_[0-9a-f]{24}$/);
        // Another text is another statement; the callback form works too.
        const viaCallback = await new Promise<unknown>((resolve, reject) =>
          c.query('SELECT $1::text AS s', ['a'], (err, r) => (err ? reject(err) : resolve(r.rows))),
        );
        expect(viaCallback).toEqual([{ s: 'a' }]);
        expect(await prepared()).toHaveLength(2);
      } finally {
        await c.end();
      }
    });
  });

  describe('URL helpers and text encoding', () => {
    it('reads and sets search_path in the options parameter', () => {
      expect(schemaFromUrl('postgres://u@h/db')).toBeNull();
      expect(schemaFromUrl('postgres://u@h/db?options=-csearch_path%3Dabc')).toBe('abc');
      expect(
        schemaFromUrl('postgres://u@h/db?options=-c%20statement_timeout%3D5s%20-c%20search_path%3Dx_1'),
      ).toBe('x_1');
      expect(schemaFromUrl('postgres://u@h/db?options=-csearch_path%3D%22Quoted%22')).toBeNull();
      const u = urlWithSchema(
        'postgres://u@h/db?options=-c%20statement_timeout%3D5s%20-csearch_path%3Dold&x=1',
        'new_one',
      );
      expect(new URL(u).searchParams.get('options')).toBe('-c statement_timeout=5s -c search_path=new_one');
      expect(new URL(u).searchParams.get('x')).toBe('1');
      expect(schemaFromUrl(u)).toBe('new_one');
    });

    it('encodes only what PostgreSQL cannot store, reversibly', () => {
      for (const s of [
        '',
        'plain',
        '\u0000',
        '\ue000',
        '\ue001',
        '\ue000\ue001',
        'a\u0000\ue000\ue001\u0000b',
        '😀',
      ]) {
        expect(decodeText(encodeText(s))).toBe(s);
        expect(encodeText(s)).not.toContain('\u0000');
      }
      expect(encodeText('plain \ue001')).toBe('plain \ue001');
    });
  });

  describe('users', () => {
    it('a taken name does not use up an id; a token-hash collision is not name_taken', async () => {
      const { store } = await openStore(fresh('users'));
      const base = { description: null, status: 'open' as const, createdAt: 1 };
      const first = await store.createUser({ ...base, name: 'a', nameKey: 'a', tokenHash: 't1' });
      await expect(
        store.createUser({ ...base, name: 'A', nameKey: 'a', tokenHash: 't2' }),
      ).rejects.toMatchObject({
        code: 'name_taken',
      });
      const second = await store.createUser({ ...base, name: 'b', nameKey: 'b', tokenHash: 't3' });
      expect(second.id).toBe(first.id + 1);
      const err = await store
        .createUser({ ...base, name: 'c', nameKey: 'c', tokenHash: 't3' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as { code?: string }).code).not.toBe('name_taken');
      expect(await store.countUsers()).toBe(2);
    });

    it('token lookups made in one turn go together and each gets its own answer, in order', async () => {
      const { store } = await openStore(fresh('tokens'));
      const a = await newUser(store, 'ta');
      const b = await newUser(store, 'tb');
      const hashes = [`pg-${userSeq}-tb`, 'no-such-hash', `pg-${userSeq - 1}-ta`, `pg-${userSeq}-tb`];
      const found = await Promise.all(hashes.map((h) => store.findUserByTokenHash(h)));
      expect(found).toEqual([b, null, a, b]);
      // A change committed before a lookup is asked for is what the lookup sees.
      await store.setUserDisabled(b.id, T0 + 1);
      const [again, none] = await Promise.all([
        store.findUserByTokenHash(`pg-${userSeq}-tb`),
        store.findUserByTokenHash(''),
      ]);
      expect(again?.disabledAt).toBe(T0 + 1);
      expect(none).toBeNull();
    });

    it('concurrent registrations of one name: exactly one wins, the others are name_taken', async () => {
      const schema = fresh('users_race');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const settled = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 ? a : b).store.createUser({
            name: 'same',
            nameKey: 'same',
            description: null,
            status: 'open',
            tokenHash: `race-${i}`,
            createdAt: 1,
          }),
        ),
      );
      expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
      for (const s of settled)
        if (s.status === 'rejected') expect(s.reason).toMatchObject({ code: 'name_taken' });
      expect(await a.store.countUsers()).toBe(1);
    });
  });

  describe('files', () => {
    /** A 600 kB file (three chunks) of one repeated byte, from `senderId` to `to`, expiring at T0 + 1 s. */
    async function putBytes(store: Store, senderId: number, to: UserRecord, idChar: string, byte: number) {
      const bytes = Buffer.alloc(600_000, byte);
      const file = {
        id: idChar.repeat(32),
        senderId,
        recipientId: to.id,
        name: `${idChar}.bin`,
        contentType: 'application/octet-stream',
        size: bytes.length,
        sha256: 'unused',
        createdAt: T0,
        expiresAt: T0 + 1000,
      };
      await store.putFile(
        file,
        (async function* () {
          yield bytes;
        })(),
      );
      return { file, bytes };
    }

    it('a swept file stops being served at once; its bytes stay for downloads under way, then go', async () => {
      const schema = fresh('files');
      const { store } = await openStore(schema);
      const alice = await newUser(store, 'alice');
      const { file, bytes } = await putBytes(store, alice.id, await newUser(store, 'bob'), 'a', 7);
      // A download starts (it has read the record), then the sweep runs.
      const reading = store.readFile(file.id)[Symbol.asyncIterator]();
      const first = await reading.next();
      expect(await store.sweepFiles(T0 + 2000)).toBe(1);
      expect(await store.getFile(file.id)).toBeNull();
      expect(await store.storedFileBytes(alice.id)).toBe(0);
      const rest: Buffer[] = [first.value as Buffer];
      for (let r = await reading.next(); !r.done; r = await reading.next()) rest.push(r.value);
      expect(Buffer.concat(rest).equals(bytes)).toBe(true);
      // One grace period (an hour) later the bytes are gone too.
      expect(await store.sweepFiles(T0 + 2000 + 3_600_000)).toBe(0);
      expect(await querySchema(schema, 'SELECT 1 FROM file_chunks')).toEqual([]);
      expect(await querySchema(schema, 'SELECT 1 FROM files')).toEqual([]);
    });

    it('a file deleted during a download fails the read instead of ending it short', async () => {
      const { store } = await openStore(fresh('files_del'));
      const alice = await newUser(store, 'alice');
      const { file } = await putBytes(store, alice.id, await newUser(store, 'bob'), 'b', 1);
      const reading = store.readFile(file.id)[Symbol.asyncIterator]();
      expect((await reading.next()).done).toBe(false);
      await store.deleteFile(file.id);
      await expect(reading.next()).rejects.toThrow(`file ${file.id} was deleted while being read`);
    });
  });

  describe('instances sharing one database', () => {
    it('a chat send whose state moves between its read and its write is decided again (block wins)', async () => {
      const schema = fresh('moved');
      const { store } = await openStore(schema);
      const x = await newUser(store, 'x');
      const y = await newUser(store, 'y');
      for (const [from, to] of [
        [x, y],
        [y, x],
      ] as const)
        await store.send({ fromId: from.id, toId: to.id, content: 'hi', attachment: null, now: T0 });
      await store.takeInbox(x.id, { limit: 10, fromId: null });
      await store.takeInbox(y.id, { limit: 10, fromId: null });
      const lastBefore = await store.lastMessageId(y.id);

      // Another session holds y's row, so x's send (read and decided: a chat between friends) waits in
      // its write; meanwhile y blocks x and commits. The write must then see the block, store nothing,
      // and the send be decided again — and refused — instead of landing after the block.
      const other = new pg.Client({ connectionString: schemaUrl(schema) });
      await other.connect();
      try {
        await other.query('BEGIN');
        await other.query('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [y.id]);
        let decisions = 0;
        const sending = store.send(
          { fromId: x.id, toId: y.id, content: 'after the block?', attachment: null, now: T0 + 1 },
          { previewLimit: 5 },
          (state) => {
            decisions++;
            return decideSend(state);
          },
        );
        const settled = sending.then(
          () => 'sent',
          (err: unknown) => (err instanceof RelayError ? err.code : String(err)),
        );
        // Until the write is waiting for the lock (an observable state, not a guess at a delay).
        for (;;) {
          // pg_stat_activity is a snapshot per transaction: take a fresh one each time.
          await other.query('SELECT pg_stat_clear_snapshot()');
          const { rows } = await other.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE '%owc_send_chats%'`,
          );
          if (rows[0]!.n > 0) break;
          await new Promise((r) => setTimeout(r, 5));
        }
        await other.query(
          `UPDATE friendships SET status = 'blocked', blocked_by = $1, updated_at = $2
           WHERE user_a = $3 AND user_b = $4`,
          [y.id, T0 + 2, Math.min(x.id, y.id), Math.max(x.id, y.id)],
        );
        await other.query('COMMIT');
        expect(await settled).toBe('blocked_by_recipient');
        expect(decisions).toBe(2);
      } finally {
        await other.end();
      }
      expect(await store.lastMessageId(y.id)).toBe(lastBefore);
      expect((await store.peekInbox(y.id, 10)).total).toBe(0);
    });

    it('a chat send decided on what this instance cached sees another instance’s block, unblock and status changes', async () => {
      const { a, b, x, y } = await friendsOnTwoInstances('cached');
      const send = (content: string, at: number) =>
        a.store.send(
          { fromId: x.id, toId: y.id, content, attachment: null, now: at, sender: x },
          { previewLimit: 5 },
        );
      const refusal = (p: Promise<unknown>) =>
        p.then(
          () => 'sent',
          (err: unknown) => (err instanceof RelayError ? err.code : String(err)),
        );
      // Friends: these go the cached way (recipient and friendship held by instance a).
      expect((await send('one', T0 + 2)).outcome).toBe('chat');
      expect((await send('two', T0 + 3)).outcome).toBe('chat');
      const stored = await a.store.lastMessageId(y.id);

      // Instance b changes what a holds; a's next send must see it, not its cache.
      expect(await b.store.block(y.id, x.id, T0 + 4)).toBe(true);
      expect(await refusal(send('after the block', T0 + 5))).toBe('blocked_by_recipient');
      expect(await a.store.lastMessageId(y.id)).toBe(stored);

      expect(await b.store.unblock(y.id, x.id)).toBe(true);
      // The refusal a just read is not kept as an answer either.
      const unblocked = await refusal(send('after the unblock', T0 + 6));
      expect(unblocked).not.toBe('blocked_by_recipient');

      await a.store.send({
        fromId: y.id,
        toId: x.id,
        content: 'friends again',
        attachment: null,
        now: T0 + 7,
      });
      expect((await send('cached again', T0 + 8)).outcome).toBe('chat');
      // A refusal decided on a fresh read (do not disturb) ...
      expect(await b.store.setStatus(y.id, 'do_not_disturb')).not.toBeNull();
      const before = await a.store.lastMessageId(y.id);
      expect(await refusal(send('do not disturb', T0 + 9))).toBe('recipient_dnd');
      expect(await a.store.lastMessageId(y.id)).toBe(before);
      // ... is not answered again from the cache once b has lifted it.
      expect(await b.store.setStatus(y.id, 'open')).not.toBeNull();
      expect((await send('open again', T0 + 10)).outcome).toBe('chat');
      expect(await a.store.lastMessageId(y.id)).toBe(before + 1);
    });

    it('the chat write returns the sender’s preview and wakes other instances once, in its transaction', async () => {
      const { a, b, x, y } = await friendsOnTwoInstances('chat_wake');
      const got: number[][] = [];
      await b.bus.subscribe((ids) => got.push(ids));

      const r = await a.store.send(
        { fromId: x.id, toId: y.id, content: 'chat', attachment: null, now: T0 + 2, sender: x },
        { previewLimit: 5 },
      );
      // The write sent the wake-up with its commit and says so: the store boundary announces nothing more.
      expect(r.outcome).toBe('chat');
      expect(r.woken).toBe(true);
      // x's inbox: "hi back" and the acceptance notice, oldest first, joined with their senders.
      const peek = await a.store.peekInbox(x.id, 5);
      expect(r.preview).toEqual(peek);
      expect(r.preview!.messages[0]!.from?.name).toBe('y');
      await new Promise((res) => setTimeout(res, 300));
      expect(got).toEqual([[y.id]]);
      // An announce of the bus's own still goes out.
      await a.bus.announce([y.id]);
      await new Promise((res) => setTimeout(res, 300));
      expect(got).toEqual([[y.id], [y.id]]);
    });

    it('matches discovery keywords case-insensitively beyond ASCII', async () => {
      const { store } = await openStore(fresh('disc'));
      const me = await newUser(store, 'me');
      const elan = await newUser(store, 'ÉLAN');
      expect(await store.discoverUsers({ excludeId: me.id, keyword: 'élan', limit: 10 })).toEqual({
        total: 1,
        users: [elan],
      });
    });

    it('retries a send whose transaction failed with a serialization failure or deadlock', async () => {
      const { store } = await openStore(fresh('retry'));
      const x = await newUser(store, 'x');
      const y = await newUser(store, 'y');
      for (const code of ['40001', '40P01']) {
        let calls = 0;
        const r = await store.send(
          {
            fromId: code === '40001' ? x.id : y.id,
            toId: code === '40001' ? y.id : x.id,
            content: code,
            attachment: null,
            now: T0,
          },
          {},
          (state) => {
            calls++;
            if (calls === 1) {
              const e = new pg.DatabaseError('simulated', 0, 'error');
              e.code = code;
              throw e;
            }
            return decideSend(state);
          },
        );
        expect(calls).toBe(2);
        expect(r.delivered.map((m) => m.content)).toEqual(
          code === '40001' ? [code] : [code, expect.any(String), expect.any(String)],
        );
      }
      expect(await store.getStats()).toEqual({ users: 2, friendships: 1, messages: 4 });
    });

    it('concurrent sends through two instances to one inbox get ids 1..n in commit order', async () => {
      const schema = fresh('ids');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const target = await newUser(a.store, 'target');
      const senders: UserRecord[] = [];
      for (let i = 0; i < 40; i++) senders.push(await newUser(a.store, `s${i}`));
      const results = await Promise.all(
        senders.map((s, i) =>
          (i % 2 ? a : b).store.send({
            fromId: s.id,
            toId: target.id,
            content: `m${i}`,
            attachment: null,
            now: T0 + i,
          }),
        ),
      );
      const got = results.map((r) => r.messageId).sort((x, y) => x - y);
      expect(got).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect((await a.store.peekInbox(target.id, 100)).total).toBe(40);
      expect(await b.store.getStats()).toEqual({ users: 41, friendships: 0, messages: 40 });
    });

    it('friends sending both ways at once through two instances never deadlock', async () => {
      const schema = fresh('dead');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const x = await newUser(a.store, 'x');
      const y = await newUser(a.store, 'y');
      const send = (via: Store, from: UserRecord, to: UserRecord, content: string) =>
        via.send({ fromId: from.id, toId: to.id, content, attachment: null, now: T0 });
      await send(a.store, x, y, 'hi');
      await send(b.store, y, x, 'hello');
      const jobs: Promise<unknown>[] = [];
      for (let i = 0; i < 30; i++) {
        jobs.push(send(a.store, x, y, `x${i}`), send(b.store, y, x, `y${i}`));
        jobs.push(
          (i % 2 ? a : b).store.touchLastSeen([
            [y.id, T0 + i],
            [x.id, T0 + i],
          ]),
        );
      }
      await Promise.all(jobs);
      expect(await a.store.lastMessageId(y.id)).toBe(2 + 30);
      expect(await a.store.lastMessageId(x.id)).toBe(2 + 30);
      for (const [who, from] of [
        [x, 'y'],
        [y, 'x'],
      ] as const) {
        const inbox = await b.store.listInbox(who.id, 0, 100);
        expect(inbox.map((m) => m.id)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
        const chats = inbox.filter((m) => m.type === 'chat' && m.content !== 'hello').map((m) => m.content);
        expect(chats.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `${from}${i}`).sort());
      }
      expect(await a.store.getStats()).toEqual({ users: 2, friendships: 1, messages: 4 + 60 });
    });

    it('two strangers messaging each other through two instances end accepted, once', async () => {
      const schema = fresh('strangers');
      const a = await openStore(schema);
      const b = await openStore(schema);
      for (let round = 0; round < 5; round++) {
        const x = await newUser(a.store, `sx${round}`);
        const y = await newUser(a.store, `sy${round}`);
        const outcomes = await Promise.all([
          a.store.send({ fromId: x.id, toId: y.id, content: 'hi y', attachment: null, now: T0 }),
          b.store.send({ fromId: y.id, toId: x.id, content: 'hi x', attachment: null, now: T0 }),
        ]);
        expect(outcomes.map((o) => o.outcome).sort()).toEqual(['accepted', 'request']);
        expect((await a.store.getFriendship(x.id, y.id))?.status).toBe('accepted');
      }
    });

    it('readers of one inbox on two instances never get the same message', async () => {
      const schema = fresh('take');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const r = await newUser(a.store, 'reader');
      const senders: UserRecord[] = [];
      for (let i = 0; i < 30; i++) senders.push(await newUser(a.store, `f${i}`));
      for (const [i, s] of senders.entries()) {
        await a.store.send({ fromId: s.id, toId: r.id, content: `m${i}`, attachment: null, now: T0 });
      }
      const pages = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          (i % 2 ? a : b).store.takeInbox(r.id, { limit: 7, fromId: null }),
        ),
      );
      const got = pages.flatMap((p) => p.messages.map((m) => m.id)).sort((x, y) => x - y);
      expect(got).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      // Readers took turns: each saw the total left before it.
      expect(pages.map((p) => p.total).sort((x, y) => y - x)).toEqual([30, 23, 16, 9, 2, 0]);
    });

    it('group sends, private sends, membership changes and last-seen batches race through two instances', async () => {
      const schema = fresh('groups');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const via = (i: number) => (i % 2 ? a : b).store;
      const owner = await newUser(a.store, 'owner');
      const users: UserRecord[] = [];
      for (let i = 0; i < 24; i++) users.push(await newUser(a.store, `u${i}`));
      const chat = (from: UserRecord, to: UserRecord, content: string, store: Store = a.store) =>
        store.send({ fromId: from.id, toId: to.id, content, attachment: null, now: T0 });
      for (const u of users) {
        await chat(owner, u, 'hi');
        await chat(u, owner, 'ok');
      }
      const limits = { maxMembers: 500, maxGroupsPerUser: 100 };
      const members = users.slice(0, 18);
      const { group } = await a.store.createGroup({
        ownerId: owner.id,
        name: 'g',
        description: null,
        memberIds: members.map((m) => m.id),
        now: T0,
        limits,
      });
      const gsend = (i: number, from: UserRecord, content: string, key?: string) =>
        via(i).sendToGroup(
          { fromId: from.id, groupId: group.id, content, attachment: null, mentionIds: [], now: T0 + i },
          key ? { idempotency: { key, fingerprint: content, windowMs: 60_000 } } : {},
        );
      const jobs: Array<Promise<unknown>> = [];
      for (let i = 0; i < 12; i++) {
        jobs.push(gsend(i, i % 3 ? members[i]! : owner, `g${i}`));
        jobs.push(chat(owner, members[(i * 5) % 18]!, `p${i}`, via(i + 1)));
        jobs.push(chat(members[(i * 7) % 18]!, owner, `q${i}`, via(i)));
        // Last-seen batches name the rows in descending order; the store locks them in id order.
        jobs.push(via(i).touchLastSeen([...users].reverse().map((u) => [u.id, T0 + i] as const)));
        jobs.push(gsend(i + 1, members[1]!, 'keyed', 'same-key'));
      }
      jobs.push(
        b.store.addGroupMembers({
          groupId: group.id,
          actorId: owner.id,
          userIds: users.slice(18).map((u) => u.id),
          now: T0,
          limits,
        }),
      );
      for (const m of members.slice(14, 17)) {
        jobs.push(a.store.removeGroupMember({ groupId: group.id, actorId: owner.id, userId: m.id, now: T0 }));
      }
      jobs.push(a.store.leaveGroup({ groupId: group.id, userId: members[17]!.id, now: T0 }));
      const settled = await Promise.allSettled(jobs);
      // Removed members' own sends may be refused (group_not_found); nothing else fails.
      const failures = settled.flatMap((r) =>
        r.status === 'rejected' ? [r.reason as { code?: string }] : [],
      );
      expect(failures.every((e) => e.code === 'group_not_found')).toBe(true);
      for (const u of [owner, ...users]) {
        const inbox = await b.store.listInbox(u.id, 0, 1000);
        expect(inbox.map((m) => m.id)).toEqual(inbox.map((_, k) => k + 1));
        const groupContents = inbox.filter((m) => m.type === 'group').map((m) => m.content);
        expect(new Set(groupContents).size, `user ${u.name}`).toBe(groupContents.length);
      }
      // The keyed send was stored once for a member who stayed throughout.
      const stayed = await a.store.listInbox(members[2]!.id, 0, 1000);
      expect(stayed.filter((m) => m.content === 'keyed')).toHaveLength(1);
      const detail = await a.store.getGroup(group.id, owner.id);
      expect(detail!.group.memberCount).toBe(1 + 14 + 6);
    });

    it('keyed duplicates racing through two instances deliver once', async () => {
      const { a, b, x, y } = await friendsOnTwoInstances('idem');
      for (let k = 0; k < 10; k++) {
        const opts = { idempotency: { key: `k${k}`, fingerprint: 'f', windowMs: 60_000 }, previewLimit: 5 };
        const results = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            (i % 2 ? a : b).store.send(
              { fromId: x.id, toId: y.id, content: `c${k}`, attachment: null, now: T0 + k },
              opts,
            ),
          ),
        );
        expect(results.filter((r) => !r.replayed)).toHaveLength(1);
        expect(new Set(results.map((r) => r.messageId)).size).toBe(1);
      }
      const chats = (await a.store.listInbox(y.id, 0, 100)).filter((m) => m.type === 'chat');
      expect(chats.map((m) => m.content)).toEqual(Array.from({ length: 10 }, (_, k) => `c${k}`));
    });
  });

  describe('PostgresWakeBus', () => {
    function collector() {
      const got: number[][] = [];
      let wake: () => void = () => undefined;
      return {
        got,
        onWake: (ids: number[]) => {
          got.push(ids);
          wake();
        },
        next(timeoutMs = 3000): Promise<number[]> {
          const have = got.length;
          return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('no wake-up')), timeoutMs);
            wake = () => {
              if (got.length > have) {
                clearTimeout(timer);
                resolve(got[have]!);
              }
            };
          });
        },
      };
    }

    it('records resume streams per instance: others see them until released or expired (issue 24.3)', async () => {
      const schema = fresh('holds');
      const a = await openStore(schema);
      const b = await openStore(schema);
      await a.bus.holdResume([1, 2], T0 + 20_000);
      // B sees A's records; A does not count its own (its hub knows its streams).
      expect([...(await b.bus.resumeHeldElsewhere([1, 2, 3], T0))].sort()).toEqual([1, 2]);
      expect([...(await a.bus.resumeHeldElsewhere([1, 2, 3], T0))]).toEqual([]);
      // A refresh moves the expiry; past it, a record no longer counts (a crashed instance).
      await a.bus.holdResume([1], T0 + 40_000);
      expect([...(await b.bus.resumeHeldElsewhere([1, 2], T0 + 30_000))]).toEqual([1]);
      // Released: gone at once.
      await a.bus.releaseResume([1]);
      expect([...(await b.bus.resumeHeldElsewhere([1, 2], T0))]).toEqual([2]);
      // Empty lists are no round trip and no error.
      await a.bus.holdResume([], T0);
      await a.bus.releaseResume([]);
      expect([...(await b.bus.resumeHeldElsewhere([], T0))]).toEqual([]);
      // Another schema (another deployment) sees nothing of this one.
      const other = await openStore(fresh('holds2'));
      expect([...(await other.bus.resumeHeldElsewhere([2], T0))]).toEqual([]);
    });

    it('delivers other instances’ announcements, skips its own, stays within its schema', async () => {
      const schema = fresh('bus');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const other = await openStore(fresh('bus_other'));
      const ca = collector();
      const cb = collector();
      const co = collector();
      await a.bus.subscribe(ca.onWake);
      await b.bus.subscribe(cb.onWake);
      await other.bus.subscribe(co.onWake);
      const seen = cb.next();
      await a.bus.announce([7, 42]);
      expect(await seen).toEqual([7, 42]);
      const back = ca.next();
      await b.bus.announce([3]);
      expect(await back).toEqual([3]);
      await new Promise((r) => setTimeout(r, 200));
      expect(ca.got).toEqual([[3]]);
      expect(cb.got).toEqual([[7, 42]]);
      expect(co.got).toEqual([]);
      await a.bus.announce([]);
    });

    it('splits a long announcement into payloads PostgreSQL accepts', async () => {
      const schema = fresh('bus_long');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const cb = collector();
      await b.bus.subscribe(cb.onWake);
      const ids = Array.from({ length: 3000 }, (_, i) => 1_000_000 + i);
      await a.bus.announce(ids);
      await new Promise((r) => setTimeout(r, 300));
      expect(cb.got.length).toBeGreaterThan(1);
      expect(cb.got.flat()).toEqual(ids);
    });

    it('re-opens a dropped LISTEN connection and keeps delivering', async () => {
      const schema = fresh('bus_drop');
      const a = await openStore(schema);
      const b = await openStore(schema);
      const cb = collector();
      await b.bus.subscribe(cb.onWake);
      const bus = b.bus as PostgresWakeBus;
      expect(bus.connects).toBe(1);
      // Kill the LISTEN backend from the server side, as a network failure or restart would.
      const killed = await querySchema<{ ok: boolean }>(
        schema,
        'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE query = $1 AND pid <> pg_backend_pid()',
        [`LISTEN ${pg.escapeIdentifier(bus.channel)}`],
      );
      expect(killed).toEqual([{ ok: true }]);
      const deadline = Date.now() + 5000;
      while (bus.connects < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(bus.connects).toBe(2);
      const seen = cb.next();
      await a.bus.announce([5]);
      expect(await seen).toEqual([5]);
      // And once more through the in-process path.
      bus.dropListenConnection();
      while (bus.connects < 3 && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 50));
      const again = cb.next();
      await a.bus.announce([6]);
      expect(await again).toEqual([6]);
    });

    it('close() ends the LISTEN connection', async () => {
      const schema = fresh('bus_close');
      const opened = await openPostgresStore({ url: PG_URL, schema });
      await opened.bus.subscribe(() => undefined);
      const channel = (opened.bus as PostgresWakeBus).channel;
      const listening = async () =>
        Number(
          (
            await querySchema<{ n: string }>(
              schema,
              `SELECT count(*) AS n FROM pg_stat_activity WHERE query = $1`,
              [`LISTEN ${pg.escapeIdentifier(channel)}`],
            )
          )[0]!.n,
        );
      expect(await listening()).toBe(1);
      await opened.bus.close();
      await opened.store.close();
      const deadline = Date.now() + 3000;
      while ((await listening()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await listening()).toBe(0);
      await opened.bus.announce([1]);
    });
  });
});
