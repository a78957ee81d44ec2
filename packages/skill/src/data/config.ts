// config.json (the secret: token; mode 0600, never logged, never served) and profile.json (the public
// part, never the token).

import { chmod, stat } from 'node:fs/promises';
import { normalizeBaseUrl } from '@openwechat/client';
import { readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { dataPath } from './paths.ts';

/** Version of the data folder's file layout written by this skill (see migrate.ts). */
export const DATA_VERSION = 3;

export interface SkillConfig {
  base_url: string;
  token: string;
  my_id: number;
  my_name: string;
  batch_size: number;
  data_version?: number;
  /** Keys written by other versions or by hand are kept as they are. */
  [key: string]: unknown;
}

/** profile.json in the guide's layout (my_id, my_name, status, updated_at_utc) plus our extra keys. */
export interface Profile {
  my_id: number;
  my_name: string;
  status: string | null;
  updated_at_utc: string;
  description: string | null;
  base_url: string;
  registered_at: string | null;
  [key: string]: unknown;
}

export class ConfigProblem extends Error {
  constructor(
    readonly reason: 'missing' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'ConfigProblem';
  }
}

export const CONFIG_MODE = 0o600;

export async function readConfigRaw(dir: string): Promise<Record<string, unknown> | null> {
  return readJsonOrNull<Record<string, unknown>>(dataPath(dir, 'config'));
}

/** The validated config; ConfigProblem says what is missing or wrong (without printing the token). */
export async function loadConfig(dir: string): Promise<SkillConfig> {
  const path = dataPath(dir, 'config');
  let raw: Record<string, unknown> | null;
  try {
    raw = await readConfigRaw(dir);
  } catch (err) {
    throw new ConfigProblem('invalid', (err as Error).message);
  }
  if (!raw) throw new ConfigProblem('missing', `${path} not found: register first (openwechat register …)`);
  const problems: string[] = [];
  if (typeof raw.base_url !== 'string' || raw.base_url.trim() === '') problems.push('base_url is missing');
  else {
    try {
      normalizeBaseUrl(raw.base_url);
    } catch (err) {
      problems.push(`base_url: ${(err as Error).message}`);
    }
  }
  if (typeof raw.token !== 'string' || !/^\S+$/.test(raw.token)) problems.push('token is missing');
  if (typeof raw.my_id !== 'number' || !Number.isInteger(raw.my_id) || raw.my_id < 1) {
    problems.push('my_id must be a positive integer');
  }
  if (typeof raw.my_name !== 'string') problems.push('my_name is missing');
  if (problems.length) throw new ConfigProblem('invalid', `${path}: ${problems.join('; ')}`);
  const batch = raw.batch_size;
  return {
    ...raw,
    base_url: normalizeBaseUrl(raw.base_url as string),
    token: raw.token as string,
    my_id: raw.my_id as number,
    my_name: raw.my_name as string,
    batch_size:
      typeof batch === 'number' && Number.isInteger(batch) && batch >= 1 && batch <= 500 ? batch : 5,
  };
}

export async function saveConfig(dir: string, config: SkillConfig): Promise<void> {
  await writeJsonAtomic(dataPath(dir, 'config'), config, { mode: CONFIG_MODE });
}

/** The file's permission bits, or null when it does not exist. */
export async function configMode(dir: string): Promise<number | null> {
  try {
    return (await stat(dataPath(dir, 'config'))).mode & 0o777;
  } catch {
    return null;
  }
}

export async function restrictConfig(dir: string): Promise<void> {
  await chmod(dataPath(dir, 'config'), CONFIG_MODE);
}

/** Identifies the account the local state belongs to (ids restart on another relay or account). */
export function accountKey(c: { base_url: string; my_id: number }): string {
  return `${normalizeBaseUrl(c.base_url)}#${c.my_id}`;
}

export async function readProfile(dir: string): Promise<Profile | null> {
  return readJsonOrNull<Profile>(dataPath(dir, 'profile'));
}

async function writeProfile(dir: string, profile: Profile): Promise<void> {
  await writeJsonAtomic(dataPath(dir, 'profile'), profile);
}

/**
 * Merges changes into profile.json (creating it from the config when missing). The guide's keys come first;
 * keys written by others are kept; a profile of another account starts over.
 */
export async function updateProfile(
  dir: string,
  config: { my_id: number; my_name: string; base_url: string },
  changes: Partial<Profile>,
  now = Date.now(),
): Promise<Profile> {
  const old = (await readProfile(dir)) ?? null;
  const same = old !== null && (old.my_id === undefined || old.my_id === config.my_id);
  const {
    my_id: _i,
    my_name: _n,
    status,
    updated_at_utc: _u,
    ...rest
  } = same ? old : ({} as Partial<Profile>);
  const profile: Profile = {
    my_id: config.my_id,
    my_name: config.my_name,
    status: typeof status === 'string' ? status : null,
    updated_at_utc: `${new Date(now).toISOString().slice(0, 19)}Z`,
    description: null,
    registered_at: null,
    ...rest,
    base_url: config.base_url,
    ...changes,
  };
  await writeProfile(dir, profile);
  return profile;
}
