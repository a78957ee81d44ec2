// PostgreSQL's own yardstick (issue 18): durable single-row insert transactions per second from `pg`
// (node-postgres, the relay's driver) at the same concurrency as the send load (64 connections), on the
// same server, in the same run. Each INSERT is its own transaction (autocommit) and, with the server's
// default synchronous_commit=on, returns only after its WAL is flushed — what a send must wait for too.
// The relay-on-PostgreSQL figures are reported as ratios to this.

import pg from 'pg';
import { CONTENT } from '../lib/context.ts';
import { round } from '../lib/stats.ts';

export interface PgCommitResult {
  connections: number;
  commitsPerSec: number;
  /** Mean time per INSERT as one connection sees it, ms. */
  msPerCommit: number;
  synchronousCommit: string;
}

/** Runs in `schema` (it must exist); the table is dropped at the end. */
export async function measurePgCommits(
  url: string,
  connections: number,
  seconds: number,
): Promise<PgCommitResult> {
  const clients = Array.from({ length: connections }, () => new pg.Client({ connectionString: url }));
  await Promise.all(clients.map((c) => c.connect()));
  const [first] = clients;
  try {
    await first!.query(
      'CREATE TABLE pg_yardstick (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, to_id BIGINT NOT NULL, content TEXT NOT NULL)',
    );
    const sync = (await first!.query<{ s: string }>("SELECT current_setting('synchronous_commit') AS s"))
      .rows[0]!.s;
    // Prepared once per connection, as the relay's statements are.
    const insert = (c: pg.Client, i: number) =>
      c.query({
        name: 'yardstick_insert',
        text: 'INSERT INTO pg_yardstick (to_id, content) VALUES ($1, $2)',
        values: [i % 64, CONTENT],
      });
    const run = async (ms: number) => {
      let n = 0;
      const end = performance.now() + ms;
      await Promise.all(
        clients.map(async (c, i) => {
          while (performance.now() < end) {
            await insert(c, i);
            n++;
          }
        }),
      );
      return n;
    };
    await run(Math.min(1000, seconds * 250)); // warm-up: connections, plans, the table's first pages
    const t0 = performance.now();
    const n = await run(seconds * 1000);
    const secs = (performance.now() - t0) / 1000;
    return {
      connections,
      commitsPerSec: round(n / secs, 0),
      msPerCommit: round((secs * 1000 * connections) / n, 2),
      synchronousCommit: sync,
    };
  } finally {
    await first!.query('DROP TABLE IF EXISTS pg_yardstick').catch(() => undefined);
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}
