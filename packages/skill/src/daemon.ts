// The inbox daemon (scripts/sse_inbox.js): keeps the SSE channel up and writes every received message to
// the data folder. One instance per data folder (lock.ts).
//
// The channel itself — resume or legacy stream, cursor, reconnect backoff, acks, the `/messages` fallback —
// is @openwechat/client's StreamConsumer (the bridge and the OpenClaw channel plugin use the same one).
// This file adds what is the skill's: the data folder (InboxWriter stores each batch: files, inbox_pushed.md,
// conversations.md, cursor.json), the delivery receipts of what this user sent (sent.idx), sse_channel.log (one line per channel state change), stats.json's view of
// the channel, daemon.lock, and groups.json (daemon-groups.ts).
//
// Nothing is lost when the daemon dies at any instant: the cursor (cursor.json's last_id) only moves after
// the message is on disk, and the relay replays everything after it.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  abortableSleep,
  ClientError,
  E2eError,
  RelayClient,
  StreamConsumer,
  type E2eSession,
  type OpenedMessage,
  type ConsumerEvent,
  type Delivery,
  type Message,
  type StreamFailure,
} from '@openwechat/client';
import { appendDurable } from './data/atomic.ts';
import { accountKey, ConfigProblem, loadConfig, type SkillConfig } from './data/config.ts';
import { e2ePolicy, e2eSession } from './data/e2e.ts';
import { refreshDerived, type SseState, type SseStatus } from './data/derived.ts';
import { formatChannelLine, type ChannelState } from './data/formats.ts';
import { groupNoticeOf } from './data/groups.ts';
import { InboxWriter, type DownloadHook } from './data/inbox.ts';
import { acquireInstance, type InstanceHandle } from './data/lock.ts';
import { DataTooNewError, migrateDataDir } from './data/migrate.ts';
import { dataPath } from './data/paths.ts';
import { recordDelivered } from './data/sent.ts';
import { GroupsKeeper } from './daemon-groups.ts';
import { EXIT, type DaemonOptions } from './daemon-options.ts';
import { SKILL_VERSION } from './version.ts';

export { daemonOptionsFromEnv, EXIT, seededRandom, type DaemonOptions } from './daemon-options.ts';

export const DAEMON_LOCK = 'sse_inbox';

type Settings = Required<Omit<DaemonOptions, 'reconnectBaseMs'>> & { reconnectBaseMs: number | null };

class InboxDaemon {
  private readonly o: Settings;
  private config!: SkillConfig;
  private client!: RelayClient;
  private writer: InboxWriter | null = null;
  /** End-to-end encryption (config.json `e2e`, OPENWECHAT_E2E); null when off. */
  private e2e: E2eSession | null = null;
  /** Opened encrypted attachments of the batch being stored, by message id (their download decrypts). */
  private readonly sealedFiles = new Map<number, OpenedMessage>();
  private consumer: StreamConsumer | null = null;
  private stopping = false;
  private readonly stopSignal = new AbortController();
  private lock: InstanceHandle | null = null;
  private readonly startedAt = new Date().toISOString();
  private readonly groups: GroupsKeeper;

  private mode: 'resume' | 'legacy' = 'resume';
  private sse: SseStatus = {
    state: 'disconnected',
    since: new Date().toISOString(),
    reconnects: 0,
    mode: 'resume',
  };
  private derivedTimer: NodeJS.Timeout | null = null;

  constructor(opts: DaemonOptions) {
    this.o = {
      dataDir: opts.dataDir,
      forceLegacy: opts.forceLegacy ?? false,
      reconnectBaseMs: opts.reconnectBaseMs ?? null,
      reconnectMaxMs: opts.reconnectMaxMs ?? 60_000,
      stableMs: opts.stableMs ?? 10_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 75_000,
      fallbackIntervalMs: opts.fallbackIntervalMs ?? 10_000,
      ackDelayMs: opts.ackDelayMs ?? 1000,
      derivedDelayMs: opts.derivedDelayMs ?? 300,
      random: opts.random ?? Math.random,
      print: opts.print ?? ((line) => process.stdout.write(`${line}\n`)),
      echo: opts.echo ?? process.stdout.isTTY === true,
    };
    this.groups = new GroupsKeeper(this.dir, () => this.client, this.o.derivedDelayMs, this.o.print);
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

  /**
   * Loads config.json (before every connect, so a re-registration takes effect without a restart); a
   * changed account or token gets a fresh client (and, for another account, a fresh writer).
   */
  private async prepare(): Promise<RelayClient> {
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
      const policy = e2ePolicy(config, { env: process.env, legacy: this.o.forceLegacy });
      this.e2e = e2eSession(this.dir, config, this.client, policy);
      if (!this.writer) this.writer = await InboxWriter.open(this.dir, config);
      // Called before a connect, never while a batch is stored: the consumer's worker is drained.
      else if (this.writer.account !== accountKey(config)) await this.writer.switchTo(config);
    }
    return this.client;
  }

