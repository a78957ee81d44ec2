// JSON mode (docs/protocol.md): snake_case shapes, times as ISO-8601 UTC strings. The shapes are schema.ts's;
// here is the mapping from the relay's views to them (and back, for clients).

import type {
  AttachmentView,
  FriendView,
  GroupMemberView,
  GroupView,
  MessageView,
  PublicUser,
  ReceiptView,
} from './model.ts';
import type {
  AttachmentJson,
  FriendJson,
  GroupJson,
  GroupMemberJson,
  MessageJson,
  ReceiptJson,
  UserJson,
} from './schema.ts';
import { displayFilename, fileUrl } from './text.ts';

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null | undefined): string | null => (ms == null ? null : iso(ms));
const msOrNull = (s: string | null | undefined): number | null => (s == null ? null : Date.parse(s));

export function userJson(u: PublicUser): UserJson {
  return {
    id: u.id,
    name: u.name,
    description: u.description,
    status: u.status,
    created_at: iso(u.createdAt),
    last_seen_at: isoOrNull(u.lastSeenAt),
  };
}

export function friendJson(f: FriendView): FriendJson {
  return { ...userJson(f.user), friends_since: iso(f.since) };
}

function attachmentJson(a: AttachmentView): AttachmentJson {
  return {
    name: displayFilename(a.name),
    original_name: a.name,
    file_id: a.fileId ?? null,
    url: a.fileId ? fileUrl(a.fileId) : null,
    size: a.size ?? null,
    content_type: a.contentType ?? null,
    expires_at: isoOrNull(a.expiresAt),
  };
}

export function messageJson(m: MessageView): MessageJson {
  return {
    id: m.id,
    type: m.type,
    created_at: iso(m.createdAt),
    from_id: m.fromId,
    from: m.from ? { id: m.from.id, name: m.from.name, description: m.from.description } : null,
    content: m.content,
    attachment: m.attachment ? attachmentJson(m.attachment) : null,
    group: m.group ? { id: m.group.id, name: m.group.name } : null,
    mentioned: m.mentioned,
    // Only on encrypted messages, so every plaintext message keeps the shape it always had.
    ...(m.e2e ? { e2e: m.e2e } : {}),
  };
}

export function groupJson(g: GroupView): GroupJson {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    owner_id: g.ownerId,
    owner_name: g.ownerName,
    member_count: g.memberCount,
    created_at: iso(g.createdAt),
    role: g.role,
  };
}

export function groupMemberJson(m: GroupMemberView): GroupMemberJson {
  return { id: m.id, name: m.name, description: m.description, role: m.role, joined_at: iso(m.joinedAt) };
}

/** The inverse of messageJson(), for clients in JSON mode (relays without groups omit group/mentioned). */
export function messageFromJson(j: MessageJson): MessageView {
  const a = j.attachment;
  return {
    id: j.id,
    type: j.type,
    createdAt: Date.parse(j.created_at),
    fromId: j.from_id,
    from: j.from ? { id: j.from.id, name: j.from.name, description: j.from.description } : null,
    content: j.content,
    attachment: a
      ? {
          name: a.original_name,
          fileId: a.file_id,
          size: a.size,
          contentType: a.content_type,
          expiresAt: msOrNull(a.expires_at),
        }
      : null,
    group: j.group ? { id: j.group.id, name: j.group.name } : null,
    mentioned: j.mentioned === true,
    ...(j.e2e ? { e2e: j.e2e } : {}),
  };
}

export function receiptJson(r: ReceiptView): ReceiptJson {
  return {
    message_id: r.messageId,
    to_id: r.toId,
    group_id: r.groupId,
    state: r.deliveredAt === null ? 'accepted' : 'delivered',
    at: isoOrNull(r.deliveredAt),
  };
}
