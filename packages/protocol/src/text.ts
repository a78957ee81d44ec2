// The plain-text layouts of the reference relay (docs/compat.md), byte for byte, plus our deliberate fixes
// (docs/compat.md: W-9 continuation indent, W-11 is the caller's choice of `top`, W-16 preview layout) and
// additions (docs/protocol.md: `消息ID：`, `附件下载：`). Pure functions; no response ends with a newline.

import type {
  FriendView,
  GroupMemberView,
  GroupRef,
  GroupView,
  MessageView,
  PublicUser,
  SenderView,
  UserStatus,
} from './model.ts';

/** The light rule: `─` (U+2500) ×40. */
export const SEP = '─'.repeat(40);
/** The heavy rule: `═` (U+2550) ×40. */
export const HEAVY = '═'.repeat(40);

export const STATUS_LABELS: Record<UserStatus, string> = {
  open: '可交流',
  friends_only: '仅好友',
  do_not_disturb: '免打扰',
};

const BEIJING_OFFSET_MS = 8 * 3600 * 1000;

/** `YYYY-MM-DD HH:MM:SS` in Beijing time (UTC+8), seconds truncated as the reference's strftime does. */
export function beijingTime(ms: number): string {
  return new Date(ms + BEIJING_OFFSET_MS).toISOString().slice(0, 19).replace('T', ' ');
}

/** `YYYY-MM-DDTHH:MM:SSZ` in UTC (the SSE `log` event's format). */
export function utcSeconds(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/**
 * Every line break Python's `str.splitlines` recognises. `\r\n` comes first so it counts as one break.
 * Renderers (terminals, LLM tokenisers, browsers) disagree on which of these end a line, so all of them
 * are treated as breaks.
 */
export const LINE_BREAK_RE = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;
const LINE_BREAK_RE_G = new RegExp(LINE_BREAK_RE.source, 'g');

/** Splits on every line break of LINE_BREAK_RE (keeps empty lines, including a trailing one). */
export function splitLines(text: string): string[] {
  return text.split(LINE_BREAK_RE);
}

/**
 * Fix of W-9: user text continues on lines indented by two spaces, so it can never start a line of its
 * own (a forged `类型：系统通知`, a rule, an `[n]` item marker). parseMessageBlock() strips the indent.
 */
export function indentContinuation(text: string): string {
  return splitLines(text).join('\n  ');
}

// C0 (incl. tab/LF/CR), DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates.
const CONTROL_CHARS_G = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const MAX_FILENAME_CHARS = 200;
const MAX_EXTENSION_CHARS = 16;

/**
 * A filename safe to show in a block and to put (encoded) in a download header: the last path segment,
 * without control or bidi characters, trimmed; `file` when nothing usable is left; at most 200 characters
 * (code points), keeping the extension when cut.
 */
export function displayFilename(name: string): string {
  const cleaned = name.replace(CONTROL_CHARS_G, '');
  const segments = cleaned.split(/[/\\]/);
  const last = (segments[segments.length - 1] ?? '').trim();
  if (last === '' || /^\.+$/.test(last)) return 'file';
  const chars = Array.from(last);
  if (chars.length <= MAX_FILENAME_CHARS) return last;
  const dot = last.lastIndexOf('.');
  const ext = dot > 0 ? Array.from(last.slice(dot)) : [];
  const keep = ext.length > 0 && ext.length <= MAX_EXTENSION_CHARS ? ext : [];
  return chars.slice(0, MAX_FILENAME_CHARS - keep.length).join('') + keep.join('');
}

/** RFC 6266 / RFC 5987 `Content-Disposition` for a download: an ASCII fallback plus the exact UTF-8 name. */
export function contentDisposition(name: string): string {
  const shown = displayFilename(name);
  const ascii = shown.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const encoded = encodeURIComponent(shown).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** The file name of a Content-Disposition: the UTF-8 `filename*=UTF-8''…`, else the ASCII `filename="…"`. */
export function filenameOfDisposition(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star?.[1]) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      // fall back to the plain name
    }
  }
  return /filename="([^"]*)"/i.exec(header)?.[1] ?? null;
}

/** `<name>（ID:<id>）[ | <description>]`, or `ID:<fromId>` when the sender row is gone. */
export function formatSenderLine(from: SenderView | null, fromId: number | null): string {
  if (!from) return `ID:${fromId ?? ''}`;
  const desc = from.description ? ` | ${indentContinuation(from.description)}` : '';
  return `${indentContinuation(from.name)}（ID:${from.id}）${desc}`;
}

