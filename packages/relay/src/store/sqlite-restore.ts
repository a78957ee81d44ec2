// Restoring a SQLite backup over the relay's live database (admin CLI `restore`, SERVER.md "Backups and
// restores"). In order, touching nothing until the backup is known to be good:
//
// 1. The backup must be an openwechat relay database this relay can open: it is opened read-only, must
//    pass `PRAGMA quick_check`, have the schema_migrations / users / messages tables, and a schema version
//    not newer than this code.
// 2. The relay must not be running on the live database. Decision: ask SQLite's own file locks. Every
//    connection to a WAL database (the relay's, its checkpointer's, an admin command's) holds a shared lock
//    on the file for as long as it is open, even when idle, so an EXCLUSIVE lock taken by a connection in
//    `locking_mode = EXCLUSIVE` fails at once (SQLITE_BUSY) while any other process has it open — the same
//    test SQLite uses to know it is the last connection. This needs working POSIX locks: on a network
//    filesystem, stop the relay yourself. The lock is held until the new file is in place, so a relay
//    started meanwhile cannot open the old one (it waits, then opens the restored file or fails to start).
// 3. The old database's WAL is checkpointed into it (nothing is lost if we stop half-way), the backup is
//    copied next to the live file with SQLite's backup API (a consistent snapshot, including a WAL beside
//    the backup), fsynced, and renamed over the live file (atomic); stale -wal/-shm/-journal files of the
//    old database are removed first (a WAL applied to another database would corrupt it).
// 4. The message ids are advanced (Store.advanceMessageIds): the backup's ids are behind what clients
//    have seen, and an id must never be issued twice.

import { closeSync, existsSync, fsyncSync, openSync, realpathSync } from 'node:fs';
import { chmod, mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore } from './sqlite.ts';
import { SQLITE_SCHEMA_VERSION } from './sqlite-migrations.ts';

/** The restore was refused or failed before the live database was replaced (exit 1). */
export class RestoreRefused extends Error {}

export interface RestoreResult {
  /** Schema version of the backup (migrated to the current one when the relay next opens it). */
  schemaVersion: number;
  /** Users whose message ids were advanced. */
  users: number;
  by: number;
  /** There was a live database before the restore (false: restored into an empty data folder). */
  replaced: boolean;
}

const STALE_SUFFIXES = ['-wal', '-shm', '-journal'] as const;

/** Checks that `file` is an openwechat SQLite database this relay can open; returns its schema version. */
export function inspectSqliteBackup(file: string): number {
  if (!existsSync(file)) throw new RestoreRefused(`backup file not found: ${file}`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new RestoreRefused(`cannot open ${file}: ${(err as Error).message}`);
  }
  try {
    // A file that is not SQLite at all fails here ("file is not a database").
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new RestoreRefused(`${file} is damaged (quick_check: ${String(check)})`);
    const tables = new Set(
      db.prepare<[], string>(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all(),
    );
    const missing = ['schema_migrations', 'users', 'messages'].filter((t) => !tables.has(t));
    if (missing.length > 0) {
      throw new RestoreRefused(
        `${file} is not an openwechat relay database (no ${missing.join(', ')} table${missing.length > 1 ? 's' : ''})`,
      );
    }
    const version = db.prepare<[], number | null>('SELECT max(version) FROM schema_migrations').pluck().get();
    if (!version) throw new RestoreRefused(`${file} is not an openwechat relay database (no schema version)`);
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new RestoreRefused(
        `${file} has schema version ${version}, newer than this relay supports (${SQLITE_SCHEMA_VERSION}); upgrade the relay first`,
      );
    }
    return version;
  } catch (err) {
    if (err instanceof RestoreRefused) throw err;
    throw new RestoreRefused(`${file} is not a usable SQLite database: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

/**
 * Locks the live database exclusively (see the header: fails while the relay has it open) and folds its
 * WAL into it. Returns the connection holding the lock, or null if the file cannot be opened as a
 * database at all (a damaged database is a reason to restore: it is replaced without the check).
 */
function lockLiveDatabase(file: string): Database.Database | null {
  let db: Database.Database;
  try {
    db = new Database(file, { fileMustExist: true, timeout: 200 });
  } catch {
    return null;
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    db.pragma('wal_checkpoint(TRUNCATE)');
    return db;
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY') || /locked|busy/i.test(String(err))) {
      throw new RestoreRefused(
        `${file} is in use: the relay (or another admin command) appears to be running on it; stop it first`,
      );
    }
    return null;
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces the live database `live` with the backup `backup`, then advances the message ids by `by`. */
export async function restoreSqlite(opts: {
  backup: string;
  live: string;
  by: number;
}): Promise<RestoreResult> {
  const { backup, live, by } = opts;
  if (existsSync(backup) && existsSync(live) && realpathSync(backup) === realpathSync(live)) {
    throw new RestoreRefused(`${backup} is the live database itself; restore from a backup copy`);
  }
  // Opening a WAL-mode file read-only creates -wal/-shm beside it that its close does not remove; those
  // that did not exist before are ours to clean up (the backup folder is left as it was).
  const created = ['-wal', '-shm'].filter((s) => !existsSync(backup + s));
  try {
    return await replaceWithBackup(backup, live, by);
  } finally {
    for (const s of created) await rm(backup + s, { force: true }).catch(() => undefined);
  }
}

async function replaceWithBackup(backup: string, live: string, by: number): Promise<RestoreResult> {
  const schemaVersion = inspectSqliteBackup(backup);
  const dir = dirname(live);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const replaced = existsSync(live);
  const lock = replaced ? lockLiveDatabase(live) : null;
  const tmp = `${live}.restoring`;
  try {
    for (const f of [tmp, ...STALE_SUFFIXES.map((s) => tmp + s)]) await rm(f, { force: true });
    const src = new Database(backup, { readonly: true, fileMustExist: true });
    try {
      await src.backup(tmp);
    } finally {
      src.close();
    }
    await chmod(tmp, 0o600); // it holds every message and token hash
    fsyncPath(tmp);
    for (const s of STALE_SUFFIXES) await rm(live + s, { force: true });
    await rename(tmp, live);
    fsyncPath(dir);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  } finally {
    lock?.close();
  }
  // Closing the lock's connection may have touched the old database's side files: never leave them.
  for (const s of STALE_SUFFIXES) await rm(live + s, { force: true });

  const store = await openSqliteStore({ file: live });
  try {
    const advanced = await store.advanceMessageIds(by);
    return { schemaVersion, users: advanced.users, by: advanced.by, replaced };
  } finally {
    await store.close();
  }
}
