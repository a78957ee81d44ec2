// Accounts of the `openwechat` channel, read from OpenClaw's `channels.openwechat` section. The section
// itself is the `default` account; `accounts.<id>` add more and inherit the section's policy fields
// (never its token: one relay token belongs to one relay user). Pure functions: the manifest's JSON
// schema validated the shape already, this turns it into one resolved account with defaults applied.

import { E2E_POLICIES, type E2ePolicy } from '@openwechat/client';

export const CHANNEL_ID = 'openwechat';
const DEFAULT_ACCOUNT_ID = 'default';
/** The environment variable a `default` account's token falls back to when none is configured. */
const TOKEN_ENV = 'OPENWECHAT_TOKEN';

type DmPolicy = 'open' | 'allowlist' | 'disabled';
type GroupPolicy = 'open' | 'allowlist' | 'disabled';
type FriendRequestPolicy = 'ignore' | 'reply';
/** The relay's status values, with OpenClaw-side `dnd` spelled as the relay spells it. */
type RelayStatus = 'open' | 'friends_only' | 'do_not_disturb';

/** OpenClaw's pair loop guard settings (`ChannelBotLoopProtectionSchema` of the plugin SDK). */
export interface BotLoopProtection {
  enabled?: boolean;
  maxEventsPerWindow?: number;
  windowSeconds?: number;
  cooldownSeconds?: number;
}

interface AccountSection {
  enabled?: boolean;
  name?: string;
  baseUrl?: string;
  /** A plain string or an OpenClaw SecretRef ({source, provider, id}); resolved at start, never logged. */
  token?: unknown;
  status?: 'open' | 'friends_only' | 'dnd';
  dmPolicy?: DmPolicy;
  allowFrom?: Array<string | number>;
  friendRequests?: FriendRequestPolicy;
  groupPolicy?: GroupPolicy;
  groupAllowFrom?: Array<string | number>;
  requireMention?: boolean;
  botLoopProtection?: BotLoopProtection;
  /** End-to-end encryption (docs/e2e.md): off (default), preferred, required. */
  e2e?: E2ePolicy;
}

interface ChannelSection extends AccountSection {
  defaultAccount?: string;
  accounts?: Record<string, AccountSection>;
}

export interface ResolvedAccount {
  accountId: string;
  enabled: boolean;
  configured: boolean;
  name: string | null;
  baseUrl: string | null;
  /** The configured token input (string or SecretRef); null when none (the env fallback may apply). */
  tokenInput: unknown;
  /** Where to look when no token is configured (only the default account has one). */
  tokenEnv: string | null;
  status: RelayStatus | null;
  dmPolicy: DmPolicy;
  allowFrom: string[];
  friendRequests: FriendRequestPolicy;
  groupPolicy: GroupPolicy;
  groupAllowFrom: string[];
  requireMention: boolean;
  /** The account's guard settings over the channel's, key by key (the shared default is OpenClaw's). */
  botLoopProtection: BotLoopProtection | undefined;
  /** End-to-end encryption policy; keys in the plugin's state directory (src/e2e.ts). */
  e2e: E2ePolicy;
}

interface ConfigLike {
  channels?: Record<string, unknown> | undefined;
}

function channelSection(cfg: ConfigLike | undefined): ChannelSection | undefined {
  const section = cfg?.channels?.[CHANNEL_ID];
  return section && typeof section === 'object' ? (section as ChannelSection) : undefined;
}

export function listAccountIds(cfg: ConfigLike | undefined): string[] {
  const section = channelSection(cfg);
  if (!section) return [];
  const ids = new Set<string>();
  if (section.baseUrl !== undefined || section.token !== undefined || !section.accounts) {
    ids.add(DEFAULT_ACCOUNT_ID);
  }
  for (const id of Object.keys(section.accounts ?? {})) ids.add(id);
  return [...ids];
}

export function defaultAccountId(cfg: ConfigLike | undefined): string {
  const section = channelSection(cfg);
  const ids = listAccountIds(cfg);
  if (section?.defaultAccount && ids.includes(section.defaultAccount)) return section.defaultAccount;
  return ids[0] ?? DEFAULT_ACCOUNT_ID;
}

