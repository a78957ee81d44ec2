// The inbox daemon (scripts/sse_inbox.js): keeps the SSE channel up and writes every received message to
// the data folder. One instance per data folder (lock.ts).
//
// Our relay (/health lists `resume`): a resume stream `GET /stream?format=json` with `Last-Event-ID: <last
// stored id>`; each stored batch is acknowledged (`POST /messages/ack`), and while the stream is down
// `GET /messages?after=<last id>` (non-destructive) fills in. Nothing is lost when the daemon dies at any
// instant: the cursor only moves after the message is on disk, and the relay replays everything after it.
// The reference relay (or --legacy): a legacy stream with text blocks, `GET /messages` (read-and-clear)
// right after each connect (it holds what arrived while we were away) and while the stream is down.
//
// Every channel state change is one line in sse_channel.log; the daemon's view is also in stats.json.
// On a relay with the `groups` feature the daemon also keeps groups.json (the user's groups): refreshed on
// every connect and soon after a group message or a group membership notice is stored.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClientError, RelayClient, type Message, type SseStream, type StreamEvent } from '@openwechat/client';
import { appendDurable } from './data/atomic.ts';
import { accountKey, ConfigProblem, loadConfig, type SkillConfig } from './data/config.ts';
import { refreshDerived, type SseState, type SseStatus } from './data/derived.ts';
import { formatChannelLine, type ChannelState } from './data/formats.ts';
import { groupNoticeOf, refreshGroups } from './data/groups.ts';
import { InboxWriter, type DownloadHook, type Received } from './data/inbox.ts';
import { acquireInstance, type InstanceHandle } from './data/lock.ts';
import { DataTooNewError, migrateDataDir } from './data/migrate.ts';
import { dataPath } from './data/paths.ts';
import { SKILL_VERSION } from './version.ts';

export const DAEMON_LOCK = 'sse_inbox';

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notConfigured: 3,
  refused: 4,
  invalidToken: 5,
  network: 6,
  rateLimited: 7,
  daemonConflict: 8,
  dataFolder: 9,
} as const;

export interface DaemonOptions {
  dataDir: string;
  /** Behave as with the reference relay even if ours is detected (text, legacy stream, read-and-clear). */
  forceLegacy?: boolean;
  /** First reconnection delay (doubles per attempt up to the maximum; equal jitter). Default: the relay's `retry:`, else 1 s. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** A stream silent this long is dead (the relay pings every 30 s). */
  idleTimeoutMs?: number;
  /** How often `/messages` is polled while the stream is down. */
  fallbackIntervalMs?: number;
  ackDelayMs?: number;
  derivedDelayMs?: number;
  /** Jitter source (tests pass a seeded PRNG). */
  random?: () => number;
  /** Where progress lines go (the daemon's stdout); the channel log is separate. */
  print?: (line: string) => void;
  /** Also print every channel transition (default: when stdout is a terminal). */
  echo?: boolean;
}

/** mulberry32: a small seeded PRNG for reproducible jitter. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options from the environment (OPENWECHAT_*), for the script entry. */
export function daemonOptionsFromEnv(env: NodeJS.ProcessEnv): Partial<DaemonOptions> {
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v.trim() === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  const seed = num('OPENWECHAT_SEED');
  const opts: Partial<DaemonOptions> = {
    forceLegacy: /^(1|true|yes|on)$/i.test(env.OPENWECHAT_FORCE_LEGACY ?? ''),
    reconnectBaseMs: num('OPENWECHAT_RECONNECT_BASE_MS'),
    reconnectMaxMs: num('OPENWECHAT_RECONNECT_MAX_MS'),
    idleTimeoutMs: num('OPENWECHAT_SSE_IDLE_MS'),
    fallbackIntervalMs: num('OPENWECHAT_FALLBACK_INTERVAL_MS'),
    ackDelayMs: num('OPENWECHAT_ACK_DELAY_MS'),
  };
  if (seed !== undefined) opts.random = seededRandom(seed);
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
}

