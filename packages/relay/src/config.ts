// The relay's one typed configuration. Precedence: command-line flag > environment > config file > default.
// Every setting is validated here; a bad value stops the start with a message naming the setting.
// The commented sample is relay.config.sample.json at the repository root; docs/config.md explains each.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

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
  /** Concurrent SSE streams per client IP. */
  sseMaxPerIp: number;
  /** Idle time after which the stream sends `: ping`. */
  ssePingSeconds: number;
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
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const DEFAULT_CONFIG: RelayConfig = {
  host: '127.0.0.1',
  port: 8000,
  dataDir: './data',
  databaseUrl: '',
  rateLimitEnabled: true,
  rateLimitQps: 20,
  sseMaxPerIp: 1,
  ssePingSeconds: 30,
  sseRetryMs: 3000,
  maxUsers: 0,
  adminKey: '',
  trustProxy: [],
  publicBaseUrl: '',
  maxUploadMb: 10,
  uploadQuotaMb: 100,
  maxGroupMembers: 500,
  maxGroupsPerUser: 100,
  maxBodyKb: 64,
  messageRetentionDays: 7,
  fileRetentionDays: 7,
  maintenanceIntervalSeconds: 3600,
  logLevel: 'info',
};

type Kind = 'string' | 'int' | 'number' | 'bool' | 'list' | 'level';

