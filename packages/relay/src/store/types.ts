// The storage interface of the relay. No HTTP types here: the store speaks users, friendships and
// messages. Every backend (SQLite, PostgreSQL) implements it and passes the same contract suite
// (tests/store/). Decisions that must be atomic with their effects (the friendship state machine on
// send) are made by pure functions from ../domain, called by the backend inside its transaction.

import type {
  AttachmentView,
  FriendView,
  GroupMemberView,
  GroupRef,
  GroupView,
  MessageView,
  ReceiptView,
  StatsView,
  UserStatus,
} from '@openwechat/protocol';
import type { GroupLimits, GroupSendDecision, GroupSendState } from '../domain/groups.ts';
import type { FriendshipRecord, UserRecord } from '../domain/records.ts';
import type { KeyBundleRecord, NewKeyBundle } from '../domain/keys.ts';
import type { SendDecision, SendState } from '../domain/send.ts';
import type { Step } from './steps.ts';

// The records the rules in ../domain decide on live there (the domain does not depend on storage).
export type {
  FriendshipRecord,
  FriendshipStatus,
  GroupRecord,
  NewMessage,
  UserRecord,
} from '../domain/records.ts';
export type { KeyBundleRecord, NewKeyBundle } from '../domain/keys.ts';

export type NewUser = Pick<UserRecord, 'name' | 'nameKey' | 'description' | 'status' | 'createdAt'> & {
  /** Hex SHA-256 of the token; the token itself is never stored. */
  tokenHash: string;
};

/** A stored message, rendered for its recipient (sender's current profile joined in). */
export interface InboxMessage extends MessageView {
  toId: number;
}

export interface SendRequest {
  fromId: number;
  toId: number;
  content: string;
  attachment: AttachmentView | null;
  /** End-to-end ciphertext envelope (content is then E2E_PLACEHOLDER); stored opaquely. */
  e2e?: string | null;
  now: number;
  /**
   * The sender's record as the caller authenticated it, moments ago. A backend that does not need to
   * lock the sender's row may use it instead of reading the row again (SQLite: its single writer
   * already serialises every send).
   */
  sender?: UserRecord;
}

export interface SendOptions {
  /**
   * Idempotent send: the first request with this (sender, key) is recorded with its result in the same
   * transaction; a repeat within the window returns that result and stores nothing. A repeat whose
   * fingerprint differs throws RelayError('idempotency_conflict').
   */
  idempotency?: { key: string; fingerprint: string; windowMs: number };
  /** Also read the sender's inbox preview inside the transaction (so a replay shows the same). */
  previewLimit?: number;
}

export interface SendResult {
  outcome: 'request' | 'accepted' | 'chat';
  /** The id of the sent message in the recipient's inbox. */
  messageId: number;
  /**
   * The recipient of messageId (receipts are keyed by recipient and id). Absent only on the replay of
   * an idempotency record written before receipts existed.
   */
  toId?: number;
  /** Everything stored by this call, in commit order (the chat/request first, then notices); empty on a replay. */
  delivered: InboxMessage[];
  /** The sender's inbox preview when previewLimit was given. */
  preview: InboxPage | null;
  /** true when this is the recorded result of an earlier request with the same idempotency key. */
  replayed: boolean;
  /**
   * true when the store already woke the other instances for `delivered`, in the transaction that
   * stored them (PostgreSQL's chat write, owc_send_chats2): nothing more to announce.
   */
  woken?: boolean;
}

export interface InboxPage {
  /** Messages in the inbox matching the filter, before this read. */
  total: number;
  messages: InboxMessage[];
}

export interface ListUsersQuery {
  query: string | null;
  limit: number;
  offset: number;
}

export interface DiscoverQuery {
  excludeId: number;
  keyword: string | null;
  limit: number;
}

/** A stored attachment. Its bytes live in the store too, so any instance on a shared database serves it. */
export interface FileRecord {
  /** 128-bit random, hex: unguessable. */
  id: string;
  senderId: number;
  /** The recipient of a private attachment; for a group attachment, the sender (see groupId). */
  recipientId: number;
  /** Set for a group attachment: every current member of the group may download it. */
  groupId: number | null;
  /** The sender's original filename (displayed sanitised). */
  name: string;
  contentType: string;
  size: number;
  sha256: string;
  createdAt: number;
  expiresAt: number;
  /** When the recipient first downloaded it completely. */
  downloadedAt: number | null;
}

export type NewFile = Omit<FileRecord, 'downloadedAt' | 'groupId'> & { groupId?: number | null };