/** Why the stream is not up, as logged and as used to pick the next delay. */
interface Failure {
  reason: string;
  status: number;
  code: string;
  retryAfterMs: number | null;
  /** Whether `/messages` can help meanwhile (not with a rejected token). */
  fallback: boolean;
  /** A refusal that needs the user (bad token): wait the maximum delay. */
  fatalish: boolean;
}

function failureOf(err: unknown): Failure {
  if (err instanceof ClientError) {
    const fatalish = err.code === 'invalid_token' || err.status === 401;
    return {
      reason: `${err.code}${err.status ? ` status=${err.status}` : ''}: ${err.message}`,
      status: err.status,
      code: err.code,
      retryAfterMs: err.retryAfterMs,
      fallback: !fatalish,
      fatalish,
    };
  }
  return {
    reason: `internal: ${(err as Error)?.message ?? String(err)}`,
    status: 0,
    code: 'internal',
    retryAfterMs: null,
    fallback: true,
    fatalish: false,
  };
}

/** A sleep that stop() can cut short. */
class Sleeper {
  private wake: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  interrupt(): void {
    this.wake?.();
  }
}

export class InboxDaemon {
  private readonly o: Required<Omit<DaemonOptions, 'reconnectBaseMs'>> & { reconnectBaseMs: number | null };
  private config!: SkillConfig;
  private client!: RelayClient;
  private writer: InboxWriter | null = null;
  private stream: SseStream | null = null;
  private stopping = false;
  private readonly sleeper = new Sleeper();
  private lock: InstanceHandle | null = null;
  private readonly startedAt = new Date().toISOString();

  private mode: 'resume' | 'legacy' = 'resume';
  private sse: SseStatus = {
    state: 'disconnected',
    since: new Date().toISOString(),
    reconnects: 0,
    mode: 'resume',
  };
  private serverRetryMs: number | null = null;

  // The message queue: stream events are stored in arrival order by one worker.
  private queue: Received[] = [];
  private working: Promise<void> | null = null;
  private workerError: unknown = null;

  private ackedId = 0;
  private ackTimer: NodeJS.Timeout | null = null;
  private derivedTimer: NodeJS.Timeout | null = null;

  /** Whether groups.json is kept: the relay lists the `groups` feature (not with --legacy). */
  private groupsEnabled = false;
  private groupsTimer: NodeJS.Timeout | null = null;
  private groupsRunning: Promise<void> | null = null;
  private groupsAgain = false;

  constructor(opts: DaemonOptions) {
    this.o = {
      dataDir: opts.dataDir,
      forceLegacy: opts.forceLegacy ?? false,
      reconnectBaseMs: opts.reconnectBaseMs ?? null,
      reconnectMaxMs: opts.reconnectMaxMs ?? 60_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 75_000,
      fallbackIntervalMs: opts.fallbackIntervalMs ?? 10_000,
      ackDelayMs: opts.ackDelayMs ?? 1000,
      derivedDelayMs: opts.derivedDelayMs ?? 300,
      random: opts.random ?? Math.random,
      print: opts.print ?? ((line) => process.stdout.write(`${line}\n`)),
      echo: opts.echo ?? process.stdout.isTTY === true,
    };
  }

  private get dir(): string {
    return this.o.dataDir;
  }

  /** Appends one line to sse_channel.log. */
  private async log(state: ChannelState | 'server', details: string): Promise<void> {
    const line = formatChannelLine(Date.now(), state, details);
    try {
      await appendDurable(dataPath(this.dir, 'channelLog'), line);
    } catch (err) {
      this.o.print(`cannot write sse_channel.log: ${(err as Error).message}`);
    }
    // On a terminal the transitions are shown as they happen; in the background the log file is enough.
    if (state !== 'server' && this.o.echo) this.o.print(line.trimEnd());
  }

  private async setState(state: SseState, mode: SseStatus['mode'] = this.mode): Promise<void> {
    if (this.sse.state !== state || this.sse.mode !== mode) {
      this.sse = { ...this.sse, state, mode, since: new Date().toISOString() };
    }
    await this.refreshNow();
  }

