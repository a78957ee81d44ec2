// Relay messages (MessageJson from a `?format=json` resume stream) → ChatEvents for the AddMsg builder.
//   chat           → text from the sender (direct chat)
//   friend_request → text too: the agent's reply through the send API is what accepts the request
//   group          → text in the room `owc_g<gid>@chatroom` from its sender (docs/groups-api.md); when the
//                    relay says the bot was `mentioned`, its id goes into the mention list and the text
//                    gets `@<bot name>\u2005` in front unless it already holds that mention
//   system         → MsgType 10000 tip in the conversation it names (a group's membership notices: that
//                    group), or suppressed by setting
// An attachment adds one line after the text: `[附件] <name> (<size>, <type>) <media link>` (media.ts).

import type { AttachmentJson, MessageJson } from '@openwechat/protocol';
import { passesMentionFilter, type ChatEvent } from './addmsg.ts';
import { groupWxid, relayMsgId, relayMsgSeq, relayNewMsgId, SYSTEM_USER_ID, userWxid } from './ids.ts';
import { attachmentLine } from './media.ts';

/**
 * A stream message as a relay with groups sends it (docs/groups-api.md): `type: "group"`, `group: {id, name}`
 * and `mentioned`. Relays without groups omit the two fields.
 */
export type RelayMessageJson = MessageJson & {
  group?: { id: number; name: string } | null;
  mentioned?: boolean;
};

export interface MappingOptions {
  botRelayId: number;
  /** The bot's relay name (for the `@<name>\u2005` text of a mention); null: unknown, text left as is. */
  botName?: string | null;
  systemNotices: 'forward' | 'suppress';
  /**
   * The media link of an attachment (the message's created_at in ms); null or absent: no link, the line
   * names the file only. Must depend on the message alone, so a replay gives the same bytes.
   */
  mediaUrl?: (attachment: AttachmentJson, createdAtMs: number) => string | null;
  /** Ends the attachment line when there is no link (e.g. the relay no longer had the file); null: none. */
  mediaNote?: string | null;
}

/** Where a system notice belongs: the user it names (`…（ID:5）…`), else the system conversation. */
function noticePeer(content: string): string {
  const m = /（ID:(\d+)）/.exec(content);
  return m ? userWxid(Number(m[1])) : SYSTEM_USER_ID;
}

/**
 * The group a membership notice is about: the last `（群ID:<gid>）` (every notice ends its group name with
 * it, so a name that imitates the marker comes earlier).
 */
function noticeGroup(content: string): number | null {
  let gid: number | null = null;
  for (const m of content.matchAll(/（群ID:([1-9]\d{0,15})）/g)) gid = Number(m[1]);
  return gid !== null && Number.isSafeInteger(gid) ? gid : null;
}

/** The message's group id, when it is a group message (a valid `group` object). */
function groupIdOf(m: RelayMessageJson): number | null {
  const g = m.group;
  return g && typeof g === 'object' && Number.isSafeInteger(g.id) && g.id > 0 ? g.id : null;
}

/**
 * The text the agent reads: the content, plus one line for an attachment — its name, size and type, and a
 * media link to the bridge when there is one (the bytes stay on the relay; the link never holds its token).
 */
function bodyText(m: MessageJson, opts: MappingOptions): string {
  const a = m.attachment;
  if (!a || typeof a !== 'object') return m.content;
  const url = opts.mediaUrl?.(a, Date.parse(m.created_at)) ?? null;
  const line = attachmentLine(a, url, opts.mediaNote ?? null);
  return m.content && m.content !== '(附件)' ? `${m.content}\n${line}` : line;
}

/**
 * Whether `text` already @-mentions `name` the way the relay recognises mentions: `@<name>` followed by
 * whitespace (U+2005 included), punctuation or the end.
 */
export function hasMentionText(text: string, name: string): boolean {
  const at = `@${name}`;
  for (let i = text.indexOf(at); i >= 0; i = text.indexOf(at, i + 1)) {
    const next = text.slice(i + at.length, i + at.length + 2);
    if (next === '' || /^[\s\p{P}]/u.test(next)) return true;
  }
  return false;
}

