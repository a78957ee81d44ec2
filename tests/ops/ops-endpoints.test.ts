// Operations endpoints over HTTP: the OpenAPI document (validated by an independent validator and
// checked to cover every route), /docs without any outside asset, /metrics counting real traffic,
// liveness and readiness.

import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../packages/relay/src/http/routes.ts';
import { suiteRelay } from '../helpers/fixtures.ts';
import { startRelay } from '../helpers/relay.ts';
import { befriend, register, req, sendOk } from '../relay/client.ts';

const relay = suiteRelay();

/** One sample value of a Prometheus series, e.g. metric('owc_messages_stored_total'). */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const have = (m[1] ?? '').split(',');
    if (want.every((w) => have.includes(w))) return Number(m[2]);
  }
  return 0;
}

describe('OpenAPI', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const r = await req(relay.url, 'GET', '/openapi.json');
    expect(r.status).toBe(200);
    const doc = JSON.parse(r.body) as Record<string, unknown>;
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('describes every route of the table, in both modes where they exist', async () => {
    const doc = JSON.parse((await req(relay.url, 'GET', '/openapi.json')).body) as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>
      >;
    };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const routes = ROUTES.map((r) => `${r.method} ${r.url.replace(/:([a-z_]+)/g, '{$1}')}`);
    expect(documented.sort()).toEqual(routes.sort());
    // A business endpoint documents its text rendering and its JSON rendering.
    const send = doc.paths['/send']!.post!.responses['200']!.content!;
    expect(Object.keys(send).sort()).toEqual(['application/json', 'text/plain']);
  });

  it('/docs renders from local assets only (no CDN)', async () => {
    const page = await req(relay.url, 'GET', '/docs/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('swagger-ui');
    const external = [...page.body.matchAll(/(?:src|href)="(https?:)?\/\/[^"]+"/g)].map((m) => m[0]);
    expect(external).toEqual([]);
    const assets = [...page.body.matchAll(/(?:src|href)="\.?\/?([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      const a = await req(relay.url, 'GET', `/docs/${asset.replace(/^\.?\//, '')}`);
      expect(a.status, asset).toBe(200);
    }
  });
});

describe('/metrics', () => {
  it('exposes each metric and counts a send', async () => {
    const before = (await req(relay.url, 'GET', '/metrics')).body;
    const a = await register(relay.url, 'metrics-a');
    const b = await register(relay.url, 'metrics-b');
    await befriend(relay.url, a, b);
    await sendOk(relay.url, a, b.id, 'counted');
    const r = await req(relay.url, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'owc_http_requests_total',
      'owc_http_request_duration_seconds_bucket',
      'owc_sse_streams_open',
      'owc_messages_stored_total',
      'owc_messages_delivered_total',
      'owc_messages_acknowledged_total',
      'owc_messages_expired_total',
      'owc_rate_limited_total',
      'owc_store_operation_duration_seconds_bucket',
      'owc_process_resident_memory_bytes',
    ]) {
      expect(r.body, name).toMatch(new RegExp(`^# (HELP|TYPE) ${name.replace(/_bucket$/, '')} `, 'm'));
    }
    // befriend = request (1) + reply with two notices (3); then one chat (1).
    expect(metric(r.body, 'owc_messages_stored_total') - metric(before, 'owc_messages_stored_total')).toBe(5);
    expect(
      metric(r.body, 'owc_http_requests_total', { route: '/send', method: 'POST', status: '200' }) -
        metric(before, 'owc_http_requests_total', { route: '/send', method: 'POST', status: '200' }),
    ).toBe(3);
    expect(
      metric(r.body, 'owc_store_operation_duration_seconds_count', { op: 'send' }),
    ).toBeGreaterThanOrEqual(3);
    // Reading the inbox delivers and acknowledges.
    const read = await req(relay.url, 'GET', '/messages', { token: b.token });
    expect(read.status).toBe(200);
    const after = (await req(relay.url, 'GET', '/metrics')).body;
    expect(
      metric(after, 'owc_messages_delivered_total', { channel: 'inbox' }) -
        metric(r.body, 'owc_messages_delivered_total', { channel: 'inbox' }),
    ).toBe(3); // b's inbox: the friend request, b's accept notice, the chat
  });

  it('counts rate-limit refusals', async () => {
    const limited = await startRelay({ rateLimitEnabled: true, rateLimitQps: 2 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await req(limited.url, 'GET', '/no-such-route')).status);
      expect(statuses).toEqual([404, 404, 429, 429]);
      const m = (await req(limited.url, 'GET', '/metrics')).body;
      expect(metric(m, 'owc_rate_limited_total', { limit: 'requests' })).toBe(2);
    } finally {
      await limited.close();
    }
  });
});

describe('liveness and readiness', () => {
  it('/livez and /readyz answer 200 with JSON while running', async () => {
    for (const path of ['/livez', '/readyz']) {
      const r = await req(relay.url, 'GET', path);
      expect(r.status, path).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ status: 'ok' });
    }
  });
});
