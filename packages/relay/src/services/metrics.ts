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

  readonly requests = counter(
    this.r,
    'owc_http_requests_total',
    'HTTP requests by route, method and status',
    ['route', 'method', 'status'],
  );
  readonly requestSeconds = histogram(
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
  readonly storeSeconds = histogram(
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

  /** Counts a finished request and observes its latency (labelled children cached per route). */
  observeRequest(route: string, method: string, status: number, seconds: number): void {
    const key = `${method} ${route}`;
    let byRoute = this.requestChildren.get(key);
    if (!byRoute) {
      byRoute = { seconds: this.requestSeconds.labels({ route, method }), byStatus: new Map() };
      this.requestChildren.set(key, byRoute);
    }
    let counter = byRoute.byStatus.get(status);
    if (!counter) {
      counter = this.requests.labels({ route, method, status: String(status) });
      byRoute.byStatus.set(status, counter);
    }
    counter.inc();
    byRoute.seconds.observe(seconds);
  }

  // prom-client hashes a label object on every call; the relay's label sets are few and fixed (routes
  // of the route table, 'unmatched', status codes), so their children are looked up once.
  private readonly requestChildren = new Map<
    string,
    { seconds: Histogram.Internal<'route' | 'method'>; byStatus: Map<number, Counter.Internal> }
  >();
}
