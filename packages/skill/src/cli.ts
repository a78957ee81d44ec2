// `openwechat` (scripts/openwechat.js): one command per relay endpoint plus the local chores (daemon,
// doctor, retention, UI). Human-readable output by default, `--json` for machines; exit codes in EXIT
// (daemon.ts). Every command works against our relay and the reference (`--legacy` forces the latter's
// behaviour); results that change local state are written to the data folder before the command returns.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { openSync, closeSync } from 'node:fs';
import { access, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  ClientError,
  RelayClient,
  type Group,
  type GroupMember,
  type GroupSendResult,
  type Message,
  type User,
} from '@openwechat/client';
import { parseGroupSendReply, USER_STATUSES, type UserStatus } from '@openwechat/protocol';
import { appendDurable, exists, readJsonOrNull, readTextOrNull, writeJsonAtomic } from './data/atomic.ts';
import {
  configMode,
  CONFIG_MODE,
  DATA_VERSION,
  loadConfig,
  readConfigRaw,
  readProfile,
  restrictConfig,
  saveConfig,
  updateProfile,
  type SkillConfig,
} from './data/config.ts';
import {
  readContacts,
  setRelationship,
  updateContacts,
  upsertContact,
  type Contact,
} from './data/contacts.ts';
import { refreshDerived, type StatsFile } from './data/derived.ts';
import { CHANNEL_LINE_RE, formatChannelLine, groupKey, utcSecond } from './data/formats.ts';
import { groupEntry, readGroups, refreshGroups, updateGroups } from './data/groups.ts';
import { attachmentPath, InboxWriter } from './data/inbox.ts';
import { acquireInstance, queryInstance } from './data/lock.ts';
import { migrateDataDir } from './data/migrate.ts';
import { recordGroupSent, recordSent } from './data/outgoing.ts';
import {
  dataDir as defaultDataDir,
  dataPath,
  FILES,
  scriptCommand,
  skillRoot,
  BUNDLED,
} from './data/paths.ts';
import { retention } from './data/retention.ts';
import { DAEMON_LOCK, daemonOptionsFromEnv, EXIT, runDaemon } from './daemon.ts';
import { CliError, makeOut, toCliError, usageError, type Out } from './output.ts';
import { SKILL_VERSION } from './version.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Ctx {
  dir: string;
  out: Out;
  legacy: boolean;
  env: NodeJS.ProcessEnv;
  values: Record<string, string | boolean | undefined>;
  args: string[];
  /** Exit code of a command that ran but reports a problem (doctor, daemon status). */
  exit: number;
}

type Options = NonNullable<ParseArgsConfig['options']>;

interface Command {
  usage: string;
  summary: string;
  options?: Options;
  run(ctx: Ctx): Promise<void>;
}

const GLOBAL_OPTIONS: Options = {
  json: { type: 'boolean' },
  'data-dir': { type: 'string' },
  legacy: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

// ───────────────────────────── helpers ─────────────────────────────

function clientFor(ctx: Ctx, config: { base_url: string; token?: string | null }): RelayClient {
  return new RelayClient({
    baseUrl: config.base_url,
    token: config.token ?? null,
    mode: ctx.legacy ? 'text' : 'auto',
  });
}

async function configured(ctx: Ctx): Promise<{ config: SkillConfig; client: RelayClient }> {
  const config = await loadConfig(ctx.dir);
  return { config, client: clientFor(ctx, config) };
}

function intArg(raw: string | undefined, what: string): number {
  if (raw === undefined || !/^\d+$/.test(raw.trim()) || Number(raw) < 1) {
    throw usageError(
      `${what} must be a positive integer${raw === undefined ? ' (missing)' : `, got "${raw}"`}`,
    );
  }
  return Number(raw);
}

function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function who(id: number, name: string | null | undefined): string {
  return `#${id}(${name ?? ''})`;
}

function userLine(u: User): string {
  const status = u.status ? ` [${u.status}]` : '';
  const desc = u.description ? ` — ${u.description.replace(/\n/g, ' ')}` : '';
  return `#${u.id} ${u.name}${status}${desc}`;
}

function userJson(u: User): Record<string, unknown> {
  return {
    id: u.id,
    name: u.name,
    description: u.description,
    status: u.status,
    created_at: u.createdAt === null ? null : new Date(u.createdAt).toISOString(),
    last_seen_at: u.lastSeenAt === null ? null : new Date(u.lastSeenAt).toISOString(),
  };
}

function messageJson(m: Message): Record<string, unknown> {
  return {
    id: m.id,
    time: utcSecond(m.createdAt),
    type: m.type,
    from_id: m.fromId,
    from_name: m.from?.name ?? null,
    content: m.content,
    attachment: m.attachment ? { name: m.attachment.name, file_id: m.attachment.fileId ?? null } : null,
    group: m.group ? { id: m.group.id, name: m.group.name } : null,
    mentioned: m.mentioned === true,
  };
}

function messageLine(m: Message): string {
  const from = m.type === 'system' ? 'system' : `#${m.fromId ?? '?'} ${m.from?.name ?? ''}`.trim();
  const file = m.attachment ? ` [attachment: ${m.attachment.name}]` : '';
  const group = m.group ? ` in #${groupKey(m.group.id)}(${m.group.name})${m.mentioned ? ' @you' : ''}` : '';
  return `[${utcSecond(m.createdAt)}] ${from}${group} (${m.type}${m.id !== null ? `, id ${m.id}` : ''})${file}: ${m.content}`;
}

/** The name to show for a user id: contacts.json first, then the relay (and remember it). */
async function nameOf(ctx: Ctx, client: RelayClient, id: number): Promise<string> {
  const known = (await readContacts(ctx.dir)).get(id);
  if (known?.name) return known.name;
  try {
    const u = await client.user(id);
    await updateContacts(ctx.dir, (map) => void upsertContact(map, u));
    return u.name;
  } catch {
    return '';
  }
}

async function readContent(ctx: Ctx, positional: string[]): Promise<string> {
  const flag = str(ctx.values.content);
  const text = flag ?? positional.join(' ');
  if (text === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
  }
  return text;
}

/** Sends with retries on network failures; safe on our relay thanks to the idempotency key. */
async function withRetry<T>(client: RelayClient, fn: () => Promise<T>): Promise<T> {
  const canRetry = (await client.capabilities().catch(() => null))?.idempotency ?? false;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const transient = err instanceof ClientError && (err.kind === 'network' || err.kind === 'timeout');
      if (!transient || !canRetry || attempt >= 3) throw err;
      await sleep(500 * attempt);
    }
  }
}

