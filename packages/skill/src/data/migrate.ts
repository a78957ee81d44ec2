// Bringing a data folder written by an older skill version up to this one, in place, keeping everything.
//
// Version 1 is the guide's Python skill (≤ 1.0.29): config.json without `data_version`, and the guide's
// layouts, which this skill writes too (contacts.json keyed by id, profile.json with my_id/my_name/status/
// updated_at_utc, the guide's counters in stats.json, context_snapshot.json): nothing of it needs
// converting, so nothing is rewritten but config.json (`data_version` added). Version 2 is skill 0.x, whose
// contacts.json (`{"updated_at","contacts":[…]}`) and profile.json (`id`, `name`, `updated_at`) left the
// guide's layout: those two are converted back. stats.json and context_snapshot.json are views: the next
// refresh (derived.ts) keeps every key they have and never lowers a counter.
//
// Rules: a file is converted only if it has an old shape; its original is first copied to
// migrations/v<from>/<name> (never overwritten); the append-only files (conversations.md, inbox_pushed.md,
// sse_channel.log) and files/ are never rewritten — old conversations.md lines stay readable (formats.ts);
// keys we do not know are kept. A data folder written by a newer skill is refused, never downgraded.

import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { CONFIG_MODE, DATA_VERSION, readConfigRaw, updateProfile } from './config.ts';
import { contactsFileOf, isListContactsFile, readContacts } from './contacts.ts';
import { withLock } from './lock.ts';
import { dataPath, FILES } from './paths.ts';
import { protectDataDir } from './protect.ts';

export class DataTooNewError extends Error {
  constructor(readonly found: number) {
    super(
      `the data folder was written by a newer skill (data_version ${found}, this skill knows ${DATA_VERSION}); ` +
        'upgrade the skill instead (nothing was changed)',
    );
    this.name = 'DataTooNewError';
  }
}

export interface MigrationReport {
  from: number | null;
  to: number;
  /** Files converted (their originals are in migrations/v<from>/). */
  converted: string[];
}

/** Copies the original into migrations/v<from>/ under a name that is not taken yet. */
async function backup(dir: string, name: string, from: number, mode?: number): Promise<void> {
  const folder = join(dir, FILES.migrations, `v${from}`);
  let target = join(folder, name);
  for (let i = 1; await exists(target); i++) target = join(folder, `${name}.${i}`);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await copyFile(join(dir, name), target);
  await chmod(target, mode ?? 0o600);
}

/** Migrates in place; safe to call on every start (does nothing on a current folder but protect it). */
export async function migrateDataDir(dir: string, now = Date.now()): Promise<MigrationReport> {
  const config = await readConfigRaw(dir);
  const version = config ? (typeof config.data_version === 'number' ? config.data_version : 1) : null;
  if (version !== null && version > DATA_VERSION) throw new DataTooNewError(version);
  await protectDataDir(dir);
  return withLock(dir, 'migrate', async () => {
    const from = version ?? 1;
    const converted: string[] = [];

    const contacts = await readJsonOrNull<unknown>(dataPath(dir, 'contacts'));
    if (isListContactsFile(contacts)) {
      await backup(dir, FILES.contacts, from);
      const { contacts: _list, updated_at: _u, ...rest } = contacts as Record<string, unknown>;
      await writeJsonAtomic(dataPath(dir, 'contacts'), contactsFileOf(await readContacts(dir), rest));
      converted.push(FILES.contacts);
    }

    const profile = await readJsonOrNull<Record<string, unknown>>(dataPath(dir, 'profile'));
    if (profile && typeof profile.my_id !== 'number' && typeof profile.id === 'number') {
      await backup(dir, FILES.profile, from);
      const { id, name, updated_at, ...rest } = profile;
      await writeJsonAtomic(dataPath(dir, 'profile'), {});
      await updateProfile(
        dir,
        {
          my_id: id as number,
          my_name: typeof name === 'string' ? name : String(config?.my_name ?? ''),
          base_url: typeof rest.base_url === 'string' ? rest.base_url : String(config?.base_url ?? ''),
        },
        {
          ...rest,
          status: typeof rest.status === 'string' ? rest.status : null,
          ...(typeof updated_at === 'string' ? { updated_at_utc: `${updated_at.slice(0, 19)}Z` } : {}),
        },
        now,
      );
      converted.push(FILES.profile);
    }

    if (config && config.data_version !== DATA_VERSION) {
      await backup(dir, FILES.config, from, CONFIG_MODE);
      await writeJsonAtomic(
        dataPath(dir, 'config'),
        { ...config, data_version: DATA_VERSION },
        { mode: CONFIG_MODE },
      );
      converted.push(FILES.config);
    }
    return { from: converted.length ? from : version, to: DATA_VERSION, converted };
  });
}