function idList(entries: Array<string | number> | undefined): string[] {
  return (entries ?? [])
    .map((e) =>
      String(e)
        .trim()
        .replace(/^openwechat:/i, ''),
    )
    .filter(Boolean);
}

export function resolveAccount(cfg: ConfigLike | undefined, accountId?: string | null): ResolvedAccount {
  const section = channelSection(cfg) ?? {};
  const id = accountId?.trim() || defaultAccountId(cfg);
  const own: AccountSection =
    id === DEFAULT_ACCOUNT_ID && !section.accounts?.[id] ? section : (section.accounts?.[id] ?? {});
  // Policy fields inherit from the section; identity fields (address, token, name) do not.
  const pick = <K extends keyof AccountSection>(key: K): AccountSection[K] => own[key] ?? section[key];
  const baseUrl = own.baseUrl ?? (id === DEFAULT_ACCOUNT_ID ? section.baseUrl : undefined) ?? null;
  const tokenInput = own.token ?? (id === DEFAULT_ACCOUNT_ID ? section.token : undefined) ?? null;
  const tokenEnv = id === DEFAULT_ACCOUNT_ID ? TOKEN_ENV : null;
  const status = pick('status');
  // The relay already lets a user choose who may write (status friends_only, blocks); OpenClaw's DM
  // policy is the second gate, open unless the operator narrows it.
  const dmPolicy = pick('dmPolicy') ?? 'open';
  const groupPolicy = pick('groupPolicy') ?? 'open';
  // Off unless asked for: an account that never opted in behaves as before. The manifest's schema refuses
  // other values; this check covers a config that reached us without it.
  const e2e = pick('e2e') ?? 'off';
  if (!E2E_POLICIES.includes(e2e)) {
    throw new Error(
      `openwechat account "${id}": e2e must be one of ${E2E_POLICIES.join(', ')} (got ${JSON.stringify(e2e)})`,
    );
  }
  return {
    accountId: id,
    enabled: section.enabled !== false && own.enabled !== false,
    configured: Boolean(baseUrl) && (tokenInput !== null || tokenEnv !== null),
    name: own.name ?? null,
    baseUrl,
    tokenInput,
    tokenEnv,
    status: status === undefined ? null : status === 'dnd' ? 'do_not_disturb' : status,
    dmPolicy,
    allowFrom: allowList(dmPolicy, pick('allowFrom')),
    friendRequests: pick('friendRequests') ?? 'reply',
    groupPolicy,
    groupAllowFrom: allowList(groupPolicy, pick('groupAllowFrom')),
    requireMention: pick('requireMention') ?? true,
    botLoopProtection: mergeGuard(
      section.botLoopProtection,
      own === section ? undefined : own.botLoopProtection,
    ),
    e2e,
  };
}

/**
 * OpenClaw's convention: `dmPolicy: "open"` admits everyone only with `"*"` in `allowFrom`; open with
 * concrete entries admits only those (OpenClaw warns at start). A list left out entirely follows the
 * policy: `["*"]` for open (the relay's own status and blocks still apply), empty otherwise.
 */
function allowList(policy: DmPolicy, configured: Array<string | number> | undefined): string[] {
  if (configured === undefined) return policy === 'open' ? ['*'] : [];
  return idList(configured);
}

function mergeGuard(...layers: Array<BotLoopProtection | undefined>): BotLoopProtection | undefined {
  const merged: BotLoopProtection = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer))
      if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  }
  return Object.keys(merged).length ? merged : undefined;
}

/** Plugin-wide settings (`plugins.entries.openwechat.config`). */
export interface PluginSettings {
  contextSummary: boolean;
  summaryMaxChars: number;
}

export function pluginSettings(raw: unknown): PluginSettings {
  const cfg = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const max = cfg.summaryMaxChars;
  return {
    contextSummary: cfg.contextSummary !== false,
    summaryMaxChars: typeof max === 'number' && max >= 200 && max <= 4000 ? Math.floor(max) : 800,
  };
}