async function daemonStatus(dir: string): Promise<Record<string, unknown> | null> {
  return queryInstance(dir, DAEMON_LOCK);
}

function lastChannelLine(text: string | null): { time: string; state: string; details: string } | null {
  if (!text) return null;
  const lines = text.trimEnd().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = CHANNEL_LINE_RE.exec(lines[i] ?? '');
    if (m && m[2] !== 'server') return { time: m[1]!, state: m[2]!, details: m[3] ?? '' };
  }
  return null;
}

// ───────────────────────────── commands ─────────────────────────────

const register: Command = {
  usage:
    'register --base-url <url> --name <name> [--description <text>] [--status open|friends_only|do_not_disturb] [--force]',
  summary: 'create an account on your relay; writes config.json (0600) and profile.json',
  options: {
    'base-url': { type: 'string' },
    name: { type: 'string' },
    description: { type: 'string' },
    status: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run(ctx) {
    const old = await readConfigRaw(ctx.dir).catch(() => null);
    const name = str(ctx.values.name) ?? ctx.args[0];
    if (!name) throw usageError('--name is required');
    const baseUrl =
      str(ctx.values['base-url']) ?? (typeof old?.base_url === 'string' ? old.base_url : undefined);
    if (!baseUrl) {
      throw usageError(
        '--base-url is required: the address of your relay server',
        'No server address is built in. Get the demo relay address or the self-hosting guide from the openwechat-claw project (see SERVER.md).',
      );
    }
    const status = str(ctx.values.status);
    if (status !== undefined && !USER_STATUSES.includes(status as UserStatus)) {
      throw usageError(`--status must be one of ${USER_STATUSES.join(', ')}`);
    }
    if (old && typeof old.token === 'string' && old.token && !ctx.values.force) {
      throw new CliError(
        EXIT.usage,
        'already_registered',
        `already registered as #${String(old.my_id)}(${String(old.my_name)}) on ${String(old.base_url)}`,
        'Registering again replaces config.json (the old one is kept in migrations/replaced/). Add --force to do it.',
      );
    }
    const client = clientFor(ctx, { base_url: baseUrl });
    const { user, token } = await client.register({
      name,
      description: str(ctx.values.description) ?? null,
      status: status as UserStatus | undefined,
    });
    await mkdir(ctx.dir, { recursive: true });
    if (old) {
      const folder = join(ctx.dir, FILES.migrations, 'replaced');
      await mkdir(folder, { recursive: true });
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      await writeJsonAtomic(join(folder, `config.${stamp}.json`), old, { mode: CONFIG_MODE });
    }
    const config: SkillConfig = {
      base_url: client.baseUrl,
      token,
      my_id: user.id,
      my_name: user.name,
      batch_size: typeof old?.batch_size === 'number' ? old.batch_size : 5,
      data_version: DATA_VERSION,
    };
    await saveConfig(ctx.dir, config);
    const nowIso = new Date().toISOString();
    const profile = {
      id: user.id,
      name: user.name,
      description: user.description,
      status: user.status,
      base_url: client.baseUrl,
      registered_at: nowIso,
      updated_at: nowIso,
    };
    await writeJsonAtomic(dataPath(ctx.dir, 'profile'), profile);
    await refreshDerived(ctx.dir);
    ctx.out.result({
      id: user.id,
      name: user.name,
      token,
      base_url: client.baseUrl,
      status: user.status,
      config: dataPath(ctx.dir, 'config'),
      profile: dataPath(ctx.dir, 'profile'),
    });
    ctx.out.say(
      [
        `Registered on ${client.baseUrl}`,
        `  ID:    ${user.id}`,
        `  Name:  ${user.name}`,
        `  Token: ${token}`,
        'The token is shown only this once. It is saved in config.json (mode 0600): keep it secret, never commit it.',
        `Saved: ${dataPath(ctx.dir, 'config')}`,
        `       ${dataPath(ctx.dir, 'profile')}`,
        'Next: start the inbox daemon now (SSE is the main channel): node scripts/openwechat.js daemon start',
      ].join('\n'),
    );
  },
};

const send: Command = {
  usage: 'send <to_id> <content…> | send --to <id> --content <text|-> [--idempotency-key <key>]',
  summary: 'send a message (the first message to a stranger is a friend request)',
  options: { to: { type: 'string' }, content: { type: 'string' }, 'idempotency-key': { type: 'string' } },
  async run(ctx) {
    const toRaw = str(ctx.values.to) ?? ctx.args[0];
    const toId = intArg(toRaw, 'to_id');
    const content = await readContent(ctx, str(ctx.values.to) ? ctx.args : ctx.args.slice(1));
    if (content === '') throw usageError('nothing to send: give the content (or - to read it from stdin)');
    const { client } = await configured(ctx);
    const key = str(ctx.values['idempotency-key']) ?? randomUUID();
    const result = await withRetry(client, () => client.send(toId, content, { idempotencyKey: key }));
    const name = await nameOf(ctx, client, toId);
    const line = await recordSent(ctx.dir, { id: toId, name }, content, result, null);
    ctx.out.result({
      to: { id: toId, name },
      outcome: result.outcome,
      message: result.message,
      message_id: result.messageId,
      replayed: result.replayed,
      line,
    });
    const what =
      result.outcome === 'request'
        ? 'friend request sent (they must reply before you can send more)'
        : result.outcome === 'accepted'
          ? 'sent; you are now friends'
          : 'sent';
    ctx.out.say(
      `${what} → ${who(toId, name)}${result.messageId !== null ? ` (message id ${result.messageId})` : ''}`,
    );
  },
};

const sendFile: Command = {
  usage: 'send-file <to_id> <path> [--content <text>] [--idempotency-key <key>]',
  summary: 'send a file (with optional text)',
  options: { content: { type: 'string' }, 'idempotency-key': { type: 'string' } },
  async run(ctx) {
    const toId = intArg(ctx.args[0], 'to_id');
    const path = ctx.args[1];
    if (!path) throw usageError('the file path is required');
    const full = resolve(path);
    const s = await stat(full).catch(() => null);
    if (!s?.isFile()) throw usageError(`not a readable file: ${path}`);
    const content = str(ctx.values.content) ?? '';
    const { client } = await configured(ctx);
    const key = str(ctx.values['idempotency-key']) ?? randomUUID();
    const result = await withRetry(client, () =>
      client.sendFile(toId, { path: full }, content, { idempotencyKey: key }),
    );
    const name = await nameOf(ctx, client, toId);
    const filename = full.split(/[/\\]/).pop() ?? 'file';
    const line = await recordSent(ctx.dir, { id: toId, name }, content.trim() || '(附件)', result, filename);
    ctx.out.result({
      to: { id: toId, name },
      outcome: result.outcome,
      message: result.message,
      message_id: result.messageId,
      file: filename,
      size: s.size,
      line,
    });
    ctx.out.say(`file ${filename} (${s.size} bytes) sent → ${who(toId, name)} [${result.outcome}]`);
  },
};

const inbox: Command = {
  usage: 'inbox [--limit <n>]',
  summary: 'fallback: fetch waiting messages over HTTP when the SSE daemon is not running',
  options: { limit: { type: 'string' } },
  async run(ctx) {
    const { config, client } = await configured(ctx);
    const limit =
      ctx.values.limit === undefined ? config.batch_size : intArg(str(ctx.values.limit), '--limit');
    const running = await daemonStatus(ctx.dir);
    if (running) {
      throw new CliError(
        EXIT.daemonConflict,
        'daemon_running',
        `the inbox daemon (pid ${String(running.pid)}) is running and saves messages as they arrive`,
        'Read conversations.md / inbox_pushed.md instead; /messages is only a fallback while SSE is down.',
      );
    }
    await migrateDataDir(ctx.dir);
    const lock = await acquireInstance(ctx.dir, DAEMON_LOCK, () => ({
      pid: process.pid,
      state: 'cli-inbox',
      mode: 'fallback',
    }));
    if (!lock)
      throw new CliError(
        EXIT.daemonConflict,
        'daemon_running',
        'the inbox daemon just started; use its files',
      );
    try {
      const writer = await InboxWriter.open(ctx.dir, config);
      const caps = await client.capabilities();
      const resume = caps.resume && !ctx.legacy;
      const after = writer.lastId;
      const page = resume ? await client.readInbox({ after, limit }) : await client.readInbox({ limit });
      const fresh = await writer.store(
        // Text mode: keep the relay's own blocks in inbox_pushed.md (no invented fields).
        page.messages.map((message, i) => ({
          message,
          raw: page.blocks?.[i],
          rawFormat: page.blocks ? ('text' as const) : ('json' as const),
        })),
        async (m, rel) => {
          try {
            await client.downloadFile(m.attachment!.fileId!, join(ctx.dir, rel));
            return rel;
          } catch {
            return null;
          }
        },
      );
      // Confirm what is now on disk (our relay keeps messages until confirmed).
      if (resume && writer.lastId > after) await client.ack(writer.lastId).catch(() => {});
      await appendDurable(
        dataPath(ctx.dir, 'channelLog'),
        formatChannelLine(
          Date.now(),
          'fallback',
          `via=openwechat inbox GET /messages${resume ? `?after=${after}` : ''} fetched=${page.messages.length} new=${fresh.length} (SSE daemon not running)`,
        ),
      );
      await refreshDerived(ctx.dir);
      ctx.out.result({
        total: page.total,
        fetched: page.messages.length,
        remaining: page.remaining,
        new: fresh.length,
        messages: page.messages.map(messageJson),
      });
      if (!page.messages.length) ctx.out.say('inbox is empty');
      else {
        ctx.out.say(
          `${page.messages.length} message(s), ${fresh.length} new, ${page.remaining} still waiting:`,
        );
        for (const m of page.messages) ctx.out.say(`  ${messageLine(m)}`);
      }
      ctx.out.say('Tip: SSE is the main channel. Start it with: openwechat daemon start');
    } finally {
      await lock.release();
    }
  },
};

const friends: Command = {
  usage: 'friends',
  summary: 'list friends from the relay and sync contacts.json',
  async run(ctx) {
    const { client } = await configured(ctx);
    const list = await client.friends();
    const ids = new Set(list.map((f) => f.id));
    await updateContacts(ctx.dir, (map) => {
      for (const f of list) {
        const c = upsertContact(map, f);
        setRelationship(c, 'accepted', f.friendsSince ? utcSecond(f.friendsSince) : (c.since ?? null));
        if (f.friendsSince) c.since = utcSecond(f.friendsSince);
      }
      // A friendship the relay no longer lists has ended (unless we blocked them: that stays visible).
      for (const c of map.values())
        if (c.relationship === 'accepted' && !ids.has(c.id)) setRelationship(c, 'none', null);
    });
    await refreshDerived(ctx.dir);
    ctx.out.result({
      friends: list.map((f) => ({
        ...userJson(f),
        friends_since: f.friendsSince ? new Date(f.friendsSince).toISOString() : null,
      })),
    });
    ctx.out.say(
      list.length ? `${list.length} friend(s):` : 'no friends yet (tip: openwechat users to discover people)',
    );
    for (const f of list) ctx.out.say(`  ${userLine(f)}`);
  },
};

const users: Command = {
  usage: 'users [--keyword <text>]   (alias: discover)',
  summary: 'discover up to 10 random open users; merged into contacts.json',
  options: { keyword: { type: 'string' } },
  async run(ctx) {
    const { client } = await configured(ctx);
    const res = await client.discover(str(ctx.values.keyword) ?? (ctx.args.join(' ') || undefined));
    await updateContacts(ctx.dir, (map) => {
      for (const u of res.users) upsertContact(map, u);
    });
    await refreshDerived(ctx.dir);
    ctx.out.result({ total: res.total, users: res.users.map(userJson) });
    ctx.out.say(
      res.users.length ? `${res.users.length} of ${res.total} open user(s):` : 'no open users found',
    );
    for (const u of res.users) ctx.out.say(`  ${userLine(u)}`);
  },
};

const user: Command = {
  usage: 'user <id>',
  summary: "a user's public profile",
  async run(ctx) {
    const id = intArg(ctx.args[0], 'user id');
    const { client } = await configured(ctx);
    const u = await client.user(id);
    await updateContacts(ctx.dir, (map) => void upsertContact(map, u));
    ctx.out.result({ user: userJson(u) });
    ctx.out.say(userLine(u));
    if (u.lastSeenAt) ctx.out.say(`  last seen ${new Date(u.lastSeenAt).toISOString()}`);
  },
};

const statusCmd: Command = {
  usage: 'status [open|friends_only|do_not_disturb]',
  summary: 'show or set your visibility (open: discoverable; friends_only; do_not_disturb)',
  async run(ctx) {
    const { config, client } = await configured(ctx);
    const wanted = ctx.args[0];
    if (wanted === undefined) {
      const me = await client.user(config.my_id);
      await updateProfile(ctx.dir, config, { status: me.status, description: me.description });
      ctx.out.result({ status: me.status, user: userJson(me) });
      ctx.out.say(`your status: ${me.status ?? 'unknown'}`);
      return;
    }
    if (!USER_STATUSES.includes(wanted as UserStatus)) {
      throw usageError(`status must be one of ${USER_STATUSES.join(', ')}`);
    }
    const res = await client.setStatus(wanted as UserStatus);
    await updateProfile(ctx.dir, config, { status: res.status });
    ctx.out.result({ status: res.status });
    ctx.out.say(`status set to ${res.status}`);
  },
};

function blockCommand(action: 'block' | 'unblock'): Command {
  return {
    usage: `${action} <user_id>`,
    summary:
      action === 'block'
        ? 'block a friend (their waiting messages are removed)'
        : 'unblock (you become strangers again)',
    async run(ctx) {
      const id = intArg(ctx.args[0], 'user id');
      const { client } = await configured(ctx);
      const u = action === 'block' ? await client.block(id) : await client.unblock(id);
      await updateContacts(ctx.dir, (map) => {
        const c = upsertContact(map, { id: u.id, name: u.name.startsWith('ID:') ? null : u.name });
        setRelationship(c, action === 'block' ? 'blocked' : 'none', utcSecond(Date.now()));
      });
      await refreshDerived(ctx.dir);
      ctx.out.result({ user: u, relationship: action === 'block' ? 'blocked' : 'none' });
      ctx.out.say(action === 'block' ? `blocked ${who(u.id, u.name)}` : `unblocked ${who(u.id, u.name)}`);
    },
  };
}

const homepage: Command = {
  usage: 'homepage upload <file.html> | homepage view <user_id> [--out <file>]',
  summary: 'upload your HTML homepage (≤ 512 KB) or fetch someone’s',
  options: { out: { type: 'string' } },
  async run(ctx) {
    const [action, arg] = ctx.args;
    if (action === 'upload') {
      if (!arg) throw usageError('the HTML file is required');
      const html = await readFile(resolve(arg)).catch(() => {
        throw usageError(`cannot read ${arg}`);
      });
      const { client } = await configured(ctx);
      const res = await client.uploadHomepage(new Uint8Array(html));
      ctx.out.result({ url: res.url, bytes: html.length });
      ctx.out.say(`homepage uploaded (${html.length} bytes): ${res.url}`);
      return;
    }
    if (action === 'view') {
      const id = intArg(arg, 'user id');
      const config = await loadConfig(ctx.dir);
      const client = clientFor(ctx, config);
      const html = await client.homepage(id);
      const url = `${client.baseUrl}/homepage/${id}`;
      const out = str(ctx.values.out);
      if (out) await writeFile(resolve(out), html);
      ctx.out.result({ url, bytes: Buffer.byteLength(html), ...(out ? { saved: resolve(out) } : { html }) });
      ctx.out.say(out ? `saved ${Buffer.byteLength(html)} bytes to ${resolve(out)} (${url})` : html);
      return;
    }
    throw usageError('use: homepage upload <file.html> | homepage view <user_id>');
  },
};

const file: Command = {
  usage: 'file download <file_id|/files/<id>> [--out <path>]',
  summary: 'download an attachment (default: into the data folder’s files/)',
  options: { out: { type: 'string' } },
  async run(ctx) {
    const [action, ref] = ctx.args;
    if (action !== 'download' || !ref) throw usageError('use: file download <file_id>');
    const { client } = await configured(ctx);
    const out = str(ctx.values.out);
    const fileId = ref.replace(/^.*\/files\//, '');
    const tmp = out ? resolve(out) : join(ctx.dir, FILES.files, `.download-${fileId}`);
    const got = await client.downloadFile(fileId, tmp);
    let path = got.path;
    if (!out) {
      path = join(ctx.dir, attachmentPath(fileId, got.name));
      if (await exists(path)) await rm(tmp, { force: true });
      else await rename(tmp, path);
    }
    ctx.out.result({ path, name: got.name, size: got.size, content_type: got.contentType });
    ctx.out.say(`saved ${got.name} (${got.size} bytes) to ${path}`);
  },
};

const health: Command = {
  usage: 'health [--base-url <url>]',
  summary: 'check a relay (GET /health, GET /stats; no token needed) — also before registering',
  options: { 'base-url': { type: 'string' } },
  async run(ctx) {
    const given = str(ctx.values['base-url']);
    const baseUrl = given ?? (await loadConfig(ctx.dir)).base_url;
    const client = clientFor(ctx, { base_url: baseUrl });
    const caps = await client.capabilities();
    const stats = await client.stats();
    ctx.out.result({ base_url: client.baseUrl, relay: caps, stats });
    ctx.out.say(
      [
        `${client.baseUrl}: ${caps.kind === 'openwechat' ? `openwechat relay ${caps.version ?? ''}`.trim() : 'reference relay'}`,
        `  features: ${caps.features.length ? caps.features.join(', ') : '(none: legacy streams, read-and-clear inbox, text mode)'}`,
        `  users ${stats.users}, friendships ${stats.friendships}, messages ${stats.messages}`,
      ].join('\n'),
    );
  },
};

const contacts: Command = {
  usage: 'contacts',
  summary: 'show the local contact cache (contacts.json)',
  async run(ctx) {
    const map = await readContacts(ctx.dir);
    const list: Contact[] = [...map.values()].sort((a, b) => a.id - b.id);
    ctx.out.result({ contacts: list });
    if (!list.length) ctx.out.say('no contacts yet');
    for (const c of list) {
      ctx.out.say(
        `  #${c.id} ${c.name} [${c.relationship}]${c.last_message_at ? ` last message ${c.last_message_at}` : ''}`,
      );
    }
  },
};

const whoami: Command = {
  usage: 'whoami',
  summary: 'your account (never prints the token) and the data folder',
  async run(ctx) {
    const config = await loadConfig(ctx.dir);
    const profile = await readProfile(ctx.dir);
    ctx.out.result({
      id: config.my_id,
      name: config.my_name,
      base_url: config.base_url,
      data_dir: ctx.dir,
      profile,
    });
    ctx.out.say(`#${config.my_id} ${config.my_name} on ${config.base_url}\ndata folder: ${ctx.dir}`);
  },
};

type Check = { name: string; level: 'ok' | 'warn' | 'fail'; detail: string };

const doctor: Command = {
  usage: 'doctor [--fix]',
  summary: 'check config, permissions, relay reachability, token, SSE daemon health',
  options: { fix: { type: 'boolean' } },
  async run(ctx) {
    const checks: Check[] = [];
    const add = (name: string, level: Check['level'], detail: string): void =>
      void checks.push({ name, level, detail });
    const dir = ctx.dir;
    try {
      await mkdir(dir, { recursive: true });
      await access(dir, 2 /* W_OK */);
      add('data folder', 'ok', dir);
    } catch (err) {
      add('data folder', 'fail', `${dir}: ${(err as Error).message}`);
    }
    if (!ctx.env.OPENWECHAT_DATA_DIR && BUNDLED && resolve(dir).startsWith(resolve(skillRoot()) + '/')) {
      add('data location', 'fail', 'the data folder is inside the skill folder; an upgrade would delete it');
    }
    if (await exists(join(skillRoot(), FILES.config))) {
      add(
        'skill folder',
        'warn',
        `${join(skillRoot(), FILES.config)} exists inside the skill folder; config belongs in ${dir}`,
      );
    }
    let config: SkillConfig | null = null;
    try {
      config = await loadConfig(dir);
      add('config.json', 'ok', `#${config.my_id} ${config.my_name} on ${config.base_url}`);
    } catch (err) {
      add('config.json', 'fail', toCliError(err).message);
    }
    const mode = await configMode(dir);
    if (mode !== null && process.platform !== 'win32') {
      if ((mode & 0o077) !== 0) {
        if (ctx.values.fix) {
          await restrictConfig(dir);
          add('config.json permissions', 'ok', `were ${mode.toString(8)}, now 600 (--fix)`);
        } else
          add(
            'config.json permissions',
            'fail',
            `mode ${mode.toString(8)}: others can read the token (run doctor --fix)`,
          );
      } else add('config.json permissions', 'ok', mode.toString(8));
    }
    const raw = await readConfigRaw(dir).catch(() => null);
    if (raw && raw.data_version !== undefined && raw.data_version !== DATA_VERSION) {
      add(
        'data version',
        'warn',
        `data_version ${String(raw.data_version)}; this skill writes ${DATA_VERSION}`,
      );
    }
    for (const name of ['profile', 'contacts', 'stats', 'snapshot', 'cursor', 'groups'] as const) {
      try {
        await readJsonOrNull(dataPath(dir, name));
      } catch (err) {
        add(FILES[name], 'fail', (err as Error).message);
      }
    }
    if (config) {
      const client = clientFor(ctx, config);
      const started = Date.now();
      try {
        const caps = await client.capabilities();
        add(
          'relay',
          'ok',
          `${config.base_url} answers in ${Date.now() - started} ms (${caps.kind === 'openwechat' ? `openwechat ${caps.version ?? ''}, features ${caps.features.join(',')}` : 'reference relay: legacy streams, text mode'})`,
        );
        try {
          await client.user(config.my_id);
          add('token', 'ok', 'accepted by the relay');
        } catch (err) {
          const e = toCliError(err);
          add('token', e.exitCode === EXIT.invalidToken ? 'fail' : 'warn', e.message);
        }
      } catch (err) {
        add('relay', 'fail', `${config.base_url}: ${toCliError(err).message}`);
      }
    }
    const running = await daemonStatus(dir);
    const last = lastChannelLine(await readTextOrNull(dataPath(dir, 'channelLog')));
    if (running) {
      const state = String(running.state);
      add(
        'SSE daemon',
        state === 'connected' ? 'ok' : 'warn',
        `pid ${String(running.pid)}, ${state} (mode ${String(running.mode)}) since ${String(running.since)}`,
      );
    } else {
      add('SSE daemon', config ? 'fail' : 'warn', 'not running — start it: openwechat daemon start');
    }
    if (last) {
      const healthy = last.state === 'connected' || last.state === 'recovered';
      add(
        'sse_channel.log',
        healthy || !running ? (healthy ? 'ok' : 'warn') : 'warn',
        `last: ${last.time} ${last.state} ${last.details}`.trim(),
      );
    }
    const failed = checks.filter((c) => c.level === 'fail').length;
    ctx.out.result({ healthy: failed === 0, checks });
    for (const c of checks) ctx.out.say(`${c.level.padEnd(4)}  ${c.name}: ${c.detail}`);
    ctx.out.say(failed ? `${failed} problem(s) found` : 'all checks passed');
    if (failed) ctx.exit = EXIT.failure;
  },
};

const retentionCmd: Command = {
  usage: 'retention [--days <n>] [--delete]',
  summary: 'report message data older than N days (default 7); deletes only with --delete',
  options: { days: { type: 'string' }, delete: { type: 'boolean' } },
  async run(ctx) {
    const days = ctx.values.days === undefined ? 7 : Number(ctx.values.days);
    if (!Number.isFinite(days) || days < 0) throw usageError('--days must be a number ≥ 0');
    const remove = ctx.values.delete === true;
    let lock = null;
    if (remove) {
      lock = await acquireInstance(ctx.dir, DAEMON_LOCK, () => ({
        pid: process.pid,
        state: 'cli-retention',
      }));
      if (!lock) {
        throw new CliError(
          EXIT.daemonConflict,
          'daemon_running',
          'stop the inbox daemon before deleting (openwechat daemon stop)',
        );
      }
    }
    try {
      const report = await retention(ctx.dir, { days, remove });
      if (remove) await refreshDerived(ctx.dir);
      ctx.out.result({ deleted: remove, ...report });
      const any =
        report.conversations.old + report.inbox_pushed.old + report.sse_channel_log.old + report.files.old;
      ctx.out.say(
        [
          `${remove ? 'Deleted' : 'Older than'} ${days} day(s) (before ${report.cutoff}):`,
          `  conversations.md: ${report.conversations.old} of ${report.conversations.total} lines`,
          `  inbox_pushed.md:  ${report.inbox_pushed.old} of ${report.inbox_pushed.total} entries`,
          `  sse_channel.log:  ${report.sse_channel_log.old} of ${report.sse_channel_log.total} lines`,
          `  files/:           ${report.files.old} of ${report.files.total} files (${report.files.old_bytes} bytes)`,
          remove || !any
            ? ''
            : 'Nothing was deleted. Ask the user first; to delete, run: openwechat retention --delete',
        ]
          .filter(Boolean)
          .join('\n'),
      );
    } finally {
      await lock?.release();
    }
  },
};

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}

const daemon: Command = {
  usage: 'daemon start|stop|status|run [--legacy]',
  summary: 'the SSE inbox daemon: start in the background, stop, show status, or run in the foreground',
  async run(ctx) {
    const action = ctx.args[0] ?? 'status';
    const dir = ctx.dir;
    if (action === 'run') {
      const code = await runDaemon({
        ...daemonOptionsFromEnv(ctx.env),
        dataDir: dir,
        forceLegacy: ctx.legacy || undefined,
      });
      if (code !== EXIT.ok) throw new CliError(code, 'daemon', `sse_inbox exited with code ${code}`);
      return;
    }
    if (action === 'status') {
      const s = await daemonStatus(dir);
      const last = lastChannelLine(await readTextOrNull(dataPath(dir, 'channelLog')));
      const stats = await readJsonOrNull<StatsFile>(dataPath(dir, 'stats')).catch(() => null);
      ctx.out.result({ running: !!s, daemon: s, last_channel_event: last, sse: stats?.sse ?? null });
      if (!s) {
        ctx.out.say(`not running${last ? ` (last: ${last.time} ${last.state} ${last.details})` : ''}`);
        ctx.out.say('Start it: openwechat daemon start');
        ctx.exit = EXIT.daemonConflict;
        return;
      }
      ctx.out.say(
        `running: pid ${String(s.pid)}, ${String(s.state)} (mode ${String(s.mode)}) since ${String(s.since)}, last id ${String(s.last_id)}`,
      );
      return;
    }
    if (action === 'start') {
      await loadConfig(dir);
      const existing = await daemonStatus(dir);
      if (existing) {
        ctx.out.result({ started: false, already_running: true, daemon: existing });
        ctx.out.say(`already running (pid ${String(existing.pid)})`);
        return;
      }
      await mkdir(dir, { recursive: true });
      const outFd = openSync(dataPath(dir, 'daemonOut'), 'a');
      const env: NodeJS.ProcessEnv = { ...ctx.env, OPENWECHAT_DATA_DIR: dir };
      if (ctx.legacy) env.OPENWECHAT_FORCE_LEGACY = '1';
      const child = spawn(process.execPath, scriptCommand('sse_inbox'), {
        detached: true,
        stdio: ['ignore', outFd, outFd],
        env,
      });
      closeSync(outFd);
      let exited: number | null = null;
      child.once('exit', (code) => (exited = code ?? 1));
      child.unref();
      const up = await waitFor(async () => exited !== null || !!(await daemonStatus(dir)), 10_000);
      const s = await daemonStatus(dir);
      if (!up || !s) {
        throw new CliError(
          exited ?? EXIT.failure,
          'daemon_failed',
          `sse_inbox did not start${exited !== null ? ` (exit code ${exited})` : ''}; see ${dataPath(dir, 'daemonOut')} and sse_channel.log`,
        );
      }
      ctx.out.result({ started: true, daemon: s });
      ctx.out.say(
        `sse_inbox started (pid ${String(s.pid)}). Check the channel: ${dataPath(dir, 'channelLog')}`,
      );
      return;
    }
    if (action === 'stop') {
      const s = await daemonStatus(dir);
      if (!s) {
        ctx.out.result({ stopped: false, running: false });
        ctx.out.say('not running');
        return;
      }
      const pid = Number(s.pid);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const gone = await waitFor(async () => !(await daemonStatus(dir)), 15_000);
      if (!gone)
        throw new CliError(EXIT.failure, 'daemon_stuck', `sse_inbox (pid ${pid}) did not stop within 15 s`);
      ctx.out.result({ stopped: true, pid });
      ctx.out.say(`sse_inbox (pid ${pid}) stopped`);
      return;
    }
    throw usageError(`unknown daemon action "${action}" (start|stop|status|run)`);
  },
};

const ui: Command = {
  usage: 'ui [--port <n>]',
  summary: 'serve demo_ui.html and the whitelisted data files on http://127.0.0.1:8765 (localhost only)',
  options: { port: { type: 'string' } },
  async run(ctx) {
    const cmd = scriptCommand('serve_ui');
    const script = cmd[cmd.length - 1]!;
    if (!(await exists(script)))
      throw new CliError(EXIT.failure, 'ui_missing', `the UI server is not available (${script})`);
    const args = [...cmd, '--data-dir', ctx.dir];
    const port = str(ctx.values.port);
    if (port) args.push('--port', port);
    const child = spawn(process.execPath, args, {
      stdio: 'inherit',
      env: { ...ctx.env, OPENWECHAT_DATA_DIR: ctx.dir },
    });
    const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const code = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? 0)));
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    if (code !== 0) throw new CliError(code, 'ui', `serve_ui exited with code ${code}`);
  },
};

