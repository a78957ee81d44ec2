// Group commit for the SQLite backend. Sends that arrive in the same turn of the event loop run inside
// one transaction, so the batch pays for one BEGIN/COMMIT and one WAL append. Every caller is answered
// only after the batch has committed: durability is unchanged.
//
// The jobs run without a savepoint each (a SAVEPOINT and its RELEASE were the dearest statements of a
// send, issue 26). A job refused before it wrote anything (the usual refusal: the decision comes before
// any write) just throws and the batch goes on. A job that fails after writing (a constraint, a full
// disk) cannot be undone alone: the whole batch rolls back and its jobs run again one at a time, each in
// its own transaction, so each caller gets its own answer and only the failing job's writes are lost.

import type Database from 'better-sqlite3';

interface Job {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A job failed with writes of its own in the transaction: the transaction must roll back. */
class WroteThenFailed {
  constructor(readonly cause: unknown) {}
}

export class CommitBatcher {
  private jobs: Job[] = [];
  private scheduled = false;
  private readonly outer: Database.Transaction<(jobs: Job[]) => Array<{ ok: boolean; value: unknown }>>;

  /**
   * `writes`: a count every write a job may make bumps before it runs (SqliteSql.writes), so a failed
   * job is known to have written or not. `begin` and `finish` run inside the batch's transaction before
   * and after its jobs: bookkeeping the jobs share (one `total += n` for the whole batch instead of one
   * write per send), started afresh when a batch is run again. `rolledBack`: after a batch is undone.
   */
  constructor(
    db: Database.Database,
    writes: () => number,
    private readonly hooks: { begin?: () => void; finish?: () => void; rolledBack?: () => void } = {},
  ) {
    this.outer = db.transaction((jobs: Job[]) => {
      hooks.begin?.();
      const results = jobs.map((job) => {
        const before = writes();
        try {
          return { ok: true, value: job.run() };
        } catch (err) {
          // SQLite may have rolled the whole transaction back itself (SQLITE_FULL, SQLITE_IOERR).
          if (writes() !== before || !db.inTransaction) throw new WroteThenFailed(err);
          return { ok: false, value: err };
        }
      });
      hooks.finish?.();
      return results;
    });
  }

  /** Runs `fn` (synchronous, no transaction of its own) in the next batch; resolves after that batch commits. */
  submit<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.jobs.push({ run: fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const jobs = this.jobs;
    this.jobs = [];
    if (!this.commit(jobs)) for (const job of jobs) this.commit([job]);
  }

  /** Runs `jobs` in one transaction and answers them; false (nothing answered) when one wrote then failed. */
  private commit(jobs: Job[]): boolean {
    let results: Array<{ ok: boolean; value: unknown }>;
    try {
      results = this.outer.immediate(jobs);
    } catch (err) {
      this.hooks.rolledBack?.();
      if (err instanceof WroteThenFailed) {
        if (jobs.length > 1) return false;
        jobs[0]!.reject(err.cause);
        return true;
      }
      // BEGIN or COMMIT itself failed: nothing of the batch is stored.
      for (const job of jobs) job.reject(err);
      return true;
    }
    results.forEach((r, i) => (r.ok ? jobs[i]!.resolve(r.value) : jobs[i]!.reject(r.value)));
    return true;
  }
}