// ── Groups (docs/groups-api.md) ───────────────────────────────────────────────────────────────────────

export interface NewGroupRequest {
  ownerId: number;
  name: string;
  description: string | null;
  /** Initial members besides the owner (the owner's id, if present, is ignored). */
  memberIds: readonly number[];
  now: number;
  limits: GroupLimits;
}

export interface GroupChange {
  /** The group after the change, as the acting user sees it. */
  group: GroupView;
  /** Users who joined by this change (create, add), in the order asked. */
  added: Array<{ id: number; name: string }>;
  /** System notices stored by the change, in commit order: publish them after the call. */
  delivered: InboxMessage[];
}

export interface GroupRemoval {
  group: GroupRef;
  /** Who left the group. */
  removed: { id: number; name: string };
  /** The user removed itself (leave) rather than being removed by the owner. */
  left: boolean;
  delivered: InboxMessage[];
}

export interface AddMembersRequest {
  groupId: number;
  actorId: number;
  userIds: readonly number[];
  now: number;
  limits: GroupLimits;
}

export interface GroupUpdate {
  groupId: number;
  actorId: number;
  name?: string;
  /** null clears the description. */
  description?: string | null;
  /** Hands the group to this member. */
  ownerId?: number;
  now: number;
}

export interface GroupSendRequest extends Pick<SendRequest, 'fromId' | 'content' | 'attachment' | 'now'> {
  groupId: number;
  /** Members named in the request body (besides `@name` in the content). */
  mentionIds: readonly number[];
  /** End-to-end ciphertext envelope, one for every copy (each member's key is wrapped inside). */
  e2e?: string | null;
}

export interface GroupSendResult {
  group: GroupRef;
  /** Members the message was stored for (everyone but the sender). */
  recipients: number;
  /** One copy per recipient, each with its own per-recipient id; empty on a replay. */
  delivered: InboxMessage[];
  /**
   * Each copy as [member id, message id in that member's inbox] (receipts are per copy); also on a
   * replay. Absent only on the replay of a record written before receipts existed.
   */
  copies?: Array<[toId: number, messageId: number]>;
  /** The sender's inbox preview when previewLimit was given. */
  preview: InboxPage | null;
  replayed: boolean;
}

// The Store is composed of one interface per area, so a handler can ask for (and a test double need
// only provide) the slice it uses: UserStore, MessagingStore, FileStore, GroupStore, OpsStore.

/** Accounts, profiles, discovery, homepages and the operator's user tools. */
export interface UserStore {
  /** Throws RelayError('name_taken') when nameKey exists. */
  createUser(user: NewUser): Promise<UserRecord>;
  countUsers(): Promise<number>;
  getUser(id: number): Promise<UserRecord | null>;
  /**
   * The user a token digest belongs to. SQLite answers without a promise (usually from memory,
   * sqlite-cache.ts): every authenticated request asks, and a promise costs it microtasks (issue 26).
   */
  findUserByTokenHash(tokenHash: string): Step<UserRecord | null>;
  setStatus(id: number, status: UserStatus): Promise<UserRecord | null>;
  /** Batched last-seen bookkeeping (never a write per request); a time never moves backwards. */
  touchLastSeen(entries: ReadonlyArray<readonly [id: number, at: number]>): Promise<void>;
  /** Most recently active users (last_seen desc nulls last, then id asc) with status `open`. */
  topActiveUsers(limit: number): Promise<UserRecord[]>;
  /** Random sample of `open` users other than excludeId, optionally filtered by keyword (name/description). */
  discoverUsers(q: DiscoverQuery): Promise<{ total: number; users: UserRecord[] }>;
  setHomepage(id: number, html: string): Promise<void>;
  /** undefined: no such user; null: user without a homepage. */
  getHomepage(id: number): Promise<string | null | undefined>;

  // Operator tools (admin CLI)
  /** Users by id, optionally filtered by a case-insensitive substring of the name. */
  listUsers(q: ListUsersQuery): Promise<{ total: number; users: UserRecord[] }>;
  setUserDisabled(id: number, disabledAt: number | null): Promise<UserRecord | null>;
  /** Replaces the token hash (token reset); false for an unknown user. */
  setTokenHash(id: number, tokenHash: string): Promise<boolean>;
}

