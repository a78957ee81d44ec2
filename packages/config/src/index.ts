// @openwechat/config: the one settings loader of the relay and the bridge (docs/config.md, "One loader").
// A service declares its settings once, as a table keyed by its config fields: environment name, aliases,
// flag, type (parser + validator), default and the sentence its docs table shows. load() layers the
// sources — option (code) > command-line flag > environment > settings file > default — validates every
// value and names the setting, and where its value came from, in a one-line ConfigError:
//   TRUST_PROXY (environment): "10.0.0.0/99" is not an IP address or CIDR
// Dependency-free (node built-ins only) and nothing runs at import, so any package may depend on it.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseEnv } from 'node:util';
import { ConfigError, Invalid } from './errors.ts';

export { ConfigError, Invalid } from './errors.ts';
export { closeOnSignals, runService } from './service.ts';

/** How one setting's raw value becomes its typed value. */
export interface Type<T> {
  /**
   * A raw value — a string from a flag, the environment or an env file; any JSON value from a JSON file;
   * a typed value from code — to the setting's value. Throws Invalid.
   */
  parse(raw: unknown): T;
}

/** The default of a setting that must be given. */
export const REQUIRED: unique symbol = Symbol('required');

export interface Setting<T> {
  /** The environment name; also the settings file key and (kebab-cased) the flag. */
  env: string;
  /** Other names read in the same sources, e.g. a guide's own variable names. The env name wins. */
  aliases?: readonly string[];
  /** Flag name without the dashes (default: the env name kebab-cased); false: no flag (secrets show in ps). */
  flag?: string | false;
  type: Type<T>;
  default: T | typeof REQUIRED;
  /** The docs table's default cell when the value alone would mislead (e.g. "= `WECHAT_ABOT_BOT_TOKEN`"). */
  defaultDoc?: string;
  /** The docs table's meaning cell (Markdown, one line). */
  doc: string;
}

/** A service's settings: one entry per config field, in the order its docs list them. */
export type Table<C> = { [K in keyof C]: Setting<C[K]> };

export interface SettingsFile {
  path: string;
  /** How the error names it: `config file` (JSON) or `env file`. */
  label: string;
  values: Record<string, unknown>;
}

export interface Sources {
  /** Typed values from code (tests, embedding), keyed by config field. Highest. */
  options?: Record<string, unknown>;
  /** Command-line flags, keyed by env name (or config field). */
  flags?: Record<string, unknown>;
  env?: Record<string, string | undefined>;
  file?: SettingsFile;
}

export interface LoadOptions {
  /** An empty string from the environment or a file counts as unset (`NAME=` lines keep the defaults). */
  emptyIsUnset?: boolean;
  /** Environment prefixes this service owns: an unknown variable with one is warned about (likely a typo). */
  envPrefixes?: readonly string[];
  /** Load only these fields (e.g. a CLI that needs the data folder alone); the file is still checked whole. */
  only?: readonly string[];
}

export interface Loaded<C> {
  config: C;
  /** Things worth telling the operator that do not stop the start (unknown variables, shadowed aliases). */
  warnings: string[];
}

type Entry = [key: string, setting: Setting<unknown>];

function entries<C>(table: Table<C>): Entry[] {
  return Object.entries(table) as Entry[];
}

/** Every name a setting answers to in env-like sources: its env name first, then its aliases. */
function envNames(s: Setting<unknown>): string[] {
  return [s.env, ...(s.aliases ?? [])];
}

export function flagName(s: Setting<unknown>): string | null {
  if (s.flag === false) return null;
  return s.flag ?? s.env.toLowerCase().replace(/_/g, '-');
}

