// Small HTTP helpers for the relay black-box suites (accounts, send, inbox, friendship, json-mode, groups),
// and their per-test relay on a controllable clock (relayPerTest).
// Everything goes over real sockets with fetch; the expected texts are built from the spec
// (docs/compat.md, docs/protocol.md) plus our deliberate fixes (message ids, W-9, W-11, W-13, W-16).

import { afterEach, beforeEach, expect } from 'vitest';
import { late, perTestFixture } from '../helpers/fixtures.ts';
import { startRelay, type TestRelay, type TestRelayOptions } from '../helpers/relay.ts';

/** Light rule `─` ×40. */
export const SEP = '─'.repeat(40);
/** Heavy rule `═` ×40. */
export const HEAVY = '═'.repeat(40);

export const LABEL = { open: '可交流', friends_only: '仅好友', do_not_disturb: '免打扰' } as const;
export type Status = keyof typeof LABEL;

/** 2026-03-09 02:00:00 UTC = 2026-03-09 10:00:00 Beijing. */
export const T0 = Date.UTC(2026, 2, 9, 2, 0, 0);

/** A controllable clock for `startRelay({ now })`. */
export class Clock {
  t: number;
  constructor(start = T0) {
    this.t = start;
  }
  now = (): number => this.t;
  advance(seconds: number): number {
    this.t += seconds * 1000;
    return this.t;
  }
}

/** `YYYY-MM-DD HH:MM:SS` in Beijing time (UTC+8). */
export function bj(ms: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000 + 8 * 3600 * 1000);
  return d.toISOString().slice(0, 19).replace('T', ' ');
}

export interface Reply {
  status: number;
  body: string;
  headers: Headers;
}

export interface ReqOptions {
  token?: string;
  json?: unknown;
  /** Raw body (string, FormData, …); overrides `json`. */
  body?: BodyInit;
  headers?: Record<string, string>;
  /** Ask for JSON mode (`Accept: application/json`). */
  jsonMode?: boolean;
  /** Abort (the promise rejects) after this long; default: no limit. */
  timeoutMs?: number;
}

export async function req(base: string, method: string, path: string, opts: ReqOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers['X-Token'] = opts.token;
  if (opts.jsonMode) headers['Accept'] = 'application/json';
  let body: BodyInit | undefined = opts.body;
  if (body === undefined && opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['Content-Type'] ??= 'application/json';
  }
  const signal = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
  const res = await fetch(base + path, { method, headers, body, signal });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** `POST /send` in JSON mode with an Idempotency-Key: one attempt of the crash suites' retrying senders. */
export function keyedSend(
  base: string,
  from: { token: string },
  toId: number,
  content: string,
  key: string,
  timeoutMs?: number,
): Promise<Reply> {
  return req(base, 'POST', '/send', {
    token: from.token,
    json: { to_id: toId, content },
    jsonMode: true,
    headers: { 'Idempotency-Key': key },
    timeoutMs,
  });
}

/** A file to upload: its bytes, the name the form gives it, and its type (default octet-stream). */
export interface Upload {
  bytes: Uint8Array<ArrayBuffer>;
  name: string;
  type?: string;
}

/**
 * A multipart upload (`POST /send/file`, or a group's `/groups/<gid>/send/file`): the form fields, then
 * the file part.
 */
export async function postFile(
  base: string,
  from: { token: string },
  path: string,
  fields: Record<string, string>,
  file: Upload,
  opts: Pick<ReqOptions, 'jsonMode' | 'headers'> = {},
): Promise<Reply> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('file', new Blob([file.bytes], { type: file.type ?? 'application/octet-stream' }), file.name);
  return req(base, 'POST', path, { ...opts, token: from.token, body: form });
}

/** Asserts HTTP status and exact body. */
export function expectReply(r: Reply, status: number, body: string): void {
  expect({ status: r.status, body: r.body }).toEqual({ status, body });
}

/** Asserts a soft-path business error: HTTP 200 and `错误：<detail>`. */
export function expectSoftError(r: Reply, detail: string): void {
  expectReply(r, 200, `错误：${detail}`);
}

export interface User {
  id: number;
  name: string;
  token: string;
  description: string | null;
  status: Status;
  /** The full registration reply. */
  body: string;
}

