// Webhook signatures (docs/bridge.md, Signature modes).
// plain:    X-Wechat-Abot-Signature: sha256=<lowercase hex HMAC-SHA256(UTF-8(secret), body)> — the checklist.
// standard: the same header plus Standard Webhooks v1: webhook-id, webhook-timestamp (this attempt, unix
//           seconds) and webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>. The key is the
//           UTF-8 secret, or the decoded bytes of a `whsec_<base64>` secret (the libraries' format).
// Always over the exact stored bytes; never re-serialised.

import { createHmac } from 'node:crypto';
import type { SigningMode } from './config.ts';

export const SIGNATURE_HEADER = 'x-wechat-abot-signature';

export function plainSignature(secret: string, body: Uint8Array): string {
  return `sha256=${createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest('hex')}`;
}

/** The Standard Webhooks key for a secret. */
export function standardKey(secret: string): Buffer {
  if (secret.startsWith('whsec_')) {
    const decoded = Buffer.from(secret.slice(6), 'base64');
    if (decoded.length) return decoded;
  }
  return Buffer.from(secret, 'utf8');
}

export function standardSignature(secret: string, id: string, timestamp: number, body: Uint8Array): string {
  const mac = createHmac('sha256', standardKey(secret));
  mac.update(`${id}.${timestamp}.`, 'utf8');
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

/**
 * The signature headers of one delivery attempt. `eventId` (the NewMsgId) stays the same across retries
 * and is the receiver's idempotency key; the timestamp is per attempt.
 */
export function signatureHeaders(
  mode: SigningMode,
  secret: string,
  body: Uint8Array,
  eventId: string,
  nowMs: number,
): Record<string, string> {
  const headers: Record<string, string> = { [SIGNATURE_HEADER]: plainSignature(secret, body) };
  if (mode === 'standard') {
    const ts = Math.floor(nowMs / 1000);
    headers['webhook-id'] = eventId;
    headers['webhook-timestamp'] = String(ts);
    headers['webhook-signature'] = standardSignature(secret, eventId, ts, body);
  }
  return headers;
}
