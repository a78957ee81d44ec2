// Load generation with autocannon, run in a separate worker process (bench/lib/load-worker.ts) so the
// load generator's CPU never competes with what the benchmark process itself measures (SSE latency).
//
// Each load job has "lanes": one (headers, body) per distinct client identity, e.g. one per sender. Every
// autocannon connection takes the next lane at its first request and keeps it for the whole run, so
// `connections: 64` with 64 lanes means 64 distinct senders each with one request in flight.

import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { forkWorker } from './procs.ts';

/** The benchmark's chat content (also the yardstick's body, so both carry the same bytes). */
export const CONTENT = 'benchmark message: the quick brown fox jumps over the lazy dog';

export interface Lane {
  headers: Record<string, string>;
  body: string;
}

export interface LoadJob {
  label: string;
  /** Origin, e.g. http://127.0.0.1:41234 */
  url: string;
  method: 'GET' | 'POST';
  path: string;
  connections: number;
  durationSec: number;
  /** Requests per second over all connections (open loop); unlimited when absent. */
  overallRate?: number;
  lanes: Lane[];
}

export interface LoadResult {
  label: string;
  connections: number;
  durationSec: number;
  requests: number;
  /** Completed requests per second (any status). */
  rps: number;
  /** 2xx answers per second. */
  okRps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

interface Pending {
  resolve: (r: LoadResult[]) => void;
  reject: (e: Error) => void;
}

const WORKER = fileURLToPath(new URL('./load-worker.ts', import.meta.url));

/** One long-lived load worker process; jobs given together run concurrently. */
export class LoadGenerator {
  private child: ChildProcess | null = null;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  private worker(): ChildProcess {
    if (this.child) return this.child;
    const child = forkWorker(WORKER);
    child.on('message', (msg: { id: number; results?: LoadResult[]; error?: string }) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`load worker: ${msg.error}`));
      else p.resolve(msg.results!);
    });
    child.once('exit', (code, signal) => {
      this.child = null;
      for (const p of this.pending.values()) p.reject(new Error(`load worker exited (${code ?? signal})`));
      this.pending.clear();
    });
    this.child = child;
    return child;
  }

  /** The worker's pid (starts it), for CPU accounting. */
  get pid(): number {
    return this.worker().pid!;
  }

  run(jobs: LoadJob[]): Promise<LoadResult[]> {
    const id = ++this.seq;
    return new Promise<LoadResult[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker().send({ id, jobs });
    });
  }

  async runOne(job: LoadJob): Promise<LoadResult> {
    return (await this.run([job]))[0]!;
  }

  close(): void {
    this.child?.kill('SIGTERM');
    this.child = null;
  }
}

/** Lanes for POST /send: sender i sends to recipient i. */
export function sendLanes(
  pairs: ReadonlyArray<{ sender: { token: string }; recipient: { id: number } }>,
  json: boolean,
  content = CONTENT,
): Lane[] {
  return pairs.map((p) => ({
    headers: {
      'content-type': 'application/json',
      'x-token': p.sender.token,
      ...(json ? { accept: 'application/json' } : {}),
    },
    body: JSON.stringify({ to_id: p.recipient.id, content }),
  }));
}
