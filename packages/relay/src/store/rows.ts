// Row shapes, row → record mappings, the message row a send writes, shared SELECT fragments and
// idempotency replays: written once for both SQL backends. The backends differ in how they bind and
// lock, not in what a row means. PostgreSQL text cannot hold U+0000, so its backend passes its
// reversible text escape (postgres-text.ts) as `encode`/`decode`; SQLite stores text as is.

import { RelayError, type AttachmentView, type GroupRef, type ReceiptView } from '@openwechat/protocol';
import type { InboxMessage, NewFile, NewMessage, UserRecord } from './types.ts';

/** A text mapping applied to the free-text columns on the way in or out. */
export type TextCodec = (s: string) => string;
const asIs: TextCodec = (s) => s;

/** A user record's columns, named as UserRecord names them (never the token hash). */
export const USER_COLUMNS =
  'id, name, description, status, created_at AS "createdAt", last_seen_at AS "lastSeenAt", name_key AS "nameKey", disabled_at AS "disabledAt"';

/** A friendship record's columns, named as FriendshipRecord names them. */
export const FRIENDSHIP_COLUMNS =
  'user_a AS "userA", user_b AS "userB", initiated_by AS "initiatedBy", status, blocked_by AS "blockedBy", created_at AS "createdAt", updated_at AS "updatedAt"';

/** The pair's primary key: the smaller id first. */
export function pair(a: number, b: number): [number, number] {
  return a < b ? [a, b] : [b, a];
}

/** A group record's columns, named as GroupRecord names them. */
export const GROUP_COLUMNS =
  'id, name, description, owner_id AS "ownerId", created_at AS "createdAt", dissolved_at AS "dissolvedAt"';

// ── Messages ────────────────────────────────────────────────────────────────────────────────────────

/** A message row as stored, before the sender's profile and the group's name are joined in. */
export interface StoredMessageRow {
  to_id: number;
  id: number;
  from_id: number | null;
  type: InboxMessage['type'];
  content: string;
  attachment_name: string | null;
  file_id: string | null;
  file_size: number | null;
  file_type: string | null;
  file_expires_at: number | null;
  created_at: number;
  group_id: number | null;
  /** SQLite answers 0/1, PostgreSQL a boolean. */
  mentioned: boolean | number;
  /** End-to-end ciphertext envelope (ASCII, never decoded or read by the relay); null for plaintext. */
  e2e: string | null;
}

/** What the reading queries join in: the sender's current profile and the group's current name. */
export interface JoinedColumns {
  /** null for system notices or a missing sender. */
  from_name: string | null;
  from_description: string | null;
  /** null outside groups. */
  group_name: string | null;
}

export type MessageRow = StoredMessageRow & JoinedColumns;

/** A message's columns other than its recipient, id and mention flag (what a fan-out run shares). */
export type MessageFields = Omit<StoredMessageRow, 'to_id' | 'id' | 'mentioned'>;

/** A stored message's columns (MESSAGE_SELECT adds its sender's name and description, never more). */
export const MESSAGE_COLUMNS = `m.to_id, m.id, m.from_id, m.type, m.content, m.attachment_name, m.file_id,
  m.file_size, m.file_type, m.file_expires_at, m.created_at, m.group_id, m.mentioned, m.e2e`;
export const MESSAGE_SELECT = `
  SELECT ${MESSAGE_COLUMNS}, u.name AS from_name, u.description AS from_description, gr.name AS group_name
  FROM messages m LEFT JOIN users u ON u.id = m.from_id LEFT JOIN groups gr ON gr.id = m.group_id`;

/** The stored columns of `m` (text encoded for the backend). */
export function messageFields(m: NewMessage, encode: TextCodec = asIs): MessageFields {
  const a = m.attachment;
  return {
    from_id: m.fromId,
    type: m.type,
    content: encode(m.content),
    attachment_name: a ? encode(a.name) : null,
    file_id: a ? (a.fileId ?? null) : null,
    file_size: a ? (a.size ?? null) : null,
    file_type: a ? (a.contentType ?? null) : null,
    file_expires_at: a ? (a.expiresAt ?? null) : null,
    created_at: m.createdAt,
    group_id: m.groupId ?? null,
    e2e: m.e2e ?? null,
  };
}

/** from_id … created_at, in the order every INSERT INTO messages lists them. */
export function fieldParams(f: MessageFields): Array<string | number | null> {
  const { from_id, type, content, attachment_name, file_id, file_size, file_type, file_expires_at } = f;
  return [
    from_id,
    type,
    content,
    attachment_name,
    file_id,
    file_size,
    file_type,
    file_expires_at,
    f.created_at,
  ];
}

/** The joined columns for messages stored by `from` (null: system notices) in `group`. */
export function joinedFrom(
  from: Pick<UserRecord, 'name' | 'description'> | null,
  group: GroupRef | null = null,
): JoinedColumns {
  return {
    from_name: from?.name ?? null,
    from_description: from?.description ?? null,
    group_name: group?.name ?? null,
  };
}

export function toMessage(row: MessageRow, decode: TextCodec = asIs): InboxMessage {
  const attachment: AttachmentView | null =
    row.attachment_name === null
      ? null
      : {
          name: decode(row.attachment_name),
          fileId: row.file_id,
          size: row.file_size,
          contentType: row.file_type,
          expiresAt: row.file_expires_at,
        };
  return {
    toId: row.to_id,
    id: row.id,
    type: row.type,
    createdAt: row.created_at,
    fromId: row.from_id,
    from:
      row.from_id === null || row.from_name === null
        ? null
        : { id: row.from_id, name: row.from_name, description: row.from_description },
    content: decode(row.content),
    attachment,
    group: row.group_id === null ? null : { id: row.group_id, name: row.group_name ?? '' },
    mentioned: row.mentioned === true || row.mentioned === 1,
    ...(row.e2e ? { e2e: row.e2e } : {}),
  };
}