/** The closest known name, for "did you mean" (edit distance ≤ 2, or one contains the other). */
function closest(name: string, known: Iterable<string>): string | null {
  const n = name.toUpperCase();
  let best: string | null = null;
  let bestDistance = 3;
  for (const k of known) {
    const d = distance(n, k.toUpperCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

function unknownName(name: string, known: Iterable<string>): string {
  const guess = closest(name, known);
  return guess ? `unknown setting ${name} (did you mean ${guess}?)` : `unknown setting ${name}`;
}

/** Builds the config from its sources; throws ConfigError naming the first bad, unknown or missing setting. */
export function load<C>(table: Table<C>, sources: Sources, options: LoadOptions = {}): Loaded<C> {
  const list = entries(table);
  const warnings: string[] = [];
  const known = new Set(list.flatMap(([key, s]) => [...envNames(s), key]));
  const knownEnv = new Set(list.flatMap(([, s]) => envNames(s)));

  if (sources.file) {
    const { path, label, values } = sources.file;
    // Keys starting with // are comments (JSON has none of its own).
    const unknown = Object.keys(values).filter((k) => !k.startsWith('//') && !known.has(k));
    if (unknown.length) throw new ConfigError(`${label} ${path}: ${unknownName(unknown[0]!, knownEnv)}`);
  }
  for (const name of Object.keys(sources.env ?? {})) {
    if (!options.envPrefixes?.some((p) => name.startsWith(p)) || knownEnv.has(name)) continue;
    warnings.push(`environment: ${unknownName(name, knownEnv)}; ignored`);
  }

  const config: Record<string, unknown> = {};
  for (const [key, s] of list) {
    if (options.only && !options.only.includes(key)) continue;
    const layers: Array<[where: string, values: Record<string, unknown> | undefined, names: string[]]> = [
      ['option', sources.options, [key]],
      ['flag', sources.flags, [s.env, key]],
      ['environment', sources.env, envNames(s)],
      [
        sources.file ? `${sources.file.label} ${sources.file.path}` : '',
        sources.file?.values,
        [...envNames(s), key],
      ],
    ];
    let found = false;
    for (const [where, values, names] of layers) {
      if (!values) continue;
      const present = names.filter((n) => {
        const v = values[n];
        if (v === undefined) return false;
        return !(options.emptyIsUnset && where !== 'option' && v === '');
      });
      const name = present[0];
      if (name === undefined) continue;
      for (const other of present.slice(1))
        if (values[other] !== values[name] && envNames(s).includes(other))
          warnings.push(`${other} (${where}) is ignored: ${name} is set too and wins`);
      try {
        config[key] = s.type.parse(values[name]);
      } catch (err) {
        if (err instanceof Invalid)
          throw new ConfigError(
            `${s.env === name || name === key ? s.env : name} (${where}): ${err.message}`,
          );
        throw err;
      }
      found = true;
      break;
    }
    if (found) continue;
    if (s.default === REQUIRED) {
      const also = s.aliases?.length ? ` (or ${s.aliases.join(', ')})` : '';
      throw new ConfigError(`${s.env}${also}: required`);
    }
    config[key] = s.default;
  }
  return { config: config as C, warnings };
}

// ── Settings files ──────────────────────────────────────────────────────────────────────────────────

/** A JSON settings file: one object, keys are env names (or config fields), `//…` keys are comments. */
export function readJsonFile(path: string): SettingsFile {
  let values: unknown;
  try {
    values = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  if (typeof values !== 'object' || values === null || Array.isArray(values))
    throw new ConfigError(`config file ${path}: must hold a JSON object`);
  return { path, label: 'config file', values: values as Record<string, unknown> };
}

/** An env file of `NAME=value` lines (node's own dotenv parser, as `node --env-file`). */
export function readEnvFile(path: string): SettingsFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`env file ${path}: ${(err as Error).message}`);
  }
  return { path, label: 'env file', values: { ...parseEnv(text) } };
}

// ── Flags ───────────────────────────────────────────────────────────────────────────────────────────

/** node:util parseArgs options for every setting that has a flag. */
export function flagOptions<C>(table: Table<C>): Record<string, { type: 'string' }> {
  const out: Record<string, { type: 'string' }> = {};
  for (const [, s] of entries(table)) {
    const f = flagName(s);
    if (f) out[f] = { type: 'string' };
  }
  return out;
}

/** Parsed parseArgs values → flags keyed by env name (the form load() reads). */
export function flagValues<C>(table: Table<C>, parsed: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [, s] of entries(table)) {
    const f = flagName(s);
    if (f && parsed[f] !== undefined) out[s.env] = parsed[f];
  }
  return out;
}

