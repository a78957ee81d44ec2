// One account's inbound side: a resume stream (JSON format) from the persisted cursor, each message
// handled to completion before the next, the cursor saved and the relay acknowledged only after the
// handler settled. A crash before that point means the relay replays the message on the next start; a
// replayed id at or below the cursor is skipped, so each message reaches the agent once.

import { ClientError, type Message, type RelayClient } from '@openwechat/client';

export interface ResumeLoopOptions {
  client: RelayClient;
  /** The highest settled id (0: from the start). */
  cursor: () => number;
  /** Handles one message; resolves when its dispatch has settled. Throwing stops the loop. */
  handle: (message: Message & { id: number }) => Promise<void>;
  /** Persists the new cursor; the relay is acknowledged after it resolves. */
  settled: (id: number) => Promise<void>;
  signal: AbortSignal;
  log: (level: 'info' | 'warn', msg: string) => void;
  /** Injected for tests; defaults to real timers and Math.random. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  random?: () => number;
}

const BASE_MS = 1_000;
const MAX_MS = 30_000;
/** A connection that stayed up this long resets the backoff. */
const STABLE_MS = 60_000;

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Acks in the background, at most one request in flight, always for the newest settled id. */
function ackCoalescer(client: RelayClient, log: ResumeLoopOptions['log']): (id: number) => void {
  let inFlight = false;
  let wanted = 0;
  let sent = 0;
  const pump = async (): Promise<void> => {
    inFlight = true;
    while (wanted > sent) {
      const upTo = wanted;
      try {
        await client.ack(upTo);
        sent = upTo;
      } catch (err) {
        // Harmless: the next stream's Last-Event-ID acknowledges it.
        log('warn', `ack up to ${upTo} failed: ${(err as Error).message}`);
        break;
      }
    }
    inFlight = false;
  };
  return (id) => {
    wanted = Math.max(wanted, id);
    if (!inFlight) void pump();
  };
}

export async function runResumeLoop(opts: ResumeLoopOptions): Promise<void> {
  const sleep = opts.sleep ?? abortableSleep;
  const random = opts.random ?? Math.random;
  const ack = ackCoalescer(opts.client, opts.log);
  let failures = 0;
  while (!opts.signal.aborted) {
    let upSince: number | null = null;
    let retryAfter: number | null = null;
    try {
      const stream = await opts.client.openStream({ since: opts.cursor(), format: 'json' });
      const onAbort = (): void => stream.close();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      upSince = Date.now();
      opts.log('info', `stream open from id ${opts.cursor()}`);
      try {
        for await (const event of stream.events()) {
          if (opts.signal.aborted) break;
          if (event.type === 'unreadable') {
            opts.log('warn', `unreadable message ${event.id ?? '?'}: ${event.error}`);
            continue;
          }
          if (event.type !== 'message' || event.id === null) continue;
          const id = event.id;
          if (id <= opts.cursor()) continue; // already settled: a replay after a lost ack
          await opts.handle({ ...event.message, id });
          if (opts.signal.aborted) break; // the dispatch was cut short: leave it for the next start
          await opts.settled(id);
          ack(id);
        }
      } finally {
        opts.signal.removeEventListener('abort', onAbort);
        stream.close();
      }
      if (opts.signal.aborted) return;
      opts.log('info', 'stream ended; reconnecting');
    } catch (err) {
      if (opts.signal.aborted) return;
      if (err instanceof ClientError && err.kind === 'relay' && err.status !== 429 && err.status < 500) {
        throw err; // a refused token or a missing account will not heal by retrying
      }
      retryAfter = err instanceof ClientError ? err.retryAfterMs : null;
      opts.log('warn', `stream failed: ${(err as Error).message}`);
    }
    if (upSince !== null && Date.now() - upSince >= STABLE_MS) failures = 0;
    failures++;
    const step = Math.min(MAX_MS, BASE_MS * 2 ** Math.min(failures - 1, 20));
    const delay = Math.max(Math.floor(step / 2 + random() * (step / 2)), retryAfter ?? 0);
    await sleep(delay, opts.signal);
  }
}
