// The WeChat AddMsg record the wechat_abot plugin parses (docs/bridge.md), built from a
// transport-neutral ChatEvent. Relay messages (group messages included) become ChatEvents in
// relay-events.ts; the group wire form ("<sender>:\n<body>", @chatroom ids, atuserlist, the @-mention
// filter) lives here.

export type ChatEventKind = 'text' | 'system';

export interface ChatEvent {
  kind: ChatEventKind;
  /** A direct chat with the sender, or a group (room id ends in `@chatroom`). */
  conversation: { type: 'direct' } | { type: 'group'; roomId: string; memberCount?: number };
  /** Who wrote it (wxid-like id without ':', display name). In a direct chat: the peer. */
  sender: { id: string; name: string };
  /** The bot's own id (ToUserName). */
  botId: string;
  text: string;
  /** Ids @-mentioned in a group message. */
  mentions?: readonly string[];
  /** `@所有人` (notify@all). */
  mentionsAll?: boolean;
  /** Unix seconds when the message was created (not when it is delivered). */
  createTime: number;
  ids: { msgId: number; newMsgId: number; msgSeq: number };
}

/** The record, with its keys in the order WeChat protocol servers emit them (docs/bridge.md). */
export interface AddMsg {
  MsgId: number;
  FromUserName: { string: string };
  ToUserName: { string: string };
  MsgType: number;
  Content: { string: string };
  Status: number;
  ImgStatus: number;
  ImgBuf: { iLen: number };
  CreateTime: number;
  MsgSource: string;
  PushContent: string;
  NewMsgId: number;
  MsgSeq: number;
}

export const MSG_TYPE = { text: 1, system: 10000 } as const;

/** Default `<signature>` node of MsgSource (consumers only need the XML to parse). */
export const DEFAULT_MSGSOURCE_SIGNATURE = 'v1_openwechat';

export interface BuildOptions {
  msgSourceSignature?: string;
}

export function isGroupEvent(e: ChatEvent): boolean {
  return e.conversation.type === 'group';
}

/** Whether a group message addresses the bot: its id in the mention list, or @all. */
export function mentionsBot(e: ChatEvent): boolean {
  return Boolean(e.mentionsAll) || (e.mentions ?? []).includes(e.botId);
}

/** The @-mention filter: with requireMention on, group messages not addressed to the bot are dropped. */
export function passesMentionFilter(e: ChatEvent, requireMention: boolean): boolean {
  return !requireMention || !isGroupEvent(e) || e.kind !== 'text' || mentionsBot(e);
}

function xmlText(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Ids that could break the CDATA list or its comma separation are left out. */
function cdataSafeId(id: string): boolean {
  return id !== '' && !/[,\]<>&\s]/.test(id);
}

/** Always well-formed XML (XYBotV2 drops messages whose MsgSource does not parse). */
export function buildMsgSource(e: ChatEvent, signature = DEFAULT_MSGSOURCE_SIGNATURE): string {
  let inner = '';
  if (e.conversation.type === 'group') {
    const ids = [...(e.mentions ?? []).filter(cdataSafeId), ...(e.mentionsAll ? ['notify@all'] : [])];
    if (ids.length) inner += `<atuserlist><![CDATA[,${ids.join(',')}]]></atuserlist>`;
    inner += '<silence>0</silence>';
    if (e.conversation.memberCount !== undefined)
      inner += `<membercount>${Math.max(0, Math.floor(e.conversation.memberCount))}</membercount>`;
  }
  inner += `<signature>${xmlText(signature)}</signature>`;
  return `<msgsource>${inner}</msgsource>`;
}

export function buildAddMsg(e: ChatEvent, opts: BuildOptions = {}): AddMsg {
  const group = e.conversation.type === 'group';
  const from = e.conversation.type === 'group' ? e.conversation.roomId : e.sender.id;
  // Group text carries its real sender as the "<id>:\n" prefix (consumers split on the first ":\n");
  // system tips in groups have no prefix, as on WeChat.
  const content = group && e.kind === 'text' ? `${e.sender.id}:\n${e.text}` : e.text;
  let push = '';
  if (e.kind === 'text')
    push = group && mentionsBot(e) ? `${e.sender.name}在群聊中@了你` : `${e.sender.name} : ${e.text}`;
  return {
    MsgId: e.ids.msgId,
    FromUserName: { string: from },
    ToUserName: { string: e.botId },
    MsgType: MSG_TYPE[e.kind],
    Content: { string: content },
    Status: 3,
    ImgStatus: 1,
    ImgBuf: { iLen: 0 },
    CreateTime: e.createTime,
    MsgSource: buildMsgSource(e, opts.msgSourceSignature),
    PushContent: push,
    NewMsgId: e.ids.newMsgId,
    MsgSeq: e.ids.msgSeq,
  };
}

/**
 * The exact bytes that are stored, signed and sent — serialised once, never again. Compact JSON, UTF-8;
 * invisible separators (U+2000–U+200F such as the U+2005 after an @name, U+2028/9, U+FEFF) are written as
 * \u escapes so the wire form is unambiguous and safe for any JSON consumer.
 */
export function serializeAddMsg(record: AddMsg): Buffer {
  if (!Number.isSafeInteger(record.NewMsgId) || record.NewMsgId <= 0)
    throw new RangeError('NewMsgId must be a positive integer ≤ 2^53 − 1');
  const json = JSON.stringify(record).replace(
    /[\u2000-\u200f\u2028\u2029\ufeff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return Buffer.from(json, 'utf8');
}

export interface RecordFormatOptions {
  /** bare: the record itself; gewechat: the callback envelope around it. */
  format: 'bare' | 'gewechat';
  /** The envelope's `Appid`; '' = the bot's own id (the record's ToUserName). */
  appid?: string;
}

/**
 * The webhook body of one record in the configured format — the bytes that are stored, signed and sent.
 * `gewechat` wraps the record in the envelope gewechat callbacks carry and WeChat-family plugins such as
 * gewe-openclaw require (docs/bridge.md, Record format): `{"TypeName":"AddMsg","Appid":…,"Wxid":<bot>,
 * "Data":<record>}`. The record's bytes are spliced in unchanged (never re-serialised), so `Data` is
 * byte for byte the bare body and the signature covers exactly what is sent.
 */
export function serializeRecord(record: AddMsg, opts: RecordFormatOptions): Buffer {
  const bare = serializeAddMsg(record);
  if (opts.format === 'bare') return bare;
  const wxid = record.ToUserName.string;
  const head = `{"TypeName":"AddMsg","Appid":${JSON.stringify(opts.appid || wxid)},"Wxid":${JSON.stringify(wxid)},"Data":`;
  return Buffer.concat([Buffer.from(head, 'utf8'), bare, Buffer.from('}', 'utf8')]);
}