/** Friendships, private sends and the inbox. */
export interface MessagingStore {
  getFriendship(a: number, b: number): Promise<FriendshipRecord | null>;
  listFriends(userId: number): Promise<FriendView[]>;
  /**
   * Atomically: load SendState, decide (`decide`, default decideSend), apply its friendship change and
   * store its messages. Throws the RelayError the decision carries when it refuses.
   */
  send(
    req: SendRequest,
    opts?: SendOptions,
    decide?: (state: SendState) => SendDecision,
  ): Promise<SendResult>;
  /** Forget idempotency records older than `before`; returns how many. */
  pruneIdempotency(before: number): Promise<number>;
  /** accepted → blocked by `by`, and purge `target`'s messages from `by`'s inbox. false if not accepted. */
  block(by: number, target: number, now: number): Promise<boolean>;
  /** Delete the pair's row if it is blocked by `by`. false when there is no such record. */
  unblock(by: number, target: number): Promise<boolean>;

  // Inbox
  /** Read-and-clear: the oldest `limit` messages (optionally only from `fromId`), deleted atomically. */
  takeInbox(
    userId: number,
    opts: { limit: number; fromId: number | null },
    delivery?: Delivery,
  ): Promise<InboxPage>;
  /** Read-only view of the oldest `limit` messages. */
  peekInbox(userId: number, limit: number): Promise<InboxPage>;
  /** Messages with id > afterId, in id order, without deleting them. */
  listInbox(userId: number, afterId: number, limit: number): Promise<InboxMessage[]>;
  /** Delete every message with id ≤ upTo; returns how many were deleted. */
  ackInbox(userId: number, upTo: number, delivery?: Delivery): Promise<number>;
  deleteMessages(userId: number, ids: readonly number[], delivery?: Delivery): Promise<void>;
  /** The highest id ever assigned in this inbox (0 if none). */
  lastMessageId(userId: number): Promise<number>;
  /** lastMessageId for many users at once (the streams' periodic catch-up); unknown users are absent. */
  lastMessageIds(userIds: readonly number[]): Promise<Map<number, number>>;
  /** Delete messages (and receipts of messages) created before `before`; returns how many messages. */
  expireMessages(before: number): Promise<number>;

  // Receipts (docs/protocol.md): takeInbox, ackInbox and deleteMessages record one for each message
  // they delete that a user sent (not system notices), in the same transaction — unless the recipient
  // has blocked that sender. Nothing is written on the send path: "accepted" is the message being stored.
  /**
   * The receipt of a message `fromId` sent to `toId`: delivered (a recorded receipt), accepted (still
   * stored), or null (not this sender's message, a blocked sender's delivered one, or expired).
   */
  getReceipt(fromId: number, toId: number, messageId: number): Promise<ReceiptView | null>;
  /** The recorded result of `userId`'s send with this Idempotency-Key, if it was made at or after `since`. */
  getIdempotentSend(
    userId: number,
    key: string,
    since: number,
  ): Promise<{ result: RecordedSendResult; createdAt: number } | null>;
}

/**
 * Where the inbox methods that delete messages record their receipts: `at` is the delivery time, and the
 * receipts recorded by the call are appended to `receipts` after its commit (for the senders' streams).
 * Without it the receipts are still recorded, at the store's clock.
 */
export interface Delivery {
  at: number;
  receipts: ReceiptView[];
}

/** An idempotency record's result (enough to answer a retry as the first time): a private or group send's. */
export type RecordedSendResult = (RecordedSend & { group?: undefined }) | RecordedGroupSend;
export type RecordedSend = Pick<SendResult, 'outcome' | 'messageId' | 'toId' | 'preview'>;
export type RecordedGroupSend = Pick<GroupSendResult, 'group' | 'recipients' | 'copies' | 'preview'>;

/** Attachments: their records and bytes. */
export interface FileStore {
  /**
   * Stores a file's bytes (in chunks, as they come) and its record. With `quotaBytes`, the record is
   * admitted only if the sender's stored bytes (storedFileBytes) plus this file stay within it, decided
   * atomically with the insert (concurrent uploads, several instances): over it, throws
   * RelayError('upload_quota_exceeded') and stores nothing.
   */
  putFile(file: NewFile, chunks: AsyncIterable<Buffer>, opts?: { quotaBytes?: number }): Promise<void>;
  getFile(id: string): Promise<FileRecord | null>;
  /**
   * The bytes, chunk by chunk, without holding the whole file in memory. Throws (mid-stream) when the
   * file disappears while being read, so a download never ends short and silent. A backend may keep a
   * swept file's bytes readable for a grace period so reads under way on other instances complete.
   */
  readFile(id: string): AsyncIterable<Buffer>;
  markFileDownloaded(id: string, at: number): Promise<void>;
  deleteFile(id: string): Promise<void>;
  /** Bytes of the sender's files that are still stored (the per-user quota). */
  storedFileBytes(senderId: number): Promise<number>;
  /**
   * Deletes files that expired before `now`, and files that were downloaded by their recipient and are
   * no longer referenced by any stored message (acknowledged). Returns how many.
   */
  sweepFiles(now: number): Promise<number>;
  /**
   * sweepFiles' rule for one file, right after its recipient downloaded it: deleted if downloaded and no
   * stored message references it any more. true if it was deleted. (The periodic sweep catches the rest,
   * e.g. a file whose message is acknowledged after the download.)
   */
  collectFile(id: string, now: number): Promise<boolean>;
}