  private async refreshNow(): Promise<void> {
    if (this.derivedTimer) {
      clearTimeout(this.derivedTimer);
      this.derivedTimer = null;
    }
    try {
      await refreshDerived(this.dir, { sse: this.sse });
    } catch (err) {
      this.o.print(`cannot refresh stats.json: ${(err as Error).message}`);
    }
  }

  /** Refreshes groups.json now (one refresh at a time; a request meanwhile runs once more afterwards). */
  private refreshGroupsNow(): Promise<void> {
    if (this.groupsTimer) {
      clearTimeout(this.groupsTimer);
      this.groupsTimer = null;
    }
    if (!this.groupsEnabled) return Promise.resolve();
    if (this.groupsRunning) {
      this.groupsAgain = true;
      return this.groupsRunning;
    }
    this.groupsRunning = (async () => {
      try {
        do {
          this.groupsAgain = false;
          try {
            await refreshGroups(this.dir, this.client);
          } catch (err) {
            if (err instanceof ClientError && err.kind === 'unsupported') {
              // Not a relay with groups after all: stop asking.
              this.groupsEnabled = false;
              return;
            }
            this.o.print(`cannot refresh groups.json: ${(err as Error).message}`);
            return;
          }
        } while (this.groupsAgain && !this.stopping);
      } finally {
        this.groupsRunning = null;
      }
    })();
    return this.groupsRunning;
  }

  private scheduleGroups(): void {
    if (!this.groupsEnabled || this.groupsTimer) return;
    this.groupsTimer = setTimeout(() => {
      this.groupsTimer = null;
      void this.refreshGroupsNow();
    }, this.o.derivedDelayMs);
  }

  /** What newly stored messages set in motion: acks, derived views, the groups cache. */
  private afterStored(fresh: Message[]): void {
    if (!fresh.length) return;
    this.scheduleAck();
    this.scheduleDerived();
    if (fresh.some((m) => m.type === 'group' || (m.type === 'system' && groupNoticeOf(m.content)))) {
      this.scheduleGroups();
    }
  }

  private scheduleDerived(): void {
    if (this.derivedTimer) return;
    this.derivedTimer = setTimeout(() => {
      this.derivedTimer = null;
      void this.refreshNow();
    }, this.o.derivedDelayMs);
  }

  private status(): Record<string, unknown> {
    return {
      pid: process.pid,
      started_at: this.startedAt,
      version: SKILL_VERSION,
      data_dir: this.dir,
      state: this.sse.state,
      since: this.sse.since,
      mode: this.sse.mode,
      reconnects: this.sse.reconnects,
      last_id: this.writer?.lastId ?? null,
      relay: this.config?.base_url ?? null,
    };
  }

  private async writeLockFile(running: boolean): Promise<void> {
    const info = { ...this.status(), running, ...(running ? {} : { stopped_at: new Date().toISOString() }) };
    await writeFile(dataPath(this.dir, 'daemonLock'), `${JSON.stringify(info, null, 2)}\n`).catch(() => {});
  }

  /** Loads config.json; a changed account gets a fresh client and writer. */
  private async prepare(): Promise<void> {
    const config = await loadConfig(this.dir);
    const changed =
      !this.writer || this.writer.account !== accountKey(config) || this.config?.token !== config.token;
    this.config = config;
    if (changed) {
      this.client = new RelayClient({
        baseUrl: config.base_url,
        token: config.token,
        mode: this.o.forceLegacy ? 'text' : 'auto',
      });
      if (!this.writer || this.writer.account !== accountKey(config)) {
        this.writer = await InboxWriter.open(this.dir, config);
        this.ackedId = 0;
      }
    }
  }