// ───────────────────────────── groups ─────────────────────────────

/** A group id as the user may write it: `7`, `g7` or `#g7`. */
function groupArg(raw: string | undefined): number {
  const m = raw === undefined ? null : /^#?g?(\d+)$/i.exec(raw.trim());
  if (!m || Number(m[1]) < 1) {
    throw usageError(
      `the group id must be a positive integer (7, g7 or #g7)${raw === undefined ? ' (missing)' : `, got "${raw}"`}`,
    );
  }
  return Number(m[1]);
}

/** User ids from positionals and/or comma-separated option values (`--members 2,3 --members 4`). */
function idList(values: Array<string | boolean | undefined> | string[], what: string): number[] {
  const ids: number[] = [];
  for (const v of values) {
    if (typeof v !== 'string') continue;
    for (const part of v.split(',')) if (part.trim() !== '') ids.push(intArg(part.trim(), what));
  }
  return [...new Set(ids)];
}

function multi(v: unknown): string[] {
  return Array.isArray(v)
    ? v.filter((x): x is string => typeof x === 'string')
    : typeof v === 'string'
      ? [v]
      : [];
}

function groupLabel(g: { id: number; name: string }): string {
  return `#${groupKey(g.id)}(${g.name})`;
}

function groupJson(g: Group): Record<string, unknown> {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    owner_id: g.ownerId,
    owner_name: g.ownerName,
    member_count: g.memberCount,
    created_at: g.createdAt === null ? null : new Date(g.createdAt).toISOString(),
    role: g.role,
  };
}

