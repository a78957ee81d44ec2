// Inbox drain: GET /messages?limit=500 (read-and-clear) over the recipients' inboxes that the send
// points filled, several inboxes at once, in text mode and in JSON mode.

import type { BenchContext } from '../lib/context.ts';
import type { RelayClient, User } from '../lib/client.ts';
import { round } from '../lib/stats.ts';

export interface DrainResult {
  mode: 'text' | 'json';
  concurrency: number;
  requests: number;
  messages: number;
  seconds: number;
  messagesPerSec: number;
  requestsPerSec: number;
}

const CONCURRENCY = 8;

function countMessages(text: string, json: boolean): number {
  if (json) return (JSON.parse(text) as { fetched: number }).fetched;
  let n = 0;
  for (let i = text.indexOf('消息ID：'); i >= 0; i = text.indexOf('消息ID：', i + 1)) n++;
  return n;
}

export async function measureDrain(
  ctx: BenchContext,
  client: RelayClient,
  inboxes: readonly User[],
  mode: 'text' | 'json',
): Promise<DrainResult> {
  const json = mode === 'json';
  const queue = [...inboxes];
  const deadline = performance.now() + ctx.settings.drainCapSec * 1000;
  let requests = 0;
  let messages = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let user = queue.shift(); user && performance.now() < deadline; user = queue.shift()) {
        while (performance.now() < deadline) {
          const a = await client.request('GET', '/messages?limit=500', { token: user.token, json });
          if (a.status !== 200) throw new Error(`GET /messages: HTTP ${a.status} ${a.text.slice(0, 200)}`);
          requests++;
          const n = countMessages(a.text, json);
          messages += n;
          if (n < 500) break;
        }
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const r: DrainResult = {
    mode,
    concurrency: CONCURRENCY,
    requests,
    messages,
    seconds: round(seconds),
    messagesPerSec: round(messages / seconds, 0),
    requestsPerSec: round(requests / seconds, 0),
  };
  ctx.log(`  drain ${mode}: ${r.messagesPerSec} messages/s (${messages} messages, ${requests} requests)`);
  return r;
}