function attachmentLines(m: MessageView): string[] {
  if (!m.attachment) return [];
  const lines = [`附件：${displayFilename(m.attachment.name)}`];
  if (m.attachment.fileId) lines.push(`附件下载：${fileUrl(m.attachment.fileId)}`);
  return lines;
}

/** The relay-relative download path of a stored file. */
export function fileUrl(fileId: string): string {
  return `/files/${encodeURIComponent(fileId)}`;
}

/** One message as shown by `GET /messages`, the `/send` preview and SSE `message` events. */
export function formatMessageBlock(m: MessageView): string {
  const time = `时间：${beijingTime(m.createdAt)}`;
  const content = `内容：${indentContinuation(m.content)}`;
  let lines: string[];
  switch (m.type) {
    case 'system':
      lines = ['类型：系统通知', time, content];
      break;
    case 'friend_request':
      lines = [
        '类型：好友申请',
        time,
        `发件人：${formatSenderLine(m.from, m.fromId)}`,
        content,
        ...attachmentLines(m),
        `操作提示：回复对方（to_id:${m.fromId ?? ''}）任意消息即可建立好友关系`,
      ];
      break;
    case 'chat':
      lines = [
        '类型：聊天消息',
        time,
        `发件人：${formatSenderLine(m.from, m.fromId)}`,
        content,
        ...attachmentLines(m),
      ];
      break;
    case 'group':
      lines = [
        '类型：群聊消息',
        `群组：${m.group ? formatGroupRef(m.group) : ''}`,
        time,
        `发件人：${formatSenderLine(m.from, m.fromId)}`,
        content,
        ...(m.mentioned ? ['提到了你：是'] : []),
        ...attachmentLines(m),
      ];
      break;
  }
  lines.push(`消息ID：${m.id}`);
  return lines.join('\n');
}

/** `<HEAVY>`, `[1]`, block, `<SEP>`, `[2]`, block, …, `<HEAVY>` (GET /messages; our /send preview too). */
function formatItems(messages: MessageView[]): string {
  const items = messages.map((m, i) => `[${i + 1}]\n${formatMessageBlock(m)}`);
  return [HEAVY, ...(items.length > 0 ? [items.join(`\n${SEP}\n`)] : []), HEAVY].join('\n');
}

/** The non-empty `GET /messages` reply. */
export function formatInboxRead(p: {
  fromId: number | null;
  total: number;
  limit: number;
  remaining: number;
  messages: MessageView[];
}): string {
  // Truthiness, as the reference: from_id=0 counts as absent.
  const scope = p.fromId ? `来自 ID:${p.fromId} ` : '';
  const tail =
    p.remaining > 0
      ? `（约 ${Math.ceil(p.remaining / p.limit)} 次可读完，每次 ${p.limit} 条）`
      : '（已全部读取）';
  const summary = `${scope}收件箱共 ${p.total} 条 | 本次读取并清除 ${p.messages.length} 条 | 剩余 ${p.remaining} 条${tail}`;
  return `${summary}\n${formatItems(p.messages)}`;
}

/**
 * `GET /messages?after=<n>` (our addition): a non-destructive page of the inbox. The summary says
 * how to acknowledge it, since nothing was cleared.
 */
export function formatInboxPage(p: { total: number; limit: number; messages: MessageView[] }): string {
  const remaining = p.total - p.messages.length;
  const last = p.messages.at(-1)?.id ?? 0;
  const tail =
    remaining > 0
      ? `（约 ${Math.ceil(remaining / p.limit)} 次可读完，每次 ${p.limit} 条）`
      : '（已全部读取）';
  const summary = `收件箱共 ${p.total} 条 | 本次读取 ${p.messages.length} 条（未清除，确认收到请用 after=${last}） | 剩余 ${remaining} 条${tail}`;
  return `${summary}\n${formatItems(p.messages)}`;
}

/** The empty `GET /messages` reply. */
export function formatInboxEmpty(fromId: number | null): string {
  return fromId ? `来自 ID:${fromId} 的消息为空` : '收件箱为空';
}

export const SEND_SUCCESS = {
  request: '发送成功（好友申请已发出，等待对方回复）',
  accepted: '发送成功（好友关系已建立）',
  chat: '发送成功',
} as const;

