// Throughput points: the bare node:http yardstick and POST /send between friends, with autocannon.

import { CONTENT, type BenchContext } from '../lib/context.ts';
import type { Pair, RelayClient } from '../lib/client.ts';
import { sendLanes, type Lane, type LoadResult } from '../lib/load.ts';
import { cpuMeter, type CpuUse } from '../lib/cpu.ts';
import { startBareServer } from '../lib/procs.ts';
import { round } from '../lib/stats.ts';
import { measureSqliteCommits, type SqliteCommitResult } from './sqlite-commit.ts';
import { measureStoreSends, type StoreSendResult } from './store-send.ts';

export interface Point {
  connections: number;
  /** Completed requests per second. */
  rps: number;
  latencyMs: LoadResult['latencyMs'];
  non2xx: number;
  errors: number;
  timeouts: number;
  /** CPU use during the point: the server process(es), the load generator, the whole machine. */
  cpu?: CpuUse;
}

export interface SendPoint extends Point {
  mode: 'text' | 'json';
  /** Messages the relay stored during the point (GET /stats delta) per second; null if unknown. */
  storedPerSec: number | null;
  /** 2xx answers counted by autocannon. */
  ok2xx: number;
  /** Messages stored during the point (GET /stats delta); null if the relay does not say. */
  stored: number | null;
  /**
   * Every 2xx answer stored a message (no soft error hidden behind HTTP 200). Requests still in flight
   * when autocannon stops are stored but not counted, so up to `connections` extra is expected.
   */
  allStored: boolean | null;
  /** rps ÷ the yardstick (bare node:http at 64 connections). */
  ratioToYardstick?: number;
  /** rps ÷ bare node:http at the same number of connections. */
  ratioToBareSameConcurrency?: number;
}

export function toPoint(r: LoadResult, cpu?: CpuUse): Point {
  return {
    connections: r.connections,
    rps: round(r.rps, 0),
    latencyMs: {
      mean: round(r.latencyMs.mean),
      p50: r.latencyMs.p50,
      p90: r.latencyMs.p90,
      p99: r.latencyMs.p99,
      max: r.latencyMs.max,
    },
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    ...(cpu ? { cpu } : {}),
  };
}

function bareLanes(n: number): Lane[] {
  return Array.from({ length: n }, (_, i) => ({
    headers: { 'content-type': 'application/json', 'x-token': (i + 1).toString(16).padStart(32, '0') },
    body: JSON.stringify({ to_id: i + 2, content: CONTENT }),
  }));
}

export interface YardstickResult {
  server: 'node:http';
  points: Point[];
  /** The rate at 64 connections every send figure is compared with. */
  rps64: number;
  /** Storage yardstick: single-row better-sqlite3 transactions per second (WAL, synchronous=NORMAL). */
  sqliteCommits?: SqliteCommitResult;
  /** The relay's SQLite store alone: store.send() per second with 64 in flight, no HTTP. */
  storeSends?: StoreSendResult;
}

/** The bare node:http JSON POST rate at each concurrency (the same load shape as the sends). */
export async function measureYardstick(
  ctx: BenchContext,
  concurrencies = ctx.settings.concurrencies,
  withSqlite = true,
): Promise<YardstickResult> {
  const server = await startBareServer();
  try {
    const lanes = bareLanes(64);
    const job = (connections: number, durationSec: number) => ({
      label: `bare c=${connections}`,
      url: server.url,
      method: 'POST' as const,
      path: '/send',
      connections,
      durationSec,
      lanes,
    });
    await ctx.load.runOne(job(64, ctx.settings.warmupSec));
    const points: Point[] = [];
    for (const c of concurrencies) {
      const meter = cpuMeter({ server: server.pid, loadgen: ctx.load.pid });
      const r = await ctx.load.runOne(job(c, ctx.settings.pointSec));
      const p = toPoint(r, meter());
      ctx.log(`  bare node:http  c=${c}: ${p.rps} req/s (p99 ${p.latencyMs.p99} ms)`);
      points.push(p);
    }
    const p64 = points.find((p) => p.connections === 64) ?? points.at(-1)!;
    const sqliteCommits = withSqlite
      ? measureSqliteCommits(ctx.tmpDir, Math.min(3, ctx.settings.pointSec))
      : undefined;
    if (sqliteCommits)
      ctx.log(
        `  better-sqlite3 single-row transactions: ${sqliteCommits.commitsPerSec}/s (${sqliteCommits.usPerCommit} µs each)`,
      );
    const storeSends = withSqlite
      ? await measureStoreSends(ctx.tmpDir, Math.min(3, ctx.settings.pointSec))
      : undefined;
    if (storeSends)
      ctx.log(
        `  relay SQLite store alone, 64 in flight: ${storeSends.sendsPerSec} sends/s (${storeSends.usPerSend} µs CPU each)`,
      );
    return {
      server: 'node:http',
      points,
      rps64: p64.rps,
      ...(sqliteCommits ? { sqliteCommits } : {}),
      ...(storeSends ? { storeSends } : {}),
    };
  } finally {
    await server.stop();
  }
}

/** One send point: `connections` senders, each sending to its friend as fast as it can. */
export async function measureSend(
  ctx: BenchContext,
  client: RelayClient,
  pairs: readonly Pair[],
  connections: number,
  mode: 'text' | 'json',
  /** Processes whose CPU use is recorded (the relay, …); the load generator is always added. */
  pids: Record<string, number> = {},
  durationSec = ctx.settings.pointSec,
): Promise<SendPoint> {
  const before = await client.settledStoredMessages();
  const meter = cpuMeter({ ...pids, loadgen: ctx.load.pid });
  const r = await ctx.load.runOne({
    label: `send ${mode} c=${connections}`,
    url: client.baseUrl,
    method: 'POST',
    path: '/send',
    connections,
    durationSec,
    lanes: sendLanes(pairs.slice(0, connections), mode === 'json'),
  });
  const cpu = meter();
  const after = await client.settledStoredMessages();
  const stored = before !== null && after !== null ? after - before : null;
  return {
    mode,
    ...toPoint(r, cpu),
    ok2xx: r.ok2xx,
    stored,
    storedPerSec: stored === null ? null : round(stored / r.durationSec, 0),
    allStored: stored === null ? null : stored >= r.ok2xx && stored <= r.ok2xx + connections,
  };
}

/** Warm-up load (not reported): JIT, prepared statements, SQLite page cache. */
export async function warmSend(
  ctx: BenchContext,
  url: string,
  pairs: readonly Pair[],
  mode: 'text' | 'json',
) {
  await ctx.load.runOne({
    label: 'warmup',
    url,
    method: 'POST',
    path: '/send',
    connections: Math.min(64, pairs.length),
    durationSec: ctx.settings.warmupSec,
    lanes: sendLanes(pairs.slice(0, 64), mode === 'json'),
  });
}
