// Prometheus metrics (GET /metrics). One registry per relay instance, so several relays in one process
// (tests) never share counters. Names are prefixed `owc_`.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** A counter in `registry`, with optional labels. */
function counter<L extends string = never>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  return new Counter<L>({ name, help, labelNames, registers: [registry] });
}

function histogram<L extends string = never>(
  registry: Registry,
  name: string,
  help: string,
  buckets: number[],
  labelNames: readonly L[] = [],
): Histogram<L> {
  return new Histogram<L>({ name, help, buckets, labelNames, registers: [registry] });
}

export interface Observer {
  observe(value: number): void;
}

interface Exposition {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: Array<{
    labels: Record<string, string | number>;
    sharedLabels?: Record<string, string>;
    value: number;
    metricName: string;
  }>;
}

/** One label set's numbers in a BoundHistogram. */
interface HistogramChild {
  labels: Record<string, string>;
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A histogram for the request path, with prom-client's exposition. prom-client validates and hashes the
 * label set on every observe(), also through a bound child: ~1 µs each, three per send (issue 26). Here a
 * child is bound to its label values once and observing is an array increment; the registry reads the
 * counts when /metrics is scraped, in prom-client's own export format (metrics.test.ts feeds both the
 * same observations and compares the text).
 */
export class BoundHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly children = new Map<string, HistogramChild>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    private readonly labelNames: readonly L[],
  ) {
    registry.registerMetric(this as never);
  }

  /** The observer of one label set; made once per set and kept by the caller. */
  labels(labels: Record<L, string>): Observer {
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    let child = this.children.get(key);
    if (!child) {
      child = {
        labels: { ...labels },
        counts: new Array<number>(this.buckets.length + 1).fill(0),
        sum: 0,
        count: 0,
      };
      this.children.set(key, child);
    }
    const c = child;
    const bounds = this.buckets;
    return {
      observe(value: number) {
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i++;
        c.counts[i]!++;
        c.sum += value;
        c.count++;
      },
    };
  }

  /** What the registry reads at scrape, shaped as prom-client's Histogram shapes it (`le` first). */
  getForPromString(): Exposition {
    const values: Exposition['values'] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.children.values()) {
      if (c.count === 0) continue;
      const shared = c.labels;
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += c.counts[i]!;
        values.push({ labels: { le }, sharedLabels: shared, value: acc, metricName: bucket });
      });
      values.push(
        { labels: { le: '+Inf' }, sharedLabels: shared, value: c.count, metricName: bucket },
        { labels: {}, sharedLabels: shared, value: c.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: shared, value: c.count, metricName: `${this.name}_count` },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The same as JSON (registry.getMetricsAsJSON): each value's labels in one object. */
  get(): Exposition {
    const e = this.getForPromString();
    return {
      ...e,
      values: e.values.map(({ sharedLabels, labels, ...v }) => ({
        ...v,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  reset(): void {
    for (const c of this.children.values()) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
  }
}

/** A gauge read when /metrics is scraped. */
function sampled(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

export class RelayMetrics {
  readonly registry = new Registry();
  private readonly r = this.registry;

  /** Finished requests per label set since the last scrape; added to `requests` when it is read. */
  private readonly requestCounts = new Map<
    string,
    { labels: Record<'route' | 'method' | 'status', string>; n: number; seconds: Observer }
  >();
  readonly requests = new Counter<'route' | 'method' | 'status'>({
    name: 'owc_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [this.r],
    // The per-request count is a field increment (observeRequest); prom-client hears of it at scrape.
    collect: () => {
      for (const c of this.requestCounts.values()) {
        if (c.n) this.requests.inc(c.labels, c.n);
        c.n = 0;
      }
    },
  });
  readonly requestSeconds = new BoundHistogram(
    this.r,
    'owc_http_request_duration_seconds',
    'HTTP request latency (SSE streams: time to open)',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    ['route', 'method'],
  );
  readonly messagesStored = counter(
    this.r,
    'owc_messages_stored_total',
    'Messages committed to inboxes (chats, friend requests, notices)',
  );
  readonly groupSends = counter(
    this.r,
    'owc_group_sends_total',
    'Group messages sent (each stored once per recipient, counted in owc_messages_stored_total)',
  );
  readonly groupFanout = histogram(
    this.r,
    'owc_group_send_recipients',
    'Recipients (stored copies) per group message',
    [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
  );
  readonly messagesDelivered = counter(
    this.r,
    'owc_messages_delivered_total',
    'Messages handed to clients, by channel (stream, inbox)',
    ['channel'],
  );
  readonly messagesAcknowledged = counter(
    this.r,
    'owc_messages_acknowledged_total',
    'Messages deleted because the client acknowledged or read-and-cleared them',
  );
  readonly messagesExpired = counter(
    this.r,
    'owc_messages_expired_total',
    'Unacknowledged messages deleted after MESSAGE_RETENTION_DAYS',
  );
  readonly rateLimited = counter(
    this.r,
    'owc_rate_limited_total',
    'Requests refused by the rate limiter or the SSE per-IP cap',
    ['limit'],
  );
  /** Observed by the store boundary (services/store-boundary.ts). */
  readonly storeSeconds = new BoundHistogram(
    this.r,
    'owc_store_operation_duration_seconds',
    'Latency of store operations',
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5],
    ['op'],
  );
  readonly streamsStalled = counter(
    this.r,
    'owc_sse_streams_stalled_total',
    'Streams ended because their client flushed nothing for SSE_WRITE_TIMEOUT_SECONDS',
  );

  constructor(openStreams: () => number, queuedBytes: () => number = () => 0) {
    sampled(this.r, 'owc_sse_streams_open', 'Open SSE streams on this instance', openStreams);
    sampled(
      this.r,
      'owc_sse_queued_bytes',
      'Bytes open streams hold in the relay unflushed (socket buffers and announced messages)',
      queuedBytes,
    );
    collectDefaultMetrics({ register: this.registry, prefix: 'owc_' });
  }

  /** Counts a finished request and observes its latency (each label set's counters found once). */
  observeRequest(route: string, method: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let c = this.requestCounts.get(key);
    if (!c) {
      const labels = { route, method, status: String(status) };
      c = { labels, n: 0, seconds: this.requestSeconds.labels({ route, method }) };
      this.requestCounts.set(key, c);
    }
    c.n++;
    c.seconds.observe(seconds);
  }
}
