// Many concurrent resume streams on a fresh relay: the relay's memory per open stream (VmRSS delta ÷
// streams) and how fast messages reach them when senders message each stream's user once.

import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from '../lib/context.ts';
import { mapLimit, namePrefix, RelayClient, type User } from '../lib/client.ts';
import { forkWorker, openFileLimit, rssKiB, startRelay, stopChild } from '../lib/procs.ts';
import { epochMs, round, sleep, summarize, type Summary } from '../lib/stats.ts';

const STREAM_WORKER = fileURLToPath(new URL('../lib/stream-worker.ts', import.meta.url));
const WORKERS = 2;
const SENDERS = 64;

export interface StreamsResult {
  requested: number;
  opened: number;
  failed: number;
  firstError: string | null;
  registerPerSec: number;
  openPerSec: number;
  rssBeforeKiB: number | null;
  rssAfterKiB: number | null;
  /** (VmRSS after − before) ÷ opened streams. */
  rssPerStreamKiB: number | null;
  delivery: {
    messages: number;
    received: number;
    sendSec: number;
    /** Messages received by the streams per second, from the first send to the last event. */
    deliveredPerSec: number;
    /** Send start → event received, across processes (approximate to ~0.1 ms). */
    latencyMs: Summary;
  };
  fdLimit: number | null;
}

interface WorkerReport {
  type: 'report';
  received: number;
  firstAt: number;
  lastAt: number;
  ended: number;
  latencies: number[];
}

function ask<T>(w: ChildProcess, msg: object, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { type: string }) => {
      if (m.type !== type) return;
      cleanup();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`stream worker exited (${code})`));
    };
    const cleanup = () => {
      w.off('message', onMsg);
      w.off('exit', onExit);
    };
    w.on('message', onMsg);
    w.once('exit', onExit);
    w.send(msg);
  });
}

export async function measureStreams(ctx: BenchContext): Promise<StreamsResult> {
  const n = ctx.settings.streams;
  // The relay holds every stream's socket; each worker half of them (children inherit this limit).
  const limit = openFileLimit();
  if (limit !== null && limit < n + 500) {
    throw new Error(
      `the open-file limit (${limit}) is too low for ${n} streams: run bash -c 'ulimit -n 65536 && npm run bench'`,
    );
  }
  const relay = await startRelay({ dataDir: join(ctx.tmpDir, 'streams') });
  const client = new RelayClient(relay.url, 64);
  const workers: ChildProcess[] = [];
  try {
    const prefix = namePrefix();
    const t0 = performance.now();
    const users = await mapLimit(
      Array.from({ length: n }, (_, i) => i),
      64,
      (i) => client.register(`${prefix}u${i}`),
    );
    const registerPerSec = round(n / ((performance.now() - t0) / 1000), 0);
    ctx.log(`  registered ${n} users: ${registerPerSec}/s`);
    const senders = await mapLimit(
      Array.from({ length: SENDERS }, (_, i) => i),
      16,
      (i) => client.register(`${prefix}s${i}`),
    );

    await sleep(1000);
    const rssBeforeKiB = rssKiB(relay.pid);
    for (let i = 0; i < WORKERS; i++) workers.push(forkWorker(STREAM_WORKER));
    const t1 = performance.now();
    const opened = await Promise.all(
      workers.map((w, i) =>
        ask<{ opened: number; failed: number; firstError: string | null }>(
          w,
          {
            cmd: 'open',
            url: relay.url,
            tokens: users.filter((_, j) => j % WORKERS === i).map((u) => u.token),
            concurrency: 128,
          },
          'opened',
        ),
      ),
    );
    const openSec = (performance.now() - t1) / 1000;
    const openedCount = opened.reduce((a, o) => a + o.opened, 0);
    const failed = opened.reduce((a, o) => a + o.failed, 0);
    ctx.log(`  opened ${openedCount}/${n} streams in ${round(openSec, 1)} s`);
    await sleep(2000);
    const rssAfterKiB = rssKiB(relay.pid);
    const rssPerStreamKiB =
      rssBeforeKiB !== null && rssAfterKiB !== null && openedCount
        ? round((rssAfterKiB - rssBeforeKiB) / openedCount)
        : null;
    ctx.log(`  relay RSS ${rssBeforeKiB} → ${rssAfterKiB} KiB: ${rssPerStreamKiB} KiB per stream`);

    // Delivery: one message to every stream's user (a friend request from one of 64 senders).
    const sendStart = epochMs();
    await mapLimit(users, SENDERS, async (u: User, i) => {
      await client.send(senders[i % SENDERS]!, u.id, `d ${epochMs()}`);
    });
    const sendSec = (epochMs() - sendStart) / 1000;
    let reports: WorkerReport[] = [];
    for (let waited = 0; waited < 30_000; waited += 100) {
      reports = await Promise.all(workers.map((w) => ask<WorkerReport>(w, { cmd: 'report' }, 'report')));
      if (reports.reduce((a, r) => a + r.received, 0) >= openedCount) break;
      await sleep(100);
    }
    const received = reports.reduce((a, r) => a + r.received, 0);
    const lastAt = Math.max(...reports.map((r) => r.lastAt));
    const deliveredPerSec = round(received / ((lastAt - sendStart) / 1000), 0);
    const latencyMs = summarize(reports.flatMap((r) => r.latencies));
    ctx.log(
      `  delivered ${received}/${n} messages to streams: ${deliveredPerSec}/s (latency p50 ${latencyMs.p50} ms, p99 ${latencyMs.p99} ms)`,
    );
    return {
      requested: n,
      opened: openedCount,
      failed,
      firstError: opened.find((o) => o.firstError)?.firstError ?? null,
      registerPerSec,
      openPerSec: round(openedCount / openSec, 0),
      rssBeforeKiB,
      rssAfterKiB,
      rssPerStreamKiB,
      delivery: { messages: n, received, sendSec: round(sendSec), deliveredPerSec, latencyMs },
      fdLimit: openFileLimit(),
    };
  } finally {
    await Promise.all(workers.map((w) => stopChild(w, 'SIGTERM', 3000)));
    await client.close();
    await relay.stop();
  }
}
