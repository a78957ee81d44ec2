// Readers for the reference's plain-text replies that the protocol package does not parse itself
// (user lists, friends, profile, status, block, homepage). Both relays print these layouts; ours indents
// continuation lines of multi-line values by two spaces (W-9), the reference does not.

import {
  HEAVY,
  parseBeijingTime,
  ProtocolParseError,
  SEP,
  STATUS_LABELS,
  USER_STATUSES,
  type UserStatus,
} from '@openwechat/protocol';
import type { Friend, User } from './types.ts';

const NONE = '（无）';

function statusOfLabel(label: string): UserStatus {
  const s = USER_STATUSES.find((k) => STATUS_LABELS[k] === label.trim() || k === label.trim());
  if (!s) throw new ProtocolParseError(`unknown status label: ${label}`);
  return s;
}

/** `<name>（ID:<id>）` where the name may itself span lines; the last marker wins. */
function parseNameLine(text: string): { id: number; name: string } {
  const m = /^([\s\S]*)（ID:(\d+)）$/.exec(text);
  if (!m) throw new ProtocolParseError(`not a name line: ${text}`);
  return { name: (m[1] ?? '').replace(/\n {2}/g, '\n'), id: Number(m[2]) };
}

/**
 * A user block: the name line(s), then `    <label>：value` lines; any other line continues the value
 * before it (our relay indents those by two spaces). The name, id and description, and the other fields.
 */
function parseUserItem(
  lines: string[],
  labels: readonly string[],
): { id: number; name: string; description: string | null; fields: Map<string, string> } {
  const head: string[] = [];
  const fields = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of lines) {
    const label = labels.find((l) => line.startsWith(`    ${l}：`) && !fields.has(l));
    if (label !== undefined) {
      current = [line.slice(label.length + 5)];
      fields.set(label, current);
    } else if (current) {
      current.push(line.startsWith('  ') ? line.slice(2) : line);
    } else {
      head.push(line);
    }
  }
  const values = new Map([...fields].map(([k, v]) => [k, v.join('\n')]));
  const { id, name } = parseNameLine(head.join('\n'));
  const description = values.get('简介');
  return {
    id,
    name,
    description: description === undefined || description === NONE ? null : description,
    fields: values,
  };
}

function optionalTime(text: string | undefined): number | null {
  if (text === undefined) return null;
  try {
    return parseBeijingTime(text);
  } catch {
    return null;
  }
}

const USER_LABELS = ['简介', '状态', '注册时间', '最后活跃'] as const;
const FRIEND_LABELS = ['简介', '好友建立时间', '最后活跃'] as const;

function userFromItem(lines: string[]): User {
  const { id, name, description, fields } = parseUserItem(lines, USER_LABELS);
  return {
    id,
    name,
    description,
    status: statusOfLabel(fields.get('状态') ?? ''),
    createdAt: optionalTime(fields.get('注册时间')),
    lastSeenAt: optionalTime(fields.get('最后活跃')),
  };
}

/** Splits `HEAVY … HEAVY` lists into items `[n] …`, separated by SEP lines. */
function listItems(lines: string[]): string[][] {
  if (lines[0] !== HEAVY || lines[lines.length - 1] !== HEAVY) {
    throw new ProtocolParseError('list without its heavy rules');
  }
  const body = lines.slice(1, -1);
  const items: string[][] = [];
  let current: string[] | null = null;
  for (let i = 0; i < body.length; i++) {
    const line = body[i] ?? '';
    const marker = `[${items.length + 1}] `;
    if (line.startsWith(marker) && (i === 0 || body[i - 1] === SEP)) {
      if (current && current[current.length - 1] === SEP) current.pop();
      current = [line.slice(marker.length)];
      items.push(current);
      continue;
    }
    if (!current) throw new ProtocolParseError(`list does not start with [1]: ${line}`);
    current.push(line);
  }
  return items;
}

/** `GET /users` (discovery). */
export function parseUserList(text: string): { total: number; users: User[] } {
  if (text === '暂无可交流的用户') return { total: 0, users: [] };
  const lines = text.split('\n');
  const m = /^本次随机展示 (\d+) 人（可交流用户共 (\d+) 人）$/.exec(lines[0] ?? '');
  if (!m) throw new ProtocolParseError(`not a user list: ${lines[0] ?? ''}`);
  return { total: Number(m[2]), users: listItems(lines.slice(1)).map(userFromItem) };
}

/** `GET /users/{id}`. */
export function parseUserDetail(text: string): User {
  return userFromItem(text.split('\n'));
}

/** `GET /friends`. */
export function parseFriends(text: string): Friend[] {
  if (text === '暂无好友') return [];
  const lines = text.split('\n');
  if (!/^共 \d+ 位好友$/.test(lines[0] ?? '')) throw new ProtocolParseError(`not a friend list: ${lines[0]}`);
  return listItems(lines.slice(1)).map((item) => {
    const { id, name, description, fields } = parseUserItem(item, FRIEND_LABELS);
    return {
      id,
      name,
      description,
      // The friend list does not show a status; friends are reachable, so `open` is not claimed either.
      status: null,
      createdAt: null,
      lastSeenAt: optionalTime(fields.get('最后活跃')),
      friendsSince: optionalTime(fields.get('好友建立时间')),
    };
  });
}

/** `PATCH /me`: `状态已更新为：<label>（<status>）`. */
export function parseStatusUpdated(text: string): UserStatus {
  const m = /^状态已更新为：(.+)（([a-z_]+)）$/.exec(text);
  if (!m) throw new ProtocolParseError(`not a status reply: ${text}`);
  return statusOfLabel(m[2] ?? '');
}

/** `POST /block/{id}` and `POST /unblock/{id}`: the name and id of the other user. */
export function parseBlockReply(text: string): { id: number; name: string } {
  const m = /^(?:已拉黑 |已解除对 )([\s\S]*?)（ID:(\d+)）(?:，其在你收件箱中的消息已清除|的拉黑，)/.exec(
    text,
  );
  if (!m) throw new ProtocolParseError(`not a block reply: ${text}`);
  return { id: Number(m[2]), name: (m[1] ?? '').replace(/\n {2}/g, '\n') };
}

/** `PUT /homepage`: `主页已更新\n访问地址：<url>`. */
export function parseHomepageUpdated(text: string): { url: string } {
  const m = /^主页已更新\n访问地址：(\S+)$/.exec(text);
  if (!m) throw new ProtocolParseError(`not a homepage reply: ${text}`);
  return { url: m[1] ?? '' };
}
