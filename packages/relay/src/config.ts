// The relay's one typed configuration: a declaration over the shared loader (@openwechat/config).
// Precedence: option (code) > command-line flag > environment > config file > default. Every value is
// validated there; a bad one stops the start with one line naming the setting and where it came from.
// The commented sample is relay.config.sample.json; docs/config.md holds the table markdownTable() renders.

import {
  bool,
  ConfigError,
  httpUrl,
  int,
  ip,
  ipList,
  load,
  LOG_LEVELS,
  num,
  oneOf,
  readJsonFile,
  refine,
  secret,
  settingsFace,
  str,
  type LogLevel,
  type Table,
} from '@openwechat/config';

export { ConfigError };

export interface RelayConfig {
  /** Interface to bind. Loopback by default: exposing the relay is an explicit decision. */
  host: string;
  port: number;
  /** Folder for the SQLite database and stored files. */
  dataDir: string;
  /** postgres://… selects the PostgreSQL backend; empty means SQLite in dataDir. */
  databaseUrl: string;
  rateLimitEnabled: boolean;
  /** Accepted requests per key (user or IP) in any 1 s window. */
  rateLimitQps: number;
  /** Concurrent SSE streams per client IP (a host with several agents and a bridge must fit). */
  sseMaxPerIp: number;
  /** Concurrent SSE streams per user; one more replaces that user's oldest (a reconnect over a stale one). */
  sseMaxPerUser: number;
  /** After a user's stream was replaced, further replacements wait this long (429 + Retry-After). */
  sseReplaceIntervalSeconds: number;
  /**
   * How long a legacy stream must stay open after writing a message before the message is deleted; if
   * the stream dies first the message stays in the inbox and is delivered again (at-least-once).
   */
  legacyStreamGraceSeconds: number;
  /** Longest time to receive a request (headers and body) before the connection is closed. */
  requestTimeoutSeconds: number;
  /** The same for multipart uploads (/send/file, group files, homepage uploads). */
  uploadTimeoutSeconds: number;
  /** SQLite `PRAGMA synchronous`: NORMAL survives a process crash, FULL also a power loss (slower). */
  sqliteSynchronous: 'NORMAL' | 'FULL';
  /** Idle time after which the stream sends `: ping`. */
  ssePingSeconds: number;
  /** A stream with bytes waiting that flushes none of them for this long is ended. */
  sseWriteTimeoutSeconds: number;
  /** Reconnection delay advertised to SSE clients (`retry:`). */
  sseRetryMs: number;
  /** Registration cap; 0 = unlimited. */
  maxUsers: number;
  /** Enables /admin endpoints; empty = disabled (503). Never logged. */
  adminKey: string;
  /** Peers whose X-Forwarded-For is believed (IPs or CIDRs). Empty: the socket peer is the client. */
  trustProxy: string[];
  /** Base for URLs the relay hands out (homepage links), e.g. https://example.org/openwechat. */
  publicBaseUrl: string;
  maxUploadMb: number;
  /** Per-sender cap on stored attachment bytes not yet collected (abuse guard). */
  uploadQuotaMb: number;
  /** Members per group, the owner included. */
  maxGroupMembers: number;
  /** Groups one user may belong to (owned or joined). */
  maxGroupsPerUser: number;
  /** Largest accepted JSON body. */
  maxBodyKb: number;
  messageRetentionDays: number;
  fileRetentionDays: number;
  /** How often expired messages, files and idempotency records are swept. */
  maintenanceIntervalSeconds: number;
  logLevel: LogLevel;
}

