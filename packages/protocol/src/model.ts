// The data that crosses the wire, independent of how it is rendered (text layouts, JSON, SSE).
// Times are UTC milliseconds since the epoch; renderers convert them (Beijing time for text, ISO for JSON).

/** What our relay lists in /health `features` (the reference lists none): a client in JSON mode assumes them. */
export const RELAY_FEATURES: readonly string[] = [
  'json',
  'resume',
  'idempotency',
  'files',
  'groups',
  'receipts',
  'e2e',
];

export const USER_STATUSES = ['open', 'friends_only', 'do_not_disturb'] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

/**
 * End-to-end encryption (docs/e2e.md). An encrypted message's `content` is always this fixed text, so a
 * text-mode or legacy reader sees it instead of ciphertext; the ciphertext travels in the JSON-mode `e2e`
 * field, which the relay stores without reading it.
 */
export const E2E_PLACEHOLDER = '[加密消息]';
/**
 * Longest `e2e` field (characters, all ASCII: a JSON envelope with base64 inside). Fits the default
 * 64 KB JSON body limit with room for the rest of the body; a group message to 500 members carries one
 * wrapped key per member (~75 characters each) and stays under it.
 */
export const E2E_MAX_CHARS = 49_152;

export const MESSAGE_TYPES = ['chat', 'friend_request', 'system', 'group'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

/** A user as other users see them (never the token). */
export interface PublicUser {
  id: number;
  name: string;
  description: string | null;
  status: UserStatus;
  createdAt: number;
  /** null until the first authenticated request after registration. */
  lastSeenAt: number | null;
}

/** The sender as shown in a message block: their *current* name and description. */
export interface SenderView {
  id: number;
  name: string;
  description: string | null;
}

export interface AttachmentView {
  /** Original filename as given by the sender (rendered sanitised). */
  name: string;
  /** Present once the bytes are stored by the relay (download at /files/<fileId>). */
  fileId?: string | null;
  size?: number | null;
  contentType?: string | null;
  expiresAt?: number | null;
}

/** One message in a recipient's inbox. `id` increases per recipient in commit order. */
export interface MessageView {
  id: number;
  type: MessageType;
  createdAt: number;
  /** null for system notices. */
  fromId: number | null;
  /** The sender's current profile; null for system notices or when the sender row is gone. */
  from: SenderView | null;
  content: string;
  attachment: AttachmentView | null;
  /** The group a `group` message was sent to (its *current* name); null for every other type. */
  group: GroupRef | null;
  /** Whether this recipient was mentioned in a group message (false outside groups). */
  mentioned: boolean;
  /**
   * The end-to-end ciphertext envelope, stored opaquely (`content` is then E2E_PLACEHOLDER). Absent or
   * null for a plaintext message.
   */
  e2e?: string | null;
}

/** A group as named in a message block: `<name>（群ID:<id>）`. */
export interface GroupRef {
  id: number;
  name: string;
}

export type GroupRole = 'owner' | 'member';

/** A group as one of its members sees it (GET /groups, GET /groups/{gid}). */
export interface GroupView {
  id: number;
  name: string;
  description: string | null;
  ownerId: number;
  /** The owner's current name. */
  ownerName: string;
  /** Members, the owner included. */
  memberCount: number;
  createdAt: number;
  /** The viewer's role. */
  role: GroupRole;
}

/** One member in GET /groups/{gid}. */
export interface GroupMemberView {
  id: number;
  name: string;
  description: string | null;
  role: GroupRole;
  joinedAt: number;
}

export interface FriendView {
  user: PublicUser;
  /** When the friendship was accepted (friendship.updated_at). */
  since: number;
}

export interface StatsView {
  users: number;
  friendships: number;
  messages: number;
}

/**
 * What the relay knows about the delivery of one sent message (a receipt). `deliveredAt` null: still
 * stored in the recipient's inbox (accepted); set: acknowledged by the recipient's client then.
 */
export interface ReceiptView {
  /** The sender (receipts go to, and are visible to, only them). */
  fromId: number;
  toId: number;
  /** The id in the recipient's inbox. */
  messageId: number;
  groupId: number | null;
  deliveredAt: number | null;
}

/**
 * The bytes an E2E key bundle's signature covers (docs/e2e.md), written once for the client that signs
 * and the relay that checks: a domain-separation line, then the account and both public keys (base64 as
 * published) and the version, one per line.
 */
export function keyBundleSigningInput(b: {
  userId: number;
  identityKey: string;
  encryptionKey: string;
  version: number;
}): Uint8Array {
  return new TextEncoder().encode(
    `openwechat-e2e-v1 key bundle\n${b.userId}\n${b.identityKey}\n${b.encryptionKey}\n${b.version}`,
  );
}
