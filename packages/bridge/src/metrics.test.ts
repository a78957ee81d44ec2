import { describe, expect, it } from 'vitest';
import { Metrics } from './metrics.ts';

describe('Metrics (prom-client)', () => {
  it('renders counters, gauges read at collect time, and a real webhook latency histogram', async () => {
    const m = new Metrics();
    let pending = 3;
    m.onCollect(() => m.set('bridge_outbox_messages', { state: 'pending' }, pending));
    m.inc('bridge_webhook_attempts_total', { result: 'delivered' });
    m.inc('bridge_webhook_attempts_total', { result: 'delivered' });
    m.observeWebhook(0.04);
    m.observeWebhook(2);
    pending = 5;
    const text = await m.render();
    expect(text).toMatch(/^# TYPE bridge_webhook_latency_seconds histogram$/m);
    expect(text).toMatch(/^bridge_webhook_latency_seconds_bucket\{le="0.05"\} 1$/m);
    expect(text).toMatch(/^bridge_webhook_latency_seconds_bucket\{le="2.5"\} 2$/m);
    expect(text).toMatch(/^bridge_webhook_latency_seconds_count 2$/m);
    expect(text).toMatch(/^bridge_webhook_latency_seconds_sum 2.04$/m);
    expect(text).toMatch(/^bridge_webhook_attempts_total\{result="delivered"\} 2$/m);
    expect(text).toMatch(/^bridge_outbox_messages\{state="pending"\} 5$/m);
    expect(m.contentType).toMatch(/^text\/plain; version=0.0.4/);
  });

  it('keeps one registry per instance (two bridges in one process share nothing)', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.inc('bridge_relay_stream_connects_total');
    expect(await a.render()).toMatch(/^bridge_relay_stream_connects_total 1$/m);
    expect(await b.render()).toMatch(/^bridge_relay_stream_connects_total 0$/m);
  });
});