/** Every relay setting: its names, type, default and the sentence docs/config.md shows. */
export const RELAY_SETTINGS: Table<RelayConfig> = {
  host: {
    env: 'HOST',
    type: ip(),
    default: '127.0.0.1',
    doc: 'Interface to bind (an IP address). Loopback by default: exposing the relay is a decision.',
  },
  port: { env: 'PORT', type: int(0, 65535), default: 8000, doc: 'TCP port (0 = any free port).' },
  dataDir: {
    env: 'DATA_DIR',
    type: str(),
    default: './data',
    doc: 'Folder for `relay.sqlite` and in-flight uploads (created with mode 0700).',
  },
  databaseUrl: {
    env: 'DATABASE_URL',
    type: refine(str(), (v) =>
      v === '' || /^postgres(ql)?:\/\//.test(v) ? null : 'must start with postgres://',
    ),
    default: '',
    doc: '`postgres://…` selects PostgreSQL (several instances, see [scaling.md](scaling.md)); empty = SQLite in `DATA_DIR`.',
  },
  rateLimitEnabled: {
    env: 'RATE_LIMIT_ENABLED',
    // The reference treats 0/false/off and the empty string as "off".
    type: bool({ emptyIsFalse: true }),
    default: true,
    doc: "The reference's limiter. `0`, `false`, `off` or empty turn it off. Switchable at run time by `POST /admin/rate-limit` (per instance).",
  },
  rateLimitQps: {
    env: 'RATE_LIMIT_QPS',
    type: int(1, 1_000_000),
    default: 20,
    doc: 'Requests accepted per key (user with a valid token, else client IP) in any 1 s window. Over it: 429 `错误：请求过于频繁，请稍后再试。` with `Retry-After`. Exempt: `/health`, `/stats`, `/stream`, `/homepage…`, `/register`, `/admin/…`.',
  },
  sseMaxPerIp: {
    env: 'SSE_MAX_PER_IP',
    type: int(1, 1_000_000),
    default: 20,
    doc: 'Concurrent `/stream` connections per client IP (per instance), sized for a host running several agents and a bridge. Over it: 429 with `Retry-After: 2` — except that a user with a stream from that address may replace it.',
  },
  sseMaxPerUser: {
    env: 'SSE_MAX_PER_USER',
    type: int(1, 1000),
    default: 2,
    doc: "Concurrent `/stream` connections per user (per instance). One more replaces that user's oldest stream, which gets `event: log` `stream_closing reason=replaced` (a reconnect over a stale stream never gets 429).",
  },
  sseReplaceIntervalSeconds: {
    env: 'SSE_REPLACE_INTERVAL_SECONDS',
    type: num(0, 3600),
    default: 10,
    doc: "After one of a user's streams was replaced, a further `/stream` that would replace another within this long gets 429 `sse_replaced_recently` with `Retry-After` (the seconds left) and replaces nothing: more consumers than `SSE_MAX_PER_USER` back off instead of replacing each other forever. A single reconnect over a stale stream still replaces it at once. `0`: no limit (per instance).",
  },
  legacyStreamGraceSeconds: {
    env: 'LEGACY_STREAM_GRACE_SECONDS',
    type: num(0, 3600),
    default: 10,
    doc: 'A message written to a legacy stream (no `Last-Event-ID`/`?since=`) is deleted once its bytes were flushed and the stream then stayed open this long; if the stream dies first it stays stored and is delivered again (at-least-once, see [protocol.md](protocol.md#legacy-streams-are-at-least-once)).',
  },
  requestTimeoutSeconds: {
    env: 'REQUEST_TIMEOUT_SECONDS',
    type: num(0.01, 86_400),
    default: 30,
    doc: 'Two limits of this length. Headers: from the connection’s first moment (on a kept-alive connection, from the next request’s first byte) until the blank line ending them; a silent connection or dribbled headers get `408` and are closed, at most 1 s late. Body: from the end of the headers until the last byte; a stalled or dribbled body gets `408` and the connection is closed. A multipart upload’s body gets `UPLOAD_TIMEOUT_SECONDS` instead once its token was checked.',
  },
  uploadTimeoutSeconds: {
    env: 'UPLOAD_TIMEOUT_SECONDS',
    type: num(0.01, 86_400),
    default: 300,
    doc: 'The body limit (counted from the end of the headers) for multipart uploads (`/send/file`, `/groups/{id}/send/file`, multipart `PUT /homepage`), granted when the file part begins and the sender’s token is valid; until then, and for an unknown sender, `REQUEST_TIMEOUT_SECONDS` applies (an unknown sender’s file upload is refused at once).',
  },
  sqliteSynchronous: {
    env: 'SQLITE_SYNCHRONOUS',
    type: oneOf(['NORMAL', 'FULL']),
    default: 'NORMAL',
    doc: 'SQLite `PRAGMA synchronous`. `NORMAL`: an acknowledged send survives a crash of the relay process, not necessarily a power loss. `FULL`: also a power loss, at a measured cost (see [benchmarks.md](benchmarks.md#sqlite-synchronous-normal-vs-full)).',
  },
  ssePingSeconds: {
    env: 'SSE_PING_SECONDS',
    type: num(0.01, 3600),
    default: 30,
    doc: 'Idle time after which a stream sends `: ping`.',
  },
  sseWriteTimeoutSeconds: {
    env: 'SSE_WRITE_TIMEOUT_SECONDS',
    type: num(0.01, 3600),
    default: 30,
    doc: 'A stream whose client stops reading is ended once it has had bytes waiting and flushed none of them for this long (checked at this interval: ended within twice this after the stall). While it waits, the relay holds at most one socket buffer (16 KB) and one message for it, and at most 200 announced messages (past that it reads them from the store later). A resume client reconnects and resumes; what a legacy stream had not settled stays stored.',
  },
  sseRetryMs: {
    env: 'SSE_RETRY_MS',
    type: int(0, 3_600_000),
    default: 3000,
    doc: 'Reconnection delay advertised once per stream (`retry:`).',
  },
  maxUsers: {
    env: 'MAX_USERS',
    type: int(0, 2 ** 31),
    default: 0,
    doc: 'Registration cap; 0 = unlimited. Over it: 503 `错误 503：注册人数已达上限，暂不开放新用户注册。`',
  },
  adminKey: {
    env: 'ADMIN_KEY',
    type: secret(),
    default: '',
    doc: 'Enables `/admin/*` (header `X-Admin-Key`, compared in constant time). Empty: 503. Never logged.',
  },
  trustProxy: {
    env: 'TRUST_PROXY',
    type: ipList(),
    default: [],
    doc: 'Comma-separated IPs/CIDRs of reverse proxies whose `X-Forwarded-For` is believed (each checked: `10.0.0.0/99` is refused). Empty: the socket peer is the client.',
  },
  publicBaseUrl: {
    env: 'PUBLIC_BASE_URL',
    type: httpUrl({ optional: true }),
    default: '',
    doc: 'Base of URLs handed out (homepage links), e.g. `https://example.org/openwechat`. Empty: the listening address (`http://HOST:PORT`), never the request’s `Host`.',
  },
  maxUploadMb: {
    env: 'MAX_UPLOAD_MB',
    type: num(0.001, 10_240),
    default: 10,
    doc: 'Largest attachment, enforced while the upload streams in.',
  },
  uploadQuotaMb: {
    env: 'UPLOAD_QUOTA_MB',
    type: num(0.001, 1_048_576),
    default: 100,
    doc: 'Per sender: bytes of stored attachments not yet collected by their recipients.',
  },
  maxGroupMembers: {
    env: 'MAX_GROUP_MEMBERS',
    type: int(2, 100_000),
    default: 500,
    doc: 'Members per group chat, the owner included. Over it: `错误：群组成员已达上限（最多 500 人）` (409 `group_full`). Each group message is stored once per member (see [groups-api.md](groups-api.md#storage)).',
  },
  maxGroupsPerUser: {
    env: 'MAX_GROUPS_PER_USER',
    type: int(1, 100_000),
    default: 100,
    doc: 'Group chats one user may belong to (owned or joined). Over it: `错误：加入的群组数量已达上限（最多 100 个）` (409 `too_many_groups`).',
  },
  maxBodyKb: {
    env: 'MAX_BODY_KB',
    type: int(1, 102_400),
    default: 64,
    doc: 'Largest JSON request body (homepages have their own 512 KB limit).',
  },
  messageRetentionDays: {
    env: 'MESSAGE_RETENTION_DAYS',
    type: num(0.00001, 3650),
    default: 7,
    doc: 'Unacknowledged messages are deleted after this many days. SQLite expires them in the order they were stored (no index on the creation time), reading past up to 1,000 unexpired ones: a message stamped out of order because the clock stepped back (or forward and back) is deleted on time, or later behind more than that, never early.',
  },
  fileRetentionDays: {
    env: 'FILE_RETENTION_DAYS',
    type: num(0.0001, 3650),
    default: 7,
    doc: 'Stored attachments are deleted after this many days (earlier once downloaded and acknowledged).',
  },
  maintenanceIntervalSeconds: {
    env: 'MAINTENANCE_INTERVAL_SECONDS',
    type: num(0.01, 86_400),
    default: 3600,
    doc: 'How often expired messages, files and idempotency records are swept (also once at start).',
  },
  logLevel: {
    env: 'LOG_LEVEL',
    type: oneOf(LOG_LEVELS),
    default: 'info',
    doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. JSON lines on stdout; no token, key or body is ever logged.',
  },
};

