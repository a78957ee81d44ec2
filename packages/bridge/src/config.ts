// The bridge's one typed configuration, read from the environment (optionally loaded from an env file by
// main.ts). Every setting is validated here; a bad value stops the start with a message naming it.
// The commented sample is bridge.env.sample at the repository root; docs/bridge.md explains each setting.

import { BlockList, isIP } from 'node:net';

export type SigningMode = 'plain' | 'standard';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface BridgeConfig {
  /** The relay the bot account lives on, without a trailing slash. */
  relayBaseUrl: string;
  /** The bot account's X-Token. Never logged. */
  relayToken: string;
  /** Where AddMsg records are POSTed. */
  webhookUrl: string;
  /** channels.wechat_abot.webhookSecret: the HMAC key. Never logged. */
  webhookSecret: string;
  /** channels.wechat_abot.botToken: what OpenClaw sends as `Authorization: Bearer`. Never logged. */
  botToken: string;
  /** plain: X-Wechat-Abot-Signature only; standard: plus the Standard Webhooks headers. */
  signing: SigningMode;
  host: string;
  port: number;
  /** Folder of the outbox database (bridge.sqlite). */
  dataDir: string;
  /** IPs/CIDRs allowed to call any endpoint; empty = anyone who can reach the port. */
  allowedIps: string[];
  /** IPs/CIDRs allowed to call POST /im/inbound (loopback by default). */
  inboundAllowedIps: string[];
  /** Bearer token for POST /im/inbound; defaults to botToken. Never logged. */
  inboundToken: string;
  /** A message still failing (transiently) this long after it was queued goes to the dead letters. */
  retryHorizonSeconds: number;
  /** Backoff: the first retry waits up to this long (full jitter), doubling per attempt. */
  retryBaseMs: number;
  /** Backoff cap for one wait (Retry-After from the receiver may ask for more). */
  retryMaxDelayMs: number;
  /** Whole-request timeout of one webhook POST (connect, send, response). */
  webhookTimeoutMs: number;
  /** Conversations delivered in parallel (each conversation is strictly FIFO). */
  deliveryConcurrency: number;
  /** forward: relay system notices become MsgType 10000 records; suppress: acknowledged, not sent. */
  systemNotices: 'forward' | 'suppress';
  /** Group messages reach OpenClaw only when they @-mention the bot (or @all). */
  groupRequireMention: boolean;
  /** Longest text the send API accepts; longer than the relay's 1000 characters is sent in parts. */
  maxTextChars: number;
  /** Largest request body for the send API and /im/inbound. */
  maxBodyKb: number;
  /** The relay stream is reopened when nothing (not even a `: ping`) arrived for this long. */
  streamIdleTimeoutSeconds: number;
  /** Delivered outbox rows and send-API idempotency records are kept this long. */
  outboxRetentionDays: number;
  /** Attachments get a `GET /media/<token>` link in the AddMsg text (false: name, size and type only). */
  mediaLinks: boolean;
  /**
   * Base URL OpenClaw uses to reach this bridge's media links, without a trailing slash; '' = the address
   * the server listens on (`http://<BRIDGE_HOST>:<port>`).
   */
  publicUrl: string;
  /** Key of the media link HMAC; '' = generated once into dataDir/media-secret. Never logged. */
  mediaSecret: string;
  /** A media link expires with the relay file, and at the latest this long after the message was sent. */
  mediaLinkMaxHours: number;
  /** Total size cap of the local copies of attachments (MB); the oldest go first when it is exceeded. */
  mediaMaxMb: number;
  logLevel: LogLevel;
}

export const DEFAULT_WEBHOOK_URL = 'http://127.0.0.1:18789/wechat_abot/webhook';

export const DEFAULTS = {
  webhookUrl: DEFAULT_WEBHOOK_URL,
  signing: 'plain',
  host: '127.0.0.1',
  port: 8088,
  dataDir: './data/bridge',
  allowedIps: [],
  inboundAllowedIps: ['127.0.0.1', '::1'],
  inboundToken: '',
  retryHorizonSeconds: 3600,
  retryBaseMs: 1000,
  retryMaxDelayMs: 60_000,
  webhookTimeoutMs: 5000,
  deliveryConcurrency: 8,
  systemNotices: 'forward',
  groupRequireMention: false,
  maxTextChars: 4000,
  maxBodyKb: 1024,
  streamIdleTimeoutSeconds: 90,
  outboxRetentionDays: 7,
  mediaLinks: true,
  publicUrl: '',
  mediaSecret: '',
  mediaLinkMaxHours: 168,
  mediaMaxMb: 1024,
  logLevel: 'info',
} satisfies Partial<BridgeConfig>;

