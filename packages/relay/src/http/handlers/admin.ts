// Admin endpoints (docs/compat.md /admin/rate-limit), keyed by X-Admin-Key.

import { timingSafeEqual } from 'node:crypto';
import { RateLimitBody, RelayError } from '@openwechat/protocol';
import { fromSchema, jsonBody, type Issues } from '../input.ts';
import { sha256Hex, type Ctx, type Output } from '../route.ts';

/** Constant-time comparison of the presented key with ADMIN_KEY (digests have equal length). */
export function checkAdminKey(ctx: Ctx): void {
  const configured = ctx.services.config.adminKey;
  if (!configured) throw new RelayError('admin_not_configured');
  const given = ctx.req.headers['x-admin-key'];
  const a = Buffer.from(sha256Hex(typeof given === 'string' ? given : ''), 'hex');
  const b = Buffer.from(sha256Hex(configured), 'hex');
  if (typeof given !== 'string' || !timingSafeEqual(a, b)) throw new RelayError('admin_key_invalid');
}

export async function getRateLimit({ services }: Ctx): Promise<Output> {
  const body = { enabled: services.rateLimit.enabled };
  return { text: JSON.stringify(body), json: body, contentType: 'application/json' };
}

export function parseRateLimit(req: { body: unknown }, issues: Issues): { enabled: boolean } {
  const body = jsonBody(issues, req.body);
  return { enabled: (body && fromSchema(issues, 'body', RateLimitBody, body).enabled) ?? false };
}

export async function setRateLimit({ services }: Ctx, input: { enabled: boolean }): Promise<Output> {
  services.rateLimit.enabled = input.enabled;
  const body = { enabled: services.rateLimit.enabled };
  return { text: JSON.stringify(body), json: body, contentType: 'application/json' };
}