  private downloadHook(strict: boolean): DownloadHook {
    return async (m: Message, rel: string) => {
      const fileId = m.attachment?.fileId;
      if (!fileId) return null;
      const sealed = m.id !== null ? this.sealedFiles.get(m.id) : undefined;
      for (let attempt = 1; ; attempt++) {
        try {
          if (sealed && this.e2e) await this.e2e.downloadFile(sealed, join(this.dir, rel));
          else await this.client.downloadFile(fileId, join(this.dir, rel));
          return rel;
        } catch (err) {
          const e = err instanceof ClientError ? err : null;
          if (e?.kind === 'relay' || !strict || attempt >= 3) {
            // On a resume relay a transient failure fails the batch: the relay replays it later.
            if (strict && e?.kind !== 'relay') throw err;
            await this.log(
              'error',
              `attachment of message id=${m.id ?? 'none'} not saved: ${(err as Error).message}`,
            );
            return null;
          }
          await abortableSleep(300 * attempt, this.stopSignal.signal);
        }
      }
    };
  }

  /** The consumer's handler: one batch into the data folder, then what it sets in motion. */
  /**
   * End-to-end: each message is opened (decrypted and verified) before anything is written. A refused
   * one (tampered, replayed, forged sender, changed key, plaintext under `required`) is not stored as a
   * message: sse_channel.log says why, and the relay's copy is acknowledged with the batch.
   */
  private async openBatch(batch: Delivery[]): Promise<Delivery[]> {
    this.sealedFiles.clear();
    // `openwechat keys policy …` may have changed the policy while this daemon runs: follow it.
    const policy = e2ePolicy(await loadConfig(this.dir), { env: process.env, legacy: this.o.forceLegacy });
    if ((this.e2e?.policy ?? 'off') !== policy)
      this.e2e = e2eSession(this.dir, this.config, this.client, policy);
    if (!this.e2e) return batch;
    const out: Delivery[] = [];
    for (const d of batch) {
      try {
        const o = await this.e2e.open(d);
        if (!o.encrypted) {
          out.push(d);
          continue;
        }
        const a = d.message.attachment;
        const attachment =
          a && o.file ? { ...a, name: o.file.name, size: o.file.size, contentType: o.file.content_type } : a;
        if (o.file && d.message.id !== null) this.sealedFiles.set(d.message.id, o);
        out.push({ ...d, message: { ...o.message, attachment }, raw: null, format: 'json' });
      } catch (err) {
        if (!(err instanceof E2eError)) throw err;
        await this.log('error', `refused message id=${d.id ?? 'none'} (e2e ${err.code}): ${err.message}`);
      }
    }
    return out;
  }

  private async store(received: Delivery[]): Promise<void> {
    const batch = await this.openBatch(received);
    // Refused messages are not kept, but the cursor moves past them like past everything handled: the
    // consumer saves the batch's last id into the writer (CursorStore.save) once this returns.
    if (!batch.length) return;
    const fresh = await this.writer!.store(
      // Text blocks are kept verbatim in inbox_pushed.md; JSON (or a JSON inbox page) is written as a block.
      batch.map((d) => ({ message: d.message, raw: d.raw ?? undefined, rawFormat: d.format })),
      this.downloadHook(this.mode === 'resume'),
    );
    if (!fresh.length) return;
    this.scheduleDerived();
    if (fresh.some((m) => m.type === 'group' || (m.type === 'system' && groupNoticeOf(m.content)))) {
      this.groups.schedule();
    }
  }

  private async explain(f: StreamFailure): Promise<void> {
    if (f.status === 401 || f.code === 'invalid_token') {
      await this.log(
        'error',
        `401 invalid_token: the relay at ${this.config.base_url} does not accept the token in config.json. ` +
          'Check config.json or register again; the daemon keeps retrying slowly.',
      );
    } else if (f.status === 429) {
      const what =
        f.code === 'sse_limit'
          ? "the relay limits SSE connections per user and per IP and this one is full; this daemon keeps polling GET /messages and reconnects by itself (do not stop other accounts' daemons: if it lasts, ask the operator to raise SSE_MAX_PER_IP)"
          : 'too many requests; the relay asks us to slow down';
      await this.log('error', `429 ${f.code}: ${what}. Retrying after the relay's Retry-After.`);
    }
  }

