// `npm run admin -- <command>`: operator tools working directly on the relay's store (the same settings
// as the relay: flags, environment, --config). Safe to run while the relay serves: every change is one
// transaction, and a backup is SQLite's online backup. The exception is `restore`, which needs the relay
// stopped (and refuses while it runs).
//
//   users [--query TEXT] [--limit N] [--offset N]   list users
//   user <id>                                        one user
//   disable <id> | enable <id>                       refuse / allow the user's token; hide from discovery
//   reset-token <id>                                 new token, printed once (the old one stops working)
//   stats                                            counts
//   backup <file>                                    consistent copy of the SQLite database
//   restore <file> [--by N]                          SQLite: replace the database with a backup (relay
//                                                    stopped), then advance-ids
//   advance-ids [--by N]                             add N (default 1,000,000) to every inbox's last
//                                                    message id: run after any restore (pg_restore, a
//                                                    file copy) BEFORE starting the relay(s)
//   prune                                            delete expired messages, files and idempotency records
// Add --json for machine-readable output. Exit codes: 0 ok, 1 not found / failed, 2 usage or configuration.
//
// Why advance-ids: message ids are per recipient and clients keep the last one they saw (a resume stream's
// Last-Event-ID acknowledges, i.e. deletes, everything up to it; the skill drops an id it has seen). A
// restored database issues ids again from where the backup stood, so new messages would be acknowledged
// unseen or dropped as duplicates. Advancing every inbox past anything issued since the backup prevents it.

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { beijingTime, STATUS_LABELS } from '@openwechat/protocol';
import { ConfigError, loadConfig, SETTING_NAMES, type RelayConfig } from './config.ts';
import { IDEMPOTENCY_WINDOW_MS } from './http/handlers/messaging.ts';
import { sha256Hex } from './http/route.ts';
import { openPostgresStore } from './store/postgres.ts';
import { openSqliteStore } from './store/sqlite.ts';
import { restoreSqlite } from './store/sqlite-restore.ts';
import type { Store, UserRecord } from './store/types.ts';

export const ADMIN_USAGE = `Usage: npm run admin -- <command> [args] [--json] [--config FILE] [--<setting> VALUE]
Commands:
  users [--query TEXT] [--limit N] [--offset N]
  user <id>
  disable <id>
  enable <id>
  reset-token <id>
  stats
  backup <file>
  restore <file> [--by N]   SQLite only, relay stopped: replace the database with a backup, advance ids
  advance-ids [--by N]      after any restore, before starting the relay(s): ids += N (default 1000000)
  prune`;

/** advance-ids' default step: more messages than any one inbox receives between a backup and its restore. */
export const DEFAULT_ADVANCE_BY = 1_000_000;
export const MAX_ADVANCE_BY = 2 ** 40;

export class UsageError extends Error {}

interface Io {
  out(line: string): void;
  now(): number;
}

function userLine(u: UserRecord): string {
  const seen = u.lastSeenAt === null ? '—' : beijingTime(u.lastSeenAt);
  const state = u.disabledAt === null ? STATUS_LABELS[u.status] : `已停用（${beijingTime(u.disabledAt)}）`;
  return `${String(u.id).padStart(6)}  ${u.name}  ${state}  注册 ${beijingTime(u.createdAt)}  最后活跃 ${seen}`;
}

function userJson(u: UserRecord) {
  return {
    id: u.id,
    name: u.name,
    description: u.description,
    status: u.status,
    created_at: new Date(u.createdAt).toISOString(),
    last_seen_at: u.lastSeenAt === null ? null : new Date(u.lastSeenAt).toISOString(),
    disabled_at: u.disabledAt === null ? null : new Date(u.disabledAt).toISOString(),
  };
}

function idArg(v: string | undefined): number {
  if (!v || !/^\d+$/.test(v)) throw new UsageError('a numeric user id is required');
  return Number(v);
}