/** `  --port` lines for a usage text. */
export function flagUsage<C>(table: Table<C>): string {
  return entries(table)
    .map(([, s]) => flagName(s))
    .filter((f): f is string => f !== null)
    .map((f) => `  --${f}`)
    .join('\n');
}

// ── Docs ────────────────────────────────────────────────────────────────────────────────────────────

function showDefault(s: Setting<unknown>): string {
  if (s.defaultDoc !== undefined) return s.defaultDoc;
  const v = s.default;
  if (v === REQUIRED) return '*(required)*';
  if (v === '' || (Array.isArray(v) && v.length === 0)) return 'empty';
  return `\`${Array.isArray(v) ? v.join(',') : String(v)}\``;
}

/**
 * The docs table of a service's settings, rendered from its declaration: docs/config.md and docs/bridge.md
 * hold exactly this (a test compares), so a setting cannot be added without its documentation.
 */
export function markdownTable<C>(table: Table<C>): string {
  const rows = entries(table).map(([, s]) => {
    const aliases = s.aliases?.length
      ? ` Also read as ${s.aliases.map((a) => `\`${a}\``).join(', ')}; \`${s.env}\` wins when both are set.`
      : '';
    return `| \`${s.env}\` | ${showDefault(s)} | ${s.doc}${aliases} |`;
  });
  return ['| Setting | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** The names of a table's settings in order (env name, config field, aliases). */
export function settingNames<C>(
  table: Table<C>,
): Array<{ env: string; key: keyof C & string; aliases: string[] }> {
  return entries(table).map(([key, s]) => ({
    env: s.env,
    key: key as keyof C & string,
    aliases: [...(s.aliases ?? [])],
  }));
}

/**
 * What a service derives from its table for its command line and docs: the names in order, the
 * parseArgs options and their usage lines, parsed flag values → the `flags` source of load(), and the
 * docs table. The relay and the bridge export these under their own names.
 */
export function settingsFace<C>(table: Table<C>): {
  names: ReturnType<typeof settingNames<C>>;
  flags: Record<string, { type: 'string' }>;
  usage: string;
  fromFlags: (parsed: Record<string, unknown>) => Record<string, unknown>;
  markdown: () => string;
} {
  return {
    names: settingNames(table),
    flags: flagOptions(table),
    usage: flagUsage(table),
    fromFlags: (parsed) => flagValues(table, parsed),
    markdown: () => markdownTable(table),
  };
}

// ── Types ───────────────────────────────────────────────────────────────────────────────────────────

function text(raw: unknown, trim = true): string {
  if (typeof raw !== 'string') throw new Invalid('must be a string');
  return trim ? raw.trim() : raw;
}

export function str(opts: { nonEmpty?: boolean } = {}): Type<string> {
  return {
    parse(raw) {
      const t = text(raw);
      if (opts.nonEmpty && !t) throw new Invalid('must not be empty');
      return t;
    },
  };
}

function numberOf(raw: unknown, integer: boolean, min?: number, max?: number): number {
  const t = typeof raw === 'string' ? raw.trim() : raw;
  const n = typeof t === 'number' ? t : typeof t === 'string' && t !== '' ? Number(t) : NaN;
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)))
    throw new Invalid(integer ? 'must be an integer' : 'must be a number');
  if (min !== undefined && n < min) throw new Invalid(`must be ≥ ${min}`);
  if (max !== undefined && n > max) throw new Invalid(`must be ≤ ${max}`);
  return n;
}

export function int(min?: number, max?: number): Type<number> {
  return { parse: (raw) => numberOf(raw, true, min, max) };
}

export function num(min?: number, max?: number): Type<number> {
  return { parse: (raw) => numberOf(raw, false, min, max) };
}

