// `npm run bench`: the relay's performance figures in one run, with a bare node:http server measured the
// same way as the yardstick. See docs/benchmarks.md.
//
//   npm run bench                      full run (~5 min): every section, writes bench/results/<ts>.json
//   npm run bench -- --quick           CI smoke (< 60 s): the same sections with small counts
//   npm run bench -- --target URL      text-mode send throughput of any compatible relay (+ the yardstick)
//   npm run bench -- --profile         CPU profile of the relay under the 64-sender send load
//                    [--backend postgres]  (same, with the relay on PostgreSQL)
//   npx tsx bench/receipts.ts          receipt latency (ack → the sender's receipt event), its own JSON file
//   npm run bench -- --only send,latency   a subset of sections (cpu, yardstick, send, latency, drain, streams,
//                                          postgres, groups, e2e)
//   npm run bench -- --only cpu [--quick]  CPU per request: node:http, fastify, relay on SQLite and PostgreSQL
//                    [--baseline packages/relay/dist/before/dist/main.js]  (+ another relay bundle beside it)

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { FULL, QUICK, type BenchContext, type BenchSettings } from './lib/context.ts';
import { namePrefix, preparePairs, RelayClient, type Pair } from './lib/client.ts';
import { cpuMeter, type CpuUse } from './lib/cpu.ts';
import { LoadGenerator, sendLanes } from './lib/load.ts';
import { killAll, openFileLimit, ROOT, startRelay, type ServerProcess } from './lib/procs.ts';
import { epochMs, round } from './lib/stats.ts';
import { formatProfileSummary, summarizeProfile, type CpuProfile } from './profile-summary.ts';
import { measureDrain, type DrainResult } from './sections/drain.ts';
import {
  GROUP_MEMBERS,
  measureGroups,
  type GroupFanoutResult,
  type GroupsResult,
} from './sections/groups.ts';
import { formatCpu, measureCpu, type CpuResult } from './sections/cpu.ts';
import { measureE2e, type E2eResult } from './sections/e2e.ts';
import { measureLatency, type LatencyResult } from './sections/latency.ts';
import { measurePostgres, PG_BASE, schemaUrl, type PostgresResult } from './sections/postgres.ts';
import { measureStreams, type StreamsResult } from './sections/streams.ts';
import {
  measureSend,
  measureYardstick,
  toPoint,
  warmSend,
  type SendPoint,
  type YardstickResult,
} from './sections/throughput.ts';

const SECTIONS = [
  'cpu',
  'yardstick',
  'send',
  'latency',
  'drain',
  'streams',
  'postgres',
  'groups',
  'e2e',
] as const;
type Section = (typeof SECTIONS)[number];

const TARGETS = {
  sendRatio: 0.5,
  sseIdleP99Ms: 5,
  sseLoadedP99Ms: 20,
  streams: 10_000,
  rssPerStreamKiB: 16,
  // PostgreSQL (issue 18), each a ratio within one run.
  pgOneToYardstick: 0.25,
  pgTwoToOne: 1.6,
  pgCrossP99Ms: 10,
  pgGroupToSqlite: 2,
  // CPU per request (issue 26): relay on SQLite ≤ 2 × bare node:http; relay + database on PostgreSQL
  // ≥ 30 % below the ~250 µs measured before the issue (a machine whose bare node:http spent 36–38 µs)
  // and, with --baseline, ≥ 30 % below the baseline build measured in the same run.
  cpuSqliteToBare: 2,
  cpuPgTotalUs: 175,
  cpuPgToBaseline: 0.7,
  // With --baseline <the main issue 26 was filed on>: what "≤ 2 × node:http" came to against that
  // build's 3.7 × on the machine the issue was measured on (2 ÷ 3.7); the yardstick ratio itself moves
  // with the machine (docs/benchmarks.md, round four).
  cpuSqliteToBaseline: 0.54,
};

