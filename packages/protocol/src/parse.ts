// Parsers for clients that talk to a relay in text mode: ours (2-space continuation lines, `消息ID：`,
// `附件下载：`) or the reference (raw multi-line values, no ids). The reference's output is ambiguous when
// user text contains label lines (W-9); there the parsers do their best: a label starts a field only the
// first time it is seen, and any other line continues the previous field.

import { parseTextError } from './errors.ts';
import type { AttachmentView, GroupRef, MessageType, MessageView, SenderView, UserStatus } from './model.ts';
import { USER_STATUSES } from './model.ts';
import { HEAVY, SEND_SUCCESS, SEP, STATUS_LABELS } from './text.ts';

/** A message block read back from text. `id` is null on the reference relay (no `消息ID：` line). */
export type ParsedMessage = Omit<MessageView, 'id'> & { id: number | null };

export class ProtocolParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolParseError';
  }
}

const BLOCK_LABELS = ['类型', '时间', '发件人', '内容', '附件', '附件下载', '操作提示', '消息ID'] as const;
/** A group block's labels; only group blocks have them, so other blocks parse exactly as before. */
const GROUP_BLOCK_LABELS = [...BLOCK_LABELS, '群组', '提到了你'] as const;
const REGISTER_LABELS = ['ID', '名称', '简介', '状态', 'Token'] as const;

const TYPE_BY_LABEL: Record<string, MessageType> = {
  系统通知: 'system',
  好友申请: 'friend_request',
  聊天消息: 'chat',
  群聊消息: 'group',
};

/**
 * Groups `label：value` lines and their continuation lines. A continuation line is one that is not the
 * first occurrence of a known label; our relay indents it by two spaces (removed here), the reference
 * does not indent it at all.
 */
function collectFields<L extends string>(lines: string[], labels: readonly L[]): Map<L, string> {
  const fields = new Map<L, string[]>();
  let current: string[] | null = null;
  for (const line of lines) {
    const label = labels.find((l) => line.startsWith(`${l}：`) && !fields.has(l));
    if (label !== undefined) {
      current = [line.slice(label.length + 1)];
      fields.set(label, current);
      continue;
    }
    if (!current) throw new ProtocolParseError(`unexpected line before the first field: ${line}`);
    current.push(line.startsWith('  ') ? line.slice(2) : line);
  }
  return new Map([...fields].map(([k, v]) => [k, v.join('\n')]));
}

/** `YYYY-MM-DD HH:MM:SS` Beijing time → UTC ms. */
export function parseBeijingTime(text: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text.trim());
  if (!m) throw new ProtocolParseError(`not a Beijing time: ${text}`);
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  return date.getTime() - 8 * 3600 * 1000;
}

/**
 * `<name>（ID:<id>）[ | <description>]` or `ID:<id>`. The name ends at the first `（ID:` marker (names
 * containing one should be rejected by the relay: see hasSenderIdMarker); a description may contain anything.
 */
function parseSenderLine(value: string): { from: SenderView | null; fromId: number | null } {
  const idx = value.indexOf('（ID:');
  if (idx >= 0) {
    const rest = /^（ID:(\d+)）(?: \| ([\s\S]*))?$/.exec(value.slice(idx));
    if (rest) {
      const id = Number(rest[1]);
      return { from: { id, name: value.slice(0, idx), description: rest[2] ?? null }, fromId: id };
    }
    // Reference names are not validated: fall back to the first marker that ends the line or the name.
    const loose = /^([\s\S]*?)（ID:(\d+)）(?: \| ([\s\S]*))?$/.exec(value);
    if (loose) {
      const id = Number(loose[2]);
      return { from: { id, name: loose[1] ?? '', description: loose[3] ?? null }, fromId: id };
    }
  }
  const bare = /^ID:(\d*)$/.exec(value);
  if (bare) return { from: null, fromId: bare[1] ? Number(bare[1]) : null };
  throw new ProtocolParseError(`not a sender line: ${value}`);
}

