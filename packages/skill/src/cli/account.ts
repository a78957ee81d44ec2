// Account commands: register, status, whoami, and a relay health check.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { userToJson } from '@openwechat/client';
import { USER_STATUSES, type UserStatus } from '@openwechat/protocol';
import { writeJsonAtomic } from '../data/atomic.ts';
import {
  CONFIG_MODE,
  DATA_VERSION,
  loadConfig,
  readConfigRaw,
  readProfile,
  saveConfig,
  updateProfile,
  type SkillConfig,
} from '../data/config.ts';
import { refreshDerived } from '../data/derived.ts';
import { dataPath, FILES } from '../data/paths.ts';
import { EXIT } from '../daemon.ts';
import { CliError, usageError } from '../output.ts';
import { type Command, clientFor, configured, selfCommand, str } from './common.ts';

export const register: Command = {
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
    await updateProfile(ctx.dir, config, {
      description: user.description,
      status: user.status,
      registered_at: nowIso,
    });
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
        `Next: start the inbox daemon now (SSE is the main channel): ${selfCommand('daemon start')}`,
      ].join('\n'),
    );
  },
};

export const statusCmd: Command = {
  usage: 'status [open|friends_only|do_not_disturb]',
  summary: 'show or set your visibility (open: discoverable; friends_only; do_not_disturb)',
  async run(ctx) {
    const { config, client } = await configured(ctx);
    const wanted = ctx.args[0];
    if (wanted === undefined) {
      const me = await client.user(config.my_id);
      await updateProfile(ctx.dir, config, { status: me.status, description: me.description });
      ctx.out.result({ status: me.status, user: userToJson(me) });
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

export const whoami: Command = {
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

export const health: Command = {
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
