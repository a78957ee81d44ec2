// The text formats of the data folder, defined once (the demo UI and OpenClaw read them):
//
// conversations.md — one line per message, UTC with `Z`, `\` written `\\` and line breaks `\n` (`\r` as `\r`);
// in names also `)` as `\)`:
//   [2026-03-09T10:00:00Z] from=#2(bob) type=chat id=17 content=hello            incoming
//   [2026-03-09T10:00:00Z] to=#2(bob) type=chat content=hello                    sent with the CLI
//   … type=chat id=18 file=files/3f9c0a1b_report.pdf content=(附件)              a saved attachment
//   … type=chat id=19 attachment=report.pdf content=…                            not downloadable (reference)
//   [2026-03-09T10:00:00Z] from=#0(system) type=system id=20 content=…           system notice
//   [2026-03-09T10:00:00Z] group=#g7(team) from=#2(bob) type=chat id=21 mentioned=yes content=@alice hi
//                                                                                  a group message (issue 11)
//   [2026-03-09T10:00:00Z] group=#g7(team) to=#g7(team) type=chat content=hi all    sent to a group
// inbox_pushed.md — `## <UTC ISO> id=<id>` (`id=none` without one), the raw message block, a blank line.
// sse_channel.log — `<UTC ISO> <state> <details>`; server `event: log` data as `<UTC ISO> server <data>`.

import { LINE_BREAK_RE } from '@openwechat/protocol';

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

export function unescapeField(text: string): string {
  return text.replace(/\\([\\nr)])/g, (_m, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
}

/** A name inside `#id(<name>)`: escaped like a field, and `)` as `\)` so the name cannot end early. */
export function escapeName(name: string): string {
  return escapeField(name).replace(/\)/g, '\\)');
}

/** A filename as a single token: no whitespace, no line breaks. */
export function tokenName(name: string): string {
  return name.replace(/\s+/g, '_');
}

export type MessageType = 'chat' | 'friend_request' | 'system';

export interface ConversationLine {
  /** `2026-03-09T10:00:00Z` */
  time: string;
  direction: 'in' | 'out';
  /** The other user (sender of an incoming message, recipient of an outgoing one); 0 for system. */
  peerId: number;
  peerName: string;
  type: string;
  /** Relay message id (incoming on a relay that has ids), else null. */
  id: number | null;
  /** `files/<saved name>` of a downloaded attachment. */
  file: string | null;
  /** Name of an attachment that was not saved. */
  attachment: string | null;
  content: string;
  /**
   * The group of a group message: `#g7(team)` → {id: 'g7', name: 'team'}. An outgoing group line names the
   * group as its recipient too (`to=#g7(team)`); its peerId is then 0 and peerName the group's name.
   */
  group: { id: string; name: string } | null;
  /** An incoming group message that mentioned this user (`mentioned=yes`). */
  mentioned: boolean;
}

/** `g<gid>`: how a group is named in the data files (conversations.md, the snapshot's unread keys). */
export function groupKey(gid: number): string {
  return `g${gid}`;
}

export function formatConversationLine(
  l: Omit<ConversationLine, 'group' | 'mentioned'> & {
    group?: ConversationLine['group'];
    mentioned?: boolean;
  },
): string {
  const group = l.group ? ` group=#${l.group.id}(${escapeName(l.group.name)})` : '';
  const peer =
    l.group && l.direction === 'out'
      ? `#${l.group.id}(${escapeName(l.group.name)})`
      : `#${l.peerId}(${escapeName(l.peerName)})`;
  const who = `${l.direction === 'in' ? 'from' : 'to'}=${peer}`;
  const id = l.id !== null ? ` id=${l.id}` : '';
  const mentioned = l.mentioned ? ' mentioned=yes' : '';
  const file = l.file ? ` file=${tokenName(l.file)}` : '';
  const attachment = !l.file && l.attachment ? ` attachment=${tokenName(escapeField(l.attachment))}` : '';
  return `[${l.time}]${group} ${who} type=${l.type}${id}${mentioned}${file}${attachment} content=${escapeField(l.content)}`;
}

const LINE_RE =
  /^\[(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)\](?: group=#([^(\s]+)\(((?:\\.|[^\\)])*)\))? (from|to)=#(\d+|g\d+)\(((?:\\.|[^\\)])*)\) type=([a-z_]+)(?: id=(\d+))?( mentioned=yes)?(?: file=(\S+))?(?: attachment=(\S+))? content=(.*)$/;

/** Reads one conversations.md line; null for anything else (blank lines, notes, damaged lines). */
export function parseConversationLine(line: string): ConversationLine | null {
  const m = LINE_RE.exec(line);
  if (!m) return null;
  const group = m[2] ? { id: m[2], name: unescapeField(m[3] ?? '') } : null;
  // Only a group can be addressed as `#g<gid>`, and only by an outgoing line of that group.
  const groupPeer = m[5]!.startsWith('g');
  if (groupPeer && (m[4] !== 'to' || group?.id !== m[5])) return null;
  return {
    time: m[1]!,
    group,
    direction: m[4] === 'from' ? 'in' : 'out',
    peerId: groupPeer ? 0 : Number(m[5]),
    peerName: unescapeField(m[6] ?? ''),
    type: m[7]!,
    id: m[8] ? Number(m[8]) : null,
    mentioned: m[9] !== undefined,
    file: m[10] ?? null,
    attachment: m[11] ? unescapeField(m[11]) : null,
    content: unescapeField(m[12] ?? ''),
  };
}

/** The (time, from_id, content) identity of an incoming message (the guide's dedup rule). */
export function tripleKey(time: string, fromId: number, content: string): string {
  return `${time}\u0000${fromId}\u0000${content}`;
}

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

export const CHANNEL_LINE_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z) (\S+)(?: (.*))?$/;