function parseAttachment(name: string | undefined, download: string | undefined): AttachmentView | null {
  if (name === undefined && download === undefined) return null;
  const attachment: AttachmentView = { name: name ?? 'file' };
  const m = download === undefined ? null : /\/files\/([^/?#\s]+)/.exec(download);
  if (m?.[1]) {
    try {
      attachment.fileId = decodeURIComponent(m[1]);
    } catch {
      attachment.fileId = m[1];
    }
  }
  return attachment;
}

/** `<name>（群ID:<gid>）`; the id is the last marker (a group name may contain anything). */
function parseGroupRef(value: string): GroupRef {
  const m = /^([\s\S]*)（群ID:(\d+)）$/.exec(value);
  if (!m) throw new ProtocolParseError(`not a group line: ${value}`);
  return { id: Number(m[2]), name: m[1] ?? '' };
}

/** One message block (GET /messages item, /send preview item, SSE `message` data). */
export function parseMessageBlock(text: string): ParsedMessage {
  const lines = text.split('\n');
  const isGroup = lines[0] === '类型：群聊消息';
  const fields: Map<string, string> = collectFields<string>(
    lines,
    isGroup ? GROUP_BLOCK_LABELS : BLOCK_LABELS,
  );
  const typeLabel = fields.get('类型');
  const type = typeLabel === undefined ? undefined : TYPE_BY_LABEL[typeLabel];
  if (!type) throw new ProtocolParseError(`unknown message type: ${typeLabel ?? '(missing)'}`);
  const time = fields.get('时间');
  if (time === undefined) throw new ProtocolParseError('message block without 时间');

  let from: SenderView | null = null;
  let fromId: number | null = null;
  if (type !== 'system') {
    const sender = fields.get('发件人');
    if (sender === undefined) throw new ProtocolParseError('message block without 发件人');
    ({ from, fromId } = parseSenderLine(sender));
    // The hint line repeats the sender id; it is the authoritative one on a friend request.
    const hint = /to_id:(\d+)/.exec(fields.get('操作提示') ?? '');
    if (hint) fromId = Number(hint[1]);
  }

  let group: GroupRef | null = null;
  if (type === 'group') {
    const line = fields.get('群组');
    if (line === undefined) throw new ProtocolParseError('group message block without 群组');
    group = parseGroupRef(line);
  }

  const idText = fields.get('消息ID');
  return {
    id: idText !== undefined && /^\d+$/.test(idText) ? Number(idText) : null,
    type,
    createdAt: parseBeijingTime(time),
    fromId,
    from,
    content: fields.get('内容') ?? '',
    attachment: type === 'system' ? null : parseAttachment(fields.get('附件'), fields.get('附件下载')),
    group,
    mentioned: type === 'group' && fields.get('提到了你') === '是',
  };
}

/** The data of an SSE `message` event is one block (lines joined with `\n` by the SSE parser). */
export function parseSseMessageData(data: string): ParsedMessage {
  return parseMessageBlock(data);
}

// Both the read-and-clear summary and the non-destructive `?after=` one (`本次读取 k 条（未清除…）`).
const SUMMARY_RE =
  /^(?:来自 ID:\d+ )?收件箱共 (\d+) 条 \| 本次读取(?:并清除)? (\d+) 条(?:（[^）]*）)? \| 剩余 (\d+) 条/;

/**
 * A `GET /messages` reply (either relay) cut into its summary and the message blocks exactly as the relay
 * printed them (what a client keeps verbatim, e.g. the skill's inbox_pushed.md).
 */
export function splitInboxRead(text: string): {
  total: number;
  fetched: number;
  remaining: number;
  blocks: string[];
} {
  if (text === '收件箱为空' || /^来自 ID:\d+ 的消息为空$/.test(text)) {
    return { total: 0, fetched: 0, remaining: 0, blocks: [] };
  }
  const lines = text.split('\n');
  const summary = SUMMARY_RE.exec(lines[0] ?? '');
  if (!summary || lines.length < 4 || lines[1] !== HEAVY || lines[lines.length - 1] !== HEAVY) {
    throw new ProtocolParseError(`not an inbox reply: ${lines[0] ?? ''}`);
  }
  const body = lines.slice(2, -1);
  const items: string[][] = [];
  let current: string[] | null = null;
  for (let i = 0; i < body.length; i++) {
    const line = body[i] ?? '';
    // An item starts at `[n]` (n the next index), first in the body or right after a SEP line.
    if (line === `[${items.length + 1}]` && (i === 0 || (current !== null && body[i - 1] === SEP))) {
      if (current) current.pop();
      current = [];
      items.push(current);
      continue;
    }
    if (!current) throw new ProtocolParseError(`inbox body does not start with [1]: ${line}`);
    current.push(line);
  }
  return {
    total: Number(summary[1]),
    fetched: Number(summary[2]),
    remaining: Number(summary[3]),
    blocks: items.map((item) => item.join('\n')),
  };
}

/** A `GET /messages` reply (either relay). */
export function parseInboxRead(text: string): {
  total: number;
  fetched: number;
  remaining: number;
  messages: ParsedMessage[];
} {
  const { blocks, ...counts } = splitInboxRead(text);
  return { ...counts, messages: blocks.map(parseMessageBlock) };
}

/** The `POST /register` success reply. */
export function parseRegistered(text: string): {
  id: number;
  name: string;
  token: string;
  status: UserStatus;
} {
  const lines = text.split('\n');
  if (lines[0] !== '注册成功' || lines[1] !== SEP) throw new ProtocolParseError('not a registration reply');
  const end = lines.findIndex(
    (l, i) => i > 1 && l === SEP && lines[i + 1] === '请妥善保存 Token，仅此一次显示。',
  );
  if (end < 0) throw new ProtocolParseError('registration reply without its closing rule');
  const fields = collectFields(lines.slice(2, end), REGISTER_LABELS);
  const id = Number(fields.get('ID'));
  const name = fields.get('名称');
  const token = fields.get('Token')?.trim();
  const statusText = fields.get('状态') ?? '';
  const status =
    USER_STATUSES.find((s) => STATUS_LABELS[s] === statusText) ?? USER_STATUSES.find((s) => s === statusText);
  if (!Number.isInteger(id) || name === undefined || !token || !status) {
    throw new ProtocolParseError('registration reply is missing a field');
  }
  return { id, name, token, status };
}

/** A `POST /send` or `POST /send/file` reply: which success, or the error detail. */
export function parseSendReply(text: string): {
  outcome: 'request' | 'accepted' | 'chat' | null;
  ok: boolean;
  error: string | null;
} {
  const first = text.split('\n', 1)[0] ?? '';
  for (const outcome of ['request', 'accepted', 'chat'] as const) {
    if (first === SEND_SUCCESS[outcome]) return { outcome, ok: true, error: null };
  }
  const err = parseTextError(text);
  return { outcome: null, ok: false, error: err ? err.detail : text };
}

const GROUP_SEND_RE = /^发送成功（群组 ([\s\S]*)，送达 (\d+) 位成员）$/;

/** A `POST /groups/{gid}/send` (or `/send/file`) reply: the group name and the number of recipients, or the error. */
export function parseGroupSendReply(text: string): {
  ok: boolean;
  groupName: string | null;
  recipients: number | null;
  error: string | null;
} {
  const first = text.split('\n', 1)[0] ?? '';
  const m = GROUP_SEND_RE.exec(first);
  if (m) return { ok: true, groupName: m[1] ?? '', recipients: Number(m[2]), error: null };
  const err = parseTextError(text);
  return { ok: false, groupName: null, recipients: null, error: err ? err.detail : text };
}