/**
 * The visible text of a group message that mentions the bot, as WeChat mobile clients write it (docs/bridge.md,
 * the example in docs/bridge.md): `@<bot name>\u2005<body>`; a body that already mentions the bot is left as it is.
 */
export function withMentionText(text: string, botName: string | null | undefined): string {
  if (!botName || hasMentionText(text, botName)) return text;
  return `@${botName}\u2005${text}`;
}

/** The relay's source key of a message, unique per bot: the outbox's dedupe key. */
export function relaySource(botRelayId: number, messageId: number): string {
  return `relay:${botRelayId}:${messageId}`;
}

/** null: the message is not forwarded (suppressed by settings, or the bot's own group message). */
export function relayMessageToEvent(m: RelayMessageJson, opts: MappingOptions): ChatEvent | null {
  const createdMs = Date.parse(m.created_at);
  const ids = {
    msgId: relayMsgId(m.id),
    newMsgId: relayNewMsgId(opts.botRelayId, m.id, createdMs),
    msgSeq: relayMsgSeq(m.id),
  };
  const botId = userWxid(opts.botRelayId);
  const base = { botId, createTime: Math.floor(createdMs / 1000), ids };
  const direct = { type: 'direct' as const };
  if (m.type === 'system' || m.from_id === null) {
    if (opts.systemNotices === 'suppress') return null;
    const peer = noticePeer(m.content);
    // Membership notices (added, removed, dissolved) are tips inside that group, as on WeChat.
    const gid = groupIdOf(m) ?? noticeGroup(m.content);
    const conversation = gid === null ? direct : { type: 'group' as const, roomId: groupWxid(gid) };
    return { ...base, conversation, kind: 'system', sender: { id: peer, name: '' }, text: m.content };
  }
  const sender = { id: userWxid(m.from_id), name: m.from?.name ?? `ID:${m.from_id}` };
  const gid = groupIdOf(m);
  if (gid !== null) {
    // Never push the bot's own messages (docs/bridge.md); a relay does not echo them, this is a guard.
    if (m.from_id === opts.botRelayId) return null;
    const mentioned = m.mentioned === true;
    return {
      ...base,
      conversation: { type: 'group', roomId: groupWxid(gid) },
      kind: 'text',
      sender,
      text: mentioned ? withMentionText(bodyText(m, opts), opts.botName) : bodyText(m, opts),
      mentions: mentioned ? [botId] : [],
    };
  }
  return { ...base, conversation: direct, kind: 'text', sender, text: bodyText(m, opts) };
}

export type RelayDisposition =
  | { status: 'forward'; event: ChatEvent }
  /** suppressed: a system notice with BRIDGE_SYSTEM_NOTICES=suppress, or the bot's own message. */
  | { status: 'suppressed' }
  /** filtered: group text that does not mention the bot, with BRIDGE_GROUP_REQUIRE_MENTION=true. */
  | { status: 'filtered'; event: ChatEvent };

/** What becomes of one relay message: forwarded, or acknowledged without a record (and why). */
export function relayDisposition(
  m: RelayMessageJson,
  opts: MappingOptions & { groupRequireMention: boolean },
): RelayDisposition {
  const event = relayMessageToEvent(m, opts);
  if (!event) return { status: 'suppressed' };
  if (!passesMentionFilter(event, opts.groupRequireMention)) return { status: 'filtered', event };
  return { status: 'forward', event };
}

/** Minimal shape check of a stream event's data before it is trusted. */
export function isMessageJson(v: unknown): v is RelayMessageJson {
  const m = v as RelayMessageJson;
  return (
    typeof m === 'object' &&
    m !== null &&
    Number.isSafeInteger(m.id) &&
    m.id > 0 &&
    typeof m.type === 'string' &&
    typeof m.created_at === 'string' &&
    !Number.isNaN(Date.parse(m.created_at)) &&
    (m.from_id === null || Number.isSafeInteger(m.from_id)) &&
    typeof m.content === 'string' &&
    (m.group === undefined ||
      m.group === null ||
      (typeof m.group === 'object' && Number.isSafeInteger(m.group.id) && m.group.id > 0)) &&
    (m.mentioned === undefined || typeof m.mentioned === 'boolean')
  );
}
