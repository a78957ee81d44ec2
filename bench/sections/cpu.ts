// CPU per request (issue 26): what one request costs the process that serves it, in µs of CPU time
// (user + system, all threads, from /proc/<pid>/stat) ÷ requests completed in the window. Unlike a rate,
// it hardly moves when other work shares the machine: a busy core slows the server down, it does not
// make a request cost more instructions. Measured at 64 connections for
//
//   bare node:http   the yardstick (bench/lib/bare-server.ts): read the body, JSON.parse, answer JSON
//   bare fastify     the same route on Fastify with default options (bench/lib/bare-fastify.ts)
//   relay, SQLite    POST /send between friends, text mode (the load of the send section)
//   relay, PostgreSQL the same; plus the database backends serving this relay's connections, found
//                    in pg_stat_activity by an application_name given to this relay alone
//
// and, with `--baseline <bundle>`, the same two relay rows for another relay bundle started beside this
// one (A/B in one sitting). The servers run side by side and are measured in turns, `rounds` times;
// every figure is the median of its rounds. From the medians: the ratios, and the scale-out arithmetic
// of docs/scaling.md (sends/s per relay core and per database core, the capacity of N instances).

import { join } from 'node:path';
import pg from 'pg';
import type { BenchContext } from '../lib/context.ts';
import { namePrefix, preparePairs, RelayClient, type Pair } from '../lib/client.ts';
import { HZ, processTicks } from '../lib/cpu.ts';
import { sendLanes, type Lane } from '../lib/load.ts';
import { startBareFastify, startBareServer, startRelay, type ServerProcess } from '../lib/procs.ts';
import { round } from '../lib/stats.ts';
import { CONTENT } from '../lib/context.ts';
import { PG_BASE, schemaUrl } from './postgres.ts';

const CONNECTIONS = 64;

interface CpuSample {
  requests: number;
  rps: number;
  /** CPU of the serving process per completed request, µs. */
  usPerRequest: number;
  /** PostgreSQL rows: CPU of the database backends serving this relay, per send, µs. */
  dbUsPerRequest?: number;
  /** CPU of the load generator per request, µs (what the client side costs; not part of any ratio). */
  loadgenUsPerRequest: number;
  non2xx: number;
  /** `uptime`'s 1-minute load average when the sample started. */
  load1: number;
}

export interface CpuRow {
  name: string;
  /** Medians over the rounds. */
  usPerRequest: number;
  dbUsPerRequest?: number;
  /** usPerRequest + dbUsPerRequest: what one send costs relay and database together. */
  totalUsPerRequest: number;
  rps: number;
  /** usPerRequest ÷ bare node:http's. */
  ratioToBare: number | null;
  /** The smallest and largest totalUsPerRequest of the rounds: how far the machine moved the figure. */
  range: [number, number];
  samples: CpuSample[];
}

export interface ScaleOut {
  assumptions: string[];
  /** SQLite: one instance, one core: 1e6 ÷ relay µs per send. */
  sqliteSendsPerCore: number | null;
  /** PostgreSQL: sends/s one relay core carries (1e6 ÷ relay µs per send). */
  pgSendsPerRelayCore: number | null;
  /** PostgreSQL: sends/s one database core carries (1e6 ÷ backend µs per send). */
  pgSendsPerDbCore: number | null;
  /** Capacity of N single-core relay instances on one PostgreSQL with `dbCores` cores. */
  table: Array<{
    instances: number;
    relaySendsPerSec: number;
    dbCoresNeeded: number;
    byDbCores: Record<string, number>;
  }>;
}

