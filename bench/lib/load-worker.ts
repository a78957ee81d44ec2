// The load worker (forked by LoadGenerator): receives {id, jobs} over IPC, runs the jobs concurrently with
// autocannon and answers {id, results}. See load.ts for the meaning of lanes.

import autocannon from 'autocannon';
import type { LoadJob, LoadResult } from './load.ts';

interface AutocannonRequest {
  headers: Record<string, string>;
  body?: Buffer | string;
}

function runJob(job: LoadJob): Promise<LoadResult> {
  const lanes = job.lanes.map((l) => ({ headers: l.headers, body: Buffer.from(l.body) }));
  const tag = 'x-bench-lane';
  let nextLane = 0;
  // autocannon rebuilds the request from the per-connection request object before each send and keeps
  // the headers object that setupRequest mutates, so a lane chosen at a connection's first request
  // stays with that connection (the tag header records which lane it is).
  const setupRequest = (req: AutocannonRequest): AutocannonRequest => {
    let lane = req.headers[tag];
    if (lane === undefined) {
      lane = String(nextLane++ % lanes.length);
      Object.assign(req.headers, lanes[Number(lane)]!.headers);
      req.headers[tag] = lane;
    }
    req.body = lanes[Number(lane)]!.body;
    return req;
  };
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: job.url,
        method: job.method,
        connections: job.connections,
        duration: job.durationSec,
        ...(job.overallRate ? { overallRate: job.overallRate } : {}),
        timeout: 10,
        requests: [{ method: job.method, path: job.path, setupRequest }],
      },
      (err, r) => {
        if (err) return reject(err);
        const ok2xx = r['2xx'];
        const requests = r.requests.total;
        const secs = r.duration || job.durationSec;
        resolve({
          label: job.label,
          connections: job.connections,
          durationSec: secs,
          requests,
          rps: requests / secs,
          okRps: ok2xx / secs,
          latencyMs: {
            mean: r.latency.average,
            p50: r.latency.p50,
            p90: r.latency.p90,
            p99: r.latency.p99,
            max: r.latency.max,
          },
          ok2xx,
          non2xx: r.non2xx,
          errors: r.errors,
          timeouts: r.timeouts,
        });
      },
    );
  });
}

process.on('message', (msg: { id: number; jobs: LoadJob[] }) => {
  Promise.all(msg.jobs.map(runJob)).then(
    (results) => process.send!({ id: msg.id, results }),
    (err: Error) => process.send!({ id: msg.id, error: err.stack ?? err.message }),
  );
});
process.on('disconnect', () => process.exit(0));
