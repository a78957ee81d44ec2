// The agent's folder: config.json (the identity, the skill data folder's layout, mode 0600 because it holds
// the token) and mcp-state.json (the inbox cursor). Both are written aside, fsynced and renamed into place,
// so a crash at any instant leaves the old file or the new one, never half of one.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeBaseUrl, writeFileAtomic } from '@openwechat/client';

export const CONFIG_FILE = 'config.json';
export const STATE_FILE = 'mcp-state.json';

export interface Identity {
  baseUrl: string;
  token: string;
  /** Known from config.json or registration; from the stream's first log line otherwise. */
  id: number | null;
  name: string | null;
  source: 'env' | 'config' | 'register';
}

const writeAtomic = (path: string, text: string): Promise<void> =>
  writeFileAtomic(path, text, { mode: 0o600, dirMode: 0o700 });

async function readJson(path: string): Promise<Record<string, unknown> | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const v = JSON.parse(text) as unknown;
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${path}: not a JSON object`);
  return v as Record<string, unknown>;
}

/** The identity in DIR/config.json (a skill data folder's: base_url, token, my_id, my_name), or null. */
export async function loadConfigIdentity(dataDir: string): Promise<Identity | null> {
  const path = join(dataDir, CONFIG_FILE);
  const raw = await readJson(path);
  if (!raw) return null;
  if (typeof raw.base_url !== 'string' || typeof raw.token !== 'string' || !/^\S+$/.test(raw.token)) {
    throw new Error(`${path}: base_url and token are required`);
  }
  return {
    baseUrl: normalizeBaseUrl(raw.base_url),
    token: raw.token,
    id: typeof raw.my_id === 'number' ? raw.my_id : null,
    name: typeof raw.my_name === 'string' ? raw.my_name : null,
    source: 'config',
  };
}

/** Writes config.json as the skill does (mode 0600), so the folder also works as a skill data folder. */
export async function saveConfigIdentity(dataDir: string, id: Identity): Promise<void> {
  const path = join(dataDir, CONFIG_FILE);
  const old = (await readJson(path).catch(() => null)) ?? {};
  const config = {
    ...old,
    base_url: id.baseUrl,
    token: id.token,
    my_id: id.id,
    my_name: id.name,
    batch_size: typeof old.batch_size === 'number' ? old.batch_size : 5,
  };
  await writeAtomic(path, `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * Which account the state belongs to, without writing the token down: ids start over on another relay or
 * account, so a cursor of another account must not be used.
 */
export function accountOf(id: Pick<Identity, 'baseUrl' | 'token'>): string {
  return createHash('sha256').update(`${id.baseUrl}\n${id.token}`).digest('hex').slice(0, 32);
}

export interface CursorState {
  account: string;
  /** Every message with an id ≤ cursor was returned by a tool or pushed to the client. */
  cursor: number;
}

export class StateFile {
  private readonly path: string;
  private state: CursorState | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(dataDir: string) {
    this.path = join(dataDir, STATE_FILE);
  }

  async load(account: string): Promise<number> {
    const raw = await readJson(this.path);
    const cursor =
      raw && raw.account === account && typeof raw.cursor === 'number' && Number.isSafeInteger(raw.cursor)
        ? raw.cursor
        : 0;
    this.state = { account, cursor };
    return cursor;
  }

  get cursor(): number {
    return this.state?.cursor ?? 0;
  }

  /** Resolves once every cursor write started so far is done. */
  settled(): Promise<void> {
    return this.writing;
  }

  /** Moves the cursor forward (never back); resolves once it is on disk, and only then counts. */
  advance(to: number): Promise<boolean> {
    // One write at a time, in order: a later cursor is never overwritten by an earlier one, and the
    // cursor in memory (what acks follow) never runs ahead of the disk.
    const next = this.writing.then(async () => {
      const s = this.state;
      if (!s || to <= s.cursor) return false;
      await writeAtomic(this.path, `${JSON.stringify({ account: s.account, cursor: to })}\n`);
      s.cursor = to;
      return true;
    });
    this.writing = next.then(
      () => {},
      () => {},
    );
    return next;
  }
}
