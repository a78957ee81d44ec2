// Generic inbound (seed 003's `/im/inbound`): another IM POSTs its raw message JSON; the bridge forwards the
// exact bytes — signed, through the same durable outbox, retries and dead letters as relay messages.
// Unlike the seed's example it answers 202 once the bytes are stored (not OpenClaw's answer), and it is
// guarded: bearer token and a loopback-only source allowlist by default.

import { createHash } from 'node:crypto';
import { BridgeError } from './errors.ts';
import type { NewOutboxItem } from './outbox.ts';

type Json = Record<string, unknown>;

function str(v: unknown): string | null {
  if (typeof v === 'string' && v) return v;
  if (v && typeof v === 'object') {
    const o = v as Json;
    // WeChat wrappers: {"string": …} (PascalCase servers) or {"str": …} (WeChatPadPro).
    for (const k of ['string', 'str']) if (typeof o[k] === 'string' && o[k]) return o[k] as string;
  }
  return null;
}

/**
 * The dedupe id of a raw record: its NewMsgId digits, read from the text (JSON.parse would round ids
 * above 2^53), in any of the shapes of docs/bridge.md. null when the record has none.
 */
export function rawNewMsgId(text: string): string | null {
  const m = /"(?:NewMsgId|new_msg_id|newMsgId)"\s*:\s*"?(\d{1,20})"?/.exec(text);
  return m ? m[1]! : null;
}

/** Builds the outbox item for a raw inbound body (400 unless it is a JSON object). */
export function inboundItem(raw: Buffer): NewOutboxItem {
  const text = raw.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BridgeError('invalid_request', 'body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new BridgeError('invalid_request', 'body must be a JSON object');
  const j = parsed as Json;
  const record = (j.Data && typeof j.Data === 'object' ? j.Data : j) as Json;
  const from = str(record.FromUserName) ?? str(record.from_user_name) ?? str(record.fromUser) ?? 'inbound';
  const content = str(record.Content) ?? str(record.content) ?? '';
  // In a group the real sender is the "<id>:\n" prefix of the content.
  const groupSender = from.endsWith('@chatroom') ? /^([^:\n]+):\n/.exec(content)?.[1] : undefined;
  const newMsgId = rawNewMsgId(text);
  const digest = createHash('sha256').update(raw).digest('hex');
  return {
    source: newMsgId ? `inbound:${newMsgId}` : `inbound:sha256:${digest}`,
    eventId: newMsgId ?? `sha256-${digest.slice(0, 32)}`,
    conversation: from,
    sender: groupSender ?? from,
    body: raw,
  };
}
