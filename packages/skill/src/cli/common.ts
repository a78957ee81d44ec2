// Shared by the command modules: the invocation context, the command shape, argument helpers and the
// text/JSON renderings of relay objects.

import mime from 'mime';
import { join } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import {
  ClientError,
  RelayClient,
  type E2eSent,
  type E2eSession,
  type Message,
  type User,
} from '@openwechat/client';
import { loadConfig, type SkillConfig } from '../data/config.ts';
import { e2ePolicy, e2eSession, E2ePolicyProblem } from '../data/e2e.ts';
import { readContacts, updateContacts, upsertContact } from '../data/contacts.ts';
import { CHANNEL_LINE_RE, groupKey, utcSecond } from '../data/formats.ts';
import { queryInstance } from '../data/lock.ts';
import { BUNDLED, skillRoot } from '../data/paths.ts';
import { DAEMON_LOCK } from '../daemon.ts';
import { usageError, type Out } from '../output.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Ctx {
  dir: string;
  out: Out;
  legacy: boolean;
  env: NodeJS.ProcessEnv;
  values: Record<string, string | boolean | undefined>;
  args: string[];
  /** Exit code of a command that ran but reports a problem (doctor, daemon status). */
  exit: number;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  usage: string;
  summary: string;
  options?: Options;
  run(ctx: Ctx): Promise<void>;
}

export const GLOBAL_OPTIONS: Options = {
  json: { type: 'boolean' },
  'data-dir': { type: 'string' },
  legacy: { type: 'boolean' },
  e2e: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

// ───────────────────────────── helpers ─────────────────────────────

export function clientFor(ctx: Ctx, config: { base_url: string; token?: string | null }): RelayClient {
  return new RelayClient({
    baseUrl: config.base_url,
    token: config.token ?? null,
    mode: ctx.legacy ? 'text' : 'auto',
  });
}

/** The account's E2eSession under the policy in force (--e2e > OPENWECHAT_E2E > config.json), or null. */
export async function e2eFor(ctx: Ctx, config: SkillConfig, client: RelayClient): Promise<E2eSession | null> {
  let policy;
  try {
    policy = e2ePolicy(config, { flag: str(ctx.values.e2e), env: ctx.env, legacy: ctx.legacy });
  } catch (err) {
    if (err instanceof E2ePolicyProblem) throw usageError(err.message);
    throw err;
  }
  return e2eSession(ctx.dir, config, client, policy);
}

/** What a send's output adds: encrypted, or said plainly that it was not (policy preferred). */
export function e2eNote(sent: Pick<E2eSent<unknown>, 'encrypted' | 'plaintextReason'> | null): string {
  if (!sent) return '';
  if (sent.encrypted) return ' [end-to-end encrypted]';
  return sent.plaintextReason ? ` [NOT encrypted: ${sent.plaintextReason}]` : '';
}

export async function configured(ctx: Ctx): Promise<{ config: SkillConfig; client: RelayClient }> {
  const config = await loadConfig(ctx.dir);
  return { config, client: clientFor(ctx, config) };
}

export function intArg(raw: string | undefined, what: string): number {
  if (raw === undefined || !/^\d+$/.test(raw.trim()) || Number(raw) < 1) {
    throw usageError(
      `${what} must be a positive integer${raw === undefined ? ' (missing)' : `, got "${raw}"`}`,
    );
  }
  return Number(raw);
}

export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function who(id: number, name: string | null | undefined): string {
  return `#${id}(${name ?? ''})`;
}

export function userLine(u: User): string {
  const status = u.status ? ` [${u.status}]` : '';
  const desc = u.description ? ` — ${u.description.replace(/\n/g, ' ')}` : '';
  return `#${u.id} ${u.name}${status}${desc}`;
}

export function messageJson(m: Message): Record<string, unknown> {
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

export function messageLine(m: Message): string {
  const from = m.type === 'system' ? 'system' : `#${m.fromId ?? '?'} ${m.from?.name ?? ''}`.trim();
  const file = m.attachment ? ` [attachment: ${m.attachment.name}]` : '';
  const group = m.group ? ` in #${groupKey(m.group.id)}(${m.group.name})${m.mentioned ? ' @you' : ''}` : '';
  return `[${utcSecond(m.createdAt)}] ${from}${group} (${m.type}${m.id !== null ? `, id ${m.id}` : ''})${file}: ${m.content}`;
}

/** The name to show for a user id: contacts.json first, then the relay (and remember it). */
export async function nameOf(ctx: Ctx, client: RelayClient, id: number): Promise<string> {
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

export async function readContent(ctx: Ctx, positional: string[]): Promise<string> {
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
export async function withRetry<T>(client: RelayClient, fn: () => Promise<T>): Promise<T> {
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

export async function daemonStatus(dir: string): Promise<Record<string, unknown> | null> {
  return queryInstance(dir, DAEMON_LOCK);
}

export function lastChannelLine(
  text: string | null,
): { time: string; state: string; details: string } | null {
  if (!text) return null;
  const lines = text.trimEnd().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = CHANNEL_LINE_RE.exec(lines[i] ?? '');
    if (m && m[2] !== 'server') return { time: m[1]!, state: m[2]!, details: m[3] ?? '' };
  }
  return null;
}

export async function waitFor(cond: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}

/** How to run this CLI again, for hints: the absolute script path in the built skill (any cwd works). */
export function selfCommand(rest: string): string {
  return BUNDLED ? `node ${join(skillRoot(), 'scripts', 'openwechat.js')} ${rest}` : `openwechat ${rest}`;
}

/** A file to upload, its type guessed from its name (the recipient's download says what it is). */
export function fileSource(path: string): { path: string; contentType?: string } {
  const type = mime.getType(path);
  return type ? { path, contentType: type } : { path };
}