/** The `/send` success reply with the caller's inbox preview (W-16 fix: same item layout as GET /messages). */
export function formatSendReply(
  successLine: string,
  preview: { total: number; messages: MessageView[] },
): string {
  if (preview.total <= 0) return successLine;
  const k = preview.messages.length;
  const r = preview.total - k;
  const header = `收件箱共 ${preview.total} 条，预览前 ${k} 条${r > 0 ? `，还有 ${r} 条` : ''}：`;
  return `${successLine}\n\n${header}\n${formatItems(preview.messages)}`;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(LINE_BREAK_RE_G, ' ');
}

function tableDescription(description: string | null): string {
  const desc = Array.from(escapeCell(description || '（无）'));
  return desc.length > 30 ? `${desc.slice(0, 27).join('')}...` : desc.join('');
}

function activityTime(u: PublicUser): string {
  return beijingTime(u.lastSeenAt ?? u.createdAt);
}

/** The `POST /register` success reply with the recent-users table (the caller picks `top`). */
export function formatRegistered(p: { user: PublicUser; token: string; top: PublicUser[] }): string {
  const { user } = p;
  const table =
    p.top.length === 0
      ? '（暂无用户）'
      : [
          '| ID | 名称 | 简介 | 活跃时间 |',
          '|----|------|------|----------|',
          // Names are escaped too (deliberate fix: the reference lets `|` in a name break the table).
          ...p.top.map(
            (u) =>
              `| ${u.id} | ${escapeCell(u.name)} | ${tableDescription(u.description)} | ${activityTime(u)} |`,
          ),
        ].join('\n');
  return [
    '注册成功',
    SEP,
    `ID：${user.id}`,
    `名称：${indentContinuation(user.name)}`,
    `简介：${user.description ? indentContinuation(user.description) : '（无）'}`,
    `状态：${STATUS_LABELS[user.status]}`,
    `Token：${p.token}`,
    SEP,
    '请妥善保存 Token，仅此一次显示。',
    '',
    '## 最近活跃用户（Top100）',
    '',
    table,
  ].join('\n');
}

function descriptionOrNone(description: string | null): string {
  return description ? indentContinuation(description) : '（无）';
}

/** The 5-line user block of `GET /users` (after `[i] `) and `GET /users/{id}`. */
export function formatUserDetail(u: PublicUser): string {
  return [
    `${indentContinuation(u.name)}（ID:${u.id}）`,
    `    简介：${descriptionOrNone(u.description)}`,
    `    状态：${STATUS_LABELS[u.status]}`,
    `    注册时间：${beijingTime(u.createdAt)}`,
    `    最后活跃：${activityTime(u)}`,
  ].join('\n');
}

/** The `GET /users` (discovery) reply; `total` is the number of matching `open` users. */
export function formatUserList(p: { total: number; users: PublicUser[] }): string {
  if (p.users.length === 0) return '暂无可交流的用户';
  const body = p.users.map((u, i) => `[${i + 1}] ${formatUserDetail(u)}`).join(`\n${SEP}\n`);
  return `本次随机展示 ${p.users.length} 人（可交流用户共 ${p.total} 人）\n${HEAVY}\n${body}\n${HEAVY}`;
}

/** The `GET /friends` reply. */
export function formatFriends(friends: FriendView[]): string {
  if (friends.length === 0) return '暂无好友';
  const body = friends
    .map(({ user: u, since }, i) =>
      [
        `[${i + 1}] ${indentContinuation(u.name)}（ID:${u.id}）`,
        `    简介：${descriptionOrNone(u.description)}`,
        `    好友建立时间：${beijingTime(since)}`,
        `    最后活跃：${activityTime(u)}`,
      ].join('\n'),
    )
    .join(`\n${SEP}\n`);
  return `共 ${friends.length} 位好友\n${HEAVY}\n${body}\n${HEAVY}`;
}

export function formatStatusUpdated(status: UserStatus): string {
  return `状态已更新为：${STATUS_LABELS[status]}（${status}）`;
}

export function formatBlocked(u: { id: number; name: string }): string {
  return `已拉黑 ${indentContinuation(u.name)}（ID:${u.id}），其在你收件箱中的消息已清除`;
}

export function formatUnblocked(u: { id: number; name: string }): string {
  return `已解除对 ${indentContinuation(u.name)}（ID:${u.id}）的拉黑，双方好友关系已清除，可重新发消息建立联系`;
}

export function formatHomepageUpdated(url: string): string {
  return `主页已更新\n访问地址：${url}`;
}

/** Served by `GET /homepage/{id}` when the user has no page (the reference's exact document). */
export const DEFAULT_HOMEPAGE_HTML = `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>主页</title></head>
<body><p>该用户尚未设置主页</p></body>
</html>`;

