// A stream worker (forked by the 10,000-streams section): holds many SSE resume streams open and counts
// the messages they receive, so the benchmark's client CPU is spread over processes.
// IPC in:  {cmd:'open', url, tokens, concurrency} | {cmd:'report'} | {cmd:'close'}
// IPC out: {type:'opened', opened, failed, firstError, ms} | {type:'report', received, firstAt, lastAt, latencies}

import { openStream, type StreamHandle } from './sse.ts';

type Msg =
  { cmd: 'open'; url: string; tokens: string[]; concurrency: number } | { cmd: 'report' } | { cmd: 'close' };

const streams: StreamHandle[] = [];
let received = 0;
let firstAt = 0;
let lastAt = 0;
let ended = 0;
const latencies: number[] = [];

function onMessage(data: string, at: number): void {
  received++;
  if (!firstAt) firstAt = at;
  lastAt = at;
  // The benchmark's contents are `d <epoch ms at send start>`.
  const m = /"content":"d (\d+(?:\.\d+)?)"/.exec(data);
  if (m) latencies.push(at - Number(m[1]));
}

async function openAll(url: string, tokens: string[], concurrency: number): Promise<void> {
  const started = performance.now();
  let next = 0;
  let failed = 0;
  let firstError: string | null = null;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, tokens.length) }, async () => {
      while (next < tokens.length) {
        const token = tokens[next++]!;
        try {
          streams.push(
            await openStream({
              baseUrl: url,
              token,
              lastEventId: 0,
              format: 'json',
              onMessage,
              onEnd: () => ended++,
            }),
          );
        } catch (err) {
          failed++;
          firstError ??= (err as Error).message;
        }
      }
    }),
  );
  process.send!({
    type: 'opened',
    opened: streams.length,
    failed,
    firstError,
    ms: performance.now() - started,
  });
}

process.on('message', (msg: Msg) => {
  if (msg.cmd === 'open') void openAll(msg.url, msg.tokens, msg.concurrency);
  else if (msg.cmd === 'report')
    process.send!({ type: 'report', received, firstAt, lastAt, ended, latencies });
  else if (msg.cmd === 'close') {
    for (const s of streams) s.close();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