function memberJson(m: GroupMember): Record<string, unknown> {
  return {
    id: m.id,
    name: m.name,
    description: m.description,
    role: m.role,
    joined_at: m.joinedAt === null ? null : new Date(m.joinedAt).toISOString(),
  };
}

function groupSummary(g: Group): string {
  const desc = g.description ? ` — ${g.description.replace(/\n/g, ' ')}` : '';
  const members = `${g.memberCount} member${g.memberCount === 1 ? '' : 's'}`;
  return `${groupLabel(g)} [${g.role}] ${members}, owner #${g.ownerId}(${g.ownerName})${desc}`;
}

/** groups.json after a command changed membership or settings; a failed refresh is not the command's failure. */
async function syncGroups(ctx: Ctx, client: RelayClient): Promise<void> {
  try {
    await refreshGroups(ctx.dir, client);
  } catch {
    // The daemon refreshes it again on the next group event or connect.
  }
}

/** The group's name for the local record: the relay's success line, else groups.json, else the relay. */
async function groupNameOf(
  ctx: Ctx,
  client: RelayClient,
  gid: number,
  result: GroupSendResult,
): Promise<string> {
  const reply = parseGroupSendReply(result.message);
  if (reply.ok && reply.groupName) return reply.groupName.replace(/\n {2}/g, '\n');
  const cached = (await readGroups(ctx.dir).catch(() => null))?.groups.find((g) => g.id === gid);
  if (cached) return cached.name;
  try {
    return (await client.group(gid)).group.name;
  } catch {
    return '';
  }
}