type Kind = 'url' | 'baseurl' | 'secret' | 'string' | 'int' | 'bool' | 'ips' | 'ip' | 'enum';

interface Setting {
  env: string;
  key: keyof BridgeConfig;
  kind: Kind;
  required?: boolean;
  /** int: the range; secret: the shortest length (characters). */
  min?: number;
  max?: number;
  values?: readonly string[];
}

/** Setting name in the environment, its config field, kind and range. The table docs/bridge.md documents. */
export const SETTINGS: readonly Setting[] = [
  { env: 'RELAY_BASE_URL', key: 'relayBaseUrl', kind: 'url', required: true },
  { env: 'RELAY_TOKEN', key: 'relayToken', kind: 'secret', required: true },
  { env: 'OPENCLAW_WEBHOOK_URL', key: 'webhookUrl', kind: 'url' },
  { env: 'WECHAT_ABOT_WEBHOOK_SECRET', key: 'webhookSecret', kind: 'secret', required: true },
  { env: 'WECHAT_ABOT_BOT_TOKEN', key: 'botToken', kind: 'secret', required: true },
  { env: 'WECHAT_ABOT_SIGNING', key: 'signing', kind: 'enum', values: ['plain', 'standard'] },
  { env: 'BRIDGE_HOST', key: 'host', kind: 'ip' },
  { env: 'BRIDGE_PORT', key: 'port', kind: 'int', min: 0, max: 65535 },
  { env: 'BRIDGE_DATA_DIR', key: 'dataDir', kind: 'string' },
  { env: 'BRIDGE_ALLOWED_IPS', key: 'allowedIps', kind: 'ips' },
  { env: 'BRIDGE_INBOUND_ALLOWED_IPS', key: 'inboundAllowedIps', kind: 'ips' },
  { env: 'BRIDGE_INBOUND_TOKEN', key: 'inboundToken', kind: 'secret' },
  { env: 'BRIDGE_RETRY_HORIZON_SECONDS', key: 'retryHorizonSeconds', kind: 'int', min: 1, max: 30 * 86400 },
  { env: 'BRIDGE_RETRY_BASE_MS', key: 'retryBaseMs', kind: 'int', min: 1, max: 3_600_000 },
  { env: 'BRIDGE_RETRY_MAX_DELAY_MS', key: 'retryMaxDelayMs', kind: 'int', min: 1, max: 86_400_000 },
  { env: 'BRIDGE_WEBHOOK_TIMEOUT_MS', key: 'webhookTimeoutMs', kind: 'int', min: 100, max: 120_000 },
  { env: 'BRIDGE_DELIVERY_CONCURRENCY', key: 'deliveryConcurrency', kind: 'int', min: 1, max: 256 },
  { env: 'BRIDGE_SYSTEM_NOTICES', key: 'systemNotices', kind: 'enum', values: ['forward', 'suppress'] },
  { env: 'BRIDGE_GROUP_REQUIRE_MENTION', key: 'groupRequireMention', kind: 'bool' },
  { env: 'BRIDGE_MAX_TEXT_CHARS', key: 'maxTextChars', kind: 'int', min: 1, max: 100_000 },
  { env: 'BRIDGE_MAX_BODY_KB', key: 'maxBodyKb', kind: 'int', min: 1, max: 102_400 },
  {
    env: 'BRIDGE_STREAM_IDLE_TIMEOUT_SECONDS',
    key: 'streamIdleTimeoutSeconds',
    kind: 'int',
    min: 1,
    max: 86_400,
  },
  { env: 'BRIDGE_OUTBOX_RETENTION_DAYS', key: 'outboxRetentionDays', kind: 'int', min: 1, max: 3650 },
  { env: 'BRIDGE_MEDIA_LINKS', key: 'mediaLinks', kind: 'bool' },
  { env: 'BRIDGE_PUBLIC_URL', key: 'publicUrl', kind: 'baseurl' },
  { env: 'BRIDGE_MEDIA_SECRET', key: 'mediaSecret', kind: 'secret', min: 32 },
  { env: 'BRIDGE_MEDIA_LINK_MAX_HOURS', key: 'mediaLinkMaxHours', kind: 'int', min: 1, max: 8760 },
  { env: 'BRIDGE_MEDIA_MAX_MB', key: 'mediaMaxMb', kind: 'int', min: 1, max: 1_048_576 },
  {
    env: 'LOG_LEVEL',
    key: 'logLevel',
    kind: 'enum',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  },
];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Placeholders from the seed's example code: refusing them avoids running with a guessable secret. */
const PLACEHOLDERS = new Set(['change_me', 'changeme', 'replace_me']);

