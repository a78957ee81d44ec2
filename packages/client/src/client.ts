// One client for both relays. With our relay it speaks JSON mode (real statuses, stable error codes,
// message ids, idempotent sends, stored files); with the reference — or when told to behave as with it
// (`mode: 'text'`) — it sends the same requests and reads the plain-text layouts with the protocol
// package's parsers. Every failure is a ClientError (see errors.ts); nothing here writes to stdout.

import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  checkJson,
  displayFilename,
  ENDPOINTS,
  RELAY_FEATURES,
  filenameOfDisposition,
  messageFromJson,
  parseMessageBlock,
  parseRegistered,
  parseSendReply,
  ProtocolParseError,
  splitInboxRead,
  type FriendJson,
  type GroupJson,
  type GroupMemberJson,
  type GroupSendResultJson,
  type SendResultJson,
  type KeyBundleJson,
  type Static,
  type TSchema,
  type UserJson,
  type UserStatus,
} from '@openwechat/protocol';
import { ClientError, errorOfFailure, errorOfReply } from './errors.ts';
import { fetchWithinOrigin } from './http.ts';
import { receiptFromJson } from './receipts.ts';
import { openStream, type OpenStreamOptions, type SseStream } from './stream.ts';
import {
  parseBlockReply,
  parseFriends,
  parseHomepageUpdated,
  parseStatusUpdated,
  parseUserDetail,
  parseUserList,
} from './text.ts';
import type {
  Capabilities,
  DownloadedFile,
  Friend,
  Group,
  GroupDetail,
  GroupMember,
  GroupSendResult,
  InboxPage,
  Receipt,
  SendResult,
  SentGroupSend,
  SentSend,
  User,
} from './types.ts';

export type ClientMode = 'auto' | 'json' | 'text';

export interface RelayClientOptions {
  /** The user's relay, e.g. https://relay.example.org (a trailing slash is dropped). No default exists. */
  baseUrl: string;
  token?: string | null;
  /**
   * auto (default): ask /health and use JSON mode on our relay, text on the reference.
   * text: behave exactly as with the reference (text parsing, legacy streams, read-and-clear inbox).
   * json: assume our relay without asking.
   */
  mode?: ClientMode;
  /** Per request (not for streams), default 15 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface Reply {
  status: number;
  headers: Headers;
  body: string;
}

interface RequestOptions {
  auth?: boolean;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
  /** Ask for JSON mode. */
  wantJson?: boolean;
  timeoutMs?: number;
}

/** Checks and normalises a relay address: http(s) only, no trailing slash. */
export function normalizeBaseUrl(raw: string): string {
  const text = raw.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ClientError(
      'unsupported',
      'unsupported',
      `not a URL: "${raw}" (expected http(s)://host[:port])`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ClientError('unsupported', 'unsupported', `the relay address must be http(s), got "${raw}"`);
  }
  if (url.search || url.hash) {
    throw new ClientError('unsupported', 'unsupported', `the relay address must not carry ?query or #hash`);
  }
  return url.toString().replace(/\/+$/, '');
}

function userFromJson(u: UserJson): User {
  return {
    id: u.id,
    name: u.name,
    description: u.description,
    status: u.status,
    createdAt: u.created_at ? Date.parse(u.created_at) : null,
    lastSeenAt: u.last_seen_at ? Date.parse(u.last_seen_at) : null,
  };
}

/** The inverse of userFromJson(): a user in the relay's JSON shape, for callers that print or return JSON. */
export function userToJson(u: User): Omit<UserJson, 'status' | 'created_at'> & {
  status: User['status'];
  created_at: string | null;
} {
  return {
    id: u.id,
    name: u.name,
    description: u.description,
    status: u.status,
    created_at: u.createdAt === null ? null : new Date(u.createdAt).toISOString(),
    last_seen_at: u.lastSeenAt === null ? null : new Date(u.lastSeenAt).toISOString(),
  };
}

function friendFromJson(f: FriendJson): Friend {
  return { ...userFromJson(f), friendsSince: f.friends_since ? Date.parse(f.friends_since) : null };
}

function groupFromJson(g: GroupJson): Group {
  return {
    id: g.id,
    name: g.name,
    description: g.description ?? null,
    ownerId: g.owner_id,
    ownerName: g.owner_name,
    memberCount: g.member_count,
    createdAt: Date.parse(g.created_at),
    role: g.role,
  };
}

