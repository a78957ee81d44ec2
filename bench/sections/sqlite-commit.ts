// A storage yardstick: how many single-row write transactions better-sqlite3 commits per second on this
// machine with the relay's settings (WAL, synchronous=NORMAL, default autocheckpoint). A relay that
// commits once per send cannot send faster than this.

import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CONTENT } from '../lib/context.ts';
import { round } from '../lib/stats.ts';

export interface SqliteCommitResult {
  commitsPerSec: number;
  /** Mean time per transaction (BEGIN IMMEDIATE, one INSERT, COMMIT), µs. */
  usPerCommit: number;
}

export function measureSqliteCommits(dir: string, seconds: number): SqliteCommitResult {
  const db = new Database(join(dir, 'commit-yardstick.sqlite'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, to_id INTEGER NOT NULL, content TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (to_id, content) VALUES (?, ?)');
    const tx = db.transaction((i: number) => insert.run(i % 64, CONTENT));
    let n = 0;
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    while (performance.now() < end) {
      for (let k = 0; k < 100; k++) tx.immediate(n++);
    }
    const secs = (performance.now() - t0) / 1000;
    return { commitsPerSec: round(n / secs, 0), usPerCommit: round((secs * 1e6) / n, 1) };
  } finally {
    db.close();
  }
}