  /** Every channel state change: one sse_channel.log line, and stats.json's view. */
  private async onEvent(ev: ConsumerEvent): Promise<void> {
    switch (ev.type) {
      case 'connected': {
        this.mode = ev.mode;
        const caps = ev.capabilities;
        const relay = caps.kind === 'openwechat' ? `openwechat ${caps.version ?? ''}`.trim() : 'reference';
        await this.log(
          'connected',
          `mode=${ev.mode} format=${ev.format}${ev.since !== null ? ` since=${ev.since}` : ''} relay=${relay} pid=${process.pid}`,
        );
        if (ev.recovered) {
          this.sse.reconnects++;
          await this.log(
            'recovered',
            `after=${ev.recovered.afterMs}ms attempts=${ev.recovered.attempts} back to SSE`,
          );
        }
        await this.setState('connected', ev.mode);
        await this.writeLockFile(true);
        // Groups exist only where /health lists them; membership may have changed while we were away.
        this.setGroupsFrom(caps);
        break;
      }
      case 'disconnected':
        await this.log('disconnected', `reason=${ev.reason}`);
        await this.setState('disconnected');
        break;
      case 'reconnecting':
        await this.explain(ev.failure);
        await this.log('reconnecting', `attempt=${ev.attempt} delay_ms=${ev.delayMs} reason=${ev.reason}`);
        await this.setState('reconnecting');
        break;
      case 'fallback':
        if (ev.phase === 'start') {
          await this.log('fallback', `via=${ev.via} while SSE is down`);
          await this.setState('fallback', 'fallback');
          // A daemon that starts in fallback (e.g. a 429 at its first connect) never sees 'connected':
          // keep groups.json for the UI from the relay's capabilities all the same.
          void this.enableGroups();
        } else if (ev.phase === 'fetched') {
          await this.log('fallback', `fetched=${ev.fetched} last_id=${ev.lastId}`);
        } else if (ev.phase === 'catch_up') {
          await this.log(
            'fallback',
            `catch_up fetched=${ev.fetched} via=GET /messages (stored while the stream was down)`,
          );
        } else {
          await this.log('error', `catch_up via GET /messages failed: ${ev.error}`);
        }
        break;
      case 'ack':
        // A failed ack costs nothing: the next resume acknowledges as well.
        break;
    }
  }

  private setGroupsFrom(caps: { groups: boolean }): void {
    this.groups.enabled = caps.groups && !this.o.forceLegacy;
    void this.groups.refreshNow();
  }

  private async enableGroups(): Promise<void> {
    try {
      this.setGroupsFrom(await (await this.prepare()).capabilities());
    } catch {
      // The relay is unreachable: the next connect or fallback tries again.
    }
  }

  private createConsumer(): StreamConsumer {
    return new StreamConsumer({
      client: () => this.prepare(),
      fatal: (err) => err instanceof ConfigProblem,
      // The writer owns the cursor: cursor.json moves with each stored batch, and the consumer reads it.
      cursor: this.writer!,
      onBatch: (batch) => this.store(batch),
      onServerLog: (line) => this.log('server', line),
      // A message this user sent was delivered: sent.idx, where `openwechat sent` shows it.
      onReceipt: async (receipt) => {
        await recordDelivered(this.dir, [receipt]);
      },
      onUnreadable: async (ev) => {
        await appendDurable(
          dataPath(this.dir, 'inboxPushed'),
          `## ${new Date().toISOString()} id=${ev.id ?? 'none'}\n${ev.raw}\n\n`,
        );
        await this.log(
          'error',
          `unreadable message id=${ev.id ?? 'none'} kept raw in inbox_pushed.md: ${ev.error}`,
        );
      },
      onEvent: (ev) => this.onEvent(ev),
      legacy: this.o.forceLegacy,
      backoff: {
        baseMs: this.o.reconnectBaseMs ?? undefined,
        maxMs: this.o.reconnectMaxMs,
        stableMs: this.o.stableMs,
      },
      idleTimeoutMs: this.o.idleTimeoutMs,
      // The read-and-clear batch follows config.json's batch_size.
      fallback: { intervalMs: this.o.fallbackIntervalMs, limit: () => this.config.batch_size },
      ackDelayMs: this.o.ackDelayMs,
      random: this.o.random,
    });
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
      await this.prepare();
      await this.writeLockFile(true);
      this.o.print(
        `sse_inbox ${SKILL_VERSION} pid=${process.pid} data=${this.dir} relay=${this.config.base_url}`,
      );
      if (!this.stopping) {
        this.consumer = this.createConsumer();
        await this.consumer.run();
      }
      return EXIT.ok;
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

  /** Stops after the batch being stored (SIGTERM/SIGINT). */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stopSignal.abort();
    void this.consumer?.stop();
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort();
    // Lets the batch being stored finish and sends the last ack.
    await this.consumer?.stop();
    await this.groups.stop();
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
