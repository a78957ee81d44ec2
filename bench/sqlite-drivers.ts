// better-sqlite3 against Node's built-in node:sqlite (Node >= 22.13), same process, same workloads, the
// relay's settings (WAL, synchronous=NORMAL): could the built-in module replace the native one (no
// compiler, no ~80 s build at `npm ci`) without losing speed? The decision and figures: docs/benchmarks.md.
//
//   npx tsx bench/sqlite-drivers.ts [--seconds S] [--rounds N] [--native-binding FILE]
//
// --native-binding loads a better_sqlite3.node built for this Node (e.g. Node 24 while node_modules holds
// the Node 20 build; .ci/run keeps one in its cache). Each workload runs for S seconds per driver per
// round, the drivers alternating who goes first; the median round is reported.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

/** The part of a prepared statement both drivers share. */
interface Stmt {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

interface Driver {
  name: string;
  exec(sql: string): void;
  prepare(sql: string): Stmt;
  close(): void;
}

const SCHEMA = `
  CREATE TABLE messages (
    recipient INTEGER NOT NULL, id INTEGER NOT NULL, sender INTEGER NOT NULL,
    created_at INTEGER NOT NULL, content TEXT NOT NULL,
    PRIMARY KEY (recipient, id)
  ) WITHOUT ROWID;
  CREATE TABLE inboxes (recipient INTEGER PRIMARY KEY, last_id INTEGER NOT NULL);
`;
const RECIPIENTS = 64;
const CONTENT = 'hello from the benchmark, a message of a typical length: '.padEnd(120, 'x');

function pragmas(d: Driver): void {
  d.exec('PRAGMA journal_mode = WAL');
  d.exec('PRAGMA synchronous = NORMAL');
  d.exec('PRAGMA busy_timeout = 5000');
}

function openBetter(file: string, nativeBinding?: string): Driver {
  const db = new Database(file, nativeBinding ? { nativeBinding } : {});
  return {
    name: 'better-sqlite3',
    exec: (s) => db.exec(s),
    prepare: (s) => db.prepare(s),
    close: () => db.close(),
  };
}

async function openNodeSqlite(file: string): Promise<Driver> {
  // Loaded by name at run time: @types/node here is Node 20's, which has no node:sqlite.
  const mod = (await import('node:sqlite' as string)) as {
    DatabaseSync: new (file: string) => { exec(s: string): void; prepare(s: string): Stmt; close(): void };
  };
  const db = new mod.DatabaseSync(file);
  return {
    name: 'node:sqlite',
    exec: (s) => db.exec(s),
    prepare: (s) => db.prepare(s),
    close: () => db.close(),
  };
}

/** Runs `op` repeatedly for `seconds`; returns units (what op returns) per second. */
function timed(seconds: number, op: () => number): number {
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  let units = 0;
  while (performance.now() < end) for (let i = 0; i < 50; i++) units += op();
  return units / ((performance.now() - start) / 1000);
}

type Workload = 'commit' | 'batch64' | 'pointSelect' | 'inboxRead50';
const WORKLOADS: Workload[] = ['commit', 'batch64', 'pointSelect', 'inboxRead50'];

/** One driver, one round: fresh database file, every workload; figures in operations (rows) per second. */
function round(d: Driver, seconds: number): Record<Workload, number> {
  pragmas(d);
  d.exec(SCHEMA);
  const initInbox = d.prepare('INSERT INTO inboxes (recipient, last_id) VALUES (?, 0)');
  for (let r = 0; r < RECIPIENTS; r++) initInbox.run(r);
  const begin = d.prepare('BEGIN IMMEDIATE');
  const commit = d.prepare('COMMIT');
  const bump = d.prepare('UPDATE inboxes SET last_id = last_id + 1 WHERE recipient = ? RETURNING last_id');
  const insert = d.prepare(
    'INSERT INTO messages (recipient, id, sender, created_at, content) VALUES (?, ?, ?, ?, ?)',
  );
  let n = 0;
  /** One send as the relay stores it: next id of the recipient's inbox, then the row. */
  const send = (): void => {
    const r = n++ % RECIPIENTS;
    const { last_id } = bump.get(r) as { last_id: number };
    insert.run(r, last_id, (r + 1) % RECIPIENTS, 1_772_000_000_000 + n, CONTENT);
  };
  const out = {} as Record<Workload, number>;
  // A transaction per send (what a lone sender gets).
  out.commit = timed(seconds, () => {
    begin.run();
    send();
    commit.run();
    return 1;
  });
  // 64 sends per transaction (the relay's group commit under load): rows per second.
  out.batch64 = timed(seconds, () => {
    begin.run();
    for (let i = 0; i < 64; i++) send();
    commit.run();
    return 64;
  });
  const lastIds = d.prepare('SELECT recipient, last_id FROM inboxes').all() as {
    recipient: number;
    last_id: number;
  }[];
  const point = d.prepare('SELECT sender, created_at, content FROM messages WHERE recipient = ? AND id = ?');
  let k = 0;
  out.pointSelect = timed(seconds, () => {
    const inbox = lastIds[k++ % RECIPIENTS]!;
    point.get(inbox.recipient, 1 + (k % inbox.last_id));
    return 1;
  });
  const page = d.prepare(
    'SELECT id, sender, created_at, content FROM messages WHERE recipient = ? AND id > ? ORDER BY id LIMIT 50',
  );
  out.inboxRead50 = timed(seconds, () => {
    const inbox = lastIds[k++ % RECIPIENTS]!;
    return page.all(inbox.recipient, k % Math.max(1, inbox.last_id - 50)).length;
  });
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '1.5' },
      rounds: { type: 'string', default: '3' },
      'native-binding': { type: 'string' },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const dir = mkdtempSync(join(tmpdir(), 'owc-sqlite-drivers-'));
  const results: Record<string, Record<Workload, number[]>> = {};
  try {
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 === 0 ? ['better-sqlite3', 'node:sqlite'] : ['node:sqlite', 'better-sqlite3'];
      for (const name of order) {
        const file = join(dir, `${name.replace(/\W/g, '_')}-${i}.sqlite`);
        const d =
          name === 'node:sqlite' ? await openNodeSqlite(file) : openBetter(file, values['native-binding']);
        try {
          const r = round(d, seconds);
          results[name] ??= { commit: [], batch64: [], pointSelect: [], inboxRead50: [] };
          for (const w of WORKLOADS) results[name]![w].push(r[w]);
        } finally {
          d.close();
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const better = results['better-sqlite3']!;
  const builtin = results['node:sqlite']!;
  const summary = {
    node: process.version,
    seconds,
    rounds,
    workloads: Object.fromEntries(
      WORKLOADS.map((w) => {
        const b = median(better[w]);
        const n = median(builtin[w]);
        return [w, { betterSqlite3: Math.round(b), nodeSqlite: Math.round(n), ratio: +(n / b).toFixed(2) }];
      }),
    ),
  };
  console.log(`node ${process.version}, median of ${rounds} rounds × ${seconds} s per workload and driver`);
  console.log('workload        better-sqlite3   node:sqlite   node:sqlite ÷ better-sqlite3');
  for (const [w, r] of Object.entries(summary.workloads))
    console.log(
      `${w.padEnd(15)} ${String(r.betterSqlite3).padStart(14)} ${String(r.nodeSqlite).padStart(13)}   ${r.ratio}`,
    );
  console.log(JSON.stringify(summary));
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
