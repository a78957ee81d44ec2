// Bringing a data folder written by an older skill version up to this one, in place, keeping everything.
//
// Version 1 is the layout of the guide's Python skill (≤ 1.0.29): config.json without `data_version`,
// contacts.json as a map `{"<id>": {"name","relationship","last_seen_utc"}}`, profile.json with
// `my_id/my_name/status/updated_at_utc`, stats.json with friends/pending counters, context_snapshot.json
// with `updated_at_utc/latest_peers`. Version 2 is this skill (see the file formats in formats.ts,
// contacts.ts, config.ts, derived.ts).
//
// Rules: each file is converted only if it has the old shape; its original is first copied to
// migrations/v1/<name> (never overwritten); the append-only files (conversations.md, inbox_pushed.md,
// sse_channel.log) and files/ are never rewritten; keys we do not know are kept. A data folder written by
// a newer skill is refused, never downgraded.

import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { exists, readJsonOrNull, writeJsonAtomic } from './atomic.ts';
import { CONFIG_MODE, DATA_VERSION, readConfigRaw } from './config.ts';
import { isContactsFile, RELATIONSHIPS, type Contact, type Relationship } from './contacts.ts';
import { refreshDerived } from './derived.ts';
import { withLock } from './lock.ts';
import { dataPath, FILES } from './paths.ts';

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
  /** Files converted (their originals are in migrations/v1/). */
  converted: string[];
}

/** Copies the original into migrations/v<from>/ under a name that is not taken yet. */
async function backup(dir: string, name: string, from: number, mode?: number): Promise<void> {
  const folder = join(dir, FILES.migrations, `v${from}`);
  let target = join(folder, name);
  for (let i = 1; await exists(target); i++) target = join(folder, `${name}.${i}`);
  await mkdir(folder, { recursive: true });
  await copyFile(dataPath(dir, keyOf(name)), target);
  if (mode !== undefined) await chmod(target, mode);
}

function keyOf(name: string): keyof typeof FILES {
  const entry = Object.entries(FILES).find(([, v]) => v === name);
  if (!entry) throw new Error(`unknown data file ${name}`);
  return entry[0] as keyof typeof FILES;
}

function relationshipOf(v: unknown): Relationship {
  return RELATIONSHIPS.includes(v as Relationship) ? (v as Relationship) : 'none';
}

function contactsFromV1(
  old: Record<string, unknown>,
  nowIso: string,
): { updated_at: string; contacts: Contact[] } {
  const contacts: Contact[] = [];
  for (const [key, value] of Object.entries(old)) {
    if (!/^\d+$/.test(key) || typeof value !== 'object' || value === null) continue;
    const v = value as Record<string, unknown>;
    contacts.push({
      ...v,
      id: Number(key),
      name: typeof v.name === 'string' ? v.name : '',
      description: typeof v.description === 'string' ? v.description : null,
      relationship: relationshipOf(v.relationship),
      since: typeof v.since === 'string' ? v.since : null,
      last_message_at: typeof v.last_message_at === 'string' ? v.last_message_at : null,
    });
  }
  contacts.sort((a, b) => a.id - b.id);
  return { updated_at: nowIso, contacts };
}

/** Migrates in place; safe to call on every start (does nothing on a current folder). */
export async function migrateDataDir(dir: string, now = Date.now()): Promise<MigrationReport> {
  return withLock(dir, 'migrate', async () => {
    const nowIso = new Date(now).toISOString();
    const config = await readConfigRaw(dir);
    const version = config ? (typeof config.data_version === 'number' ? config.data_version : 1) : null;
    if (version !== null && version > DATA_VERSION) throw new DataTooNewError(version);
    const from = version ?? 1;
    const converted: string[] = [];

    const contacts = await readJsonOrNull<unknown>(dataPath(dir, 'contacts'));
    if (contacts !== null && !isContactsFile(contacts) && typeof contacts === 'object') {
      await backup(dir, FILES.contacts, from);
      await writeJsonAtomic(
        dataPath(dir, 'contacts'),
        contactsFromV1(contacts as Record<string, unknown>, nowIso),
      );
      converted.push(FILES.contacts);
    }

    const profile = await readJsonOrNull<Record<string, unknown>>(dataPath(dir, 'profile'));
    if (profile && typeof profile.id !== 'number' && ('my_id' in profile || 'my_name' in profile)) {
      await backup(dir, FILES.profile, from);
      const { my_id, my_name, updated_at_utc, ...rest } = profile;
      await writeJsonAtomic(dataPath(dir, 'profile'), {
        ...rest,
        id: typeof my_id === 'number' ? my_id : (config?.my_id ?? null),
        name: typeof my_name === 'string' ? my_name : (config?.my_name ?? null),
        description: typeof rest.description === 'string' ? rest.description : null,
        status: typeof rest.status === 'string' ? rest.status : null,
        base_url: typeof config?.base_url === 'string' ? config.base_url : null,
        registered_at: null,
        updated_at: typeof updated_at_utc === 'string' ? updated_at_utc : nowIso,
      });
      converted.push(FILES.profile);
    }

    // Derived views: the old ones are kept in migrations/, new ones are computed from the history.
    let refresh = false;
    const stats = await readJsonOrNull<Record<string, unknown>>(dataPath(dir, 'stats'));
    if (stats && (typeof stats.by_type !== 'object' || !('sse' in stats))) {
      await backup(dir, FILES.stats, from);
      converted.push(FILES.stats);
      refresh = true;
    }
    const snapshot = await readJsonOrNull<Record<string, unknown>>(dataPath(dir, 'snapshot'));
    if (snapshot && (typeof snapshot.me !== 'object' || !Array.isArray(snapshot.recent))) {
      await backup(dir, FILES.snapshot, from);
      converted.push(FILES.snapshot);
      refresh = true;
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
    if (refresh) await refreshDerived(dir, { now });
    return { from: converted.length ? from : version, to: DATA_VERSION, converted };
  });
}
