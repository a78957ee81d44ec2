// Durable file writes. A replaced file is written to a temporary name, fsynced and renamed over the old
// one (readers see the old or the new file, never half of one: writeFileAtomic, shared with the MCP server
// and the E2E key store through @openwechat/client); an appended record is one write() followed by fsync.
// Nothing here deletes user data.

import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '@openwechat/client';

export { writeFileAtomic };

export async function writeJsonAtomic(
  path: string,
  value: unknown,
  opts: { mode?: number } = {},
): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, opts);
}

/** Appends text with one write() and fsyncs it. */
export async function appendDurable(path: string, text: string): Promise<void> {
  if (text === '') return;
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, 'a', 0o600);
  try {
    await fh.write(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export class DataFileError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'DataFileError';
  }
}

/** Parsed JSON, or null when the file does not exist. A file that is not JSON is an error (never replaced). */
export async function readJsonOrNull<T>(path: string): Promise<T | null> {
  const text = await readTextOrNull(path);
  if (text === null) return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new DataFileError(path, `${path} is not valid JSON; fix or move it away (it was not changed)`);
  }
}

export async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
