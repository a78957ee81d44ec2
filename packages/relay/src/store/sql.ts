// SQL written once for both backends, where the statement is the same: PostgreSQL's text ($1
// placeholders, ::casts, `= ANY($1::bigint[])`, row locks) is the source, and the SQLite executor
// rewrites it once per text (positional ?, no casts, arrays as json_each, no row locks: its single
// writer serialises) and caches the prepared statement. Statements that differ in meaning (search,
// the inbox's read-and-clear, the send's batched path) stay with their backend.

import type Database from 'better-sqlite3';
import type { PgDb, Queryable } from './postgres-connection.ts';
import { decodeText, encodeText } from './postgres-text.ts';
import type { TextCodec } from './rows.ts';
import { runAsync, runSync, type Op, type Step } from './steps.ts';

export interface Sql {
  all<R>(text: string, params?: readonly unknown[]): Step<R[]>;
  get<R>(text: string, params?: readonly unknown[]): Step<R | undefined>;
  /** How many rows the statement changed. */
  run(text: string, params?: readonly unknown[]): Step<number>;
  /** Text as this backend stores it (PostgreSQL cannot hold U+0000: postgres-text.ts) and back. */
  readonly encode: TextCodec;
  readonly decode: TextCodec;
}

export interface SqlDb extends Sql {
  /** One transaction (SQLite: IMMEDIATE; PostgreSQL: READ COMMITTED, retried on deadlock). */
  tx<T>(op: (q: Sql) => Op<T>): Promise<T>;
  /** Reads that must see one snapshot (PostgreSQL: REPEATABLE READ READ ONLY). */
  snapshot<T>(op: (q: Sql) => Op<T>): Promise<T>;
}

const asIs: TextCodec = (s) => s;

/** PostgreSQL text → SQLite text, and which parameter each `?` binds. */
function toSqlite(text: string): { text: string; order: number[] } {
  const order: number[] = [];
  const out = text
    .replace(/= ANY\((\$\d+)::\w+\[\]\)/g, 'IN (SELECT value FROM json_each($1))')
    .replace(/::\w+(\[\])?/g, '')
    .replace(/\s+FOR (NO KEY UPDATE|UPDATE|SHARE)\b/g, '')
    .replace(/\$(\d+)/g, (_, n: string) => {
      order.push(Number(n) - 1);
      return '?';
    });
  return { text: out, order };
}

type Bound = string | number | bigint | Buffer | null;

export class SqliteSql implements SqlDb {
  readonly encode = asIs;
  readonly decode = asIs;
  private readonly cache = new Map<
    string,
    { stmt: Database.Statement<Bound[]>; order: number[]; writes: boolean }
  >();
  /**
   * Bumped before every statement that may write, by this executor and by the prepared statements of
   * the send path (sqlite-messages.ts): the send batch learns from it whether a failed send wrote.
   */
  writes = 0;
  private readonly runTx: Database.Transaction<(fn: () => unknown) => unknown>;

  constructor(private readonly db: Database.Database) {
    this.runTx = db.transaction((fn: () => unknown) => fn());
  }

  private bind(text: string, params: readonly unknown[]) {
    let s = this.cache.get(text);
    if (!s) {
      const t = toSqlite(text);
      const stmt = this.db.prepare<Bound[]>(t.text);
      s = { stmt, order: t.order, writes: !stmt.readonly };
      this.cache.set(text, s);
    }
    if (s.writes) this.writes++;
    const args = s.order.map((i): Bound => {
      const v = params[i];
      if (Array.isArray(v)) return JSON.stringify(v);
      if (typeof v === 'boolean') return v ? 1 : 0;
      return (v ?? null) as Bound;
    });
    return { stmt: s.stmt, args };
  }

  all<R>(text: string, params: readonly unknown[] = []): R[] {
    const { stmt, args } = this.bind(text, params);
    return stmt.all(...args) as R[];
  }

  get<R>(text: string, params: readonly unknown[] = []): R | undefined {
    const { stmt, args } = this.bind(text, params);
    return stmt.get(...args) as R | undefined;
  }

  run(text: string, params: readonly unknown[] = []): number {
    const { stmt, args } = this.bind(text, params);
    return stmt.run(...args).changes;
  }

  async tx<T>(op: (q: Sql) => Op<T>): Promise<T> {
    return this.runTx.immediate(() => runSync(op(this))) as T;
  }

  async snapshot<T>(op: (q: Sql) => Op<T>): Promise<T> {
    return this.runTx.deferred(() => runSync(op(this))) as T;
  }
}

/** PostgreSQL on a pool (or, inside a transaction, on its connection). */
export class PgSql implements SqlDb {
  readonly encode = encodeText;
  readonly decode = decodeText;

  constructor(
    private readonly db: PgDb,
    private readonly c: Queryable = db.pool,
  ) {}

  async all<R>(text: string, params: readonly unknown[] = []): Promise<R[]> {
    return (await this.c.query(text, params as unknown[])).rows as R[];
  }

  async get<R>(text: string, params: readonly unknown[] = []): Promise<R | undefined> {
    return (await this.all<R>(text, params))[0];
  }

  async run(text: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.c.query(text, params as unknown[])).rowCount ?? 0;
  }

  tx<T>(op: (q: Sql) => Op<T>): Promise<T> {
    return this.db.tx((c) => runAsync(op(new PgSql(this.db, c))));
  }

  async snapshot<T>(op: (q: Sql) => Op<T>): Promise<T> {
    const c = await this.db.pool.connect();
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const result = await runAsync(op(new PgSql(this.db, c)));
      await c.query('COMMIT');
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }
}
