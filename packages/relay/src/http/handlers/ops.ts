// Operations endpoints: Prometheus metrics, liveness and readiness.

import type { OpsStore } from '../../store/types.ts';
import type { Ctx, Output, StoreCtx } from '../route.ts';

export async function metrics({ services, reply }: Ctx): Promise<Output> {
  const text = await services.metrics.registry.metrics();
  reply.header('cache-control', 'no-store');
  return { text, json: text, contentType: services.metrics.registry.contentType };
}

/** The OpenAPI document (built once per relay from the route table). */
export async function openapi({ services }: Ctx): Promise<Output> {
  return { text: JSON.stringify(services.openapi), json: services.openapi, contentType: 'application/json' };
}

/**
 * `GET /`: a person who opens the relay's address in a browser learns what it is and where to go
 * (the reference answers a bare 404 here; no client relies on that).
 */
export async function root({ services }: Ctx): Promise<Output> {
  const body = {
    name: 'openwechat relay',
    version: services.version,
    docs: '/docs',
    openapi: '/openapi.json',
    health: '/health',
  };
  const text = [
    `openwechat relay ${services.version}`,
    '',
    'API documentation: /docs (OpenAPI document: /openapi.json)',
    'Health and features: /health',
    '',
  ].join('\n');
  return { text, json: body };
}

/** Liveness: the process answers. */
export async function livez(): Promise<Output> {
  const body = { status: 'ok' };
  return { text: JSON.stringify(body), json: body, contentType: 'application/json' };
}

/** Readiness: the store answers and no shutdown is under way (load balancers stop routing here). */
export async function readyz({ services }: StoreCtx<OpsStore>): Promise<Output> {
  let ready = !services.lifecycle.shuttingDown;
  let reason = ready ? 'ok' : 'shutting_down';
  if (ready) {
    try {
      await services.store.ping();
    } catch {
      ready = false;
      reason = 'store_unavailable';
    }
  }
  const body = { status: ready ? 'ok' : 'unavailable', reason };
  return {
    text: JSON.stringify(body),
    json: body,
    contentType: 'application/json',
    status: ready ? 200 : 503,
  };
}