export interface CpuResult {
  connections: number;
  pointSec: number;
  rounds: number;
  rows: CpuRow[];
  /** Short names → the figures issue 26 asks for. */
  ratios: Record<string, number | null>;
  /**
   * Relay SQLite ÷ bare node:http within each round (the two measured minutes apart at most), sorted:
   * the spread of the ratio itself on this machine, beside the ratio of the medians above.
   */
  sqliteToBareByRound: number[];
  scaleOut: ScaleOut;
  pgSkipped?: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function bareLanes(n: number): Lane[] {
  return Array.from({ length: n }, (_, i) => ({
    headers: { 'content-type': 'application/json', 'x-token': (i + 1).toString(16).padStart(32, '0') },
    body: JSON.stringify({ to_id: i + 2, content: CONTENT }),
  }));
}

interface Target {
  name: string;
  server: ServerProcess;
  lanes: Lane[];
  /** PostgreSQL rows: the backends' pids, looked up after the warm-up (the pool is full by then). */
  dbPids?: () => Promise<number[]>;
  cleanup?: () => Promise<void>;
}

async function loadAvg1(): Promise<number> {
  const { loadavg } = await import('node:os');
  return round(loadavg()[0]!);
}

export async function measureCpu(ctx: BenchContext, opts: { baseline?: string } = {}): Promise<CpuResult> {
  const { settings } = ctx;
  const pointSec = settings.quick ? 1.5 : 5;
  // Five rounds: on a shared machine one row's figure can move by half between rounds (docs/benchmarks.md).
  const rounds = Number(process.env.BENCH_CPU_ROUNDS ?? (settings.quick ? 1 : 5));
  const targets: Target[] = [];
  let admin: pg.Client | null = null;
  let pgSkipped: string | undefined;
  try {
    targets.push({ name: 'bare node:http', server: await startBareServer(), lanes: bareLanes(CONNECTIONS) });
    targets.push({ name: 'bare fastify', server: await startBareFastify(), lanes: bareLanes(CONNECTIONS) });

    const relayOn = async (name: string, bundle: string | undefined) => {
      const server = await startRelay({ dataDir: join(ctx.tmpDir, `cpu-${targets.length}`), bundle });
      const client = new RelayClient(server.url, 16);
      try {
        const pairs = await preparePairs(client, CONNECTIONS, namePrefix());
        targets.push({ name, server, lanes: sendLanes(pairs, false) });
      } finally {
        await client.close();
      }
    };
    await relayOn('relay, SQLite', undefined);
    if (opts.baseline) await relayOn('baseline relay, SQLite', opts.baseline);

    admin = new pg.Client({ connectionString: PG_BASE, connectionTimeoutMillis: 3000 });
    try {
      await admin.connect();
    } catch (err) {
      pgSkipped = `PostgreSQL not reachable at ${PG_BASE}: ${(err as Error).message}`;
      admin = null;
    }
    if (admin) {
      const db = admin;
      const pgRelay = async (name: string, bundle: string | undefined) => {
        const schema = `bench_cpu_${Date.now().toString(36)}_${targets.length}`;
        await db.query(`CREATE SCHEMA ${schema}`);
        // An application_name of its own (the URL's parameter wins over the relay's default), so its
        // backends can be told from every other session on a shared server.
        const url = new URL(schemaUrl(schema));
        url.searchParams.set('application_name', schema);
        const drop = async () => void (await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));
        let server: ServerProcess;
        try {
          server = await startRelay({
            dataDir: join(ctx.tmpDir, `cpu-${targets.length}`),
            bundle,
            env: { DATABASE_URL: url.toString() },
          });
        } catch (err) {
          await drop();
          throw err;
        }
        const client = new RelayClient(server.url, 16);
        let pairs: Pair[];
        try {
          pairs = await preparePairs(client, CONNECTIONS, namePrefix());
        } finally {
          await client.close();
        }
        targets.push({
          name,
          server,
          lanes: sendLanes(pairs, false),
          dbPids: async () =>
            (
              await db.query<{ pid: number }>(
                'SELECT pid FROM pg_stat_activity WHERE application_name = $1',
                [schema],
              )
            ).rows.map((r) => r.pid),
          cleanup: drop,
        });
      };
      await pgRelay('relay, PostgreSQL', undefined);
      if (opts.baseline) await pgRelay('baseline relay, PostgreSQL', opts.baseline);
    }

    const samples = new Map<string, CpuSample[]>(targets.map((t) => [t.name, []]));
    for (const t of targets) {
      // Warm-up: JIT, prepared statements, the pool's connections, SQLite's page cache.
      await ctx.load.runOne({
        label: `cpu warm-up ${t.name}`,
        url: t.server.url,
        method: 'POST',
        path: '/send',
        connections: CONNECTIONS,
        durationSec: Math.max(1, settings.warmupSec),
        lanes: t.lanes,
      });
    }
    for (let r = 0; r < rounds; r++) {
      // Each round in another order, so a slow stretch of the machine does not always hit the same row.
      const order = r % 2 ? [...targets].reverse() : targets;
      for (const t of order) {
        // A short warm-up each time: the relay's pool closes connections idle for 30 s while the
        // other rows are measured, and a send's cost depends on the batches a steady load builds.
        await ctx.load.runOne({
          label: `cpu warm-up ${t.name}`,
          url: t.server.url,
          method: 'POST',
          path: '/send',
          connections: CONNECTIONS,
          durationSec: 0.5,
          lanes: t.lanes,
        });
        const load1 = await loadAvg1();
        const dbPids = t.dbPids ? await t.dbPids() : [];
        const db0 = dbPids.map((p) => processTicks(p) ?? 0);
        const s0 = processTicks(t.server.pid);
        const l0 = processTicks(ctx.load.pid);
        const res = await ctx.load.runOne({
          label: `cpu ${t.name}`,
          url: t.server.url,
          method: 'POST',
          path: '/send',
          connections: CONNECTIONS,
          durationSec: pointSec,
          lanes: t.lanes,
        });
        const s1 = processTicks(t.server.pid);
        const l1 = processTicks(ctx.load.pid);
        const db1 = dbPids.map((p) => processTicks(p));
        // Backends that started in the window (a pool connection re-opened) count all they used.
        const born = t.dbPids ? (await t.dbPids()).filter((p) => !dbPids.includes(p)) : [];
        if (s0 === null || s1 === null) throw new Error(`${t.name}: no /proc/<pid>/stat`);
        const us = (ticks: number) => round(((ticks / HZ) * 1e6) / Math.max(1, res.requests), 1);
        const sample: CpuSample = {
          requests: res.requests,
          rps: round(res.rps, 0),
          usPerRequest: us(s1 - s0),
          loadgenUsPerRequest: l0 !== null && l1 !== null ? us(l1 - l0) : NaN,
          non2xx: res.non2xx,
          load1,
        };
        if (t.dbPids) {
          // A backend that ended in the window counts what it had used until its last look.
          let ticks = 0;
          db1.forEach((b, i) => (ticks += (b ?? db0[i]!) - db0[i]!));
          for (const p of born) ticks += processTicks(p) ?? 0;
          sample.dbUsPerRequest = us(ticks);
        }
        samples.get(t.name)!.push(sample);
        ctx.log(
          `  ${t.name.padEnd(27)} ${String(sample.rps).padStart(6)} req/s  ${String(sample.usPerRequest).padStart(6)} µs CPU/request${sample.dbUsPerRequest !== undefined ? ` + database ${sample.dbUsPerRequest} µs` : ''}  (loadgen ${sample.loadgenUsPerRequest} µs, non2xx ${sample.non2xx}, load ${load1})`,
        );
      }
    }

    const bare = median(samples.get('bare node:http')!.map((s) => s.usPerRequest));
    const rows: CpuRow[] = targets.map((t) => {
      const ss = samples.get(t.name)!;
      const us = round(median(ss.map((s) => s.usPerRequest)), 1);
      const db = t.dbPids ? round(median(ss.map((s) => s.dbUsPerRequest ?? 0)), 1) : undefined;
      const totals = ss.map((s) => round(s.usPerRequest + (s.dbUsPerRequest ?? 0), 1));
      return {
        name: t.name,
        usPerRequest: us,
        ...(db !== undefined ? { dbUsPerRequest: db } : {}),
        totalUsPerRequest: round(us + (db ?? 0), 1),
        rps: round(median(ss.map((s) => s.rps)), 0),
        ratioToBare: bare > 0 ? round(us / bare) : null,
        range: [Math.min(...totals), Math.max(...totals)],
        samples: ss,
      };
    });
    const row = (name: string) => rows.find((r) => r.name === name);
    const ratios: Record<string, number | null> = {
      'fastify ÷ node:http': row('bare fastify')?.ratioToBare ?? null,
      'relay SQLite ÷ node:http': row('relay, SQLite')?.ratioToBare ?? null,
      'relay PostgreSQL ÷ node:http': row('relay, PostgreSQL')?.ratioToBare ?? null,
      'relay SQLite ÷ fastify': ratio(row('relay, SQLite')?.usPerRequest, row('bare fastify')?.usPerRequest),
    };
    if (opts.baseline) {
      ratios['relay SQLite ÷ baseline'] = ratio(
        row('relay, SQLite')?.usPerRequest,
        row('baseline relay, SQLite')?.usPerRequest,
      );
      ratios['relay+db PostgreSQL ÷ baseline'] = ratio(
        row('relay, PostgreSQL')?.totalUsPerRequest,
        row('baseline relay, PostgreSQL')?.totalUsPerRequest,
      );
    }
    const bareByRound = samples.get('bare node:http')!;
    const sqliteByRound = samples.get('relay, SQLite') ?? [];
    const sqliteToBareByRound = sqliteByRound
      .map((s, i) => ratio(s.usPerRequest, bareByRound[i]?.usPerRequest))
      .filter((v): v is number => v !== null)
      .sort((a, b) => a - b);
    return {
      connections: CONNECTIONS,
      pointSec,
      rounds,
      rows,
      ratios,
      sqliteToBareByRound,
      scaleOut: scaleOut(row('relay, SQLite'), row('relay, PostgreSQL')),
      ...(pgSkipped ? { pgSkipped } : {}),
    };
  } finally {
    for (const t of targets) await t.server.stop();
    for (const t of targets) await t.cleanup?.().catch(() => {});
    await admin?.end().catch(() => {});
  }
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a !== undefined && b ? round(a / b) : null;
}

