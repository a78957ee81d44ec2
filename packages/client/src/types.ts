// What the client hands back, the same whichever relay (and mode) answered. Times are UTC ms.

import type { GroupMemberView, GroupView, ParsedMessage, UserStatus } from '@openwechat/protocol';

export interface User {
  id: number;
  name: string;
  description: string | null;
  /** null when the reply did not show it (the text friend list). */
  status: UserStatus | null;
  createdAt: number | null;
  lastSeenAt: number | null;
}

export interface Friend extends User {
  friendsSince: number | null;
}

/** A received message. `id` is null on the reference relay (its text has no ids). */
export type Message = ParsedMessage;

/** What GET /health says about the relay. */
export interface Capabilities {
  /** `openwechat` when /health lists features (our relay), `reference` for the bare `{"status":"ok"}`. */
  kind: 'openwechat' | 'reference';
  version: string | null;
  features: string[];
  /** JSON bodies with `Accept: application/json`. */
  json: boolean;
  /** Resume streams (`Last-Event-ID`), `GET /messages?after=`, `POST /messages/ack`. */
  resume: boolean;
  /** `Idempotency-Key` on sends. */
  idempotency: boolean;
  /** Attachments stored by the relay and downloadable at /files/<id>. */
  files: boolean;
  /** Group chats (`/groups`, docs/groups-api.md). */
  groups: boolean;
  /** Delivery receipts: `event: receipt` on JSON streams, `GET /sent/…` (docs/protocol.md, Receipts). */
  receipts: boolean;
}

/**
 * The delivery state of one message the caller sent: `accepted` while it waits in the recipient's inbox,
 * `delivered` once the recipient's client acknowledged it (then `at` is when, UTC ms).
 */
export interface Receipt {
  /** The id in the recipient's inbox (SendResult.messageId; for a group, the member's copy). */
  messageId: number;
  toId: number;
  groupId: number | null;
  state: 'accepted' | 'delivered';
  at: number | null;
}

/** GET /sent?idempotency_key= for a private send: what the send answered, and where the message is now. */
export interface SentSend {
  result: SendResult;
  /** null when the relay no longer knows the message (expired; or the recipient blocked the caller). */
  receipt: Receipt | null;
}

/** The same for a group send: one receipt per member's copy still known. */
export interface SentGroupSend {
  result: GroupSendResult;
  receipts: Receipt[];
}

export type SendOutcome = 'request' | 'accepted' | 'chat';

export interface SendResult {
  outcome: SendOutcome;
  /** The relay's success line, e.g. `发送成功`. */
  message: string;
  /** Id of the delivered message in the recipient's inbox (our relay, JSON mode), else null. */
  messageId: number | null;
  /** The caller's own inbox preview, when the relay showed one. */
  inbox: { total: number; preview: Message[] } | null;
  /** True when the relay answered an idempotent retry with the original result. */
  replayed: boolean;
}

export interface InboxPage {
  total: number;
  fetched: number;
  remaining: number;
  messages: Message[];
  /**
   * Text mode: each message's block exactly as the relay printed it (aligned with `messages`), for
   * callers that keep what the relay sent. JSON mode: null.
   */
  blocks: string[] | null;
}

export interface DownloadedFile {
  /** Where the bytes are now. */
  path: string;
  /** The filename the relay gave (Content-Disposition), sanitised. */
  name: string;
  size: number;
  contentType: string | null;
}

// The protocol's own views: the client hands out what the wire format describes, in camelCase.
export type { GroupRole } from '@openwechat/protocol';
export type Group = GroupView;
export type GroupMember = GroupMemberView;

export interface GroupDetail {
  group: Group;
  members: GroupMember[];
}

export interface GroupSendResult {
  /** The relay's success line, e.g. `发送成功（群组 team，送达 2 位成员）`. */
  message: string;
  groupId: number;
  /** How many members got a copy (the sender excluded). */
  recipients: number;
  /** Each member's copy (its id in that member's inbox, for receipts); null when the relay did not say. */
  copies: Array<{ toId: number; messageId: number }> | null;
  /** The caller's own inbox preview, when the relay showed one. */
  inbox: { total: number; preview: Message[] } | null;
  /** True when the relay answered an idempotent retry with the original result. */
  replayed: boolean;
}
