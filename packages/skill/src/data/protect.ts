// The data folder protects itself: config.json holds the token, the rest is private chat. A workspace
// install may put the folder inside a git-backed workspace, so it carries a `.gitignore` that ignores
// everything in it; the folder is 0700 and its files 0600 (subfolders 0700). Applied on every start of a
// script (cheap: one readdir per folder), so a folder copied in with looser modes is tightened, never loosened.
// The entry points also set umask 077, so whatever they create is private from the start.

import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, writeFileAtomic } from './atomic.ts';
import { dataPath, FILES } from './paths.ts';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const GITIGNORE =
  '# Private data of openwechat-im-client (config.json holds the account token): never commit it.\n*\n';

async function tighten(path: string, depth: number): Promise<void> {
  const s = await lstat(path).catch(() => null);
  if (!s || s.isSymbolicLink()) return;
  if (s.isDirectory()) {
    if ((s.mode & 0o077) !== 0) await chmod(path, DIR_MODE);
    if (depth > 0) for (const name of await readdir(path)) await tighten(join(path, name), depth - 1);
  } else if (s.isFile() && (s.mode & 0o077) !== 0) await chmod(path, s.mode & 0o700);
}

export async function protectDataDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (!(await exists(dataPath(dir, 'gitignore')))) {
    await writeFileAtomic(dataPath(dir, 'gitignore'), GITIGNORE, { mode: FILE_MODE });
  }
  // Top level, files/ and migrations/ (two levels: migrations/v1/…).
  await tighten(dir, 1);
  await tighten(join(dir, FILES.files), 1);
  await tighten(join(dir, FILES.migrations), 2);
}