export const INSTANCES = [1, 2, 4, 8, 16];
export const DB_CORES = [2, 4, 8, 16, 32];

/**
 * The capacity arithmetic of docs/scaling.md from the measured CPU per send. Each relay instance is one
 * Node.js process, i.e. one core for its event loop; the database's work per send is the backends' CPU.
 */
export function scaleOut(sqlite: CpuRow | undefined, postgres: CpuRow | undefined): ScaleOut {
  const perCore = (us: number | undefined) => (us ? Math.round(1e6 / us) : null);
  const relayCore = perCore(postgres?.usPerRequest);
  const dbCore = perCore(postgres?.dbUsPerRequest);
  const table: ScaleOut['table'] = [];
  if (relayCore && dbCore) {
    for (const n of INSTANCES) {
      const relaySendsPerSec = n * relayCore;
      table.push({
        instances: n,
        relaySendsPerSec,
        dbCoresNeeded: round(relaySendsPerSec / dbCore, 1),
        byDbCores: Object.fromEntries(
          DB_CORES.map((d) => [String(d), Math.min(relaySendsPerSec, d * dbCore)]),
        ),
      });
    }
  }
  return {
    assumptions: [
      'CPU-bound: every core runs at 100 %; plan for ~70 % (multiply by 0.7) to keep latency low',
      'one relay instance = one Node.js process = one core (its event loop); the load balancer, the clients and the network cost nothing',
      "the database's cost per send is its backends' CPU measured here (WAL writer, checkpointer and autovacuum not counted; disks keep up)",
      'cost per send is the measured one-to-one chat send at 64 senders per instance; group sends, uploads, streams and reads are not counted',
      'linear: no lock contention between instances (one-to-one sends touch different rows), the same per-send cost at every size',
    ],
    sqliteSendsPerCore: perCore(sqlite?.usPerRequest),
    pgSendsPerRelayCore: relayCore,
    pgSendsPerDbCore: dbCore,
    table,
  };
}