// ── Groups as their members see them ────────────────────────────────────────────────────────────────

/** Groups (GroupView) as their member `gm.user_id` sees them. */
export const GROUP_VIEW_SELECT = `
  SELECT g.id, g.name, g.description, g.owner_id AS "ownerId", o.name AS "ownerName",
         (SELECT count(*) FROM group_members c WHERE c.group_id = g.id) AS "memberCount",
         g.created_at AS "createdAt", gm.role
  FROM group_members gm JOIN groups g ON g.id = gm.group_id JOIN users o ON o.id = g.owner_id`;

/** A group's members (GroupMemberView) in $1, the owner first, then by joining time. */
export const GROUP_MEMBERS_SELECT = `SELECT u.id, u.name, u.description, gm.role, gm.joined_at AS "joinedAt"
  FROM group_members gm JOIN users u ON u.id = gm.user_id
  WHERE gm.group_id = $1 ORDER BY gm.role = 'owner' DESC, gm.joined_at, u.id`;

// ── Files ───────────────────────────────────────────────────────────────────────────────────────────

/** A file record's columns, named as FileRecord names them. */
export const FILE_COLUMNS = `id, sender_id AS "senderId", recipient_id AS "recipientId", group_id AS "groupId", name,
  content_type AS "contentType", size, sha256, created_at AS "createdAt", expires_at AS "expiresAt",
  downloaded_at AS "downloadedAt"`;

/** A new file's columns id … group_id, in the order the inserts list them. */
export function fileParams(file: NewFile, encode: TextCodec = asIs): Array<string | number | null> {
  const { id, senderId, recipientId, contentType, size, sha256, createdAt, expiresAt } = file;
  return [
    id,
    senderId,
    recipientId,
    encode(file.name),
    contentType,
    size,
    sha256,
    createdAt,
    expiresAt,
    file.groupId ?? null,
  ];
}

/** Bytes per stored chunk: small enough that one chunk never blocks the event loop or a connection long. */
export const CHUNK_BYTES = 256 * 1024;

/** Re-cuts an upload's pieces (whatever sizes the socket delivered) into CHUNK_BYTES chunks. */
export async function* rechunk(pieces: AsyncIterable<Buffer>, size = CHUNK_BYTES): AsyncIterable<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const piece of pieces) {
    let c = piece;
    while (c.length) {
      const take = Math.min(c.length, size - pendingBytes);
      pending.push(c.subarray(0, take));
      pendingBytes += take;
      c = c.subarray(take);
      if (pendingBytes === size) {
        yield Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  if (pendingBytes) yield Buffer.concat(pending, pendingBytes);
}

// ── Search ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * Whether a search keyword can match nothing stored: names and descriptions never hold control
 * characters (registration refuses them), and U+0000 cannot even be sent to PostgreSQL (a query with it
 * fails) while SQLite would cut the pattern short there (C strings) and match too much. Both backends
 * answer such a search with no users.
 */
export function matchesNothing(keyword: string | null): boolean {
  return keyword !== null && keyword.includes('\u0000');
}

/** A LIKE pattern matching `keyword` literally anywhere (`\` is the escape character). */
export function containsPattern(keyword: string): string {
  return `%${keyword.replace(/[\\%_]/g, '\\$&')}%`;
}

// ── Receipts ────────────────────────────────────────────────────────────────────────────────────────

/**
 * Which of the messages `m` being deleted get a receipt: those a user sent (not system notices), unless
 * the recipient has blocked that sender (a blocked sender learns nothing new). `lo`/`hi` are the
 * backend's two-argument min/max (SQLite min/max, PostgreSQL LEAST/GREATEST): friendships are stored
 * as the ordered pair.
 */
export function receiptEligible(m: string, lo: string, hi: string): string {
  return `${m}.from_id IS NOT NULL AND ${m}.type <> 'system' AND NOT EXISTS (
    SELECT 1 FROM friendships f
    WHERE f.user_a = ${lo}(${m}.to_id, ${m}.from_id) AND f.user_b = ${hi}(${m}.to_id, ${m}.from_id)
      AND f.status = 'blocked' AND f.blocked_by = ${m}.to_id)`;
}

/** Receipts of one deletion in id order (RETURNING promises no order). */
export function toReceipts(rows: readonly ReceiptView[]): ReceiptView[] {
  return [...rows].sort((x, y) => x.toId - y.toId || x.messageId - y.messageId);
}

/** A receipt's columns, named (and ordered) as ReceiptView names them. */
export const RECEIPT_COLUMNS =
  'from_id AS "fromId", to_id AS "toId", message_id AS "messageId", group_id AS "groupId", delivered_at AS "deliveredAt"';

// ── Idempotency ─────────────────────────────────────────────────────────────────────────────────────

/** A stored idempotency record, as both backends read it. */
export interface IdempotencyRow {
  fingerprint: string;
  result: string;
  created_at: number;
}

/**
 * The answer to a repeated Idempotency-Key: the recorded result when the key is still within its window
 * and the request is the same, a conflict when the request differs, null when the key is new (or expired).
 */
export function replayOf<T>(
  prior: IdempotencyRow | undefined,
  idem: { fingerprint: string; windowMs: number },
  now: number,
): (T & { delivered: []; replayed: true }) | null {
  if (!prior || prior.created_at <= now - idem.windowMs) return null;
  if (prior.fingerprint !== idem.fingerprint) throw new RelayError('idempotency_conflict');
  return { ...(JSON.parse(prior.result) as T), delivered: [], replayed: true };
}