interface Results {
  kind: 'full' | 'quick' | 'target' | 'profile';
  startedAt: string;
  finishedAt?: string;
  wallSec?: number;
  machine: Record<string, unknown>;
  settings: BenchSettings;
  target?: string;
  cpu?: CpuResult | { error: string };
  yardstick?: YardstickResult & { end?: { rps64: number }; rps64Start?: number };
  send?: { text: SendPoint[]; json: SendPoint[] };
  sseLatency?: LatencyResult;
  drain?: DrainResult[];
  streams?: StreamsResult | { error: string };
  postgres?: PostgresResult | { error: string };
  groups?: GroupsResult | { error: string };
  e2e?: E2eResult | { error: string };
  profile?: unknown;
  targets?: Record<string, { value: number | null; target: string; met: boolean | null }>;
  errors: string[];
}

function machineInfo(): Record<string, unknown> {
  let commit: string | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    /* not a checkout */
  }
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? null,
    node: process.version,
    totalMemMiB: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()}`,
    loadAvgAtStart: os.loadavg().map((x) => round(x)),
    openFileLimit: openFileLimit(),
    commit,
  };
}

const log = (msg: string) => console.log(msg);

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

function summaryTable(r: Results): string {
  const out: string[] = [];
  const y = r.yardstick?.rps64;
  out.push(`\n=== openwechat relay benchmark (${r.kind}) — ${r.startedAt}`);
  out.push(
    `machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.totalMemMiB} MiB, node ${r.machine.node}, load ${(r.machine.loadAvgAtStart as number[]).join(' ')}`,
  );
  if (r.cpu) {
    if ('error' in r.cpu) out.push(`\nCPU per request: error: ${r.cpu.error}`);
    else out.push(...formatCpu(r.cpu));
  }
  if (r.yardstick) {
    out.push('\nbare node:http JSON POST (yardstick)');
    for (const p of r.yardstick.points)
      out.push(
        `  c=${pad(p.connections, 2)} ${pad(p.rps, 7)} req/s   p50 ${p.latencyMs.p50} ms  p99 ${p.latencyMs.p99} ms   server CPU ${p.cpu?.processPct.server ?? '-'}%  loadgen ${p.cpu?.processPct.loadgen ?? '-'}%  machine ${p.cpu?.machineBusyPct ?? '-'}%`,
      );
    out.push(`  yardstick (c=64): ${y} req/s`);
    const sc = r.yardstick.sqliteCommits;
    if (sc)
      out.push(`  better-sqlite3 single-row transactions: ${sc.commitsPerSec}/s (${sc.usPerCommit} µs each)`);
    const ss = r.yardstick.storeSends;
    if (ss)
      out.push(
        `  relay SQLite store alone (no HTTP), 64 in flight: ${ss.sendsPerSec} sends/s (${ss.usPerSend} µs CPU each)`,
      );
  }
  if (r.send) {
    out.push(`\nPOST /send between friends${r.target ? ` on ${r.target}` : ''}`);
    out.push(
      '  mode  conns    sends/s  ×yardstick  ×bare@c   p50 ms  p99 ms  non2xx  stored=2xx  relay CPU  loadgen  machine',
    );
    for (const p of [...r.send.text, ...r.send.json]) {
      const cpu = p.cpu?.processPct;
      out.push(
        `  ${p.mode.padEnd(5)} ${pad(p.connections, 5)} ${pad(p.rps, 10)} ${pad(p.ratioToYardstick ?? '-', 11)} ${pad(p.ratioToBareSameConcurrency ?? '-', 8)} ${pad(p.latencyMs.p50, 8)} ${pad(p.latencyMs.p99, 7)} ${pad(p.non2xx + p.errors, 7)} ${pad(String(p.allStored ?? '?'), 11)} ${pad(`${cpu?.relay ?? '-'}%`, 10)} ${pad(`${cpu?.loadgen ?? '-'}%`, 8)} ${pad(`${p.cpu?.machineBusyPct ?? '-'}%`, 8)}`,
      );
    }
  }
  if (r.sseLatency) {
    const { idle, underLoad } = r.sseLatency;
    out.push('\nsend → SSE event latency (resume stream, JSON frames)');
    out.push(
      `  idle:                 p50 ${idle.p50} ms  p99 ${idle.p99} ms  max ${idle.max} ms  (n=${idle.n}, lost ${idle.lost})`,
    );
    out.push(
      `  under ${underLoad.background.rps} sends/s: p50 ${underLoad.p50} ms  p99 ${underLoad.p99} ms  max ${underLoad.max} ms  (n=${underLoad.n}, lost ${underLoad.lost})`,
    );
  }
  if (r.drain) {
    out.push('\ninbox drain, GET /messages?limit=500 (read-and-clear)');
    for (const d of r.drain)
      out.push(
        `  ${d.mode.padEnd(5)} ${pad(d.messagesPerSec, 8)} messages/s  (${d.requestsPerSec} requests/s, ${d.messages} messages)`,
      );
  }
  if (r.streams) {
    out.push('\nconcurrent resume streams');
    if ('error' in r.streams) out.push(`  error: ${r.streams.error}`);
    else {
      const s = r.streams;
      out.push(
        `  opened ${s.opened}/${s.requested} (${s.openPerSec}/s; registrations ${s.registerPerSec}/s)`,
      );
      out.push(`  relay RSS ${s.rssBeforeKiB} → ${s.rssAfterKiB} KiB = ${s.rssPerStreamKiB} KiB per stream`);
      out.push(
        `  delivery: ${s.delivery.received}/${s.delivery.messages} messages, ${s.delivery.deliveredPerSec}/s, latency p50 ${s.delivery.latencyMs.p50} ms p99 ${s.delivery.latencyMs.p99} ms`,
      );
    }
  }
  if (r.postgres) {
    out.push('\nPostgreSQL');
    const pgr = r.postgres;
    if ('skipped' in pgr) out.push(`  skipped: ${pgr.skipped}`);
    else if ('error' in pgr) out.push(`  error: ${pgr.error}`);
    else {
      const cpu = (p: { cpu?: CpuUse }) =>
        `relay A ${p.cpu?.processPct.relayA ?? '-'}%, relay B ${p.cpu?.processPct.relayB ?? '-'}%, postgres ${p.cpu?.processPct.postgres ?? '-'}%, loadgen ${p.cpu?.processPct.loadgen ?? '-'}%, machine ${p.cpu?.machineBusyPct ?? '-'}%`;
      const y = pgr.pgYardstick;
      out.push(
        `  PostgreSQL alone (pg, ${y.connections} conns, synchronous_commit=${y.synchronousCommit}): ${pad(y.commitsPerSec, 7)} durable inserts/s (${y.start} before, ${y.end} after)`,
      );
      out.push(
        `  1 instance  c=64:    ${pad(pgr.oneInstance.rps, 7)} sends/s  ×${pgr.ratioToPgYardstick.oneInstance} of PostgreSQL  p99 ${pgr.oneInstance.latencyMs.p99} ms   CPU: ${cpu(pgr.oneInstance)}`,
      );
      out.push(
        `  2 instances c=32+32: ${pad(pgr.twoInstances.rps, 7)} sends/s  ×${pgr.ratioToPgYardstick.twoInstances} of PostgreSQL  p99 ${pgr.twoInstances.latencyMs.p99} ms   CPU: ${cpu(pgr.twoInstances)}  (×${pgr.scaling} of 1 instance)`,
      );
      const c = pgr.crossInstanceLatency;
      out.push(`  send on A → SSE on B: p50 ${c.p50} ms  p99 ${c.p99} ms  (n=${c.n}, lost ${c.lost})`);
    }
  }
  if (r.groups) {
    out.push(`\n${GROUP_MEMBERS}-member group send (one stored row per other member)`);
    if ('error' in r.groups) out.push(`  error: ${r.groups.error}`);
    else {
      const line = (name: string, g: GroupFanoutResult) => {
        if ('skipped' in g) return `  ${name}: skipped: ${g.skipped}`;
        if ('error' in g) return `  ${name}: error: ${g.error}`;
        const s = g.sequential;
        const c = g.concurrent;
        return `  ${name.padEnd(10)} one at a time: p50 ${s.latencyMs.p50} ms  p99 ${s.latencyMs.p99} ms  ${s.rowsPerSec} rows/s   ${c.senders} at once: p50 ${c.latencyMs.p50} ms  p99 ${c.latencyMs.p99} ms  ${c.rowsPerSec} rows/s`;
      };
      out.push(line('SQLite', r.groups.sqlite), line('PostgreSQL', r.groups.postgres));
    }
  }
  if (r.e2e) {
    out.push('\nend-to-end encryption (same relay, plaintext and E2E rounds alternating)');
    if ('error' in r.e2e) out.push(`  error: ${r.e2e.error}`);
    else {
      const e = r.e2e;
      const row = (name: string, m: E2eResult['plain']) =>
        `  ${name.padEnd(9)} one at a time: p50 ${m.sequential.latencyMs.p50} ms  p99 ${m.sequential.latencyMs.p99} ms  ${m.sequential.sendsPerSec} sends/s   ${m.concurrent.senders} at once: ${m.concurrent.sendsPerSec} sends/s`;
      out.push(row('plaintext', e.plain), row('E2E', e.e2e));
      out.push(
        `  E2E ÷ plaintext: latency p50 ×${e.ratio.latencyP50}, sends/s ×${e.ratio.sequentialSendsPerSec} (one at a time), ×${e.ratio.concurrentSendsPerSec} (${e.e2e.concurrent.senders} at once); open() p50 ${e.openMs.p50} ms`,
      );
      out.push(
        `  overhead bytes: private ${Object.entries(e.overheadBytes.private)
          .map(([k, v]) => `${k} +${v}`)
          .join(', ')}; group ${Object.entries(e.overheadBytes.group)
          .map(([k, v]) => `${k} +${v}`)
          .join(', ')}; files +${e.overheadBytes.filePerMiB} B/MiB`,
      );
    }
  }
  if (r.targets) {
    out.push('\ntargets');
    for (const [k, t] of Object.entries(r.targets))
      out.push(
        `  ${t.met === null ? ' n/a' : t.met ? '  ok' : 'MISS'}  ${k.padEnd(22)} ${pad(t.value ?? '-', 9)}  (${t.target})`,
      );
  }
  if (r.errors.length) out.push(`\nerrors:\n  ${r.errors.join('\n  ')}`);
  return out.join('\n');
}

function evaluateTargets(r: Results): Results['targets'] {
  const t: NonNullable<Results['targets']> = {};
  const cpu = r.cpu && 'rows' in r.cpu ? r.cpu : null;
  if (cpu) {
    const v = cpu.ratios['relay SQLite ÷ node:http'] ?? null;
    t['CPU/send SQLite ÷ node:http'] = {
      value: v,
      target: `≤ ${TARGETS.cpuSqliteToBare}`,
      met: v === null ? null : v <= TARGETS.cpuSqliteToBare,
    };
    const pgTotal = cpu.rows.find((x) => x.name === 'relay, PostgreSQL')?.totalUsPerRequest ?? null;
    t['CPU/send PG relay+db (µs)'] = {
      value: pgTotal,
      target: `≤ ${TARGETS.cpuPgTotalUs}`,
      met: pgTotal === null ? null : pgTotal <= TARGETS.cpuPgTotalUs,
    };
    // With --baseline: each backend against the baseline build measured in the same run.
    const vsBaseline = [
      ['CPU/send SQLite ÷ baseline', 'relay SQLite ÷ baseline', TARGETS.cpuSqliteToBaseline],
      ['CPU/send PG relay+db ÷ baseline', 'relay+db PostgreSQL ÷ baseline', TARGETS.cpuPgToBaseline],
    ] as const;
    for (const [label, key, limit] of vsBaseline) {
      const v = cpu.ratios[key] ?? null;
      if (v !== null) t[label] = { value: v, target: `≤ ${limit}`, met: v <= limit };
    }
  }
  const at64 = (mode: 'text' | 'json') =>
    r.send?.[mode].find((p) => p.connections === 64)?.ratioToYardstick ?? null;
  for (const mode of ['text', 'json'] as const) {
    const v = at64(mode);
    t[`send64 ${mode} ÷ bare`] = {
      value: v,
      target: `≥ ${TARGETS.sendRatio}`,
      met: v === null ? null : v >= TARGETS.sendRatio,
    };
  }
  const idle = r.sseLatency?.idle.p99 ?? null;
  t['SSE p99 idle (ms)'] = {
    value: idle,
    target: `≤ ${TARGETS.sseIdleP99Ms}`,
    met: idle === null ? null : idle <= TARGETS.sseIdleP99Ms,
  };
  const loaded = r.sseLatency?.underLoad.p99 ?? null;
  t['SSE p99 loaded (ms)'] = {
    value: loaded,
    target: `≤ ${TARGETS.sseLoadedP99Ms} at ${r.settings.backgroundRate}/s`,
    met: loaded === null ? null : loaded <= TARGETS.sseLoadedP99Ms,
  };
  const s = r.streams && !('error' in r.streams) ? r.streams : null;
  t['KiB per stream'] = {
    value: s?.rssPerStreamKiB ?? null,
    target: `≤ ${TARGETS.rssPerStreamKiB} with ${TARGETS.streams} open`,
    met:
      !s || s.rssPerStreamKiB === null
        ? null
        : s.opened >= TARGETS.streams
          ? s.rssPerStreamKiB <= TARGETS.rssPerStreamKiB
          : null,
  };
  const pgr = r.postgres && 'scaling' in r.postgres ? r.postgres : null;
  const pg1 = pgr?.ratioToPgYardstick.oneInstance ?? null;
  t['PG 1 instance ÷ PostgreSQL alone'] = {
    value: pg1,
    target: `≥ ${TARGETS.pgOneToYardstick}`,
    met: pg1 === null ? null : pg1 >= TARGETS.pgOneToYardstick,
  };
  t['PG 2 ÷ 1 instances'] = {
    value: pgr?.scaling ?? null,
    target: `≥ ${TARGETS.pgTwoToOne}`,
    met: pgr ? pgr.scaling >= TARGETS.pgTwoToOne : null,
  };
  const cross = pgr?.crossInstanceLatency.p99 ?? null;
  t['PG cross-instance SSE p99 idle (ms)'] = {
    value: cross,
    target: `≤ ${TARGETS.pgCrossP99Ms}`,
    met: cross === null ? null : cross <= TARGETS.pgCrossP99Ms,
  };
  const g = r.groups && !('error' in r.groups) ? r.groups : null;
  const gs = g && 'sequential' in g.sqlite ? g.sqlite.sequential.latencyMs.p50 : null;
  const gp = g && 'sequential' in g.postgres ? g.postgres.sequential.latencyMs.p50 : null;
  const gr = gs && gp ? round(gp / gs) : null;
  t[`PG ÷ SQLite ${GROUP_MEMBERS}-member group send (p50)`] = {
    value: gr,
    target: `≤ ${TARGETS.pgGroupToSqlite}`,
    met: gr === null ? null : gr <= TARGETS.pgGroupToSqlite,
  };
  return t;
}

function addRatios(r: Results): void {
  const y = r.yardstick;
  if (!y) return;
  const bareAt = new Map(y.points.map((p) => [p.connections, p.rps]));
  for (const p of [...(r.send?.text ?? []), ...(r.send?.json ?? [])]) {
    p.ratioToYardstick = round(p.rps / y.rps64);
    const same = bareAt.get(p.connections);
    if (same) p.ratioToBareSameConcurrency = round(p.rps / same);
  }
  if (r.postgres && 'oneInstance' in r.postgres) {
    r.postgres.ratioToYardstick = {
      oneInstance: round(r.postgres.oneInstance.rps / y.rps64),
      twoInstances: round(r.postgres.twoInstances.rps / y.rps64),
    };
  }
}

async function sendSeries(
  ctx: BenchContext,
  client: RelayClient,
  pairs: Parameters<typeof measureSend>[2],
  pids: Record<string, number>,
) {
  const out: { text: SendPoint[]; json: SendPoint[] } = { text: [], json: [] };
  for (const mode of ['text', 'json'] as const) {
    await warmSend(ctx, client.baseUrl, pairs, mode);
    for (const c of ctx.settings.concurrencies) {
      const p = await measureSend(ctx, client, pairs, c, mode, pids);
      log(
        `  send ${mode} c=${c}: ${p.rps} sends/s (p99 ${p.latencyMs.p99} ms, non2xx ${p.non2xx}, stored=2xx ${p.allStored}, relay CPU ${p.cpu?.processPct.relay}%, machine ${p.cpu?.machineBusyPct}%)`,
      );
      out[mode].push(p);
    }
  }
  return out;
}

async function runProfile(
  ctx: BenchContext,
  results: Results,
  resultsDir: string,
  stamp: string,
  backend: 'sqlite' | 'postgres',
) {
  const dir = join(resultsDir, `profile-${stamp}`);
  mkdirSync(dir, { recursive: true });
  let schema: string | null = null;
  const env: Record<string, string> = {};
  if (backend === 'postgres') {
    schema = `bench_prof_${Date.now().toString(36)}`;
    await pgAdmin(`CREATE SCHEMA ${schema}`);
    env.DATABASE_URL = schemaUrl(schema);
  }
  const spawnedAt = epochMs();
  const relay = await startRelay({
    dataDir: join(ctx.tmpDir, 'profile'),
    nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir],
    env,
  });
  const client = new RelayClient(relay.url, 16);
  try {
    const pairs = await preparePairs(client, 64, namePrefix());
    await warmSend(ctx, relay.url, pairs, 'text');
    const sec = ctx.settings.quick ? 2 : 10;
    const meter = cpuMeter(
      { relay: relay.pid, loadgen: ctx.load.pid },
      backend === 'postgres' ? { postgres: 'postgres' } : {},
    );
    const loadFrom = epochMs() - spawnedAt;
    const load = toPoint(
      await ctx.load.runOne({
        label: 'profile',
        url: relay.url,
        method: 'POST',
        path: '/send',
        connections: 64,
        durationSec: sec,
        lanes: sendLanes(pairs, false),
      }),
      meter(),
    );
    // The profile starts a little after the spawn: trim the window so it holds only the load.
    const window = { fromMs: loadFrom + 500, toMs: epochMs() - spawnedAt - 300 };
    log(
      `  profiled load (${backend}): ${load.rps} sends/s at c=64 (text), p99 ${load.latencyMs.p99} ms, relay CPU ${load.cpu?.processPct.relay}%,${backend === 'postgres' ? ` postgres ${load.cpu?.processPct.postgres}%,` : ''} machine ${load.cpu?.machineBusyPct}%`,
    );
    await client.close();
    await relay.stop();
    // One profile per thread (tsx's loader hooks run in a worker): the main thread is thread 0.
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    const file = files.find((f) => /\.0\.\d+\.cpuprofile$/.test(f)) ?? files[0];
    if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
    const summary = summarizeProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, {
      top: 30,
      ...window,
    });
    log(`\n${formatProfileSummary(summary)}`);
    log(
      `\n(window ${Math.round(window.fromMs)}–${Math.round(window.toMs)} ms of the profile: the load only; again with\n npx tsx bench/profile-summary.ts <file> --from ${Math.round(window.fromMs)} --to ${Math.round(window.toMs)})`,
    );
    log(`\nprofile: ${join(dir, file)} (open in Chrome DevTools → Performance, or speedscope)`);
    results.profile = { backend, file: join(dir, file), window, load, summary };
  } finally {
    await client.close().catch(() => {});
    await relay.stop();
    if (schema) await pgAdmin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  }
}

async function pgAdmin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_BASE, connectionTimeoutMillis: 3000 });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      target: { type: 'string' },
      profile: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'sqlite' },
      only: { type: 'string' },
      baseline: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      readFileSync(new URL(import.meta.url), 'utf8')
        .split('\n')
        .slice(0, 10)
        .join('\n'),
    );
    return;
  }
  const settings = values.quick ? QUICK : FULL;
  const only = values.only ? new Set(values.only.split(',').map((s) => s.trim())) : null;
  for (const s of only ?? []) if (!SECTIONS.includes(s as Section)) throw new Error(`unknown section ${s}`);
  const want = (s: Section) => !only || only.has(s);

  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const resultsDir = values.out ?? join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const tmpDir = mkdtempSync(join(os.tmpdir(), 'owc-bench-'));
  const ctx: BenchContext = { settings, load: new LoadGenerator(), tmpDir, log };
  const results: Results = {
    kind: values.profile ? 'profile' : values.target ? 'target' : values.quick ? 'quick' : 'full',
    startedAt: started.toISOString(),
    machine: machineInfo(),
    settings,
    errors: [],
  };
  if (values.target) results.target = values.target.replace(/\/+$/, '');

  const section = async (name: string, fn: () => Promise<void>) => {
    log(`\n[${name}]`);
    const t = performance.now();
    try {
      await fn();
    } catch (err) {
      const msg = `${name}: ${(err as Error).stack ?? err}`;
      results.errors.push(msg.split('\n').slice(0, 4).join(' | '));
      log(`  FAILED ${msg}`);
    }
    log(`  (${round((performance.now() - t) / 1000, 1)} s)`);
  };

  try {
    if (values.profile) {
      const backend = values.backend === 'postgres' ? 'postgres' : 'sqlite';
      await section(`profile (${backend})`, () => runProfile(ctx, results, resultsDir, stamp, backend));
    } else {
      if (want('cpu') && !results.target)
        await section('CPU per request', async () => {
          try {
            results.cpu = await measureCpu(ctx, { baseline: values.baseline });
          } catch (err) {
            results.cpu = { error: (err as Error).message };
            throw err;
          }
        });

      if (want('yardstick') || want('send') || results.target)
        await section('yardstick: bare node:http', async () => {
          results.yardstick = await measureYardstick(ctx);
        });

      if (results.target) {
        const target = results.target;
        await section(`send throughput on ${target}`, async () => {
          const client = new RelayClient(target, 16);
          try {
            const pairs = await preparePairs(client, 64, namePrefix());
            await warmSend(ctx, target, pairs, 'text');
            results.send = { text: [], json: [] };
            for (const c of settings.concurrencies) {
              const p = await measureSend(ctx, client, pairs, c, 'text');
              log(`  send text c=${c}: ${p.rps} sends/s (p99 ${p.latencyMs.p99} ms, non2xx ${p.non2xx})`);
              results.send.text.push(p);
            }
          } finally {
            await client.close();
          }
        });
      } else {
        let sqlite: { relay: ServerProcess; client: RelayClient; pairs: Pair[] } | null = null;
        if (want('send') || want('latency') || want('drain'))
          await section('SQLite relay: start, 81 friend pairs', async () => {
            const relay = await startRelay({ dataDir: join(ctx.tmpDir, 'sqlite') });
            const client = new RelayClient(relay.url, 16);
            sqlite = { relay, client, pairs: await preparePairs(client, 64 + 16 + 1, namePrefix()) };
          });
        if (sqlite) {
          const { relay, client, pairs } = sqlite as {
            relay: ServerProcess;
            client: RelayClient;
            pairs: Pair[];
          };
          try {
            const sendPairs = pairs.slice(0, 64);
            if (want('send'))
              await section('send throughput (SQLite)', async () => {
                results.send = await sendSeries(ctx, client, sendPairs, { relay: relay.pid });
              });
            if (want('latency'))
              await section('send → SSE latency (SQLite)', async () => {
                results.sseLatency = await measureLatency(ctx, client, pairs[80]!, pairs.slice(64, 80), {
                  relay: relay.pid,
                });
              });
            if (want('drain'))
              await section('inbox drain (SQLite)', async () => {
                const inboxes = pairs.slice(0, 80).map((p) => p.recipient);
                results.drain = [
                  await measureDrain(
                    ctx,
                    client,
                    inboxes.filter((_, i) => i % 2 === 0),
                    'text',
                  ),
                  await measureDrain(
                    ctx,
                    client,
                    inboxes.filter((_, i) => i % 2 === 1),
                    'json',
                  ),
                ];
              });
          } finally {
            await client.close();
            await relay.stop();
          }
        }
        if (want('streams'))
          await section(`${settings.streams} concurrent resume streams (SQLite)`, async () => {
            try {
              results.streams = await measureStreams(ctx);
            } catch (err) {
              results.streams = { error: (err as Error).message };
              throw err;
            }
          });
        if (want('postgres'))
          await section('PostgreSQL', async () => {
            try {
              results.postgres = await measurePostgres(ctx);
            } catch (err) {
              results.postgres = { error: (err as Error).message };
              throw err;
            }
          });
        if (want('groups'))
          await section(`${GROUP_MEMBERS}-member group fan-out (SQLite, PostgreSQL)`, async () => {
            try {
              results.groups = await measureGroups(ctx);
            } catch (err) {
              results.groups = { error: (err as Error).message };
              throw err;
            }
          });
        if (want('e2e'))
          await section('end-to-end encryption: sends with and without (SQLite)', async () => {
            try {
              results.e2e = await measureE2e(ctx);
            } catch (err) {
              results.e2e = { error: (err as Error).message };
              throw err;
            }
          });
        if (results.yardstick && !settings.quick && want('send'))
          await section('yardstick again (noise check)', async () => {
            const again = await measureYardstick(ctx, [64], false);
            const y = results.yardstick!;
            y.rps64Start = y.rps64;
            y.end = { rps64: again.rps64 };
            y.rps64 = round((y.rps64Start + again.rps64) / 2, 0);
            log(`  yardstick: ${y.rps64Start} at start, ${again.rps64} at end → ${y.rps64} req/s`);
          });
      }
      addRatios(results);
      results.targets = evaluateTargets(results);
    }
  } finally {
    ctx.load.close();
    await killAll();
    rmSync(tmpDir, { recursive: true, force: true });
  }

  const finished = new Date();
  results.finishedAt = finished.toISOString();
  results.wallSec = round((finished.getTime() - started.getTime()) / 1000, 1);
  const file = join(resultsDir, `${stamp}${results.kind === 'full' ? '' : `-${results.kind}`}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  if (results.kind !== 'profile') log(summaryTable(results));
  log(`\nresults: ${file} (${results.wallSec} s)`);
  if (results.errors.length) process.exitCode = 1;
}

main().catch(async (err) => {
  console.error(err);
  await killAll();
  process.exit(1);
});
