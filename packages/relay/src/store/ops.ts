// Whole-database operations (OpsStore), one implementation over both backends (sql.ts). What differs
// is given by the backend: where the lifetime message count lives (SQLite: the meta row; PostgreSQL:
// MESSAGE_COUNTER_SHARDS rows), how a copy is made, and what advancing ids also records.

import type { StatsView } from '@openwechat/protocol';
import type { Sql, SqlDb } from './sql.ts';
import { step, type Step } from './steps.ts';
import type { OpsStore } from './types.ts';

export interface OpsDialect {
  /** The lifetime message count, as one scalar subquery. */
  messagesTotal: string;
  backup(file: string): Promise<void>;
  /** Runs in advanceMessageIds' transaction after the update. */
  afterAdvance?: (q: Sql) => Step<unknown>;
}

export class Ops implements OpsStore {
  constructor(
    private readonly sql: SqlDb,
    private readonly d: OpsDialect,
  ) {}

  async getStats(): Promise<StatsView> {
    return (await this.sql.get<StatsView>(
      `SELECT (SELECT count(*) FROM users) AS users,
              (SELECT count(*) FROM friendships WHERE status = 'accepted') AS friendships,
              ${this.d.messagesTotal} AS messages`,
      [],
    ))!;
  }

  async ping(): Promise<void> {
    await this.sql.get('SELECT 1', []);
  }

  backup(file: string): Promise<void> {
    return this.d.backup(file);
  }

  async advanceMessageIds(by: number): Promise<{ users: number; by: number }> {
    if (!Number.isSafeInteger(by) || by < 1) throw new RangeError(`by must be a positive integer, got ${by}`);
    const after = this.d.afterAdvance;
    return this.sql.tx(function* (q) {
      // Every user row locked first, in id order as a send locks them, so this never deadlocks a send
      // that runs meanwhile (it waits, then takes its next id from the advanced value).
      const { max } = (yield* step(
        q.get<{ max: number }>(
          `SELECT coalesce(max(last_msg_id), 0) AS max
           FROM (SELECT last_msg_id FROM users ORDER BY id FOR NO KEY UPDATE) locked`,
          [],
        ),
      ))!;
      if (max + by > Number.MAX_SAFE_INTEGER) {
        throw new RangeError(`advancing by ${by} would take message ids past ${Number.MAX_SAFE_INTEGER}`);
      }
      const users = yield* step(q.run('UPDATE users SET last_msg_id = last_msg_id + $1', [by]));
      if (after) yield* step(after(q));
      return { users, by };
    });
  }
}
