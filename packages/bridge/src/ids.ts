// Identifiers OpenClaw sees. WeChat consumers split group content on the first ':' and dedupe on
// NewMsgId, so: user ids never contain ':', and NewMsgId is a stable JSON-safe integer (≤ 2^53 − 1)
// derived only from the relay message itself — a replay after a crash or a lost outbox gets the same id.

import { createHash } from 'node:crypto';

/** Prefix of the wxid-like ids we hand out for relay users: `owc_<relay user id>`. */
export const USER_ID_PREFIX = 'owc_';
/** Group ids end in `@chatroom` (docs/bridge.md); relay group <gid> is `owc_g<gid>@chatroom` (docs/groups-api.md). */
export const CHATROOM_SUFFIX = '@chatroom';
export const GROUP_ID_PREFIX = `${USER_ID_PREFIX}g`;
/** Conversation used for relay system notices that name no user. */
export const SYSTEM_USER_ID = `${USER_ID_PREFIX}system`;

export const MAX_SAFE_ID = Number.MAX_SAFE_INTEGER; // 2^53 − 1
const INT32_MAX = 2 ** 31 - 1;
const UINT32_MAX = 2 ** 32 - 1;

export function userWxid(relayUserId: number): string {
  return `${USER_ID_PREFIX}${relayUserId}`;
}

export function groupWxid(relayGroupId: number): string {
  return `${GROUP_ID_PREFIX}${relayGroupId}${CHATROOM_SUFFIX}`;
}

/**
 * The relay user a `to` value names: `owc_<n>` (what FromUserName carried) or a bare decimal id.
 * null when it names no relay user (a foreign wxid, a group).
 */
export function parseUserWxid(to: string): number | null {
  const m = /^(?:owc_)?([1-9]\d{0,15})$/.exec(to.trim());
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

/** The relay group a `to` value names: `owc_g<gid>@chatroom` (what a group record's FromUserName carried). */
export function parseGroupWxid(to: string): number | null {
  const m = /^owc_g([1-9]\d{0,15})@chatroom$/.exec(to.trim());
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

/** 53 bits of SHA-256 over the parts: stable, uniformly spread, never 0. */
export function stableId53(...parts: Array<string | number>): number {
  const digest = createHash('sha256').update(parts.join('\u0000')).digest();
  // 7 bytes = 56 bits; keep the low 53.
  let n = 0n;
  for (let i = 0; i < 7; i++) n = (n << 8n) | BigInt(digest[i]!);
  const id = Number(n & BigInt(MAX_SAFE_ID));
  return id === 0 ? 1 : id;
}

/**
 * NewMsgId of a relay message. The relay's message id is per recipient (the bot) and its creation time
 * pins it to one message even if a relay database were reset and ids reused.
 */
export function relayNewMsgId(botId: number, relayMessageId: number, createdAtMs: number): number {
  return stableId53('relay', botId, relayMessageId, createdAtMs);
}

/** MsgId: a positive int32 (the relay id folded into 1 … 2^31 − 1). */
export function relayMsgId(relayMessageId: number): number {
  return ((relayMessageId - 1) % INT32_MAX) + 1;
}

/** MsgSeq: monotonic per bot as long as relay ids fit uint32. */
export function relayMsgSeq(relayMessageId: number): number {
  return relayMessageId % (UINT32_MAX + 1);
}

/**
 * The relay account a bridge works for, without revealing its token: 16 hex characters of SHA-256 over
 * RELAY_TOKEN. Keys the relay cursor and binds media links to the account.
 */
export function relayAccountId(relayToken: string): string {
  return createHash('sha256').update(relayToken).digest('hex').slice(0, 16);
}
