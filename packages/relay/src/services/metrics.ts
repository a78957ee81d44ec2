// Prometheus metrics (GET /metrics). One registry per relay instance, so several relays in one process
// (tests) never share counters. Names are prefixed `owc_`.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from '../store/types.ts';

export class RelayMetrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'owc_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly requestSeconds = new Histogram({
    name: 'owc_http_request_duration_seconds',
    help: 'HTTP request latency (SSE streams: time to open)',
    labelNames: ['route', 'method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly messagesStored = new Counter({
    name: 'owc_messages_stored_total',
    help: 'Messages committed to inboxes (chats, friend requests, notices)',
    registers: [this.registry],
  });

  readonly groupSends = new Counter({
    name: 'owc_group_sends_total',
    help: 'Group messages sent (each stored once per recipient, counted in owc_messages_stored_total)',
    registers: [this.registry],
  });

  readonly groupFanout = new Histogram({
    name: 'owc_group_send_recipients',
    help: 'Recipients (stored copies) per group message',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [this.registry],
  });

  readonly messagesDelivered = new Counter({
    name: 'owc_messages_delivered_total',
    help: 'Messages handed to clients, by channel (stream, inbox)',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });

  readonly messagesAcknowledged = new Counter({
    name: 'owc_messages_acknowledged_total',
    help: 'Messages deleted because the client acknowledged or read-and-cleared them',
    registers: [this.registry],
  });

  readonly messagesExpired = new Counter({
    name: 'owc_messages_expired_total',
    help: 'Unacknowledged messages deleted after MESSAGE_RETENTION_DAYS',
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'owc_rate_limited_total',
    help: 'Requests refused by the rate limiter or the SSE per-IP cap',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  readonly storeSeconds = new Histogram({
    name: 'owc_store_operation_duration_seconds',
    help: 'Latency of store operations',
    labelNames: ['op'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5],
    registers: [this.registry],
  });

  readonly streamsStalled = new Counter({
    name: 'owc_sse_streams_stalled_total',
    help: 'Streams ended because their client flushed nothing for SSE_WRITE_TIMEOUT_SECONDS',
    registers: [this.registry],
  });

  constructor(openStreams: () => number, queuedBytes: () => number = () => 0) {
    new Gauge({
      name: 'owc_sse_streams_open',
      help: 'Open SSE streams on this instance',
      registers: [this.registry],
      collect() {
        this.set(openStreams());
      },
    });
    new Gauge({
      name: 'owc_sse_queued_bytes',
      help: 'Bytes open streams hold in the relay unflushed (socket buffers and announced messages)',
      registers: [this.registry],
      collect() {
        this.set(queuedBytes());
      },
    });
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

  /**
   * Wraps every method of a store so each call's latency is observed under its name. The wrapper is a
   * plain object built once (no Proxy: a trap on every property read cost more than the timing itself);
   * other properties are read through to the store, so they stay live.
   */
  instrument(store: Store): Store {
    const wrapper = Object.create(store as object) as Record<string, unknown>;
    const seen = new Set<string>();
    for (let p: object | null = store; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object) {
      for (const prop of Object.getOwnPropertyNames(p)) {
        if (prop === 'constructor' || seen.has(prop)) continue;
        seen.add(prop);
        if (typeof (store as unknown as Record<string, unknown>)[prop] !== 'function') continue;
        const target = store as unknown as Record<string, (...a: unknown[]) => unknown>;
        if (prop === 'readFile') {
          wrapper[prop] = (...args: unknown[]) => target[prop]!.apply(store, args);
          continue;
        }
        const child = this.storeSeconds.labels({ op: prop });
        wrapper[prop] = (...args: unknown[]) => {
          const start = performance.now();
          const end = () => child.observe((performance.now() - start) / 1000);
          // Looked up at the call, as a Proxy would: a method replaced on the store later is the one run.
          const result = target[prop]!.apply(store, args);
          if (result instanceof Promise) return result.finally(end);
          end();
          return result;
        };
      }
    }
    return wrapper as unknown as Store;
  }
}
