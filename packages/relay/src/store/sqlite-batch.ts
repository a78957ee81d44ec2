// Group commit for the SQLite backend. Sends that arrive in the same turn of the event loop run inside
// one transaction, each in its own savepoint (better-sqlite3 turns a nested transaction function into a
// SAVEPOINT), so a refused send rolls back alone while the batch pays for one BEGIN/COMMIT and one WAL
// append. Every caller is answered only after the batch has committed: durability is unchanged.

import type Database from 'better-sqlite3';

interface Job {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class CommitBatcher {
  private jobs: Job[] = [];
  private scheduled = false;
  private readonly outer: Database.Transaction<(jobs: Job[]) => Array<{ ok: boolean; value: unknown }>>;

  /**
   * `finish` runs inside the batch's transaction after its jobs, before COMMIT: bookkeeping the jobs
   * share (one `total += n` for the whole batch instead of one write per send).
   */
  constructor(db: Database.Database, finish: () => void = () => undefined) {
    this.outer = db.transaction((jobs: Job[]) => {
      const results = jobs.map((job) => {
        try {
          return { ok: true, value: job.run() };
        } catch (err) {
          // The job's own transaction function has already rolled back to its savepoint.
          return { ok: false, value: err };
        }
      });
      finish();
      return results;
    });
  }

  /** Runs `fn` (a transaction function) in the next batch; resolves after that batch commits. */
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
    let results: Array<{ ok: boolean; value: unknown }>;
    try {
      results = this.outer.immediate(jobs);
    } catch (err) {
      // The commit itself failed: nothing of the batch is stored.
      for (const job of jobs) job.reject(err);
      return;
    }
    results.forEach((r, i) => (r.ok ? jobs[i]!.resolve(r.value) : jobs[i]!.reject(r.value)));
  }
}