/** Parses the `ID：` and `Token：` lines of a registration reply. */
export function parseRegistration(body: string): { id: number; token: string } {
  const id = /^ID：(\d+)$/m.exec(body);
  const token = /^Token：([0-9a-f]{32})$/m.exec(body);
  if (!id || !token) throw new Error(`not a registration reply: ${body}`);
  return { id: Number(id[1]), token: token[1]! };
}

export async function registerRaw(base: string, json: unknown): Promise<Reply> {
  return req(base, 'POST', '/register', { json });
}

export async function register(
  base: string,
  name: string,
  opts: { description?: string | null; status?: Status } = {},
): Promise<User> {
  const payload: Record<string, unknown> = { name };
  if (opts.description !== undefined) payload.description = opts.description;
  if (opts.status !== undefined) payload.status = opts.status;
  const r = await registerRaw(base, payload);
  if (r.status !== 200) throw new Error(`register ${name} failed: ${r.status} ${r.body}`);
  const { id, token } = parseRegistration(r.body);
  return {
    id,
    token,
    name,
    description: opts.description ?? null,
    status: opts.status ?? 'open',
    body: r.body,
  };
}

export async function send(
  base: string,
  from: { token: string },
  toId: number,
  content: string,
): Promise<Reply> {
  return req(base, 'POST', '/send', { token: from.token, json: { to_id: toId, content } });
}

/** Sends and asserts the first line of the reply is the given success line. */
export async function sendOk(
  base: string,
  from: { token: string },
  toId: number,
  content: string,
  success = '发送成功',
): Promise<Reply> {
  const r = await send(base, from, toId, content);
  expect(r.status).toBe(200);
  expect(r.body.split('\n')[0]).toBe(success);
  return r;
}

/** a sends a friend request to b, b replies: they are friends. */
export async function befriend(
  base: string,
  a: User,
  b: User,
  request = 'hi',
  reply = 'hello',
): Promise<void> {
  await sendOk(base, a, b.id, request, '发送成功（好友申请已发出，等待对方回复）');
  await sendOk(base, b, a.id, reply, '发送成功（好友关系已建立）');
}

export async function messages(base: string, user: { token: string }, query = ''): Promise<Reply> {
  return req(base, 'GET', `/messages${query}`, { token: user.token });
}

export async function stats(base: string): Promise<{ users: number; friendships: number; messages: number }> {
  const r = await req(base, 'GET', '/stats');
  expect(r.status).toBe(200);
  return JSON.parse(r.body) as { users: number; friendships: number; messages: number };
}

/** All `消息ID：<n>` values in a text body, in order. */
export function messageIds(body: string): number[] {
  return [...body.matchAll(/^消息ID：(\d+)$/gm)].map((m) => Number(m[1]));
}

// ── Expected text builders (docs/compat.md "Message block formats" + our `消息ID：` line) ──────────────

export interface Sender {
  id: number;
  name: string;
  description?: string | null;
}

export function senderLine(s: Sender): string {
  return `${s.name}（ID:${s.id}）${s.description ? ` | ${s.description}` : ''}`;
}

/** Content as shown: continuation lines indented by two spaces (W-9). */
function contentLines(content: string): string {
  return content.split('\n').join('\n  ');
}

export function chatBlock(o: {
  time: number;
  from: Sender;
  content: string;
  id: number;
  file?: string;
}): string {
  return [
    '类型：聊天消息',
    `时间：${bj(o.time)}`,
    `发件人：${senderLine(o.from)}`,
    `内容：${contentLines(o.content)}`,
    ...(o.file !== undefined ? [`附件：${o.file}`] : []),
    `消息ID：${o.id}`,
  ].join('\n');
}

export function requestBlock(o: { time: number; from: Sender; content: string; id: number }): string {
  return [
    '类型：好友申请',
    `时间：${bj(o.time)}`,
    `发件人：${senderLine(o.from)}`,
    `内容：${contentLines(o.content)}`,
    `操作提示：回复对方（to_id:${o.from.id}）任意消息即可建立好友关系`,
    `消息ID：${o.id}`,
  ].join('\n');
}

