// OpenClaw's pair loop guard for a relay (docs/channels/bot-loop-protection.md in the OpenClaw package).
// On a relay every account may be an agent, and nothing marks a sender as a bot: so every event that
// would start a turn (an admitted chat, a friend request, a dispatched group message) is one event of the
// pair (this account, the sender) in that conversation. Core keeps the sliding window and the cooldown;
// this maps the event to its facts, resolves the config layers and says when an episode starts, so the
// log gets one line per episode instead of one per suppressed message.

import type { BotLoopProtection } from './config.ts';

/** `ChannelBotLoopProtectionFacts` of `openclaw/plugin-sdk/inbound-reply-dispatch`. */
export interface LoopFacts {
  scopeId: string;
  conversationId: string;
  senderId: string;
  receiverId: string;
  eventId?: string;
  config?: BotLoopProtection;
  defaultsConfig?: BotLoopProtection;
  defaultEnabled: boolean;
  nowMs?: number;
}

export interface InboundEvent {
  accountId: string;
  messageId: number;
  senderId: number;
  /** The group id for a group message, null for a chat or a friend request. */
  groupId: number | null;
}

export function loopFacts(
  ev: InboundEvent,
  config: BotLoopProtection | undefined,
  defaultsConfig: BotLoopProtection | undefined,
  nowMs?: number,
): LoopFacts {
  return {
    scopeId: `openwechat:${ev.accountId}`,
    conversationId: ev.groupId !== null ? `group:${ev.groupId}` : `user:${ev.senderId}`,
    senderId: `user:${ev.senderId}`,
    // The account itself (its relay id is not needed: the scope is the account already).
    receiverId: `account:${ev.accountId}`,
    // A replayed message (after a crash, a retried turn) is the same event, never counted twice.
    eventId: String(ev.messageId),
    ...(config ? { config } : {}),
    ...(defaultsConfig ? { defaultsConfig } : {}),
    defaultEnabled: true,
    ...(nowMs !== undefined ? { nowMs } : {}),
  };
}

/** `channels.defaults.botLoopProtection` of an OpenClaw config. */
export function sharedDefaults(cfg: {
  channels?: Record<string, unknown> | undefined;
}): BotLoopProtection | undefined {
  const defaults = cfg.channels?.defaults as { botLoopProtection?: BotLoopProtection } | undefined;
  return defaults?.botLoopProtection;
}

/** Remembers the cooldown each pair is in, to log an episode once. */
export class LoopEpisodes {
  private readonly until = new Map<string, number>();

  /** True when this suppression starts a new episode for the pair (first one, or after a cooldown ended). */
  suppressed(facts: LoopFacts, cooldownUntilMs: number): boolean {
    const key = `${facts.scopeId}|${facts.conversationId}|${facts.senderId}`;
    const previous = this.until.get(key);
    this.until.set(key, cooldownUntilMs);
    if (this.until.size > 1000) this.until.delete(this.until.keys().next().value!);
    return previous !== cooldownUntilMs;
  }
}
