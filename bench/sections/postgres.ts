// The PostgreSQL backend: send throughput with one instance and with two sharing the database (load split
// across both), and cross-instance send→SSE latency (send on A, stream on B), each against PostgreSQL's
// own yardstick measured in the same section (pg-commit.ts: durable single-row insert transactions/s
// from `pg` at 64 connections, before and after the relay points, averaged). Each run uses a fresh
// schema in database `test` (127.0.0.1:5432, user postgres), dropped at the end.

import { join } from 'node:path';
import pg from 'pg';
import type { BenchContext } from '../lib/context.ts';
import { namePrefix, preparePairs, RelayClient } from '../lib/client.ts';
import { sendLanes } from '../lib/load.ts';
import { cpuMeter } from '../lib/cpu.ts';
import { startRelay, type ServerProcess } from '../lib/procs.ts';
import { round } from '../lib/stats.ts';
import { probeLatency, type ProbeResult } from './latency.ts';
import { measurePgCommits, type PgCommitResult } from './pg-commit.ts';
import { toPoint, warmSend, type Point } from './throughput.ts';

export const PG_BASE = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export type PostgresResult =
  | { skipped: string }
  | {
      schema: string;
      oneInstance: Point;
      twoInstances: Point & { perInstance: Point[] };
      /** twoInstances.rps ÷ oneInstance.rps */
      scaling: number;
      crossInstanceLatency: ProbeResult;
      /** PostgreSQL alone: durable single-row INSERT transactions/s from `pg`, 64 connections. */
      pgYardstick: PgCommitResult & { start: number; end: number };
      /** Sends/s ÷ pgYardstick.commitsPerSec. */
      ratioToPgYardstick: { oneInstance: number; twoInstances: number };
      ratioToYardstick?: { oneInstance: number; twoInstances: number };
    };

/** DATABASE_URL for a schema: libpq `options` sets the search_path of every connection. */
export function schemaUrl(schema: string): string {
  const u = new URL(PG_BASE);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

export async function measurePostgres(ctx: BenchContext): Promise<PostgresResult> {
  const schema = `bench_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: PG_BASE, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (err) {
    return { skipped: `PostgreSQL not reachable at ${PG_BASE}: ${(err as Error).message}` };
  }
  const relays: ServerProcess[] = [];
  const clients: RelayClient[] = [];
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    const env = { DATABASE_URL: schemaUrl(schema) };
    try {
      // One after the other, so migrations never race.
      relays.push(await startRelay({ dataDir: join(ctx.tmpDir, 'pg-a'), env }));
      relays.push(await startRelay({ dataDir: join(ctx.tmpDir, 'pg-b'), env }));
    } catch (err) {
      const detail = (err as { detail?: string }).detail;
      return { skipped: `relay with DATABASE_URL did not start: ${detail || (err as Error).message}` };
    }
    const [a, b] = relays.map((r) => new RelayClient(r.url, 16)) as [RelayClient, RelayClient];
    clients.push(a, b);
    const pairs = await preparePairs(a, 65, namePrefix());
    const sendPairs = pairs.slice(0, 64);
    const probePair = pairs[64]!;

    const pids = { relayA: relays[0]!.pid, relayB: relays[1]!.pid, loadgen: ctx.load.pid };
    const yardstickStart = await measurePgCommits(env.DATABASE_URL, 64, ctx.settings.pointSec);
    ctx.log(`  PostgreSQL alone (pg, 64 connections): ${yardstickStart.commitsPerSec} durable inserts/s`);
    await warmSend(ctx, a.baseUrl, sendPairs, 'text');
    let meter = cpuMeter(pids, { postgres: 'postgres' });
    const one = toPoint(
      await ctx.load.runOne({
        label: 'pg 1 instance',
        url: a.baseUrl,
        method: 'POST',
        path: '/send',
        connections: 64,
        durationSec: ctx.settings.pointSec,
        lanes: sendLanes(sendPairs, false),
      }),
      meter(),
    );
    ctx.log(`  PostgreSQL, 1 instance, c=64: ${one.rps} sends/s`);
    await warmSend(ctx, b.baseUrl, sendPairs.slice(32), 'text');
    meter = cpuMeter(pids, { postgres: 'postgres' });
    const halves = await ctx.load.run(
      [a, b].map((c, i) => ({
        label: `pg instance ${i}`,
        url: c.baseUrl,
        method: 'POST' as const,
        path: '/send',
        connections: 32,
        durationSec: ctx.settings.pointSec,
        lanes: sendLanes(sendPairs.slice(i * 32, i * 32 + 32), false),
      })),
    );
    const cpu = meter();
    const per = halves.map((h) => toPoint(h));
    const two: Point & { perInstance: Point[] } = {
      connections: 64,
      rps: per[0]!.rps + per[1]!.rps,
      latencyMs: {
        mean: round((per[0]!.latencyMs.mean + per[1]!.latencyMs.mean) / 2),
        p50: Math.max(per[0]!.latencyMs.p50, per[1]!.latencyMs.p50),
        p90: Math.max(per[0]!.latencyMs.p90, per[1]!.latencyMs.p90),
        p99: Math.max(per[0]!.latencyMs.p99, per[1]!.latencyMs.p99),
        max: Math.max(per[0]!.latencyMs.max, per[1]!.latencyMs.max),
      },
      non2xx: per[0]!.non2xx + per[1]!.non2xx,
      errors: per[0]!.errors + per[1]!.errors,
      timeouts: per[0]!.timeouts + per[1]!.timeouts,
      perInstance: per,
      cpu,
    };
    ctx.log(`  PostgreSQL, 2 instances, c=32+32: ${two.rps} sends/s`);
    const yardstickEnd = await measurePgCommits(env.DATABASE_URL, 64, ctx.settings.pointSec);
    const pgYardstick = {
      ...yardstickEnd,
      start: yardstickStart.commitsPerSec,
      end: yardstickEnd.commitsPerSec,
      commitsPerSec: round((yardstickStart.commitsPerSec + yardstickEnd.commitsPerSec) / 2, 0),
    };
    ctx.log(
      `  PostgreSQL alone again: ${yardstickEnd.commitsPerSec}/s → yardstick ${pgYardstick.commitsPerSec}/s; 1 instance ×${round(one.rps / pgYardstick.commitsPerSec)}, 2 instances ×${round(two.rps / pgYardstick.commitsPerSec)}`,
    );

    await a.drainInbox(probePair.recipient);
    const cross = await probeLatency({
      sendUrl: a.baseUrl,
      streamUrl: b.baseUrl,
      pair: probePair,
      samples: ctx.settings.pgLatencySamples,
      maxMs: 20_000,
      gapMs: 5,
    });
    ctx.log(`  PostgreSQL send on A → SSE on B: p50 ${cross.p50} ms, p99 ${cross.p99} ms`);
    return {
      schema,
      oneInstance: one,
      twoInstances: two,
      scaling: round(two.rps / one.rps),
      crossInstanceLatency: cross,
      pgYardstick,
      ratioToPgYardstick: {
        oneInstance: round(one.rps / pgYardstick.commitsPerSec),
        twoInstances: round(two.rps / pgYardstick.commitsPerSec),
      },
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(relays.map((r) => r.stop()));
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await admin.end();
  }
}
