// The bridge's one typed configuration: a declaration over the shared loader (@openwechat/config).
// Precedence: flag > environment > env file (--env-file) > default; an empty value counts as unset, so a
// sample with `NAME=` lines keeps the defaults. Every value is validated there; a bad or missing one stops
// the start with one line naming it. The seed checklist's own names (OPENCLAW_WEBHOOK_SECRET, IM_BOT_TOKEN)
// are aliases; ours win. The commented sample is bridge.env.sample; docs/bridge.md holds the settings table
// markdownTable() renders (a test keeps them equal).

import { statSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import {
  baseUrl,
  bool,
  ConfigError,
  httpUrl,
  int,
  ip,
  ipList,
  load,
  LOG_LEVELS,
  oneOf,
  readEnvFile,
  REQUIRED,
  secret,
  settingsFace,
  str,
  type Loaded,
  type LogLevel,
  type SettingsFile,
  type Table,
} from '@openwechat/config';

export { ConfigError, type LogLevel };

export type SigningMode = 'plain' | 'standard';
/** bare: the AddMsg record itself; gewechat: wrapped in `{TypeName:"AddMsg", Appid, Wxid, Data}`. */
export type RecordFormat = 'bare' | 'gewechat';

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
  /** Backoff: the first retry waits up to this long (equal jitter: half fixed, half random), doubling per attempt. */
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
  /** How each relay message's record is wrapped on the wire (and in the outbox). */
  recordFormat: RecordFormat;
  /** `Appid` of the gewechat envelope; '' = the bot's own id (`owc_<bot id>`, also its `Wxid`). */
  gewechatAppid: string;
  /**
   * End-to-end encryption for the bot account (off | preferred | required): the bridge decrypts inbound
   * messages before building the AddMsg record and encrypts sends per policy. E2E ends here: OpenClaw
   * sees plaintext. Keys in dataDir/e2e/.
   */
  e2e: 'off' | 'preferred' | 'required';
  logLevel: LogLevel;
}

export const DEFAULT_WEBHOOK_URL = 'http://127.0.0.1:18789/wechat_abot/webhook';

