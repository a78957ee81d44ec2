// The text formats of the data folder, defined once (the demo UI and OpenClaw read them).
//
// conversations.md — one line per message in the guide's grammar, and nothing else:
//   [<UTC>Z] from=#<id>(<name>) type=<token> content=<text>
// UTC with `Z`; in content `\` is written `\\` and line breaks `\n` (`\r` as `\r`); in names also `)` as `\)`.
// `from=` is always the sender (this user on the lines we sent; `#0(system)` for notices). Every extra fact
// rides in the type token, `<kind>[.<flag>…]` (decided in docs/skill-data.md):
//   kind      chat | friend_request | system (the relay's message types)
//   .out      this user sent it                     .to<id>   the recipient of a direct message we sent
//   .g<gid>   a message in group <gid>              .mention  a group message that mentioned this user
//   .file:<files/…>  a saved attachment (always the last flag; no whitespace)
//   .attachment:<name>  an attachment that was not saved (always last)
// Examples:
//   [2026-03-09T10:00:00Z] from=#2(bob) type=chat content=hello
//   [2026-03-09T10:00:05Z] from=#1(alice) type=chat.out.to2 content=hi bob
//   [2026-03-09T10:01:00Z] from=#2(bob) type=chat.file:files/3f9c0a1b_report.pdf content=(附件)
//   [2026-03-09T10:03:00Z] from=#3(carol) type=chat.g7.mention content=@alice please review
//   [2026-03-09T10:04:00Z] from=#1(alice) type=chat.out.g7 content=on it
// Relay message ids are not in the line: conversations.idx holds `<id> <line key>` per stored message (dedup
// by id, see inbox.ts). Lines written by skill 0.x (`group=`/`to=`/`id=` keys) and by the Python skill are
// still read (lines.ts), never rewritten.
// inbox_pushed.md — `## <UTC ISO> id=<id>` (`id=none` without one), the raw message block, a blank line.
// sse_channel.log — `<UTC ISO> <state> <details>`; server `event: log` data as `<UTC ISO> server <data>`.

import { createHash } from 'node:crypto';
import { LINE_BREAK_RE } from '@openwechat/protocol';

// Reading lives in lines.ts (no node: imports: the demo UI bundles it); its readers import it from here.
export { CHANNEL_LINE_RE, parseConversationLine, unescapeField, type ConversationLine } from './lines.ts';

export type ChannelState = 'connected' | 'disconnected' | 'reconnecting' | 'fallback' | 'recovered' | 'error';

/** `2026-03-09T10:00:00Z`: UTC, whole seconds (the conversations.md timestamp). */
export function utcSecond(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

const LINE_BREAKS_G = new RegExp(LINE_BREAK_RE.source, 'g');

/** Makes any text one line: `\` → `\\`, CR → `\r`, every other line break (and CRLF) → `\n`. */
export function escapeField(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(LINE_BREAKS_G, (m) => (m === '\r' ? '\\r' : '\\n'));
}

/** A name inside `#id(<name>)`: escaped like a field, and `)` as `\)` so the name cannot end early. */
export function escapeName(name: string): string {
  return escapeField(name).replace(/\)/g, '\\)');
}

/** A filename as a single token: no whitespace, no line breaks. */
export function tokenName(name: string): string {
  return name.replace(/\s+/g, '_');
}

/** `g<gid>`: how a group is named in the data files (the type token, the snapshot's unread keys). */
export function groupKey(gid: number): string {
  return `g${gid}`;
}

export interface LineInput {
  time: string;
  /** The sender: the peer for a received message, this user for a sent one, {0, 'system'} for notices. */
  from: { id: number; name: string };
  type: string;
  out?: boolean;
  /** Recipient of a direct message this user sent. */
  to?: number | null;
  /** Group id of a group message. */
  group?: number | null;
  mentioned?: boolean;
  file?: string | null;
  attachment?: string | null;
  content: string;
}

/** The type token: `<kind>[.out][.to<id>][.g<gid>][.mention][.file:<path>|.attachment:<name>]`. */
function typeToken(l: Omit<LineInput, 'time' | 'from' | 'content'>): string {
  let t = l.type;
  if (l.out) t += '.out';
  if (l.to != null) t += `.to${l.to}`;
  if (l.group != null) t += `.${groupKey(l.group)}`;
  if (l.mentioned) t += '.mention';
  if (l.file) t += `.file:${tokenName(l.file)}`;
  else if (l.attachment) t += `.attachment:${tokenName(escapeField(l.attachment))}`;
  return t;
}

export function formatConversationLine(l: LineInput): string {
  return `[${l.time}] from=#${l.from.id}(${escapeName(l.from.name)}) type=${typeToken(l)} content=${escapeField(l.content)}`;
}

/** The (time, from_id, content) identity of an incoming message (the guide's dedup rule). */
export function tripleKey(time: string, fromId: number, content: string): string {
  return `${time}\u0000${fromId}\u0000${content}`;
}

/** The short, stable key of a line's (time, from_id, content): what conversations.idx ties an id to. */
export function lineKey(time: string, fromId: number, content: string): string {
  return createHash('sha256')
    .update(tripleKey(time, fromId, content))
    .digest('hex')
    .slice(0, 16);
}

/** One conversations.idx entry: the relay id of a stored message and the key of its conversations.md line. */
export function formatIdxEntry(id: number, key: string): string {
  return `${id} ${key}\n`;
}

export const IDX_RE = /^(\d+) ([0-9a-f]{16})$/;

/** One inbox_pushed.md entry. */
export function formatPushedEntry(isoTime: string, id: number | null, block: string): string {
  return `## ${isoTime} id=${id ?? 'none'}\n${block}\n\n`;
}

export const PUSHED_HEADER_RE = /^## (\S+) id=(\d+|none)$/;

/** One sse_channel.log line (details made single-line). */
export function formatChannelLine(ms: number, state: ChannelState | 'server', details: string): string {
  const d = details.replace(LINE_BREAKS_G, ' ').trim();
  return `${new Date(ms).toISOString()} ${state}${d ? ` ${d}` : ''}\n`;
}
