import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CommitBatcher } from './sqlite-batch.ts';

describe('CommitBatcher', () => {
  it('runs jobs of one turn in one transaction; a failing job rolls back alone', async () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (v TEXT)');
    const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
    const job = db.transaction((v: string, fail: boolean) => {
      insert.run(v);
      if (fail) throw new Error(`refused ${v}`);
      return v;
    });
    const batcher = new CommitBatcher(db);
    const seenInTx: boolean[] = [];
    const results = await Promise.allSettled(
      [
        ['a', false],
        ['b', true],
        ['c', false],
      ].map(([v, fail]) =>
        batcher
          .submit(() => {
            seenInTx.push(db.inTransaction);
            return job(v as string, fail as boolean);
          })
          .then((r) => {
            // Answered only once the batch has committed.
            expect(db.inTransaction).toBe(false);
            return r;
          }),
      ),
    );
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'a',
      'refused b',
      'c',
    ]);
    expect(seenInTx).toEqual([true, true, true]); // all three inside the one outer transaction
    expect(db.prepare('SELECT v FROM t ORDER BY rowid').pluck().all()).toEqual(['a', 'c']);
  });
});