/** Every bridge setting: its names, type, default and the sentence docs/bridge.md shows. */
export const BRIDGE_SETTINGS: Table<BridgeConfig> = {
  relayBaseUrl: {
    env: 'RELAY_BASE_URL',
    type: httpUrl({ trimSlash: true }),
    default: REQUIRED,
    doc: 'The relay, e.g. `http://127.0.0.1:8000`.',
  },
  relayToken: {
    env: 'RELAY_TOKEN',
    flag: false,
    type: secret(),
    default: REQUIRED,
    doc: "The bot account's `X-Token`. Never logged.",
  },
  webhookUrl: {
    env: 'OPENCLAW_WEBHOOK_URL',
    type: httpUrl(),
    default: DEFAULT_WEBHOOK_URL,
    doc: 'Where AddMsg records are POSTed. Logged without its query string.',
  },
  webhookSecret: {
    env: 'WECHAT_ABOT_WEBHOOK_SECRET',
    aliases: ['OPENCLAW_WEBHOOK_SECRET'],
    flag: false,
    type: secret(),
    default: REQUIRED,
    doc: '= `channels.wechat_abot.webhookSecret`; the HMAC key. Never logged.',
  },
  botToken: {
    env: 'WECHAT_ABOT_BOT_TOKEN',
    aliases: ['IM_BOT_TOKEN'],
    flag: false,
    type: secret(),
    default: REQUIRED,
    doc: "= `channels.wechat_abot.botToken`; the send API's bearer token. Never logged.",
  },
  signing: {
    env: 'WECHAT_ABOT_SIGNING',
    type: oneOf(['plain', 'standard']),
    default: 'plain',
    doc: '`plain` or `standard` (plain + Standard Webhooks), see below.',
  },
  host: {
    env: 'BRIDGE_HOST',
    type: ip(),
    default: '127.0.0.1',
    doc: "Interface of the bridge's HTTP server (an IP address).",
  },
  port: { env: 'BRIDGE_PORT', type: int(0, 65535), default: 8088, doc: 'Its port (0 = any free port).' },
  dataDir: {
    env: 'BRIDGE_DATA_DIR',
    type: str({ nonEmpty: true }),
    default: './data/bridge',
    doc: 'Folder of `bridge.sqlite` (outbox, dead letters, relay cursor, idempotency records), of the generated media link key `media-secret` and of `media/`, the copies of attachments. Created with mode 0700.',
  },
  allowedIps: {
    env: 'BRIDGE_ALLOWED_IPS',
    type: ipList(),
    default: [],
    doc: 'Comma-separated IPs/CIDRs allowed to call any endpoint (403 `ip_not_allowed` otherwise). Empty = no restriction.',
  },
  inboundAllowedIps: {
    env: 'BRIDGE_INBOUND_ALLOWED_IPS',
    type: ipList(),
    default: ['127.0.0.1', '::1'],
    doc: 'Who may call `POST /im/inbound` (on top of the above).',
  },
  inboundToken: {
    env: 'BRIDGE_INBOUND_TOKEN',
    flag: false,
    type: secret(),
    default: '',
    defaultDoc: '= `WECHAT_ABOT_BOT_TOKEN`',
    doc: 'Bearer token of `POST /im/inbound`. Never logged.',
  },
  retryHorizonSeconds: {
    env: 'BRIDGE_RETRY_HORIZON_SECONDS',
    type: int(1, 30 * 86400),
    default: 3600,
    doc: "A message still failing transiently this long after it was queued is dead-lettered. Keep the plugin's staleness limit (if any) above it.",
  },
  retryBaseMs: {
    env: 'BRIDGE_RETRY_BASE_MS',
    type: int(1, 3_600_000),
    default: 1000,
    doc: 'Backoff: the first retry waits a random time in [0, base]; the range doubles per attempt.',
  },
  retryMaxDelayMs: {
    env: 'BRIDGE_RETRY_MAX_DELAY_MS',
    type: int(1, 86_400_000),
    default: 60_000,
    doc: 'Cap of one backoff wait. `Retry-After` from the receiver is honoured even above it.',
  },
  webhookTimeoutMs: {
    env: 'BRIDGE_WEBHOOK_TIMEOUT_MS',
    type: int(100, 120_000),
    default: 5000,
    doc: 'Whole-request timeout of one webhook POST (connect, send, answer).',
  },
  deliveryConcurrency: {
    env: 'BRIDGE_DELIVERY_CONCURRENCY',
    type: int(1, 256),
    default: 8,
    doc: 'Conversations delivered in parallel. Within a conversation: one at a time, in order.',
  },
  systemNotices: {
    env: 'BRIDGE_SYSTEM_NOTICES',
    type: oneOf(['forward', 'suppress']),
    default: 'forward',
    doc: '`forward`: relay system notices (group membership notices included) become MsgType 10000 tips; `suppress`: acknowledged, not sent.',
  },
  groupRequireMention: {
    env: 'BRIDGE_GROUP_REQUIRE_MENTION',
    type: bool(),
    default: false,
    doc: "`true`: a group message reaches OpenClaw only when the relay marks the bot's copy `mentioned`; the others are acknowledged on the relay and logged as `filtered` (never dead letters).",
  },
  maxTextChars: {
    env: 'BRIDGE_MAX_TEXT_CHARS',
    type: int(1, 100_000),
    default: 4000,
    doc: "Longest `text` the send API accepts (413 `text_too_long` above). Over the relay's 1000 characters it is sent in parts.",
  },
  maxBodyKb: {
    env: 'BRIDGE_MAX_BODY_KB',
    type: int(1, 102_400),
    default: 1024,
    doc: 'Largest request body of the send API and `/im/inbound` (413 `payload_too_large`, checked while reading).',
  },
  streamIdleTimeoutSeconds: {
    env: 'BRIDGE_STREAM_IDLE_TIMEOUT_SECONDS',
    type: int(1, 86_400),
    default: 90,
    doc: 'The relay stream is reopened when nothing arrived (not even `: ping`, sent after 30 s idle) for this long.',
  },
  outboxRetentionDays: {
    env: 'BRIDGE_OUTBOX_RETENTION_DAYS',
    type: int(1, 3650),
    default: 7,
    doc: 'Delivered outbox rows (dedupe of relay replays) and send-API idempotency records are pruned after this. Dead letters stay until handled.',
  },
  mediaLinks: {
    env: 'BRIDGE_MEDIA_LINKS',
    type: bool(),
    default: true,
    doc: "`true`: an attachment's line ends with a media link served by the bridge; `false`: name, size and type only, and no `/media/` route.",
  },
  publicUrl: {
    env: 'BRIDGE_PUBLIC_URL',
    type: baseUrl(),
    default: '',
    defaultDoc: '*(the listening address)*',
    doc: 'Base of the media links as OpenClaw reaches the bridge, e.g. `https://bridge.example/owc` (http(s); no credentials, query or fragment; a trailing `/` is dropped). Empty = `http://<BRIDGE_HOST>:<port>` as bound. Set it when binding `0.0.0.0` or behind a reverse proxy.',
  },
  mediaSecret: {
    env: 'BRIDGE_MEDIA_SECRET',
    flag: false,
    type: secret({ min: 32 }),
    default: '',
    defaultDoc: '*(generated)*',
    doc: 'HMAC key of the media links, at least 32 characters. Empty = 32 random bytes generated on first start into `BRIDGE_DATA_DIR/media-secret` (mode 0600) and reused. Never logged.',
  },
  mediaLinkMaxHours: {
    env: 'BRIDGE_MEDIA_LINK_MAX_HOURS',
    type: int(1, 8760),
    default: 168,
    doc: "A media link, and the bridge's copy of its file, expire this many hours after the message was sent (1–8760). A link without a copy also expires with the relay file, if sooner.",
  },
  mediaMaxMb: {
    env: 'BRIDGE_MEDIA_MAX_MB',
    type: int(1, 1_048_576),
    default: 1024,
    doc: 'Total size cap (MB, 1–1048576) of the copies of attachments in `BRIDGE_DATA_DIR/media`. Above it the oldest copies are deleted first (their links then answer 404 `file_gone`); a single attachment larger than the cap is not copied.',
  },
  recordFormat: {
    env: 'BRIDGE_RECORD_FORMAT',
    type: oneOf(['bare', 'gewechat']),
    default: 'bare',
    doc: '`bare`: each webhook body is one AddMsg record. `gewechat`: the record wrapped in the gewechat callback envelope `{"TypeName":"AddMsg","Appid":…,"Wxid":…,"Data":<record>}`, which WeChat-family plugins such as gewe-openclaw require; the signature covers the envelope, the bytes sent. Applies to records built from now on (queued ones keep their bytes); `/im/inbound` bodies are forwarded as received.',
  },
  gewechatAppid: {
    env: 'BRIDGE_GEWECHAT_APPID',
    type: str(),
    default: '',
    defaultDoc: '*(the bot id)*',
    doc: "`Appid` of the gewechat envelope: set it to the plugin's configured app id when it checks one. Empty = the bot's own id, `owc_<bot id>` (also the envelope's `Wxid`).",
  },
  e2e: {
    env: 'BRIDGE_E2E',
    type: oneOf(['off', 'preferred', 'required']),
    default: 'off',
    doc: 'End-to-end encryption for the bot account ([e2e.md](e2e.md)): `off` (as before), `preferred` (encrypt sends when the peer has keys; open encrypted messages), `required` (refuse plaintext both ways). The bridge terminates it: inbound messages are decrypted before the AddMsg record is built, so **OpenClaw sees plaintext**. Keys in `BRIDGE_DATA_DIR/e2e/` (0600). A refused message is logged, never forwarded.',
  },
  logLevel: {
    env: 'LOG_LEVEL',
    type: oneOf(LOG_LEVELS),
    default: 'info',
    doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.',
  },
};

