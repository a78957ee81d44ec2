// Registration, discovery, profiles and status (docs/compat.md: /register, /users, /users/{id}, /me,
// /stats, /health).

import { randomBytes } from 'node:crypto';
import {
  formatRegistered,
  formatStatusUpdated,
  formatUserDetail,
  formatUserList,
  hasControlChars,
  hasSenderIdMarker,
  nameKey,
  RegisterBody,
  RelayError,
  StatusBody,
  UserIdPath,
  DiscoverQuery,
  userJson,
  type UserStatus,
} from '@openwechat/protocol';
import { fromSchema, jsonBody, type Issues } from '../input.ts';
import type { OpsStore, UserStore } from '../../store/types.ts';
import type { Output, StoreCtx } from '../route.ts';
import { sha256Hex } from '../route.ts';

export async function health({ services }: StoreCtx<OpsStore>): Promise<Output> {
  const body = { status: 'ok', version: services.version, features: services.features };
  return { text: JSON.stringify(body), json: body, contentType: 'application/json' };
}

export async function stats({ services }: StoreCtx<OpsStore>): Promise<Output> {
  const s = await services.store.getStats();
  const body = { users: s.users, friendships: s.friendships, messages: s.messages };
  return { text: JSON.stringify(body), json: body, contentType: 'application/json' };
}

export interface RegisterInput {
  name: string;
  description: string | null;
  status: UserStatus;
}

export function parseRegister(req: { body: unknown }, issues: Issues): RegisterInput {
  const body = jsonBody(issues, req.body);
  if (!body) return undefined as never;
  const { name, description, status } = fromSchema(issues, 'body', RegisterBody, body);
  return { name: name ?? '', description: description ?? null, status: status ?? 'open' };
}

export async function register({ services }: StoreCtx<UserStore>, input: RegisterInput): Promise<Output> {
  const { store, config, now, lastSeen } = services;
  // W-9: names and descriptions are inserted into line-oriented text read by LLMs; a line break or a
  // bidi override in them could forge a message block, so they are refused outright.
  if (hasControlChars(input.name)) throw new RelayError('invalid_name');
  // A name holding the sender-line marker could pass for another user's id in `name（ID:n）`.
  if (hasSenderIdMarker(input.name)) throw new RelayError('invalid_name', '名称不能包含“（ID:”');
  if (input.description !== null && hasControlChars(input.description))
    throw new RelayError('invalid_description');
  if (config.maxUsers > 0 && (await store.countUsers()) >= config.maxUsers) {
    throw new RelayError('registration_closed');
  }
  const token = randomBytes(16).toString('hex');
  const at = now();
  const user = await store.createUser({
    name: input.name,
    nameKey: nameKey(input.name),
    description: input.description,
    status: input.status,
    tokenHash: sha256Hex(token),
    createdAt: at,
  });
  // The reference sets last_seen at registration; the Top100 then lists the newcomer.
  lastSeen.touch(user.id, at);
  await lastSeen.flush();
  user.lastSeenAt = at;
  // W-11: only users open to strangers are shown to a newcomer.
  const top = await store.topActiveUsers(100);
  return {
    text: formatRegistered({ user, token, top }),
    json: { user: userJson(user), token, top_users: top.map(userJson) },
  };
}

export interface DiscoverInput {
  keyword: string | null;
}

export function parseDiscover(req: { query: unknown }, issues: Issues): DiscoverInput {
  const { keyword } = fromSchema(issues, 'query', DiscoverQuery, req.query as Record<string, unknown>);
  const trimmed = typeof keyword === 'string' ? keyword.trim() : '';
  return { keyword: trimmed || null };
}

export async function discover(
  { services, user }: StoreCtx<UserStore> & { user: { id: number } },
  input: DiscoverInput,
) {
  await services.lastSeen.flush();
  // Names and descriptions never contain control characters (refused at /register), so a keyword with
  // NUL matches nobody; answered here because PostgreSQL text cannot even carry NUL as a parameter.
  if (input.keyword?.includes('\u0000')) {
    return { text: formatUserList({ total: 0, users: [] }), json: { total: 0, users: [] } };
  }
  const { total, users } = await services.store.discoverUsers({
    excludeId: user.id,
    keyword: input.keyword,
    limit: 10,
  });
  return { text: formatUserList({ total, users }), json: { total, users: users.map(userJson) } };
}

export function parseUserIdPath(req: { params: unknown }, issues: Issues): { userId: number } {
  return {
    userId: fromSchema(issues, 'path', UserIdPath, req.params as Record<string, unknown>).user_id ?? 0,
  };
}

export async function userDetail(
  { services }: StoreCtx<UserStore>,
  input: { userId: number },
): Promise<Output> {
  await services.lastSeen.flush();
  const u = await services.store.getUser(input.userId);
  if (!u) throw new RelayError('user_not_found');
  return { text: formatUserDetail(u), json: { user: userJson(u) } };
}

export function parseStatus(req: { body: unknown }, issues: Issues): { status: UserStatus } {
  const body = jsonBody(issues, req.body);
  if (!body) return { status: 'open' };
  return { status: fromSchema(issues, 'body', StatusBody, body).status ?? 'open' };
}

export async function updateMe(
  { services, user }: StoreCtx<UserStore> & { user: { id: number } },
  input: { status: UserStatus },
): Promise<Output> {
  await services.lastSeen.flush(); // the reply shows this request's activity time
  const u = await services.store.setStatus(user.id, input.status);
  if (!u) throw new RelayError('invalid_token');
  return { text: formatStatusUpdated(input.status), json: { user: userJson(u) } };
}