/** 1/true/on/yes and 0/false/off/no, any case; `emptyIsFalse`: the reference reads an empty value as off. */
export function bool(opts: { emptyIsFalse?: boolean } = {}): Type<boolean> {
  return {
    parse(raw) {
      if (typeof raw === 'boolean') return raw;
      const t = text(raw);
      if (/^(1|true|on|yes)$/i.test(t)) return true;
      if (/^(0|false|off|no)$/i.test(t) || (opts.emptyIsFalse && t === '')) return false;
      throw new Invalid('must be true or false');
    },
  };
}

export function oneOf<const V extends string>(values: readonly V[]): Type<V> {
  return {
    parse(raw) {
      const t = text(raw);
      if (!(values as readonly string[]).includes(t))
        throw new Invalid(`must be one of ${values.join(', ')}`);
      return t as V;
    },
  };
}

export function ip(): Type<string> {
  return {
    parse(raw) {
      const t = text(raw);
      if (!isIP(t)) throw new Invalid('must be an IP address');
      return t;
    },
  };
}

/** Whether `entry` is an IP address or a CIDR whose prefix length fits its family (10.0.0.0/99 is not). */
export function isIpOrCidr(entry: string): boolean {
  const [addr, bits, extra] = entry.split('/');
  const family = isIP(addr ?? '');
  if (!family || extra !== undefined) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
}

/** A comma-separated list (or a JSON array) of IPs/CIDRs, each checked. */
export function ipList(): Type<string[]> {
  return {
    parse(raw) {
      let list: string[];
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) list = raw.map((x) => x.trim());
      else if (typeof raw === 'string') list = raw.split(',').map((x) => x.trim());
      else throw new Invalid('must be a comma-separated list of IP addresses or CIDRs');
      list = list.filter(Boolean);
      const bad = list.find((e) => !isIpOrCidr(e));
      if (bad !== undefined) throw new Invalid(`"${bad}" is not an IP address or CIDR`);
      return list;
    },
  };
}

function httpUrlOf(t: string): URL {
  let url: URL;
  try {
    url = new URL(t);
  } catch {
    throw new Invalid('must be an http(s) URL');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || /\s/.test(t))
    throw new Invalid('must be an http(s) URL');
  return url;
}

/** An http(s) URL, kept as written (`trimSlash`: without trailing slashes); `optional`: '' is allowed. */
export function httpUrl(opts: { trimSlash?: boolean; optional?: boolean } = {}): Type<string> {
  return {
    parse(raw) {
      const t = text(raw);
      if (opts.optional && t === '') return '';
      httpUrlOf(t);
      return opts.trimSlash ? t.replace(/\/+$/, '') : t;
    },
  };
}

/** A base that paths are appended to: http(s), no credentials, query or fragment; no trailing slash. */
export function baseUrl(): Type<string> {
  return {
    parse(raw) {
      const t = text(raw);
      if (t === '') return '';
      const url = httpUrlOf(t);
      if (url.username || url.password || url.search || url.hash || /[?#]/.test(t))
        throw new Invalid('must not contain credentials, a query or a fragment');
      return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
    },
  };
}

/** Placeholders from the guides' example code: refusing them avoids running with a guessable secret. */
const PLACEHOLDERS = new Set(['change_me', 'changeme', 'replace_me']);

/**
 * A secret, taken exactly as written (never trimmed: a stray space would make a different key, so it is
 * refused instead); '' means "not set". `min`: the shortest length in characters.
 */
export function secret(opts: { min?: number } = {}): Type<string> {
  return {
    parse(raw) {
      const t = text(raw, false);
      if (t === '') return '';
      if (t.trim() !== t || /[\r\n]/.test(t))
        throw new Invalid('must not have leading/trailing spaces or line breaks');
      if (PLACEHOLDERS.has(t.toLowerCase()))
        throw new Invalid(`is still the placeholder "${t}"; set a real value`);
      if (opts.min !== undefined && t.length < opts.min)
        throw new Invalid(`must be at least ${opts.min} characters`);
      return t;
    },
  };
}

/** A type with an extra check on its parsed value (returns the problem, or null). */
export function refine<T>(type: Type<T>, check: (value: T) => string | null): Type<T> {
  return {
    parse(raw) {
      const value = type.parse(raw);
      const problem = check(value);
      if (problem) throw new Invalid(problem);
      return value;
    },
  };
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