/** Setting name (env and file key), its config field, its kind, and range checks. */
const SETTINGS: ReadonlyArray<{
  env: string;
  key: keyof RelayConfig;
  kind: Kind;
  min?: number;
  max?: number;
  check?: (v: unknown) => string | null;
}> = [
  {
    env: 'HOST',
    key: 'host',
    kind: 'string',
    check: (v) => (isIP(String(v)) ? null : 'must be an IP address'),
  },
  { env: 'PORT', key: 'port', kind: 'int', min: 0, max: 65535 },
  { env: 'DATA_DIR', key: 'dataDir', kind: 'string' },
  {
    env: 'DATABASE_URL',
    key: 'databaseUrl',
    kind: 'string',
    check: (v) => (v === '' || /^postgres(ql)?:\/\//.test(String(v)) ? null : 'must start with postgres://'),
  },
  { env: 'RATE_LIMIT_ENABLED', key: 'rateLimitEnabled', kind: 'bool' },
  { env: 'RATE_LIMIT_QPS', key: 'rateLimitQps', kind: 'int', min: 1, max: 1_000_000 },
  { env: 'SSE_MAX_PER_IP', key: 'sseMaxPerIp', kind: 'int', min: 1, max: 1_000_000 },
  { env: 'SSE_PING_SECONDS', key: 'ssePingSeconds', kind: 'number', min: 0.01, max: 3600 },
  { env: 'SSE_RETRY_MS', key: 'sseRetryMs', kind: 'int', min: 0, max: 3_600_000 },
  { env: 'MAX_USERS', key: 'maxUsers', kind: 'int', min: 0, max: 2 ** 31 },
  { env: 'ADMIN_KEY', key: 'adminKey', kind: 'string' },
  {
    env: 'TRUST_PROXY',
    key: 'trustProxy',
    kind: 'list',
    check: (v) => {
      const bad = (v as string[]).find((p) => !isIP(p.split('/')[0] ?? ''));
      return bad ? `"${bad}" is not an IP address or CIDR` : null;
    },
  },
  {
    env: 'PUBLIC_BASE_URL',
    key: 'publicBaseUrl',
    kind: 'string',
    check: (v) => (v === '' || /^https?:\/\/[^\s]+$/.test(String(v)) ? null : 'must be an http(s) URL'),
  },
  { env: 'MAX_UPLOAD_MB', key: 'maxUploadMb', kind: 'number', min: 0.001, max: 10_240 },
  { env: 'UPLOAD_QUOTA_MB', key: 'uploadQuotaMb', kind: 'number', min: 0.001, max: 1_048_576 },
  { env: 'MAX_GROUP_MEMBERS', key: 'maxGroupMembers', kind: 'int', min: 2, max: 100_000 },
  { env: 'MAX_GROUPS_PER_USER', key: 'maxGroupsPerUser', kind: 'int', min: 1, max: 100_000 },
  { env: 'MAX_BODY_KB', key: 'maxBodyKb', kind: 'int', min: 1, max: 102_400 },
  { env: 'MESSAGE_RETENTION_DAYS', key: 'messageRetentionDays', kind: 'number', min: 0.00001, max: 3650 },
  { env: 'FILE_RETENTION_DAYS', key: 'fileRetentionDays', kind: 'number', min: 0.0001, max: 3650 },
  {
    env: 'MAINTENANCE_INTERVAL_SECONDS',
    key: 'maintenanceIntervalSeconds',
    kind: 'number',
    min: 0.01,
    max: 86_400,
  },
  { env: 'LOG_LEVEL', key: 'logLevel', kind: 'level' },
];

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function coerce(setting: (typeof SETTINGS)[number], raw: unknown, source: string): unknown {
  const where = `${setting.env} (${source})`;
  const text = typeof raw === 'string' ? raw.trim() : raw;
  let value: unknown;
  switch (setting.kind) {
    case 'string':
      if (typeof text !== 'string') throw new ConfigError(`${where}: must be a string`);
      value = text;
      break;
    case 'int':
    case 'number': {
      const n =
        typeof text === 'number' ? text : typeof text === 'string' && text !== '' ? Number(text) : NaN;
      if (!Number.isFinite(n) || (setting.kind === 'int' && !Number.isInteger(n))) {
        throw new ConfigError(`${where}: must be ${setting.kind === 'int' ? 'an integer' : 'a number'}`);
      }
      value = n;
      break;
    }
    case 'bool':
      if (typeof text === 'boolean') value = text;
      else if (typeof text === 'string' && /^(1|true|on|yes)$/i.test(text)) value = true;
      // The reference treats 0/false/off and the empty string as "off".
      else if (typeof text === 'string' && /^(0|false|off|no|)$/i.test(text)) value = false;
      else throw new ConfigError(`${where}: must be true or false`);
      break;
    case 'list':
      if (Array.isArray(text) && text.every((x) => typeof x === 'string')) value = text.map((x) => x.trim());
      else if (typeof text === 'string')
        value = text
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
      else throw new ConfigError(`${where}: must be a comma-separated list`);
      break;
    case 'level':
      if (typeof text !== 'string' || !LEVELS.includes(text))
        throw new ConfigError(`${where}: must be one of ${LEVELS.join(', ')}`);
      value = text;
      break;
  }
  if (typeof value === 'number') {
    if (setting.min !== undefined && value < setting.min)
      throw new ConfigError(`${where}: must be ≥ ${setting.min}`);
    if (setting.max !== undefined && value > setting.max)
      throw new ConfigError(`${where}: must be ≤ ${setting.max}`);
  }
  const problem = setting.check?.(value);
  if (problem) throw new ConfigError(`${where}: ${problem}`);
  return value;
}

export interface ConfigSources {
  /** Parsed `--name value` flags, keyed by env name (e.g. PORT) or config key (e.g. port). */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file (keys: env names or config keys). */
  file?: string;
}

/** Builds the config from its sources; throws ConfigError naming the bad setting. */
export function loadConfig(sources: ConfigSources = {}): RelayConfig {
  let fileValues: Record<string, unknown> = {};
  if (sources.file) {
    try {
      fileValues = JSON.parse(readFileSync(sources.file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${sources.file}: ${(err as Error).message}`);
    }
    if (typeof fileValues !== 'object' || fileValues === null || Array.isArray(fileValues))
      throw new ConfigError(`config file ${sources.file}: must hold a JSON object`);
    const known = new Set(SETTINGS.flatMap((s) => [s.env, s.key as string]));
    const unknown = Object.keys(fileValues).filter((k) => !k.startsWith('//') && !known.has(k));
    if (unknown.length) throw new ConfigError(`config file ${sources.file}: unknown setting ${unknown[0]}`);
  }
  const config: Record<string, unknown> = { ...DEFAULT_CONFIG };
  for (const s of SETTINGS) {
    const pick = (o: Record<string, unknown> | undefined) => o?.[s.env] ?? o?.[s.key];
    const flag = pick(sources.flags);
    const env = sources.env?.[s.env];
    const file = pick(fileValues);
    if (flag !== undefined) config[s.key] = coerce(s, flag, 'flag');
    else if (env !== undefined) config[s.key] = coerce(s, env, 'environment');
    else if (file !== undefined) config[s.key] = coerce(s, file, 'config file');
  }
  return config as unknown as RelayConfig;
}

/** Validates a programmatic partial config (tests, embedding) the same way as env values. */
export function resolveConfig(partial: Partial<RelayConfig>): RelayConfig {
  return loadConfig({ flags: partial as Record<string, unknown> });
}

export const SETTING_NAMES = SETTINGS.map((s) => ({ env: s.env, key: s.key, kind: s.kind }));
