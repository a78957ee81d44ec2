// One skeleton per operation for both backends. An operation that reads, decides and writes is written
// once, as a generator over a transaction's dialect (store/dialect.ts): each database call is a step,
// `yield* step(t.call())`. SQLite answers a step with a value (better-sqlite3 is synchronous, and its
// transactions must not span an await), PostgreSQL with a promise; runSync and runAsync drive the same
// generator either way. What differs between the backends — SQL text, locks, batching — stays in the
// dialect; the order of reads, the decision and the writes is the skeleton's.

/** What a dialect call gives back: a value (SQLite) or a promise of it (PostgreSQL). */
export type Step<T> = T | Promise<T>;

/** A skeleton: a generator of steps that returns the operation's result. */
export type Op<T> = Generator<unknown, T, unknown>;

/** One database call inside a skeleton. */
export function* step<T>(call: Step<T>): Op<T> {
  return (yield call) as T;
}

/** Drives a skeleton whose every step is synchronous (inside a better-sqlite3 transaction). */
export function runSync<T>(op: Op<T>): T {
  let r = op.next();
  while (!r.done) {
    if (r.value instanceof Promise) throw new Error('a SQLite skeleton step returned a promise');
    r = op.next(r.value);
  }
  return r.value;
}

/** Drives a skeleton whose steps are promises (inside a PostgreSQL transaction). */
export async function runAsync<T>(op: Op<T>): Promise<T> {
  let r = op.next();
  while (!r.done) r = op.next(await r.value);
  return r.value;
}
