// JSON mode (DESIGN §3): snake_case shapes, times as ISO-8601 UTC strings. Documented in docs/protocol.md.

import type {
  AttachmentView,
  FriendView,
  GroupMemberView,
  GroupRole,
  GroupView,
  MessageType,
  MessageView,
  PublicUser,
  UserStatus,
} from './model.ts';
import { displayFilename, fileUrl } from './text.ts';

export interface UserJson {
  id: number;
  name: string;
  description: string | null;
  status: UserStatus;
  created_at: string;
  last_seen_at: string | null;
}

export interface FriendJson extends UserJson {
  friends_since: string;
}

export interface AttachmentJson {
  /** Sanitised display name (displayFilename). */
  name: string;
  /** The filename as given by the sender. */
  original_name: string;
  file_id: string | null;
  /** Relay-relative download path `/files/<file_id>`, or null while no bytes are stored. */
  url: string | null;
  size: number | null;
  content_type: string | null;
  expires_at: string | null;
}

export interface MessageJson {
  id: number;
  type: MessageType;
  created_at: string;
  /** null for system notices. */
  from_id: number | null;
  from: { id: number; name: string; description: string | null } | null;
  content: string;
  attachment: AttachmentJson | null;
  /** The group of a `group` message; null for every other type. */
  group: { id: number; name: string } | null;
  /** This recipient was mentioned (group messages only; false elsewhere). */
  mentioned: boolean;
}

/** A group as the caller sees it (docs/groups-api.md). */
export interface GroupJson {
  id: number;
  name: string;
  description: string | null;
  owner_id: number;
  owner_name: string;
  member_count: number;
  created_at: string;
  /** The caller's role. */
  role: GroupRole;
}

export interface GroupMemberJson {
  id: number;
  name: string;
  description: string | null;
  role: GroupRole;
  joined_at: string;
}

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
  };
}