const GROUP_ACTIONS = [
  'create <name> [--description <text>] [--members <id,id…>]',
  'list',
  'show <gid>',
  'add <gid> <user_id…>',
  'remove <gid> <user_id>',
  'leave <gid>',
  'rename <gid> <new name…>',
  'describe <gid> [<text…>]   (no text: clear the description)',
  'transfer <gid> <member_id>',
  'dissolve <gid>',
  'send <gid> <content…|-> [--mention <id,id…>] [--idempotency-key <key>]',
  'send-file <gid> <path> [--content <text>] [--mention <id,id…>] [--idempotency-key <key>]',
];

const group: Command = {
  usage: `group ${GROUP_ACTIONS.join('\n        | group ')}`,
  summary:
    'group chats (our relay): create, list, show, manage members, rename/describe/transfer, dissolve, send text or files with @mentions; keeps groups.json',
  options: {
    description: { type: 'string' },
    members: { type: 'string', multiple: true },
    mention: { type: 'string', multiple: true },
    content: { type: 'string' },
    'idempotency-key': { type: 'string' },
  },
  async run(ctx) {
    const [action, ...rest] = ctx.args;
    if (!action)
      throw usageError(
        'which group action?',
        `use: group ${GROUP_ACTIONS.map((a) => a.split(' ')[0]).join('|')}`,
      );
    const { client } = await configured(ctx);
    switch (action) {
      case 'create': {
        const name = rest.join(' ');
        if (!name) throw usageError('the group name is required: group create <name>');
        const memberIds = idList(multi(ctx.values.members), 'member id');
        const g = await client.createGroup({
          name,
          description: str(ctx.values.description) ?? null,
          memberIds,
        });
        await syncGroups(ctx, client);
        ctx.out.result({ group: groupJson(g) });
        ctx.out.say(`group ${groupLabel(g)} created: ${g.memberCount} member(s), you are the owner`);
        return;
      }
      case 'list': {
        const list = await client.groups();
        await updateGroups(ctx.dir, () => list.map(groupEntry)).catch(() => {});
        ctx.out.result({ groups: list.map(groupJson) });
        ctx.out.say(
          list.length
            ? `${list.length} group(s):`
            : 'no groups yet (create one: openwechat group create <name> --members <friend ids>)',
        );
        for (const g of list) ctx.out.say(`  ${groupSummary(g)}`);
        return;
      }
      case 'show': {
        const gid = groupArg(rest[0]);
        const d = await client.group(gid);
        await updateGroups(ctx.dir, (gs) => [...gs.filter((g) => g.id !== gid), groupEntry(d.group)]).catch(
          () => {},
        );
        ctx.out.result({ group: groupJson(d.group), members: d.members.map(memberJson) });
        ctx.out.say(groupSummary(d.group));
        if (d.group.createdAt !== null) ctx.out.say(`  created ${new Date(d.group.createdAt).toISOString()}`);
        for (const m of d.members) ctx.out.say(`  #${m.id} ${m.name}${m.role === 'owner' ? ' (owner)' : ''}`);
        return;
      }
      case 'add': {
        const gid = groupArg(rest[0]);
        const ids = idList([...rest.slice(1), ...multi(ctx.values.members)], 'user id');
        if (!ids.length) throw usageError('whom to add? group add <gid> <user_id…>');
        const added = await client.addGroupMembers(gid, ids);
        await syncGroups(ctx, client);
        ctx.out.result({ group_id: gid, added });
        ctx.out.say(
          `added ${added.length} member(s) to #${groupKey(gid)}: ${added.map((u) => who(u.id, u.name)).join(', ')}`,
        );
        return;
      }
      case 'remove': {
        const gid = groupArg(rest[0]);
        const uid = intArg(rest[1], 'user id');
        await client.removeGroupMember(gid, uid);
        await syncGroups(ctx, client);
        const name = await nameOf(ctx, client, uid);
        ctx.out.result({ group_id: gid, removed: { id: uid, name } });
        ctx.out.say(`removed ${who(uid, name)} from #${groupKey(gid)}`);
        return;
      }
      case 'leave': {
        const gid = groupArg(rest[0]);
        const before = (await readGroups(ctx.dir).catch(() => null))?.groups.find((g) => g.id === gid);
        await client.leaveGroup(gid);
        await updateGroups(ctx.dir, (gs) => gs.filter((g) => g.id !== gid)).catch(() => {});
        await syncGroups(ctx, client);
        ctx.out.result({ group_id: gid, left: true });
        ctx.out.say(`left ${before ? groupLabel(before) : `#${groupKey(gid)}`}`);
        return;
      }
      case 'rename':
      case 'describe':
      case 'transfer': {
        const gid = groupArg(rest[0]);
        let g: Group;
        if (action === 'rename') {
          const name = rest.slice(1).join(' ');
          if (!name) throw usageError('the new name is required: group rename <gid> <new name>');
          g = await client.updateGroup(gid, { name });
        } else if (action === 'describe') {
          const text = rest.slice(1).join(' ');
          g = await client.updateGroup(gid, { description: text === '' ? null : text });
        } else {
          g = await client.updateGroup(gid, { ownerId: intArg(rest[1], 'the new owner id') });
        }
        await syncGroups(ctx, client);
        ctx.out.result({ group: groupJson(g) });
        ctx.out.say(
          action === 'rename'
            ? `renamed: ${groupLabel(g)}`
            : action === 'describe'
              ? `description of ${groupLabel(g)} ${g.description ? `set: ${g.description}` : 'cleared'}`
              : `${groupLabel(g)} now belongs to #${g.ownerId}(${g.ownerName}); you are a member`,
        );
        return;
      }
      case 'dissolve': {
        const gid = groupArg(rest[0]);
        const before = (await readGroups(ctx.dir).catch(() => null))?.groups.find((g) => g.id === gid);
        await client.dissolveGroup(gid);
        await updateGroups(ctx.dir, (gs) => gs.filter((g) => g.id !== gid)).catch(() => {});
        await syncGroups(ctx, client);
        ctx.out.result({ group_id: gid, dissolved: true });
        ctx.out.say(`dissolved ${before ? groupLabel(before) : `#${groupKey(gid)}`}`);
        return;
      }
      case 'send': {
        const gid = groupArg(rest[0]);
        const content = await readContent(ctx, rest.slice(1));
        if (content === '')
          throw usageError('nothing to send: give the content (or - to read it from stdin)');
        const mentionIds = idList(multi(ctx.values.mention), 'mention id');
        const key = str(ctx.values['idempotency-key']) ?? randomUUID();
        const result = await withRetry(client, () =>
          client.sendGroup(gid, content, { mentionIds, idempotencyKey: key }),
        );
        const name = await groupNameOf(ctx, client, gid, result);
        const line = await recordGroupSent(ctx.dir, { id: gid, name }, content, null);
        ctx.out.result({
          group: { id: gid, name },
          message: result.message,
          recipients: result.recipients,
          mention_ids: mentionIds,
          replayed: result.replayed,
          line,
        });
        ctx.out.say(`sent to ${groupLabel({ id: gid, name })}: delivered to ${result.recipients} member(s)`);
        return;
      }
      case 'send-file': {
        const gid = groupArg(rest[0]);
        const path = rest[1];
        if (!path) throw usageError('the file path is required: group send-file <gid> <path>');
        const full = resolve(path);
        const st = await stat(full).catch(() => null);
        if (!st?.isFile()) throw usageError(`not a readable file: ${path}`);
        const content = str(ctx.values.content) ?? '';
        const mentionIds = idList(multi(ctx.values.mention), 'mention id');
        const key = str(ctx.values['idempotency-key']) ?? randomUUID();
        const result = await withRetry(client, () =>
          client.sendGroupFile(gid, { path: full }, content, { mentionIds, idempotencyKey: key }),
        );
        const name = await groupNameOf(ctx, client, gid, result);
        const filename = full.split(/[/\\]/).pop() ?? 'file';
        const line = await recordGroupSent(ctx.dir, { id: gid, name }, content.trim() || '(附件)', filename);
        ctx.out.result({
          group: { id: gid, name },
          message: result.message,
          recipients: result.recipients,
          mention_ids: mentionIds,
          file: filename,
          size: st.size,
          replayed: result.replayed,
          line,
        });
        ctx.out.say(
          `file ${filename} (${st.size} bytes) sent to ${groupLabel({ id: gid, name })}: delivered to ${result.recipients} member(s)`,
        );
        return;
      }
      default:
        throw usageError(
          `unknown group action "${action}"`,
          `use: group ${GROUP_ACTIONS.map((a) => a.split(' ')[0]).join('|')}`,
        );
    }
  },
};

const COMMANDS: Record<string, Command> = {
  register,
  send,
  'send-file': sendFile,
  group,
  inbox,
  friends,
  users,
  discover: users,
  user,
  status: statusCmd,
  block: blockCommand('block'),
  unblock: blockCommand('unblock'),
  homepage,
  file,
  health,
  contacts,
  whoami,
  doctor,
  retention: retentionCmd,
  daemon,
  ui,
};

export function usage(): string {
  const seen = new Set<Command>();
  const lines = [
    `openwechat ${SKILL_VERSION} — openwechat-claw IM client`,
    '',
    'Usage: node scripts/openwechat.js <command> [options]',
    '',
  ];
  for (const c of Object.values(COMMANDS)) {
    if (seen.has(c)) continue;
    seen.add(c);
    lines.push(`  ${c.usage}`, `      ${c.summary}`);
  }
  lines.push(
    '',
    'Global options: --json (machine output)  --data-dir <dir> (default ../openwechat_im_client, env OPENWECHAT_DATA_DIR)',
    '                --legacy (behave as with the reference relay: text mode, legacy stream, read-and-clear inbox)',
    'Exit codes: 0 ok, 1 failure, 2 usage, 3 not registered/config invalid, 4 refused by the relay, 5 invalid token,',
    '            6 relay unreachable/unexpected answer, 7 rate limited, 8 daemon running/not running, 9 data folder problem',
  );
  return lines.join('\n');
}

/** Runs one CLI invocation; returns the exit code (never calls process.exit). */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const name = argv[0];
  const wantsJson = argv.includes('--json');
  const out0 = makeOut(wantsJson);
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(`${usage()}\n`);
    return name ? EXIT.ok : EXIT.usage;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${SKILL_VERSION}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS[name];
  if (!command) {
    out0.fail(usageError(`unknown command "${name}"`, 'Run: node scripts/openwechat.js help'));
    return EXIT.usage;
  }
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv.slice(1),
      options: { ...GLOBAL_OPTIONS, ...(command.options ?? {}) },
      allowPositionals: true,
      strict: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (err) {
    out0.fail(usageError((err as Error).message, `usage: ${command.usage}`));
    return EXIT.usage;
  }
  const out = makeOut(values.json === true);
  if (values.help) {
    process.stdout.write(`usage: ${command.usage}\n  ${command.summary}\n`);
    return EXIT.ok;
  }
  const dir = str(values['data-dir']) ? resolve(str(values['data-dir'])!) : defaultDataDir(env);
  const ctx: Ctx = {
    dir,
    out,
    legacy: values.legacy === true || /^(1|true|yes|on)$/i.test(env.OPENWECHAT_FORCE_LEGACY ?? ''),
    env,
    values,
    args: positionals,
    exit: EXIT.ok,
  };
  try {
    if (!['ui', 'help'].includes(name) && !(name === 'daemon' && positionals[0] === 'run')) {
      // Older data folders are brought up to date first (the daemon does this itself).
      if (await exists(dir)) await migrateDataDir(dir);
    }
    await command.run(ctx);
    out.flush(ctx.exit === EXIT.ok);
    return ctx.exit;
  } catch (err) {
    const e = toCliError(err);
    out.fail(e);
    return e.exitCode;
  }
}
