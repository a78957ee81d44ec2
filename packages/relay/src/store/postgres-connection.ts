// PostgreSQL connections: the pool's client that prepares statements, the type parsers, the schema
// in the URL, and the transaction runner with its retry rule. Shared by every PostgreSQL area.

import { createHash } from 'node:crypto';
import pg from 'pg';

export type Queryable = pg.Pool | pg.PoolClient;

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

/** Attempts of a transaction that fails with a serialization failure or a deadlock. */
const TX_ATTEMPTS = 8;

export const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,47}$/;

/** pg returns BIGINT (and count(*)) as strings; every BIGINT here is a safe integer. */
export const TYPES = new pg.TypeOverrides();
TYPES.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

function sqlState(err: unknown): string | undefined {
  return err instanceof pg.DatabaseError ? err.code : undefined;
}

export function isUniqueViolation(err: unknown, constraint: string): boolean {
  return err instanceof pg.DatabaseError && err.code === '23505' && err.constraint === constraint;
}

/** SQLSTATEs of a server that is shutting down, starting up, crashed, or out of connection slots. */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);
/** Socket and name-lookup failures of a server that cannot be reached. */
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
/** What pg says when the connection under a query went away. */
const UNAVAILABLE_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/;

/**
 * Whether a failure means "PostgreSQL cannot be reached right now" (restarting, down, unreachable,
 * connection cut) rather than a fault of this request: the relay answers 503 `store_unavailable` with
 * Retry-After instead of a 500. A statement cut mid-way is rolled back by the server, so the client's
 * retry (with its Idempotency-Key for sends) is safe.
 */
export function isStoreUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    if (e instanceof pg.DatabaseError) {
      if (e.code && (e.code.startsWith('08') || UNAVAILABLE_STATES.has(e.code))) return true;
      continue;
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE_ERRNOS.has(code)) return true;
    if (UNAVAILABLE_MESSAGES.test(e.message)) return true;
  }
  return false;
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
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'DATABASE_URL';
  }
}

/** The pool every area queries, and its transactions. */
export class PgDb {
  constructor(readonly pool: pg.Pool) {}

  /** Runs fn in a READ COMMITTED transaction; retried on serialization failure or deadlock. */
  async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
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
}

// Group commit for any kind of round trip (the send path's reads and writes, token lookups): the jobs of
// one turn of the event loop go to the server as one statement.

/** Jobs per round trip at most. */
const MAX_BATCH = 256;
/**
 * Round trips of one kind in flight at once per instance. Fewer than the pool's connections on
 * purpose: what arrives meanwhile waits and goes in the next, larger batch (group commit).
 */
const MAX_IN_FLIGHT = 2;

/**
 * Collects the jobs of one turn of the event loop and runs them as one round trip (`run` answers one
 * result per job, in order). `onError` maps a failed round trip to each job's outcome.
 */
export class RoundTrips<J, R> {
  private queue: Array<{ job: J; resolve: (r: R) => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (jobs: J[]) => Promise<R[]>,
    private readonly onError: (err: unknown) => R | undefined = () => undefined,
  ) {}

  submit(job: J): Promise<R> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.inFlight >= MAX_IN_FLIGHT || this.queue.length === 0) return;
    const batch = this.queue.splice(0, MAX_BATCH);
    this.inFlight++;
    this.schedule();
    try {
      const results = await this.run(batch.map((b) => b.job));
      batch.forEach((b, i) => b.resolve(results[i]!));
    } catch (err) {
      const mapped = this.onError(err);
      for (const b of batch) {
        if (mapped === undefined) b.reject(err);
        else b.resolve(mapped);
      }
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }
}