/** The --by of advance-ids and restore: a positive integer ≤ 2^40 (default DEFAULT_ADVANCE_BY). */
export function advanceByArg(v: string | undefined): number {
  if (v === undefined) return DEFAULT_ADVANCE_BY;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= MAX_ADVANCE_BY)) {
    throw new UsageError(`--by must be a positive integer up to 2^40 (${MAX_ADVANCE_BY}), got ${v}`);
  }
  return n;
}

function advancedText(users: number, by: number): string {
  return `已推进消息 ID：${users} 位用户的收件箱，每个 +${by}（此后的新消息 ID 均大于此前发出的任何 ID）`;
}

/** Runs one admin command against a store. Returns the exit code. */
export async function runAdmin(
  store: Store,
  config: RelayConfig,
  command: string,
  args: string[],
  opts: { json: boolean; query?: string; limit?: number; offset?: number; by?: string },
  io: Io,
): Promise<number> {
  const emit = (json: unknown, text: string) => io.out(opts.json ? JSON.stringify(json) : text);
  switch (command) {
    case 'users': {
      const page = await store.listUsers({
        query: opts.query ?? null,
        limit: opts.limit ?? 50,
        offset: opts.offset ?? 0,
      });
      emit(
        { total: page.total, users: page.users.map(userJson) },
        [`共 ${page.total} 位用户`, ...page.users.map(userLine)].join('\n'),
      );
      return 0;
    }
    case 'user': {
      const u = await store.getUser(idArg(args[0]));
      if (!u) {
        emit({ error: 'user_not_found' }, '用户不存在');
        return 1;
      }
      emit({ user: userJson(u) }, userLine(u));
      return 0;
    }
    case 'disable':
    case 'enable': {
      const u = await store.setUserDisabled(idArg(args[0]), command === 'disable' ? io.now() : null);
      if (!u) {
        emit({ error: 'user_not_found' }, '用户不存在');
        return 1;
      }
      emit({ user: userJson(u) }, `${command === 'disable' ? '已停用' : '已启用'}：${userLine(u).trim()}`);
      return 0;
    }
    case 'reset-token': {
      const id = idArg(args[0]);
      const token = randomBytes(16).toString('hex');
      if (!(await store.setTokenHash(id, sha256Hex(token)))) {
        emit({ error: 'user_not_found' }, '用户不存在');
        return 1;
      }
      emit({ id, token }, `用户 ${id} 的新 Token：${token}\n请妥善保存，仅此一次显示；旧 Token 已失效。`);
      return 0;
    }
    case 'stats': {
      const s = await store.getStats();
      emit(s, `用户 ${s.users}  好友关系 ${s.friendships}  消息 ${s.messages}`);
      return 0;
    }
    case 'backup': {
      const file = args[0];
      if (!file) throw new UsageError('backup needs a destination file');
      if (existsSync(file)) throw new UsageError(`${file} exists; choose a new file`);
      await store.backup(file);
      await chmod(file, 0o600); // it holds every message and token hash
      emit({ backup: file }, `备份完成：${file}`);
      return 0;
    }
    case 'advance-ids': {
      const r = await store.advanceMessageIds(advanceByArg(opts.by));
      emit({ users: r.users, by: r.by }, advancedText(r.users, r.by));
      return 0;
    }
    case 'restore':
      // Handled before a store is opened (main → restoreCommand); reaching here is a programming error.
      throw new UsageError('restore runs from the command line only');
    case 'prune': {
      const now = io.now();
      const messages = await store.expireMessages(now - config.messageRetentionDays * 86_400_000);
      const files = await store.sweepFiles(now);
      const keys = await store.pruneIdempotency(now - IDEMPOTENCY_WINDOW_MS);
      emit(
        { messages, files, idempotency_keys: keys },
        `已清理：过期消息 ${messages} 条，附件 ${files} 个，幂等记录 ${keys} 条`,
      );
      return 0;
    }
    default:
      throw new UsageError(command ? `unknown command: ${command}` : 'a command is required');
  }
}

/**
 * `restore <file> [--by N]`: SQLite only. Runs before any store is opened, since it replaces the live
 * file (store/sqlite-restore.ts: checks, in-use refusal, atomic replace), then advances the ids.
 */
