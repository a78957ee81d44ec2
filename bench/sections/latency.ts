// send→SSE latency: a recipient holds a resume stream (`GET /stream?format=json`, Last-Event-ID: 0); the
// probe sends it numbered messages one at a time and measures (event bytes received) − (send started).
// The probe runs in the benchmark process; background load comes from the separate load worker.

import { Pool } from 'undici';
import type { BenchContext } from '../lib/context.ts';
import type { Pair, RelayClient } from '../lib/client.ts';
import { sendLanes } from '../lib/load.ts';
import { cpuMeter } from '../lib/cpu.ts';
import { openStream } from '../lib/sse.ts';
import { epochMs, round, sleep, summarize, type Summary } from '../lib/stats.ts';
import { toPoint, type Point } from './throughput.ts';

export interface ProbeResult extends Summary {
  /** Probes whose event did not arrive within 5 s. */
  lost: number;
}

export async function probeLatency(opts: {
  sendUrl: string;
  streamUrl: string;
  pair: Pair;
  /** Stop after this many samples… */
  samples: number;
  /** …or after this long, whichever comes first. */
  maxMs: number;
  /** Pause between one probe's event and the next send. */
  gapMs: number;
}): Promise<ProbeResult> {
  const waiters = new Map<number, (at: number) => void>();
  const stream = await openStream({
    baseUrl: opts.streamUrl,
    token: opts.pair.recipient.token,
    lastEventId: 0,
    format: 'json',
    onMessage(data, at) {
      const m = /"content":"lat (\d+)"/.exec(data);
      if (m) waiters.get(Number(m[1]))?.(at);
    },
  });
  const pool = new Pool(opts.sendUrl, { connections: 1, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  let lost = 0;
  const body = (i: number) => JSON.stringify({ to_id: opts.pair.recipient.id, content: `lat ${i}` });
  const headers = { 'content-type': 'application/json', 'x-token': opts.pair.sender.token };
  try {
    // One unmeasured probe: connection set-up, first-use paths.
    for (let i = 0, end = performance.now() + opts.maxMs; i <= opts.samples && performance.now() < end; i++) {
      const received = new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 5000);
        waiters.set(i, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
      });
      const t0 = epochMs();
      const res = await pool.request({ method: 'POST', path: '/send', headers, body: body(i) });
      const text = await res.body.text();
      if (res.statusCode !== 200 || !text.startsWith('发送成功'))
        throw new Error(`probe send: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
      const at = await received;
      waiters.delete(i);
      if (i > 0) {
        if (at === null) lost++;
        else latencies.push(at - t0);
      }
      if (opts.gapMs) await sleep(opts.gapMs);
    }
  } finally {
    stream.close();
    await pool.close();
  }
  return { ...summarize(latencies), lost };
}

export interface LatencyResult {
  idle: ProbeResult;
  underLoad: ProbeResult & { background: Point & { targetRate: number } };
}

export async function measureLatency(
  ctx: BenchContext,
  client: RelayClient,
  probePair: Pair,
  backgroundPairs: readonly Pair[],
  pids: Record<string, number> = {},
): Promise<LatencyResult> {
  const s = ctx.settings;
  await client.drainInbox(probePair.recipient);
  const idle = await probeLatency({
    sendUrl: client.baseUrl,
    streamUrl: client.baseUrl,
    pair: probePair,
    samples: s.idleSamples,
    maxMs: 20_000,
    gapMs: 2,
  });
  ctx.log(`  send→SSE idle: p50 ${idle.p50} ms, p99 ${idle.p99} ms (${idle.n} samples)`);

  await client.drainInbox(probePair.recipient);
  const meter = cpuMeter({ ...pids, loadgen: ctx.load.pid });
  const bgSec = s.loadLatencySec + 1;
  const background = ctx.load.runOne({
    label: 'background',
    url: client.baseUrl,
    method: 'POST',
    path: '/send',
    connections: backgroundPairs.length,
    durationSec: bgSec,
    overallRate: s.backgroundRate,
    lanes: sendLanes(backgroundPairs, false),
  });
  await sleep(700);
  const loaded = await probeLatency({
    sendUrl: client.baseUrl,
    streamUrl: client.baseUrl,
    pair: probePair,
    samples: 100_000,
    maxMs: (bgSec - 1.2) * 1000,
    gapMs: 10,
  });
  const bg = toPoint(await background, meter());
  ctx.log(
    `  send→SSE under ${round(bg.rps, 0)} sends/s: p50 ${loaded.p50} ms, p99 ${loaded.p99} ms (${loaded.n} samples)`,
  );
  return { idle, underLoad: { ...loaded, background: { ...bg, targetRate: s.backgroundRate } } };
}