/**
 * Groups. Every method that changes a group decides with the pure functions of ../domain/groups.ts
 * inside its transaction and stores the system notices of the change in that same transaction. A
 * group that does not exist, is dissolved, or that the acting user does not belong to is
 * RelayError('group_not_found') throughout.
 */
export interface GroupStore {
  /** Creates a group owned by `ownerId` with the initial members (the owner's accepted friends). */
  createGroup(req: NewGroupRequest): Promise<GroupChange>;
  /** The groups `userId` belongs to, by group id. */
  listGroups(userId: number): Promise<GroupView[]>;
  /** A group and its members (the owner first, then by joining time), or null if `viewerId` is not a member. */
  getGroup(
    groupId: number,
    viewerId: number,
  ): Promise<{ group: GroupView; members: GroupMemberView[] } | null>;
  /** Whether `userId` is a current member of the (live) group. */
  isGroupMember(groupId: number, userId: number): Promise<boolean>;
  /** The owner adds members (accepted friends of the owner; status and limits apply). All or nothing. */
  addGroupMembers(req: AddMembersRequest): Promise<GroupChange>;
  /** The owner removes a member (notified), or a member removes itself (= leaveGroup). */
  removeGroupMember(req: {
    groupId: number;
    actorId: number;
    userId: number;
    now: number;
  }): Promise<GroupRemoval>;
  /** A member other than the owner leaves. */
  leaveGroup(req: { groupId: number; userId: number; now: number }): Promise<GroupRemoval>;
  /** The owner renames, re-describes or hands over the group. Returns the group as the actor sees it. */
  updateGroup(req: GroupUpdate): Promise<GroupView>;
  /** The owner dissolves the group: every other member is notified, the memberships end. */
  dissolveGroup(req: { groupId: number; actorId: number; now: number }): Promise<{
    group: GroupRef;
    delivered: InboxMessage[];
  }>;
  /**
   * Atomically: check membership (`decide`, default decideGroupSend), store one copy per other member
   * with that member's next id and mention flag, record the idempotency key and read the sender's
   * preview — as send() does for one recipient.
   */
  sendToGroup(
    req: GroupSendRequest,
    opts?: SendOptions,
    decide?: (state: GroupSendState) => GroupSendDecision,
  ): Promise<GroupSendResult>;
}

// ── End-to-end keys (docs/e2e.md) ─────────────────────────────────────────────────────────────────────

export interface KeyStore {
  /**
   * Publishes a key bundle under the rules of decideKeyBundle() (domain/keys.ts), read and written in
   * one transaction. Throws RelayError('invalid_key_bundle' | 'key_version_stale').
   */
  putKeyBundle(
    bundle: NewKeyBundle,
    now: number,
  ): Promise<{ keys: KeyBundleRecord; identityChanged: boolean }>;
  /** The published bundle, or null when the user has none (or does not exist). */
  getKeyBundle(userId: number): Promise<KeyBundleRecord | null>;
}

/** Whole-database operations: health, statistics, backups. */
export interface OpsStore {
  getStats(): Promise<StatsView>;
  /** A cheap round trip (readiness probe). */
  ping(): Promise<void>;
  /** A consistent copy of the whole database into `file`, while serving (SQLite); PostgreSQL: pg_dump. */
  backup(file: string): Promise<void>;
  /**
   * Adds `by` (a positive integer) to every user's last message id, in one transaction: every id issued
   * from now on is larger than any issued before. Run after restoring a backup, whose ids went back in
   * time (clients acknowledge and deduplicate by id, so an id must never be issued twice). Stored
   * messages keep their ids. Refused (nothing changes) if an id would exceed Number.MAX_SAFE_INTEGER.
   */
  advanceMessageIds(by: number): Promise<{ users: number; by: number }>;
}

export interface Store extends UserStore, MessagingStore, FileStore, GroupStore, KeyStore, OpsStore {
  /** Which backend this is, for /health and logs. */
  readonly kind: 'sqlite' | 'postgres';
  close(): Promise<void>;
}