export function systemBlock(o: { time: number; content: string; id: number }): string {
  return ['类型：系统通知', `时间：${bj(o.time)}`, `内容：${o.content}`, `消息ID：${o.id}`].join('\n');
}

/** The accept notice text (docs/compat.md), with the real time. */
export function acceptNotice(other: Sender, time: number): string {
  return `您与 ${other.name}（ID:${other.id}）已成功建立好友关系。（${bj(time)} 北京时间）`;
}

/** Expected GET /messages body. */
export function inboxText(o: { total: number; blocks: string[]; limit?: number; fromId?: number }): string {
  const limit = o.limit ?? 100;
  const fetched = o.blocks.length;
  const remaining = o.total - fetched;
  const tail =
    remaining > 0 ? `（约 ${Math.ceil(remaining / limit)} 次可读完，每次 ${limit} 条）` : '（已全部读取）';
  const scope = o.fromId ? `来自 ID:${o.fromId} ` : '';
  const summary = `${scope}收件箱共 ${o.total} 条 | 本次读取并清除 ${fetched} 条 | 剩余 ${remaining} 条${tail}`;
  const items = o.blocks.map((b, i) => `[${i + 1}]\n${b}`).join(`\n${SEP}\n`);
  return `${summary}\n${HEAVY}\n${items}\n${HEAVY}`;
}

/** Expected /send reply with the W-16 preview (blocks = the first ≤5 of the caller's inbox). */
export function sendReplyText(success: string, total: number, blocks: string[]): string {
  if (total === 0) return success;
  const k = blocks.length;
  const more = total > k ? `，还有 ${total - k} 条` : '';
  const items = blocks.map((b, i) => `[${i + 1}]\n${b}`).join(`\n${SEP}\n`);
  return `${success}\n\n收件箱共 ${total} 条，预览前 ${k} 条${more}：\n${HEAVY}\n${items}\n${HEAVY}`;
}

/** The 5-line user block of /users and /users/{id} (without the `[i] ` prefix). */
export function userBlock(o: {
  id: number;
  name: string;
  description?: string | null;
  status: Status;
  created: number;
  lastSeen: number;
}): string {
  return [
    `${o.name}（ID:${o.id}）`,
    `    简介：${o.description || '（无）'}`,
    `    状态：${LABEL[o.status]}`,
    `    注册时间：${bj(o.created)}`,
    `    最后活跃：${bj(o.lastSeen)}`,
  ].join('\n');
}

export function friendBlock(o: {
  id: number;
  name: string;
  description?: string | null;
  since: number;
  lastSeen: number;
}): string {
  return [
    `${o.name}（ID:${o.id}）`,
    `    简介：${o.description || '（无）'}`,
    `    好友建立时间：${bj(o.since)}`,
    `    最后活跃：${bj(o.lastSeen)}`,
  ].join('\n');
}

export function friendsText(blocks: string[]): string {
  if (blocks.length === 0) return '暂无好友';
  const items = blocks.map((b, i) => `[${i + 1}] ${b}`).join(`\n${SEP}\n`);
  return `共 ${blocks.length} 位好友\n${HEAVY}\n${items}\n${HEAVY}`;
}

export const TEXT_TYPE = 'text/plain; charset=utf-8';

export interface RelayPerTest {
  clock: Clock;
  relay: TestRelay;
  /** Replaces this test's relay by one on the same clock with other settings (closed after the test). */
  restart(options: TestRelayOptions): Promise<void>;
}

/** Per test: a fresh Clock (at T0) and a relay on it, closed after the test. */
export function relayPerTest(options: TestRelayOptions = {}): RelayPerTest {
  const clock = perTestFixture(
    'the clock',
    () => Promise.resolve(new Clock()),
    () => Promise.resolve(),
  );
  const slot = late<TestRelay>('the relay');
  let current: TestRelay | undefined;
  const start = async (o: TestRelayOptions): Promise<void> => {
    current = await startRelay({ now: clock.now, ...o });
    slot.set(current);
  };
  beforeEach(() => start(options));
  afterEach(async () => {
    const r = current;
    current = undefined;
    await r?.close();
  });
  return {
    clock,
    relay: slot.ref,
    async restart(o) {
      const r = current;
      current = undefined;
      await r?.close();
      await start(o);
    },
  };
}
