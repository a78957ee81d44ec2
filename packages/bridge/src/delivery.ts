// Delivers outbox rows to the OpenClaw webhook. Per conversation strictly one message in flight and in
// queue order (a retry never lets a later message overtake); conversations run in parallel up to the
// configured concurrency. Each attempt POSTs the stored bytes with fresh signature headers (the
// Standard Webhooks timestamp is per attempt), within a whole-request timeout. Outcomes:
//   2xx → delivered; transient (network, timeout, 408/425/429/5xx) → retry after max(jittered
//   backoff, Retry-After) unless that passes the retry horizon; anything else → dead letter.

import { parseRetryAfter, retryDelay } from '@openwechat/client';
import type { BridgeConfig } from './config.ts';
import { errInfo, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { Outbox, OutboxRow } from './outbox.ts';
import { classifyWebhookStatus } from './retry.ts';
import { signatureHeaders } from './signature.ts';

/** Rows added by another process (the dead-letter CLI) are noticed within this time. */
const POLL_MS = 1000;

export interface DeliveryDeps {
  now: () => number;
  random: () => number;
}

export class Deliverer {
  private readonly busy = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private stopped = false;

  constructor(
    private readonly config: BridgeConfig,
    private readonly outbox: Outbox,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly deps: DeliveryDeps,
  ) {}

  start(): void {
    this.kick();
  }

  /** Something changed (new row, attempt finished): look for due work soon. */
  kick(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.stopped) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const free = this.config.deliveryConcurrency - this.busy.size;
    const now = this.deps.now();
    for (const row of this.outbox.dueHeads(now, this.busy, free)) {
      this.busy.add(row.conversation);
      const p = this.attempt(row)
        .catch((err) =>
          this.log.error({ hop: 'webhook', eventId: row.eventId, ...errInfo(err) }, 'delivery failed'),
        )
        .finally(() => {
          this.busy.delete(row.conversation);
          this.inFlight.delete(p);
          this.kick();
        });
      this.inFlight.add(p);
    }
    const next = this.outbox.nextDueAt(this.busy);
    const wait = next === null ? POLL_MS : Math.min(POLL_MS, Math.max(0, next - this.deps.now()));
    this.timer = setTimeout(() => this.kick(), wait);
    this.timer.unref();
  }

  private async attempt(row: OutboxRow): Promise<void> {
    const { config, outbox, deps } = this;
    const attempt = outbox.markAttempt(row.seq, deps.now());
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'openwechat-bridge/0.1',
      ...signatureHeaders(config.signing, config.webhookSecret, row.body, row.eventId, deps.now()),
    };
    const started = performance.now();
    let status: number | null = null;
    let statusText: string;
    let retryAfterMs: number | null = null;
    try {
      const res = await fetch(config.webhookUrl, {
        method: 'POST',
        headers,
        body: new Uint8Array(row.body),
        redirect: 'manual',
        signal: AbortSignal.timeout(config.webhookTimeoutMs),
      });
      // Read (and drop) the answer within the same timeout so the connection can be reused.
      await res.arrayBuffer();
      status = res.status;
      statusText = String(res.status);
      retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), deps.now());
    } catch (err) {
      const e = err as { name?: string };
      statusText = e?.name === 'TimeoutError' ? 'timeout' : `network: ${errInfo(err).error}`;
    }
    const latencyMs = Math.round(performance.now() - started);
    this.metrics.observeWebhook(latencyMs / 1000);
    const now = deps.now();
    let verdict = classifyWebhookStatus(status);
    const fields = {
      hop: 'webhook',
      eventId: row.eventId,
      seq: row.seq,
      sender: row.sender,
      conversationId: row.conversation,
      attempt,
      status: statusText,
      latency_ms: latencyMs,
    };
    if (verdict === 'delivered') {
      outbox.markDelivered(row.seq, now, statusText);
      this.metrics.inc('bridge_webhook_attempts_total', { result: 'delivered' });
      this.log.info({ ...fields, outcome: 'delivered' }, 'webhook delivered');
      return;
    }
    let reason = `HTTP ${statusText}: permanent`;
    if (verdict === 'retry') {
      const delay = retryDelay(
        attempt,
        retryAfterMs,
        { baseMs: config.retryBaseMs, maxMs: config.retryMaxDelayMs },
        deps.random,
      );
      const deadline = row.enqueuedAt + config.retryHorizonSeconds * 1000;
      if (now + delay <= deadline) {
        outbox.markRetry(row.seq, now + delay, statusText);
        this.metrics.inc('bridge_webhook_attempts_total', { result: 'retry' });
        this.log.warn(
          { ...fields, outcome: 'retry', retry_in_ms: delay, retry_after_ms: retryAfterMs ?? undefined },
          'webhook attempt failed; will retry',
        );
        return;
      }
      verdict = 'dead';
      reason = `retry horizon of ${config.retryHorizonSeconds}s exceeded (last: ${statusText})`;
    }
    outbox.markDead(row.seq, now, statusText, reason);
    this.metrics.inc('bridge_webhook_attempts_total', { result: 'dead' });
    this.log.error(
      { ...fields, outcome: 'dead', reason },
      'webhook delivery failed permanently; dead-lettered',
    );
  }

  /** Stops scheduling and waits for attempts in flight (each is bounded by the webhook timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.allSettled([...this.inFlight]);
  }
}