export function formatCpu(r: CpuResult): string[] {
  const out: string[] = [];
  const pad = (s: string | number, n: number) => String(s).padStart(n);
  out.push(
    `\nCPU per request (user + system, /proc; ${r.connections} connections; median of ${r.rounds} × ${r.pointSec} s)`,
  );
  out.push(
    '  server                        req/s   µs/request   database µs   total µs   × node:http   total µs, rounds min–max',
  );
  for (const row of r.rows)
    out.push(
      `  ${row.name.padEnd(27)} ${pad(row.rps, 7)} ${pad(row.usPerRequest, 12)} ${pad(row.dbUsPerRequest ?? '-', 13)} ${pad(row.totalUsPerRequest, 10)} ${pad(row.ratioToBare ?? '-', 13)}   ${row.range[0]}–${row.range[1]}`,
    );
  if (r.sqliteToBareByRound.length)
    out.push(`  relay SQLite ÷ node:http in each round: ${r.sqliteToBareByRound.join(', ')}`);
  out.push(
    `  ratios: ${Object.entries(r.ratios)
      .map(([k, v]) => `${k} ${v ?? '-'}`)
      .join(', ')}`,
  );
  if (r.pgSkipped) out.push(`  PostgreSQL skipped: ${r.pgSkipped}`);
  const s = r.scaleOut;
  out.push('\nscale-out arithmetic (docs/scaling.md)');
  out.push(
    `  SQLite, one instance: ${s.sqliteSendsPerCore ?? '-'} sends/s per relay core (one core: the ceiling)`,
  );
  out.push(
    `  PostgreSQL: ${s.pgSendsPerRelayCore ?? '-'} sends/s per relay core, ${s.pgSendsPerDbCore ?? '-'} sends/s per database core`,
  );
  if (s.table.length) {
    out.push(
      `  instances  relay sends/s  database cores needed   sends/s with a database of ${DB_CORES.join(' / ')} cores`,
    );
    for (const t of s.table)
      out.push(
        `  ${pad(t.instances, 9)} ${pad(t.relaySendsPerSec, 14)} ${pad(t.dbCoresNeeded, 22)}   ${DB_CORES.map((d) => t.byDbCores[String(d)]).join(' / ')}`,
      );
  }
  out.push(`  assumptions: ${s.assumptions.join('; ')}`);
  return out;
}
