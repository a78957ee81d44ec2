// Helpers for the group-chat suites (docs/groups-api.md): calls over real sockets, and the expected texts
// written out from the API decision (not taken from the protocol package under test).

import { expect } from 'vitest';
import { befriend, bj, req, type Reply, type User } from '../relay/client.ts';

export const HEAVY = '═'.repeat(40);
export const SEP = '─'.repeat(40);

export async function createGroup(
  base: string,
  owner: { token: string },
  body: { name: string; description?: string | null; member_ids?: number[] },
  jsonMode = false,
): Promise<Reply> {
  return req(base, 'POST', '/groups', { token: owner.token, json: body, jsonMode });
}

/** Creates a group in JSON mode and returns its id. */
export async function createGroupOk(
  base: string,
  owner: { token: string },
  name: string,
  memberIds: number[],
  description?: string | null,
): Promise<number> {
  const r = await createGroup(base, owner, { name, member_ids: memberIds, description }, true);
  expect(r.status, r.body).toBe(200);
  return (JSON.parse(r.body) as { group: { id: number } }).group.id;
}

export async function groupSend(
  base: string,
  from: { token: string },
  gid: number,
  content: string,
  opts: { mentionIds?: number[]; jsonMode?: boolean; key?: string } = {},
): Promise<Reply> {
  return req(base, 'POST', `/groups/${gid}/send`, {
    token: from.token,
    json: { content, ...(opts.mentionIds ? { mention_ids: opts.mentionIds } : {}) },
    jsonMode: opts.jsonMode,
    headers: opts.key ? { 'Idempotency-Key': opts.key } : {},
  });
}

export async function groupSendFile(
  base: string,
  from: { token: string },
  gid: number,
  f: { bytes: Buffer; name: string; content?: string; mentionIds?: string; key?: string; type?: string },
  jsonMode = false,
): Promise<Reply> {
  const form = new FormData();
  if (f.content !== undefined) form.set('content', f.content);
  if (f.mentionIds !== undefined) form.set('mention_ids', f.mentionIds);
  form.set(
    'file',
    new Blob([new Uint8Array(f.bytes)], { type: f.type ?? 'application/octet-stream' }),
    f.name,
  );
  return req(base, 'POST', `/groups/${gid}/send/file`, {
    token: from.token,
    body: form,
    jsonMode,
    headers: f.key ? { 'Idempotency-Key': f.key } : {},
  });
}

/** The owner and `n` friends of the owner named `<prefix><i>`. */
export async function ownerWithFriends(
  base: string,
  register: (name: string) => Promise<User>,
  n: number,
  prefix = 'f',
): Promise<{ owner: User; friends: User[] }> {
  const owner = await register('owner');
  const friends: User[] = [];
  for (let i = 0; i < n; i++) {
    const f = await register(`${prefix}${i}`);
    await befriend(base, owner, f);
    friends.push(f);
  }
  return { owner, friends };
}

// ── Expected texts ─────────────────────────────────────────────────────────────────────────────────

export function groupBlock(o: {
  group: { id: number; name: string };
  time: number;
  from: { id: number; name: string; description?: string | null };
  content: string;
  id: number;
  mentioned?: boolean;
  file?: { name: string; id: string };
}): string {
  const sender = `${o.from.name}（ID:${o.from.id}）${o.from.description ? ` | ${o.from.description}` : ''}`;
  return [
    '类型：群聊消息',
    `群组：${o.group.name}（群ID:${o.group.id}）`,
    `时间：${bj(o.time)}`,
    `发件人：${sender}`,
    `内容：${o.content.split('\n').join('\n  ')}`,
    ...(o.mentioned ? ['提到了你：是'] : []),
    ...(o.file ? [`附件：${o.file.name}`, `附件下载：/files/${o.file.id}`] : []),
    `消息ID：${o.id}`,
  ].join('\n');
}

export function noticeBlock(o: { time: number; content: string; id: number }): string {
  return ['类型：系统通知', `时间：${bj(o.time)}`, `内容：${o.content}`, `消息ID：${o.id}`].join('\n');
}

/** The JSON of one stored message of the sender's preview / inbox page. */
export interface MessageJson {
  id: number;
  type: string;
  created_at: string;
  from_id: number | null;
  from: { id: number; name: string; description: string | null } | null;
  content: string;
  attachment: { name: string; file_id: string | null; url: string | null } | null;
  group: { id: number; name: string } | null;
  mentioned: boolean;
}

/** Every stored message of a user's inbox, oldest first, without acknowledging anything (JSON mode). */
export async function peekInbox(base: string, u: { token: string }): Promise<MessageJson[]> {
  const r = await req(base, 'GET', '/messages?after=0&limit=500', { token: u.token, jsonMode: true });
  expect(r.status, r.body).toBe(200);
  return (JSON.parse(r.body) as { messages: MessageJson[] }).messages;
}

/** Empties inboxes (read-and-clear). */
export async function clearInboxes(base: string, ...users: User[]): Promise<void> {
  for (const u of users) await req(base, 'GET', '/messages?limit=500', { token: u.token });
}
