import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BoundHistogram, RelayMetrics } from './metrics.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('BoundHistogram', () => {
  it("exposes what prom-client's own Histogram exposes for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const a = new BoundHistogram(ours, 'h_seconds', 'help text', BUCKETS, ['route', 'method']);
    const b = new Histogram({
      name: 'h_seconds',
      help: 'help text',
      buckets: BUCKETS,
      labelNames: ['route', 'method'],
      registers: [theirs],
    });
    const values = [0, 0.001, 0.0011, 0.05, 0.1, 0.5, 1, 7, 0.0005];
    const sets = [
      { route: '/send', method: 'POST' },
      { route: '/messages', method: 'GET' },
    ];
    for (const [i, labels] of sets.entries()) {
      const child = a.labels(labels);
      for (const v of values.slice(i * 2)) {
        child.observe(v);
        b.observe(labels, v);
      }
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // A label set observed by nobody yet is not exposed, as in prom-client.
    a.labels({ route: '/idle', method: 'GET' });
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // As JSON too, but for prom-client's exemplar slots (always empty here).
    const json = async (r: Registry) =>
      (await r.getMetricsAsJSON()).map((m) => ({
        ...m,
        values: m.values.map((v) => ({ ...v, exemplar: undefined })),
      }));
    expect(await json(ours)).toEqual(await json(theirs));
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});

describe('RelayMetrics.observeRequest', () => {
  it('counts requests per route, method and status, read at scrape', async () => {
    const m = new RelayMetrics(() => 0);
    m.observeRequest('/send', 'POST', 200, 0.002);
    m.observeRequest('/send', 'POST', 200, 0.003);
    m.observeRequest('/send', 'POST', 422, 0.001);
    const first = await m.registry.metrics();
    expect(first).toContain('owc_http_requests_total{route="/send",method="POST",status="200"} 2');
    expect(first).toContain('owc_http_requests_total{route="/send",method="POST",status="422"} 1');
    expect(first).toContain('owc_http_request_duration_seconds_count{route="/send",method="POST"} 3');
    // A second scrape adds only what happened since: the count is not added twice.
    m.observeRequest('/send', 'POST', 200, 0.002);
    const second = await m.registry.metrics();
    expect(second).toContain('owc_http_requests_total{route="/send",method="POST",status="200"} 3');
    expect(second).toContain('owc_http_requests_total{route="/send",method="POST",status="422"} 1');
  });
});
