// Prometheus metrics (GET /metrics) on prom-client, as the relay's (packages/relay/src/services/
// metrics.ts). One registry per bridge instance, so several bridges in one process (tests) never share
// counters. Names are prefixed `bridge_`; docs/bridge.md lists them.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const COUNTERS = {
  bridge_relay_messages_total: {
    help: 'Relay messages received, by outcome (queued, duplicate, suppressed, filtered).',
    labels: ['outcome'],
  },
  bridge_relay_stream_connects_total: { help: 'Relay stream connections opened.', labels: [] },
  bridge_relay_acks_total: { help: 'POST /messages/ack calls, by result.', labels: ['result'] },
  bridge_webhook_attempts_total: {
    help: 'Webhook POST attempts, by result (delivered, retry, dead).',
    labels: ['result'],
  },
  bridge_inbound_total: { help: 'POST /im/inbound requests, by status.', labels: ['status'] },
  bridge_send_requests_total: { help: 'Send API requests, by HTTP status.', labels: ['status'] },
  bridge_relay_send_attempts_total: {
    help: 'POST /send calls to the relay, by result.',
    labels: ['status'],
  },
  bridge_media_requests_total: {
    help: 'GET /media/<token> requests, by HTTP status.',
    labels: ['status'],
  },
  bridge_media_copies_total: {
    help: 'Attachments copied from the relay when taken, by outcome (kept, gone, failed, skipped).',
    labels: ['outcome'],
  },
} as const;

const GAUGES = {
  bridge_relay_stream_connected: { help: '1 while the relay stream is open.', labels: [] },
  bridge_media_copies: { help: 'Local copies of attachments held in BRIDGE_DATA_DIR/media.', labels: [] },
  bridge_media_copies_bytes: { help: 'Total size of those copies.', labels: [] },
  bridge_outbox_messages: {
    help: 'Outbox rows by state (pending, dead, delivered-and-retained).',
    labels: ['state'],
  },
  bridge_outbox_oldest_pending_age_seconds: { help: 'Age of the oldest pending outbox row.', labels: [] },
} as const;

type CounterName = keyof typeof COUNTERS;
type GaugeName = keyof typeof GAUGES;
type Labels = Record<string, string>;

export class Metrics {
  private readonly registry = new Registry();
  private readonly counters = new Map<CounterName, Counter>();
  private readonly gauges = new Map<GaugeName, Gauge>();
  private readonly collectors: Array<() => void> = [];

  /** Time spent in one webhook POST attempt (a real histogram: `_bucket`, `_sum`, `_count`). */
  private readonly webhookSeconds = new Histogram({
    name: 'bridge_webhook_latency_seconds',
    help: 'Time spent in webhook POST attempts.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  constructor() {
    for (const [name, d] of Object.entries(COUNTERS) as Array<[CounterName, (typeof COUNTERS)[CounterName]]>)
      this.counters.set(
        name,
        new Counter({ name, help: d.help, labelNames: [...d.labels], registers: [this.registry] }),
      );
    for (const [name, d] of Object.entries(GAUGES) as Array<[GaugeName, (typeof GAUGES)[GaugeName]]>)
      this.gauges.set(
        name,
        new Gauge({ name, help: d.help, labelNames: [...d.labels], registers: [this.registry] }),
      );
  }

  inc(name: CounterName, labels: Labels = {}, by = 1): void {
    this.counters.get(name)!.inc(labels, by);
  }

  set(name: GaugeName, labels: Labels, value: number): void {
    this.gauges.get(name)!.set(labels, Number.isFinite(value) ? value : 0);
  }

  observeWebhook(seconds: number): void {
    this.webhookSeconds.observe(seconds);
  }

  /** Called before each render (gauges read from the outbox). */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async render(): Promise<string> {
    for (const fn of this.collectors) fn();
    return this.registry.metrics();
  }
}