/**
 * The system notice each side gets when a friendship is accepted. Raw text: it becomes message content,
 * which formatMessageBlock() indents.
 */
export function formatFriendshipNotice(other: { id: number; name: string }, now: number): string {
  return `您与 ${other.name}（ID:${other.id}）已成功建立好友关系。（${beijingTime(now)} 北京时间）`;
}

// ── Groups (docs/groups-api.md) ─────────────────────────────────────────────────────────────────────

const ROLE_LABELS = { owner: '群主', member: '成员' } as const;

/** `<name>（群ID:<gid>）` (message blocks, replies and notices). */
export function formatGroupRef(g: GroupRef): string {
  return `${indentContinuation(g.name)}（群ID:${g.id}）`;
}

/** The `GET /groups` reply. */
export function formatGroupList(groups: GroupView[]): string {
  if (groups.length === 0) return '暂无群组';
  const body = groups
    .map((g, i) =>
      [
        `[${i + 1}] ${formatGroupRef(g)}`,
        `    简介：${descriptionOrNone(g.description)}`,
        `    群主：${indentContinuation(g.ownerName)}（ID:${g.ownerId}）`,
        `    成员：${g.memberCount} 人`,
        `    我的身份：${ROLE_LABELS[g.role]}`,
      ].join('\n'),
    )
    .join(`\n${SEP}\n`);
  return `共 ${groups.length} 个群组\n${HEAVY}\n${body}\n${HEAVY}`;
}

/** The `GET /groups/{gid}` reply: the group, then its members (the owner marked `群主`). */
export function formatGroupDetail(group: GroupView, members: GroupMemberView[]): string {
  return [
    formatGroupRef(group),
    `简介：${descriptionOrNone(group.description)}`,
    `群主：${indentContinuation(group.ownerName)}（ID:${group.ownerId}）`,
    `创建时间：${beijingTime(group.createdAt)}`,
    `成员（${members.length} 人）：`,
    ...members.map(
      (m) => `  - ${indentContinuation(m.name)}（ID:${m.id}）${m.role === 'owner' ? ' 群主' : ''}`,
    ),
  ].join('\n');
}

/** `POST /groups`. */
export function formatGroupCreated(group: GroupRef, memberCount: number): string {
  return `群组已创建：${formatGroupRef(group)}\n成员 ${memberCount} 人`;
}

/** `POST /groups/{gid}/members`: `已添加 2 位成员：a（ID:1）、b（ID:2）`. */
export function formatGroupMembersAdded(added: ReadonlyArray<{ id: number; name: string }>): string {
  const names = added.map((u) => `${indentContinuation(u.name)}（ID:${u.id}）`).join('、');
  return `已添加 ${added.length} 位成员：${names}`;
}

/** `DELETE /groups/{gid}/members/{uid}` by the owner. */
export function formatGroupMemberRemoved(user: { id: number; name: string }): string {
  return `已将 ${indentContinuation(user.name)}（ID:${user.id}）移出群组`;
}

/** `POST /groups/{gid}/leave` (and a member removing itself). */
export function formatGroupLeft(group: GroupRef): string {
  return `已退出群组 ${formatGroupRef(group)}`;
}

/** `PATCH /groups/{gid}`. */
export function formatGroupUpdated(group: GroupRef): string {
  return `群组已更新：${formatGroupRef(group)}`;
}

/** `DELETE /groups/{gid}`. */
export function formatGroupDissolved(group: GroupRef): string {
  return `群组 ${formatGroupRef(group)}已解散`;
}

/** The success line of a group send; the reply adds the sender's inbox preview (formatSendReply). */
export function formatGroupSendSuccess(group: GroupRef, recipients: number): string {
  return `发送成功（群组 ${indentContinuation(group.name)}，送达 ${recipients} 位成员）`;
}

// The system notices of membership changes. Raw text: it becomes message content, which
// formatMessageBlock() indents.

export function formatGroupAddedNotice(owner: { id: number; name: string }, group: GroupRef): string {
  return `你已被 ${owner.name}（ID:${owner.id}）加入群组 ${group.name}（群ID:${group.id}）`;
}

export function formatGroupRemovedNotice(group: GroupRef): string {
  return `你已被移出群组 ${group.name}（群ID:${group.id}）`;
}

export function formatGroupDissolvedNotice(group: GroupRef): string {
  return `群组 ${group.name}（群ID:${group.id}）已被群主解散`;
}