/**
 * The setting names in docs order (env name, config field, aliases); the bridge's setting flags
 * (`--bridge-port`, `--bridge-data-dir`, …) for node:util parseArgs and their usage lines; parseArgs values →
 * the `flags` source; the settings table of docs/bridge.md (a test keeps the two equal).
 */
export const {
  names: SETTINGS,
  flags: SETTING_FLAGS,
  usage: SETTING_FLAG_USAGE,
  fromFlags: settingFlags,
  markdown: settingsMarkdown,
} = settingsFace(BRIDGE_SETTINGS);

/** The defaults of the settings that have one. */
export const DEFAULTS: Partial<BridgeConfig> = Object.fromEntries(
  Object.entries(BRIDGE_SETTINGS)
    .map(([k, s]) => [k, (s as { default: unknown }).default])
    .filter(([, v]) => v !== REQUIRED),
) as Partial<BridgeConfig>;

/** Environment prefixes the bridge owns: an unknown variable with one is warned about (a likely typo). */
const ENV_PREFIXES = ['BRIDGE_', 'WECHAT_ABOT_'];

export interface BridgeSources {
  /** Parsed flags keyed by env name (`--bridge-port 9000` → BRIDGE_PORT). Secrets have no flag. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv | Record<string, string | undefined>;
  /** Path of an env file (`--env-file`): below the environment, above the defaults. */
  envFile?: string;
}

/** Builds the config and the warnings worth logging at start; throws ConfigError naming the bad setting. */
export function loadBridgeSettings(sources: BridgeSources): Loaded<BridgeConfig> {
  const file: SettingsFile | undefined = sources.envFile ? readEnvFile(sources.envFile) : undefined;
  const loaded = load(
    BRIDGE_SETTINGS,
    { flags: sources.flags, env: sources.env, file },
    { emptyIsUnset: true, envPrefixes: ENV_PREFIXES },
  );
  const c = loaded.config;
  if (!c.inboundToken) c.inboundToken = c.botToken;
  if (c.retryMaxDelayMs < c.retryBaseMs)
    throw new ConfigError('BRIDGE_RETRY_MAX_DELAY_MS: must be ≥ BRIDGE_RETRY_BASE_MS');
  return loaded;
}

/** The config from environment variables alone (tests, embedding). */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined>): BridgeConfig {
  return loadBridgeSettings({ env }).config;
}

/** The data folder alone (the dead-letter CLI needs nothing else), from the same sources. */
export function loadDataDir(sources: BridgeSources): string {
  const file = sources.envFile ? readEnvFile(sources.envFile) : undefined;
  return load(
    BRIDGE_SETTINGS,
    { flags: sources.flags, env: sources.env, file },
    { emptyIsUnset: true, only: ['dataDir'] },
  ).config.dataDir;
}

/**
 * Whether a settings file holding secrets is readable by group or others (bridge.env copied from the sample
 * is usually 0644): worth a warning at start, as for the generated media key.
 */
export function readableByOthers(path: string): boolean {
  return (statSync(path).mode & 0o077) !== 0;
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