export async function restoreCommand(
  config: RelayConfig,
  args: string[],
  opts: { json: boolean; by?: string },
  io: { out(line: string): void; err(line: string): void },
): Promise<number> {
  if (config.databaseUrl) {
    io.err(
      'restore replaces the SQLite file and is for the SQLite backend only. With PostgreSQL, restore with ' +
        'pg_restore, then run `npm run admin -- advance-ids` before starting the relays ' +
        '(SERVER.md, "Backups and restores").',
    );
    return 2;
  }
  const backup = args[0];
  if (!backup) throw new UsageError('restore needs a backup file');
  const by = advanceByArg(opts.by);
  const live = join(config.dataDir, 'relay.sqlite');
  const r = await restoreSqlite({ backup, live, by });
  io.out(
    opts.json
      ? JSON.stringify({
          restored: backup,
          database: live,
          schema_version: r.schemaVersion,
          replaced: r.replaced,
          users: r.users,
          by: r.by,
        })
      : [
          `已从备份恢复：${backup} → ${live}${r.replaced ? '（原数据库已被替换）' : ''}`,
          advancedText(r.users, r.by),
          '现在可以启动中继。',
        ].join('\n'),
  );
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const settingFlags = Object.fromEntries(
    SETTING_NAMES.map((s) => [s.env.toLowerCase().replace(/_/g, '-'), { type: 'string' as const }]),
  );
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...settingFlags,
        config: { type: 'string' },
        json: { type: 'boolean' },
        query: { type: 'string' },
        limit: { type: 'string' },
        offset: { type: 'string' },
        by: { type: 'string' },
        help: { type: 'boolean' },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${ADMIN_USAGE}`);
    return 2;
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help) {
    console.log(ADMIN_USAGE);
    return 0;
  }
  const flags: Record<string, unknown> = {};
  for (const s of SETTING_NAMES) {
    const x = v[s.env.toLowerCase().replace(/_/g, '-')];
    if (x !== undefined) flags[s.env] = x;
  }
  let config: RelayConfig;
  try {
    config = loadConfig({ flags, env: process.env, file: (v.config as string) ?? process.env.RELAY_CONFIG });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const num = (x: unknown) => (typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : undefined);
  const [command = '', ...args] = parsed.positionals;
  const by = v.by as string | undefined;
  /** Runs a command; a UsageError exits 2 with the usage, any other failure 1. */
  const guarded = async (run: () => Promise<number>): Promise<number> => {
    try {
      return await run();
    } catch (err) {
      if (err instanceof UsageError) {
        console.error(`${err.message}\n\n${ADMIN_USAGE}`);
        return 2;
      }
      console.error(`error: ${(err as Error).message}`);
      return 1;
    }
  };
  if (command === 'restore') {
    // Before the "no relay database" check: restoring into an empty data folder is allowed.
    return guarded(() =>
      restoreCommand(
        config,
        args,
        { json: Boolean(v.json), by },
        {
          out: (line) => console.log(line),
          err: (line) => console.error(line),
        },
      ),
    );
  }
  const sqliteFile = join(config.dataDir, 'relay.sqlite');
  if (!config.databaseUrl && !existsSync(sqliteFile)) {
    console.error(`no relay database at ${sqliteFile} (set DATA_DIR or DATABASE_URL)`);
    return 2;
  }
  const store = config.databaseUrl
    ? await openPostgresStore({ url: config.databaseUrl }).then(async ({ store, bus }) => {
        await bus.close();
        return store;
      })
    : await openSqliteStore({ file: sqliteFile });
  try {
    return await guarded(() =>
      runAdmin(
        store,
        config,
        command,
        args,
        {
          json: Boolean(v.json),
          query: v.query as string | undefined,
          limit: num(v.limit),
          offset: num(v.offset),
          by,
        },
        { out: (line) => console.log(line), now: Date.now },
      ),
    );
  } finally {
    await store.close();
  }
}

// Run only as the entry point (importing this module has no side effects).
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