function memberFromJson(m: GroupMemberJson): GroupMember {
  return {
    id: m.id,
    name: m.name,
    description: m.description ?? null,
    role: m.role,
    joinedAt: Date.parse(m.joined_at),
  };
}

function positiveInt(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new ClientError('unsupported', 'unsupported', `${what} must be a positive integer, got ${n}`);
  }
  return n;
}

export class RelayClient {
  readonly baseUrl: string;
  token: string | null;
  readonly mode: ClientMode;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private caps: Capabilities | null = null;

  constructor(opts: RelayClientOptions) {
    this.baseUrl = normalizeBaseUrl(opts.baseUrl);
    this.token = opts.token ?? null;
    this.mode = opts.mode ?? 'auto';
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  private async request(method: string, path: string, opts: RequestOptions = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.auth) {
      if (!this.token) throw new ClientError('unsupported', 'invalid_token', 'no token configured');
      headers['X-Token'] = this.token;
    }
    if (opts.wantJson) headers['Accept'] = 'application/json';
    let body = opts.body;
    if (body === undefined && opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers['Content-Type'] = 'application/json';
    }
    const what = `${method} ${path}`;
    let res: Response;
    try {
      res = await fetchWithinOrigin(this.fetchImpl, this.baseUrl + path, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs),
      });
    } catch (err) {
      throw errorOfFailure(err, `${what} at ${this.baseUrl}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw errorOfFailure(err, `${what} at ${this.baseUrl} (reading the answer)`);
    }
    return { status: res.status, headers: res.headers, body: text };
  }

  /** Throws the refusal an answer carries. */
  private check(reply: Reply): Reply {
    const err = errorOfReply(reply.status, reply.headers, reply.body);
    if (err) throw err;
    return reply;
  }

  /**
   * The one place a JSON answer is read: parsed, then checked against the endpoint's schema from
   * @openwechat/protocol (the one the relay's JSON mode is typed by) instead of cast, so a relay that
   * answers something else fails here, naming the field, not somewhere in a caller.
   */
  private parseJson<S extends TSchema>(reply: Reply, what: string, schema: S): Static<S> {
    let body: unknown;
    try {
      body = JSON.parse(reply.body);
    } catch {
      throw new ClientError('protocol', 'bad_response', `${what}: the relay's answer is not JSON`, {
        status: reply.status,
      });
    }
    try {
      return checkJson(schema, body, `${what}: unexpected answer`);
    } catch (err) {
      if (!(err instanceof ProtocolParseError)) throw err;
      throw new ClientError('protocol', 'bad_response', err.message, {
        status: reply.status,
      });
    }
  }

  /** Runs a text parser, turning its failure into a ClientError. */
  private parseText<T>(reply: Reply, what: string, parse: (text: string) => T): T {
    try {
      return parse(reply.body);
    } catch (err) {
      if (err instanceof ProtocolParseError) {
        throw new ClientError('protocol', 'bad_response', `${what}: unexpected answer: ${err.message}`, {
          status: reply.status,
        });
      }
      throw err;
    }
  }

  /** GET /health as the relay sent it. */
  async health(): Promise<{ status: string; version?: string; features?: string[] }> {
    const reply = this.check(await this.request('GET', '/health'));
    return this.parseJson(reply, 'GET /health', ENDPOINTS['GET /health'].produces.schema);
  }

  /** What this relay can do (asked once, then cached). `mode: 'text'` reports the reference's set. */
  async capabilities(refresh = false): Promise<Capabilities> {
    if (this.caps && !refresh) return this.caps;
    if (this.mode === 'text') {
      this.caps = capabilitiesOf('reference', null, []);
      return this.caps;
    }
    if (this.mode === 'json') {
      this.caps = capabilitiesOf('openwechat', null, [...RELAY_FEATURES]);
      return this.caps;
    }
    const h = await this.health();
    const features = Array.isArray(h.features) ? h.features.filter((f) => typeof f === 'string') : null;
    const version = typeof h.version === 'string' ? h.version : null;
    // The reference answers a bare {"status":"ok"}: no features list.
    this.caps = features
      ? capabilitiesOf('openwechat', version, features)
      : capabilitiesOf('reference', version, []);
    return this.caps;
  }

  private async json(): Promise<boolean> {
    return (await this.capabilities()).json;
  }

  async register(input: {
    name: string;
    description?: string | null;
    status?: UserStatus;
  }): Promise<{ user: User; token: string }> {
    const body: Record<string, unknown> = { name: input.name };
    if (input.description != null) body.description = input.description;
    if (input.status) body.status = input.status;
    const json = await this.json();
    const reply = this.check(await this.request('POST', '/register', { json: body, wantJson: json }));
    if (json) {
      const j = this.parseJson(reply, 'POST /register', ENDPOINTS['POST /register'].json);
      return { user: userFromJson(j.user), token: j.token };
    }
    const r = this.parseText(reply, 'POST /register', parseRegistered);
    return {
      user: {
        id: r.id,
        name: r.name,
        description: input.description ?? null,
        status: r.status,
        createdAt: null,
        lastSeenAt: null,
      },
      token: r.token,
    };
  }

  private async sendReply(reply: Reply, what: string, json: boolean): Promise<SendResult> {
    this.check(reply);
    const replayed = reply.headers.get('idempotent-replayed') === 'true';
    if (json) return sendResultFromJson(this.parseJson(reply, what, ENDPOINTS['POST /send'].json), replayed);
    const r = parseSendReply(reply.body);
    if (!r.ok || !r.outcome) {
      throw new ClientError(
        'protocol',
        'bad_response',
        `${what}: unexpected answer: ${reply.body.slice(0, 200)}`,
      );
    }
    return {
      outcome: r.outcome,
      message: reply.body.split('\n', 1)[0] ?? '',
      messageId: null,
      inbox: null,
      replayed,
    };
  }

  private async idempotencyHeaders(key: string | undefined): Promise<Record<string, string>> {
    if (!key) return {};
    return (await this.capabilities()).idempotency ? { 'Idempotency-Key': key } : {};
  }

  /**
   * POST /send. With our relay, `idempotencyKey` makes a retry safe (no second delivery). `e2e` is an
   * end-to-end ciphertext envelope (E2eSession builds it; content is then E2E_PLACEHOLDER).
   */
  async send(
    toId: number,
    content: string,
    opts: { idempotencyKey?: string; e2e?: string } = {},
  ): Promise<SendResult> {
    const json = opts.e2e ? true : await this.json();
    const reply = await this.request('POST', '/send', {
      auth: true,
      wantJson: json,
      json: opts.e2e ? { to_id: toId, content, e2e: opts.e2e } : { to_id: toId, content },
      headers: await this.idempotencyHeaders(opts.idempotencyKey),
    });
    return this.sendReply(reply, 'POST /send', json);
  }

  /** POST /send/file (multipart `to_id`, `content`, `file`). The file is streamed from disk. */
  async sendFile(
    toId: number,
    file: { path: string; filename?: string; contentType?: string } | null,
    content = '',
    opts: { idempotencyKey?: string; e2e?: string } = {},
  ): Promise<SendResult> {
    const form = new FormData();
    form.set('to_id', String(toId));
    form.set('content', content);
    if (opts.e2e) form.set('e2e', opts.e2e);
    if (file) {
      form.set('file', await this.fileBlob(file), file.filename ?? basename(file.path));
    }
    const json = await this.json();
    const reply = await this.request('POST', '/send/file', {
      auth: true,
      wantJson: json,
      body: form,
      headers: await this.idempotencyHeaders(opts.idempotencyKey),
      timeoutMs: Math.max(this.timeoutMs, 120_000),
    });
    return this.sendReply(reply, 'POST /send/file', json);
  }

  /**
   * GET /messages. Without `after` it is the reference's read-and-clear. With `after` (our relay only)
   * it acknowledges ids ≤ after and returns the next page without deleting it.
   */
  async readInbox(opts: { limit?: number; fromId?: number; after?: number } = {}): Promise<InboxPage> {
    const caps = await this.capabilities();
    if (opts.after !== undefined && !caps.resume) {
      throw new ClientError('unsupported', 'unsupported', 'this relay has no lossless inbox read (?after=)');
    }
    const q = new URLSearchParams();
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    if (opts.fromId !== undefined) q.set('from_id', String(opts.fromId));
    if (opts.after !== undefined) q.set('after', String(opts.after));
    const path = `/messages${q.size ? `?${q}` : ''}`;
    const reply = this.check(await this.request('GET', path, { auth: true, wantJson: caps.json }));
    if (caps.json) {
      const j = this.parseJson(reply, 'GET /messages', ENDPOINTS['GET /messages'].json);
      return {
        total: j.total,
        fetched: j.fetched,
        remaining: j.remaining,
        messages: j.messages.map(messageFromJson),
        blocks: null,
      };
    }
    return this.parseText(reply, 'GET /messages', (text) => {
      const { blocks, ...counts } = splitInboxRead(text);
      return { ...counts, messages: blocks.map(parseMessageBlock), blocks };
    });
  }

  /** POST /messages/ack: the relay may delete every message with id ≤ upTo (our relay only). */
  async ack(upTo: number): Promise<{ acked: number }> {
    const caps = await this.capabilities();
    if (!caps.resume)
      throw new ClientError('unsupported', 'unsupported', 'this relay has no acknowledgements');
    const reply = this.check(
      await this.request('POST', '/messages/ack', { auth: true, wantJson: true, json: { up_to: upTo } }),
    );
    return { acked: this.parseJson(reply, 'POST /messages/ack', ENDPOINTS['POST /messages/ack'].json).acked };
  }

  async friends(): Promise<Friend[]> {
    const json = await this.json();
    const reply = this.check(await this.request('GET', '/friends', { auth: true, wantJson: json }));
    if (json)
      return this.parseJson(reply, 'GET /friends', ENDPOINTS['GET /friends'].json).friends.map(
        friendFromJson,
      );
    return this.parseText(reply, 'GET /friends', parseFriends);
  }

  /** GET /users: up to 10 random `open` users, optionally matching a keyword. */
  async discover(keyword?: string): Promise<{ total: number; users: User[] }> {
    const json = await this.json();
    const q = keyword ? `?keyword=${encodeURIComponent(keyword)}` : '';
    const reply = this.check(await this.request('GET', `/users${q}`, { auth: true, wantJson: json }));
    if (json) {
      const j = this.parseJson(reply, 'GET /users', ENDPOINTS['GET /users'].json);
      return { total: j.total, users: j.users.map(userFromJson) };
    }
    return this.parseText(reply, 'GET /users', parseUserList);
  }

  async user(id: number): Promise<User> {
    const json = await this.json();
    const reply = this.check(await this.request('GET', `/users/${id}`, { auth: true, wantJson: json }));
    if (json)
      return userFromJson(
        this.parseJson(reply, 'GET /users/{id}', ENDPOINTS['GET /users/:user_id'].json).user,
      );
    return this.parseText(reply, 'GET /users/{id}', parseUserDetail);
  }

  /** PATCH /me. Returns the new status (and the profile, when the relay sends it). */
  async setStatus(status: UserStatus): Promise<{ status: UserStatus; user: User | null }> {
    const json = await this.json();
    const reply = this.check(
      await this.request('PATCH', '/me', { auth: true, wantJson: json, json: { status } }),
    );
    if (json) {
      const user = userFromJson(this.parseJson(reply, 'PATCH /me', ENDPOINTS['PATCH /me'].json).user);
      return { status: user.status ?? status, user };
    }
    return { status: this.parseText(reply, 'PATCH /me', parseStatusUpdated), user: null };
  }

  async block(id: number): Promise<{ id: number; name: string }> {
    return this.blockOrUnblock('block', id);
  }

  async unblock(id: number): Promise<{ id: number; name: string }> {
    return this.blockOrUnblock('unblock', id);
  }

  private async blockOrUnblock(
    action: 'block' | 'unblock',
    id: number,
  ): Promise<{ id: number; name: string }> {
    const json = await this.json();
    const what = `POST /${action}/{id}`;
    const reply = this.check(await this.request('POST', `/${action}/${id}`, { auth: true, wantJson: json }));
    if (json) return this.parseJson(reply, what, ENDPOINTS[`POST /${action}/:user_id`].json).user;
    return this.parseText(reply, what, parseBlockReply);
  }

  /** PUT /homepage with the page as the raw body. Returns the public URL the relay reports. */
  async uploadHomepage(html: string | Uint8Array): Promise<{ url: string }> {
    const json = await this.json();
    const reply = this.check(
      await this.request('PUT', '/homepage', {
        auth: true,
        wantJson: json,
        body: typeof html === 'string' ? html : new Blob([new Uint8Array(html)]),
        headers: { 'Content-Type': 'text/html; charset=utf-8' },
      }),
    );
    if (json) return this.parseJson(reply, 'PUT /homepage', ENDPOINTS['PUT /homepage'].json);
    return this.parseText(reply, 'PUT /homepage', parseHomepageUpdated);
  }

  /** GET /homepage/{id}: the page's HTML (public, no token). */
  async homepage(id: number): Promise<string> {
    return this.check(await this.request('GET', `/homepage/${id}`)).body;
  }

  async stats(): Promise<{ users: number; friendships: number; messages: number }> {
    const reply = this.check(await this.request('GET', '/stats'));
    return this.parseJson(reply, 'GET /stats', ENDPOINTS['GET /stats'].produces.schema);
  }

  /**
   * GET /files/<id> streamed to `dest` (written to a temporary file, fsynced, then renamed, so `dest`
   * exists only complete). `fileRef` is a file id or the block's `/files/<id>` path.
   */
  async downloadFile(fileRef: string, dest: string): Promise<DownloadedFile> {
    const fileId = fileRef.replace(/^.*\/files\//, '');
    if (!/^[\w-]{1,128}$/.test(fileId)) {
      throw new ClientError('unsupported', 'unsupported', `not a file id: ${fileRef}`);
    }
    if (!this.token) throw new ClientError('unsupported', 'invalid_token', 'no token configured');
    const what = `GET /files/${fileId} at ${this.baseUrl}`;
    let res: Response;
    try {
      res = await fetchWithinOrigin(this.fetchImpl, `${this.baseUrl}/files/${fileId}`, {
        headers: { 'X-Token': this.token },
        signal: AbortSignal.timeout(Math.max(this.timeoutMs, 300_000)),
      });
    } catch (err) {
      throw errorOfFailure(err, what);
    }
    if (res.status !== 200 || !res.body) {
      const body = await res.text().catch(() => '');
      throw (
        errorOfReply(res.status, res.headers, body) ??
        new ClientError('protocol', 'bad_response', `${what}: HTTP ${res.status}`, { status: res.status })
      );
    }
    const name = displayFilename(filenameOfDisposition(res.headers.get('content-disposition')) ?? fileId);
    await mkdir(dirname(dest), { recursive: true });
    const tmp = join(dirname(dest), `.${basename(dest)}.part-${process.pid}`);
    try {
      await pipeline(
        Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
        createWriteStream(tmp),
      );
      const fh = await open(tmp, 'r+');
      let size: number;
      try {
        await fh.sync();
        size = (await fh.stat()).size;
      } finally {
        await fh.close();
      }
      await rename(tmp, dest);
      return { path: dest, name, size, contentType: res.headers.get('content-type') };
    } catch (err) {
      await rm(tmp, { force: true });
      throw errorOfFailure(err, what);
    }
  }

  /**
   * GET /files/<id> as the relay answered it, any status (JSON errors), for a caller that streams or
   * cancels the body itself (the bridge's media links). Throws a ClientError only when there is no answer
   * (network, `signal`) or the relay redirected elsewhere.
   */
  async openFile(fileId: string, opts: { signal?: AbortSignal } = {}): Promise<Response> {
    if (!this.token) throw new ClientError('unsupported', 'invalid_token', 'no token configured');
    const path = `/files/${encodeURIComponent(fileId)}`;
    try {
      return await fetchWithinOrigin(this.fetchImpl, this.baseUrl + path, {
        headers: { 'X-Token': this.token, Accept: 'application/json' },
        signal: opts.signal,
      });
    } catch (err) {
      throw errorOfFailure(err, `GET /files/{id} at ${this.baseUrl}`);
    }
  }

  // ───────────── groups (issue 11: docs/groups-api.md) ─────────────
  // Groups exist only on openwechat relays, which always speak JSON, so these calls use JSON mode whatever
  // `mode` says. A relay without groups (the reference) answers 404 for the route: that becomes
  // `unsupported`, while a group the caller cannot see is the relay's `group_not_found`.

  private async groupCall(
    method: string,
    path: string,
    opts: Omit<RequestOptions, 'auth' | 'wantJson'> = {},
  ): Promise<Reply> {
    const reply = await this.request(method, path, { ...opts, auth: true, wantJson: true });
    const err = errorOfReply(reply.status, reply.headers, reply.body);
    if (err && (err.code === 'not_found' || err.code === 'method_not_allowed')) {
      throw new ClientError(
        'unsupported',
        'unsupported',
        `${method} ${path}: this relay has no group chats (HTTP ${reply.status})`,
        { status: reply.status },
      );
    }
    if (err) throw err;
    if (!(reply.headers.get('content-type') ?? '').includes('json')) {
      // A relay that ignores JSON mode (the reference, or a proxy in front of ours) has no group API.
      throw new ClientError(
        'unsupported',
        'unsupported',
        `${method} ${path}: the relay did not answer in JSON mode, so it has no group chats`,
        { status: reply.status },
      );
    }
    return reply;
  }

  /** POST /groups: the caller becomes the owner; `memberIds` must be the owner's accepted friends. */
  async createGroup(input: {
    name: string;
    description?: string | null;
    memberIds?: number[];
  }): Promise<Group> {
    const body: Record<string, unknown> = { name: input.name };
    if (input.description != null) body.description = input.description;
    if (input.memberIds?.length)
      body.member_ids = input.memberIds.map((id) => positiveInt(id, 'a member id'));
    const reply = await this.groupCall('POST', '/groups', { json: body });
    return groupFromJson(this.parseJson(reply, 'POST /groups', ENDPOINTS['POST /groups'].json).group);
  }

  /** GET /groups: the groups the caller belongs to. */
  async groups(): Promise<Group[]> {
    const reply = await this.groupCall('GET', '/groups');
    return this.parseJson(reply, 'GET /groups', ENDPOINTS['GET /groups'].json).groups.map(groupFromJson);
  }

  /** GET /groups/{gid}: the group and its members. */
  async group(gid: number): Promise<GroupDetail> {
    const path = `/groups/${positiveInt(gid, 'the group id')}`;
    const j = this.parseJson(
      await this.groupCall('GET', path),
      'GET /groups/{gid}',
      ENDPOINTS['GET /groups/:group_id'].json,
    );
    return { group: groupFromJson(j.group), members: j.members.map(memberFromJson) };
  }

  /** POST /groups/{gid}/members (owner only). Returns who was added. */
  async addGroupMembers(gid: number, userIds: number[]): Promise<Array<{ id: number; name: string }>> {
    const path = `/groups/${positiveInt(gid, 'the group id')}/members`;
    const reply = await this.groupCall('POST', path, {
      json: { user_ids: userIds.map((id) => positiveInt(id, 'a user id')) },
    });
    return this.parseJson(
      reply,
      'POST /groups/{gid}/members',
      ENDPOINTS['POST /groups/:group_id/members'].json,
    ).added;
  }

  /** DELETE /groups/{gid}/members/{uid}: the owner removes a member (a member may remove only itself). */
  async removeGroupMember(gid: number, userId: number): Promise<void> {
    const path = `/groups/${positiveInt(gid, 'the group id')}/members/${positiveInt(userId, 'the user id')}`;
    await this.groupCall('DELETE', path);
  }

  /** POST /groups/{gid}/leave (not the owner: transfer or dissolve first). */
  async leaveGroup(gid: number): Promise<void> {
    await this.groupCall('POST', `/groups/${positiveInt(gid, 'the group id')}/leave`);
  }

  /** PATCH /groups/{gid} (owner only): rename, describe, or hand the group to another member. */
  async updateGroup(
    gid: number,
    changes: { name?: string; description?: string | null; ownerId?: number },
  ): Promise<Group> {
    const body: Record<string, unknown> = {};
    if (changes.name !== undefined) body.name = changes.name;
    if (changes.description !== undefined) body.description = changes.description;
    if (changes.ownerId !== undefined) body.owner_id = positiveInt(changes.ownerId, 'the new owner id');
    const path = `/groups/${positiveInt(gid, 'the group id')}`;
    const reply = await this.groupCall('PATCH', path, { json: body });
    return groupFromJson(
      this.parseJson(reply, 'PATCH /groups/{gid}', ENDPOINTS['PATCH /groups/:group_id'].json).group,
    );
  }

  /** DELETE /groups/{gid} (owner only): every other member gets a system notice. */
  async dissolveGroup(gid: number): Promise<void> {
    await this.groupCall('DELETE', `/groups/${positiveInt(gid, 'the group id')}`);
  }

  private groupSendReply(reply: Reply, what: string): GroupSendResult {
    return groupSendResultFromJson(
      this.parseJson(reply, what, ENDPOINTS['POST /groups/:group_id/send'].json),
      reply.headers.get('idempotent-replayed') === 'true',
    );
  }

  private async requireReceipts(): Promise<void> {
    if (!(await this.capabilities()).receipts)
      throw new ClientError('unsupported', 'unsupported', 'this relay keeps no delivery receipts');
  }

  /**
   * GET /sent/{toId}/{messageId}: the delivery state of a message the caller sent (`messageId` as the
   * send returned it; for a group send, the member's copy). Throws ClientError `receipt_not_found` when
   * the caller did not send it or the relay no longer knows it (expired).
   */
  async receipt(toId: number, messageId: number): Promise<Receipt> {
    await this.requireReceipts();
    const path = `/sent/${positiveInt(toId, 'the recipient id')}/${positiveInt(messageId, 'the message id')}`;
    const reply = this.check(await this.request('GET', path, { auth: true, wantJson: true }));
    const j = this.parseJson(reply, 'GET /sent/{to}/{id}', ENDPOINTS['GET /sent/:to_id/:message_id'].json);
    return receiptFromJson(j.receipt);
  }

  private async sentJson(key: string) {
    await this.requireReceipts();
    if (!key || key.length > 255)
      throw new ClientError(
        'unsupported',
        'invalid_idempotency_key',
        'an Idempotency-Key has 1–255 characters',
      );
    const path = `/sent?${new URLSearchParams({ idempotency_key: key })}`;
    const reply = await this.request('GET', path, { auth: true, wantJson: true });
    if (reply.status === 404) {
      const err = errorOfReply(reply.status, reply.headers, reply.body);
      if (err?.code === 'send_not_found') return null;
      throw err ?? new ClientError('protocol', 'bad_response', `GET /sent: unexpected 404`);
    }
    return this.parseJson(this.check(reply), 'GET /sent', ENDPOINTS['GET /sent'].json);
  }

  /**
   * GET /sent?idempotency_key=: the private send the caller made with this key in the last 24 h — its
   * original result and the message's receipt — or null when there was none (so sending is safe). This
   * is how a runtime that crashed mid-send learns whether the send landed. A key used for a group send
   * is refused here (see sentGroupByKey).
   */
  async sentByKey(idempotencyKey: string): Promise<SentSend | null> {
    const j = await this.sentJson(idempotencyKey);
    if (!j) return null;
    if (j.result.result === 'group') {
      throw new ClientError(
        'unsupported',
        'unsupported',
        'this Idempotency-Key was used for a group send: use sentGroupByKey()',
      );
    }
    return {
      result: sendResultFromJson(j.result, true),
      receipt: j.receipt ? receiptFromJson(j.receipt) : null,
    };
  }

  /** sentByKey for a group send: the original result and one receipt per member's copy still known. */
  async sentGroupByKey(idempotencyKey: string): Promise<SentGroupSend | null> {
    const j = await this.sentJson(idempotencyKey);
    if (!j) return null;
    if (j.result.result !== 'group') {
      throw new ClientError(
        'unsupported',
        'unsupported',
        'this Idempotency-Key was used for a private send: use sentByKey()',
      );
    }
    return {
      result: groupSendResultFromJson(j.result, true),
      receipts: (j.receipts ?? []).map(receiptFromJson),
    };
  }

  /**
   * POST /groups/{gid}/send. `mentionIds` (and `@<member name>` in the content) mark members as
   * mentioned; `idempotencyKey` makes a retry safe.
   */
  async sendGroup(
    gid: number,
    content: string,
    opts: { mentionIds?: number[]; idempotencyKey?: string; e2e?: string } = {},
  ): Promise<GroupSendResult> {
    const body: Record<string, unknown> = { content };
    if (opts.e2e) body.e2e = opts.e2e;
    if (opts.mentionIds?.length)
      body.mention_ids = opts.mentionIds.map((id) => positiveInt(id, 'a mention id'));
    const path = `/groups/${positiveInt(gid, 'the group id')}/send`;
    const reply = await this.groupCall('POST', path, {
      json: body,
      headers: opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : {},
    });
    return this.groupSendReply(reply, 'POST /groups/{gid}/send');
  }

  /** POST /groups/{gid}/send/file (multipart `content`, `file`, `mention_ids` comma-separated). */
  async sendGroupFile(
    gid: number,
    file: { path: string; filename?: string; contentType?: string },
    content = '',
    opts: { mentionIds?: number[]; idempotencyKey?: string; e2e?: string } = {},
  ): Promise<GroupSendResult> {
    const path = `/groups/${positiveInt(gid, 'the group id')}/send/file`;
    const form = new FormData();
    form.set('content', content);
    if (opts.e2e) form.set('e2e', opts.e2e);
    if (opts.mentionIds?.length) {
      form.set('mention_ids', opts.mentionIds.map((id) => positiveInt(id, 'a mention id')).join(','));
    }
    form.set('file', await this.fileBlob(file), file.filename ?? basename(file.path));
    const reply = await this.groupCall('POST', path, {
      body: form,
      headers: opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : {},
      timeoutMs: Math.max(this.timeoutMs, 120_000),
    });
    return this.groupSendReply(reply, 'POST /groups/{gid}/send/file');
  }

  private async fileBlob(file: { path: string; contentType?: string }): Promise<Blob> {
    try {
      return await openAsBlob(file.path, { type: file.contentType ?? 'application/octet-stream' });
    } catch (err) {
      throw new ClientError(
        'unsupported',
        'unsupported',
        `cannot read ${file.path}: ${(err as Error).message}`,
      );
    }
  }

  // ───────────── end-to-end key directory (docs/e2e.md; E2eSession is the way to use it) ─────────────

  /** PUT /keys: publish this account's signed key bundle. */
  async putKeys(bundle: {
    identityKey: string;
    encryptionKey: string;
    version: number;
    signature: string;
  }): Promise<{ keys: KeyBundleJson; identityChanged: boolean }> {
    const reply = await this.keysCall('PUT', '/keys', {
      identity_key: bundle.identityKey,
      encryption_key: bundle.encryptionKey,
      version: bundle.version,
      signature: bundle.signature,
    });
    const j = this.parseJson(reply, 'PUT /keys', ENDPOINTS['PUT /keys'].json);
    return { keys: j.keys, identityChanged: j.identity_changed };
  }

  /** GET /keys/{id}: a user's published bundle, or null when they published none. */
  async getKeys(userId: number): Promise<KeyBundleJson | null> {
    const path = `/keys/${positiveInt(userId, 'the user id')}`;
    const reply = await this.request('GET', path, { auth: true, wantJson: true });
    const err = errorOfReply(reply.status, reply.headers, reply.body);
    if (err?.code === 'keys_not_found') return null;
    return this.parseJson(
      this.keysChecked(reply, 'GET', path),
      'GET /keys/{id}',
      ENDPOINTS['GET /keys/:user_id'].json,
    ).keys;
  }

  private async keysCall(method: string, path: string, json: unknown): Promise<Reply> {
    return this.keysChecked(
      await this.request(method, path, { auth: true, wantJson: true, json }),
      method,
      path,
    );
  }

  /** A relay without the key directory (the reference, an older relay) answers 404 for the route. */
  private keysChecked(reply: Reply, method: string, path: string): Reply {
    const err = errorOfReply(reply.status, reply.headers, reply.body);
    if (err && (err.code === 'not_found' || err.code === 'method_not_allowed')) {
      throw new ClientError(
        'unsupported',
        'unsupported',
        `${method} ${path}: this relay has no end-to-end key directory (HTTP ${reply.status})`,
        { status: reply.status },
      );
    }
    if (err) throw err;
    return reply;
  }

  /**
   * GET /stream. `since` (a number) asks for a resume stream (our relay: replay from there, nothing lost);
   * null asks for the reference's legacy stream. Resolves once the relay accepted the stream.
   */
  async openStream(opts: Omit<OpenStreamOptions, 'baseUrl' | 'token' | 'fetch'>): Promise<SseStream> {
    if (!this.token) throw new ClientError('unsupported', 'invalid_token', 'no token configured');
    return openStream({ ...opts, baseUrl: this.baseUrl, token: this.token, fetch: this.fetchImpl });
  }
}

function sendResultFromJson(j: SendResultJson, replayed: boolean): SendResult {
  return {
    outcome: j.result,
    message: j.message,
    messageId: j.message_id ?? null,
    inbox: j.inbox ? { total: j.inbox.total, preview: j.inbox.preview.map(messageFromJson) } : null,
    replayed,
  };
}

function groupSendResultFromJson(j: GroupSendResultJson, replayed: boolean): GroupSendResult {
  return {
    message: j.message,
    groupId: j.group_id,
    recipients: j.recipients,
    copies: j.copies ? j.copies.map((c) => ({ toId: c.to_id, messageId: c.message_id })) : null,
    inbox: j.inbox ? { total: j.inbox.total, preview: j.inbox.preview.map(messageFromJson) } : null,
    replayed,
  };
}

function capabilitiesOf(
  kind: Capabilities['kind'],
  version: string | null,
  features: string[],
): Capabilities {
  return {
    kind,
    version,
    features,
    json: features.includes('json'),
    resume: features.includes('resume'),
    idempotency: features.includes('idempotency'),
    files: features.includes('files'),
    groups: features.includes('groups'),
    receipts: features.includes('receipts'),
  };
}
