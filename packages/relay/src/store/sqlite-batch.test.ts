import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CommitBatcher } from './sqlite-batch.ts';

/** A table, a batcher over it and a job that writes `v` (counted, as SqliteSql counts) unless refused first. */
function setup() {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t (v TEXT)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  let writes = 0;
  const events: string[] = [];
  const batcher = new CommitBatcher(db, () => writes, {
    begin: () => events.push('begin'),
    finish: () => events.push('finish'),
    rolledBack: () => events.push('rolled back'),
  });
  const seenInTx: boolean[] = [];
  const job = (v: string, fail: 'before' | 'after' | null) =>
    batcher
      .submit(() => {
        seenInTx.push(db.inTransaction);
        if (fail === 'before') throw new Error(`refused ${v}`);
        writes++;
        insert.run(v);
        if (fail === 'after') throw new Error(`failed ${v}`);
        return v;
      })
      .then((r) => {
        // Answered only once the batch has committed.
        expect(db.inTransaction).toBe(false);
        return r;
      });
  const answers = (jobs: Array<Promise<string>>) =>
    Promise.allSettled(jobs).then((rs) =>
      rs.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    );
  const stored = () => db.prepare('SELECT v FROM t ORDER BY rowid').pluck().all();
  return { job, answers, stored, events, seenInTx };
}

describe('CommitBatcher', () => {
  it('runs jobs of one turn in one transaction; a job refused before writing fails alone', async () => {
    const { job, answers, stored, events, seenInTx } = setup();
    expect(await answers([job('a', null), job('b', 'before'), job('c', null)])).toEqual([
      'a',
      'refused b',
      'c',
    ]);
    expect(seenInTx).toEqual([true, true, true]); // all three inside the one transaction
    expect(events).toEqual(['begin', 'finish']);
    expect(stored()).toEqual(['a', 'c']);
  });

  it('a job failing after it wrote: the batch rolls back and each job runs again alone', async () => {
    const { job, answers, stored, events } = setup();
    expect(await answers([job('a', null), job('b', 'after'), job('c', null)])).toEqual([
      'a',
      'failed b',
      'c',
    ]);
    // b's write is gone, a and c are stored once each, in their order.
    expect(stored()).toEqual(['a', 'c']);
    expect(events).toEqual([
      'begin',
      'rolled back',
      ...['begin', 'finish'],
      ...['begin', 'rolled back'],
      ...['begin', 'finish'],
    ]);
  });
});