  private downloadHook(strict: boolean): DownloadHook {
    return async (m: Message, rel: string) => {
      const fileId = m.attachment?.fileId;
      if (!fileId) return null;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.client.downloadFile(fileId, join(this.dir, rel));
          return rel;
        } catch (err) {
          const e = err instanceof ClientError ? err : null;
          if (e?.kind === 'relay' || !strict || attempt >= 3) {
            if (strict && e?.kind !== 'relay') throw err;
            await this.log(
              'error',
              `attachment of message id=${m.id ?? 'none'} not saved: ${(err as Error).message}`,
            );
            return null;
          }
          await this.sleeper.sleep(300 * attempt);
        }
      }
    };
  }

  /** Stores queued messages, one batch at a time, in order. */
  private kick(): void {
    if (this.working) return;
    this.working = (async () => {
      try {
        while (this.queue.length && !this.workerError) {
          const batch = this.queue.splice(0, this.queue.length);
          try {
            const fresh = await this.writer!.store(batch, this.downloadHook(this.mode === 'resume'));
            this.afterStored(fresh);
          } catch (err) {
            this.workerError = err;
            this.queue = [];
            this.stream?.close();
          }
        }
      } finally {
        this.working = null;
      }
    })();
  }

  private async drain(): Promise<void> {
    while (this.working) await this.working;
  }

  private scheduleAck(): void {
    if (this.mode !== 'resume' || this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      void this.ackNow();
    }, this.o.ackDelayMs);
  }

  private async ackNow(): Promise<void> {
    if (this.mode !== 'resume' || !this.writer) return;
    const upTo = this.writer.lastId;
    if (upTo <= this.ackedId) return;
    try {
      await this.client.ack(upTo);
      this.ackedId = upTo;
    } catch {
      // The next resume acknowledges as well; nothing is lost by a failed ack.
    }
  }

  private enqueue(r: Received): void {
    this.queue.push(r);
    this.kick();
  }

  private async handle(ev: StreamEvent): Promise<void> {
    switch (ev.type) {
      case 'log':
        await this.log('server', ev.data);
        break;
      case 'retry':
        this.serverRetryMs = ev.ms;
        break;
      case 'message':
        this.enqueue({ message: ev.message, raw: ev.raw, rawFormat: this.stream?.format ?? 'text' });
        break;
      case 'unreadable':
        await appendDurable(
          dataPath(this.dir, 'inboxPushed'),
          `## ${new Date().toISOString()} id=${ev.id ?? 'none'}\n${ev.raw}\n\n`,
        );
        await this.log(
          'error',
          `unreadable message id=${ev.id ?? 'none'} kept raw in inbox_pushed.md: ${ev.error}`,
        );
        break;
      case 'ping':
        break;
    }
  }

  /** Reads `/messages` until it is empty. Returns how many new messages were stored. */
  private async pollInbox(): Promise<number> {
    let stored = 0;
    for (let page = 0; page < 1000 && !this.stopping; page++) {
      await this.drain();
      const resume = this.mode === 'resume';
      // `?after=` pages are lossless, so they can be large; a read-and-clear batch stays at batch_size
      // (what a lost answer can cost). Pages are paced under the relay's per-user rate limit.
      const limit = resume ? Math.max(this.config.batch_size, 100) : this.config.batch_size;
      if (page > 0) await this.sleeper.sleep(60);
      const after = this.writer!.lastId;
      const res = resume
        ? await this.client.readInbox({ after, limit })
        : await this.client.readInbox({ limit });
      // `?after=` acknowledged everything up to `after`.
      if (resume) this.ackedId = Math.max(this.ackedId, after);
      const fresh = await this.writer!.store(
        res.messages.map((message) => ({ message })),
        this.downloadHook(resume),
      );
      stored += fresh.length;
      this.afterStored(fresh);
      if (res.messages.length === 0 || res.remaining === 0) break;
    }
    return stored;
  }

  private delayFor(attempt: number, failure: Failure): number {
    const base = this.o.reconnectBaseMs ?? this.serverRetryMs ?? 1000;
    const max = this.o.reconnectMaxMs;
    if (failure.fatalish) return max;
    const exp = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
    // Equal jitter: half fixed, half random, so many clients do not reconnect in step.
    let delay = Math.round(exp / 2 + this.o.random() * (exp / 2));
    if (failure.retryAfterMs !== null) delay = Math.max(delay, failure.retryAfterMs);
    return delay;
  }

  private async explain(f: Failure): Promise<void> {
    if (f.status === 401 || f.code === 'invalid_token') {
      await this.log(
        'error',
        `401 invalid_token: the relay at ${this.config.base_url} does not accept the token in config.json. ` +
          'Check config.json or register again; the daemon keeps retrying slowly.',
      );
    } else if (f.status === 429) {
      const what =
        f.code === 'sse_limit'
          ? 'the relay allows only a limited number of SSE connections per IP and another client from this IP holds it (stop other sse_inbox instances)'
          : 'too many requests; the relay asks us to slow down';
      await this.log('error', `429 ${f.code}: ${what}. Retrying after the relay's Retry-After.`);
    }
  }

  /** One connection: open, read until it ends. Returns why it ended (null when stopping). */
  private async connectOnce(wasDown: { since: number; attempts: number } | null): Promise<Failure | null> {
    try {
      await this.prepare();
    } catch (err) {
      if (err instanceof ConfigProblem) throw err;
      return failureOf(err);
    }
    try {
      const caps = await this.client.capabilities(true);
      this.mode = !this.o.forceLegacy && caps.resume ? 'resume' : 'legacy';
      const since = this.mode === 'resume' ? this.writer!.lastId : null;
      this.stream = await this.client.openStream({
        since,
        format: this.mode === 'resume' && caps.json ? 'json' : 'text',
        idleTimeoutMs: this.o.idleTimeoutMs,
      });
      if (this.stopping) {
        this.stream.close();
        return null;
      }
      if (this.mode === 'resume') this.ackedId = Math.max(this.ackedId, since ?? 0);
      const relay = caps.kind === 'openwechat' ? `openwechat ${caps.version ?? ''}`.trim() : 'reference';
      await this.log(
        'connected',
        `mode=${this.mode} format=${this.stream.format}${since !== null ? ` since=${since}` : ''} relay=${relay} pid=${process.pid}`,
      );
      if (wasDown) {
        this.sse.reconnects++;
        await this.log(
          'recovered',
          `after=${Math.max(0, Date.now() - wasDown.since)}ms attempts=${wasDown.attempts} back to SSE`,
        );
      }
      await this.setState('connected', this.mode);
      await this.writeLockFile(true);
      // Groups exist only where /health lists them; membership may have changed while we were away.
      this.groupsEnabled = caps.groups && !this.o.forceLegacy;
      void this.refreshGroupsNow();
      if (this.mode === 'legacy') {
        // The reference keeps what arrived while no stream was open in the inbox; collect it now.
        try {
          const n = await this.pollInbox();
          if (n) {
            await this.log(
              'fallback',
              `catch_up fetched=${n} via=GET /messages (stored while the stream was down)`,
            );
          }
        } catch (err) {
          // The stream is up; what is left in the inbox is collected after the next connect.
          await this.log('error', `catch_up via GET /messages failed: ${(err as Error).message}`);
        }
      }
      for await (const ev of this.stream.events()) {
        await this.handle(ev);
        if (this.workerError) break;
      }
      if (this.stopping) return null;
      await this.drain();
      if (this.workerError) {
        const err = this.workerError;
        this.workerError = null;
        return { ...failureOf(err), reason: `storing failed: ${(err as Error).message}` };
      }
      return {
        reason: 'stream_ended',
        status: 0,
        code: 'stream_ended',
        retryAfterMs: null,
        fallback: true,
        fatalish: false,
      };
    } catch (err) {
      if (this.stopping) return null;
      await this.drain();
      if (this.workerError) {
        const e = this.workerError;
        this.workerError = null;
        return { ...failureOf(e), reason: `storing failed: ${(e as Error).message}` };
      }
      return failureOf(err);
    } finally {
      this.stream = null;
    }
  }

  async run(): Promise<number> {
    try {
      const report = await migrateDataDir(this.dir);
      if (report.converted.length) {
        this.o.print(
          `data folder migrated from v${report.from} to v${report.to}: ${report.converted.join(', ')} ` +
            `(originals kept in ${join(this.dir, 'migrations')})`,
        );
      }
    } catch (err) {
      this.o.print(`cannot use the data folder: ${(err as Error).message}`);
      return err instanceof DataTooNewError ? EXIT.dataFolder : EXIT.failure;
    }
    this.lock = await acquireInstance(this.dir, DAEMON_LOCK, () => this.status());
    if (!this.lock) {
      this.o.print(`another sse_inbox is already running for ${this.dir} (see: openwechat daemon status)`);
      return EXIT.daemonConflict;
    }
    try {
      try {
        await this.prepare();
      } catch (err) {
        if (err instanceof ConfigProblem) {
          await this.log('error', `${err.message}`);
          return EXIT.notConfigured;
        }
        throw err;
      }
      await this.writeLockFile(true);
      this.o.print(
        `sse_inbox ${SKILL_VERSION} pid=${process.pid} data=${this.dir} relay=${this.config.base_url}`,
      );
      return await this.loop();
    } catch (err) {
      if (err instanceof ConfigProblem) {
        await this.log('error', err.message);
        return EXIT.notConfigured;
      }
      await this.log('error', `daemon failed: ${(err as Error).stack ?? String(err)}`);
      return EXIT.failure;
    } finally {
      await this.shutdown();
    }
  }

  private async loop(): Promise<number> {
    let down: { since: number; attempts: number } | null = null;
    while (!this.stopping) {
      const failure = await this.connectOnce(down);
      if (!failure || this.stopping) break;
      if (this.sse.state === 'connected') {
        await this.log('disconnected', `reason=${failure.reason}`);
        await this.setState('disconnected');
      }
      await this.explain(failure);
      down ??= { since: Date.now(), attempts: 0 };
      down.attempts++;
      const delay = this.delayFor(down.attempts, failure);
      await this.log('reconnecting', `attempt=${down.attempts} delay_ms=${delay} reason=${failure.reason}`);
      await this.setState('reconnecting');
      // While the stream is down, /messages fills in (SSE-first: never while the stream is up).
      const until = Date.now() + delay;
      let first = down.attempts === 1;
      while (!this.stopping && Date.now() < until) {
        if (failure.fallback && this.writer) {
          try {
            const resume = this.mode === 'resume';
            if (first) {
              await this.log(
                'fallback',
                `via=GET /messages${resume ? `?after=${this.writer.lastId}` : ''} while SSE is down`,
              );
              await this.setState('fallback', 'fallback');
            }
            const n = await this.pollInbox();
            if (n) await this.log('fallback', `fetched=${n} last_id=${this.writer.lastId}`);
          } catch {
            // The relay is unreachable too; the reconnect attempt will say so.
          }
          first = false;
        }
        await this.sleeper.sleep(Math.min(this.o.fallbackIntervalMs, Math.max(0, until - Date.now())));
      }
    }
    return EXIT.ok;
  }

  /** Stops after the batch being stored (SIGTERM/SIGINT). */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stream?.close();
    this.sleeper.interrupt();
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    await this.drain();
    if (this.ackTimer) {
      clearTimeout(this.ackTimer);
      this.ackTimer = null;
    }
    if (this.groupsTimer) {
      clearTimeout(this.groupsTimer);
      this.groupsTimer = null;
    }
    await this.groupsRunning;
    if (this.writer) await this.ackNow();
    if (this.lock) {
      if (this.sse.state !== 'disconnected') {
        await this.log('disconnected', 'reason=daemon_stopped');
      }
      this.sse = { ...this.sse, state: 'disconnected', since: new Date().toISOString() };
      await this.refreshNow();
      await this.writeLockFile(false);
      await this.lock.release();
      this.lock = null;
    }
  }
}

export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const daemon = new InboxDaemon(opts);
  const stop = (): void => daemon.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    return await daemon.run();
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}
