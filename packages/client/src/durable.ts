// Replacing a file so that a crash at any instant leaves the old one or the new one, never half of one: the
// skill's data folder, the MCP server's state, the E2E key store all write this way. It lives in the client
// package because that is the lowest one all of them import (the protocol package stays free of node:fs).

import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

async function fsyncDir(dir: string): Promise<void> {
  // Makes the rename itself durable. Not possible on every platform (Windows): best effort.
  try {
    const fh = await open(dir, constants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // ignore
  }
}

/**
 * Writes `data` to a hidden temporary file beside `path`, fsyncs it and renames it over `path` (then fsyncs
 * the folder). `mode` (default 0600) is the file's exact mode, whatever the umask; `dirMode` the mode of
 * folders created on the way (default: the umask's).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: { mode?: number; dirMode?: number } = {},
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, ...(opts.dirMode === undefined ? {} : { mode: opts.dirMode }) });
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(tmp, 'w', opts.mode ?? 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  // open()'s mode is filtered by the umask; a secret file must end up exactly at its mode.
  if (opts.mode !== undefined) await chmod(tmp, opts.mode);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}