export const DEFAULT_CONFIG: RelayConfig = Object.fromEntries(
  Object.entries(RELAY_SETTINGS).map(([k, s]) => [k, (s as { default: unknown }).default]),
) as unknown as RelayConfig;

export interface ConfigSources {
  /** Parsed `--name value` flags, keyed by env name (e.g. PORT) or config key (e.g. port). */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file (keys: env names or config keys; `//…` keys are comments). */
  file?: string;
}

/** Builds the config from its sources; throws ConfigError naming the bad setting. */
export function loadConfig(sources: ConfigSources = {}): RelayConfig {
  return load(RELAY_SETTINGS, {
    flags: sources.flags,
    env: sources.env,
    file: sources.file ? readJsonFile(sources.file) : undefined,
  }).config;
}

/** Validates a programmatic partial config (tests, embedding) the same way as any other source. */
export function resolveConfig(partial: Partial<RelayConfig>): RelayConfig {
  return load(RELAY_SETTINGS, { options: partial as Record<string, unknown> }).config;
}

/**
 * The setting names in docs order; the command line's setting flags (`--port`, `--data-dir`, …) for
 * node:util parseArgs and their usage lines; parseArgs values → the `flags` source of loadConfig(); the
 * settings table of docs/config.md (a test keeps the two equal).
 */
export const {
  names: SETTING_NAMES,
  flags: SETTING_FLAGS,
  usage: SETTING_FLAG_USAGE,
  fromFlags: settingFlags,
  markdown: settingsMarkdown,
} = settingsFace(RELAY_SETTINGS);