function parseIps(where: string, text: string): string[] {
  const list = text
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  for (const entry of list) {
    const [addr, bits, extra] = entry.split('/');
    const family = isIP(addr ?? '');
    const maxBits = family === 6 ? 128 : 32;
    const okBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= maxBits);
    if (!family || !okBits || extra !== undefined)
      throw new ConfigError(`${where}: "${entry}" is not an IP address or CIDR`);
  }
  return list;
}

function httpUrl(where: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${where}: must be an http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(`${where}: must be an http(s) URL`);
  return url;
}

function coerce(s: Setting, raw: string): unknown {
  const where = s.env;
  const text = s.kind === 'secret' ? raw : raw.trim();
  switch (s.kind) {
    case 'url': {
      httpUrl(where, text);
      return s.key === 'relayBaseUrl' ? text.replace(/\/+$/, '') : text;
    }
    case 'baseurl': {
      // A base that paths are appended to: http(s), no credentials, query or fragment.
      const url = httpUrl(where, text);
      if (url.username || url.password || url.search || url.hash || /[?#]/.test(text))
        throw new ConfigError(`${where}: must not contain credentials, a query or a fragment`);
      return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
    }
    case 'secret':
      if (text.trim() !== text || /[\r\n]/.test(text))
        throw new ConfigError(`${where}: must not have leading/trailing spaces or line breaks`);
      if (PLACEHOLDERS.has(text.toLowerCase()))
        throw new ConfigError(`${where}: is still the placeholder "${text}"; set a real value`);
      if (s.min !== undefined && text.length < s.min)
        throw new ConfigError(`${where}: must be at least ${s.min} characters`);
      return text;
    case 'string':
      if (!text) throw new ConfigError(`${where}: must not be empty`);
      return text;
    case 'ip':
      if (!isIP(text)) throw new ConfigError(`${where}: must be an IP address`);
      return text;
    case 'ips':
      return parseIps(where, text);
    case 'int': {
      const n = text === '' ? NaN : Number(text);
      if (!Number.isInteger(n)) throw new ConfigError(`${where}: must be an integer`);
      if (s.min !== undefined && n < s.min) throw new ConfigError(`${where}: must be ≥ ${s.min}`);
      if (s.max !== undefined && n > s.max) throw new ConfigError(`${where}: must be ≤ ${s.max}`);
      return n;
    }
    case 'bool':
      if (/^(1|true|on|yes)$/i.test(text)) return true;
      if (/^(0|false|off|no)$/i.test(text)) return false;
      throw new ConfigError(`${where}: must be true or false`);
    case 'enum':
      if (!s.values!.includes(text))
        throw new ConfigError(`${where}: must be one of ${s.values!.join(', ')}`);
      return text;
  }
}

/**
 * Builds the config from environment variables (empty values count as unset, so a sample file with
 * `NAME=` lines keeps the defaults). Throws ConfigError naming the first bad or missing setting.
 */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined>): BridgeConfig {
  const config: Record<string, unknown> = { ...DEFAULTS };
  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw === undefined || raw === '') {
      if (s.required) throw new ConfigError(`${s.env}: required`);
      continue;
    }
    config[s.key] = coerce(s, raw);
  }
  const c = config as unknown as BridgeConfig;
  if (!c.inboundToken) c.inboundToken = c.botToken;
  if (c.retryMaxDelayMs < c.retryBaseMs)
    throw new ConfigError('BRIDGE_RETRY_MAX_DELAY_MS: must be ≥ BRIDGE_RETRY_BASE_MS');
  return c;
}

/** The data folder alone (the dead-letter CLI needs nothing else). */
export function loadDataDir(env: NodeJS.ProcessEnv | Record<string, string | undefined>): string {
  const raw = env.BRIDGE_DATA_DIR?.trim();
  return raw ? raw : DEFAULTS.dataDir;
}

/** A matcher for an allowlist of IPs/CIDRs; an empty list allows everyone. */
export function ipMatcher(list: readonly string[]): (ip: string) => boolean {
  if (!list.length) return () => true;
  const block = new BlockList();
  for (const entry of list) {
    const [addr, bits] = entry.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) block.addAddress(addr, type);
    else block.addSubnet(addr, Number(bits), type);
  }
  return (ip: string) => {
    // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    const v4 = mapped?.[1];
    if (v4 && block.check(v4, 'ipv4')) return true;
    const family = isIP(ip);
    if (!family) return false;
    return block.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  };
}
