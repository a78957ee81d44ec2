// The records the relay's rules decide on and its stores keep: users, friendships, messages to store,
// groups. Plain data, shared by ../domain (pure decisions) and ../store (which persists them and calls
// the decisions inside its transactions), so that neither imports the other's module for them.

import type { AttachmentView, MessageType, PublicUser } from '@openwechat/protocol';

export interface UserRecord extends PublicUser {
  /** Lower-cased NFKC form of the name; unique (the reference's utf8mb4_unicode_ci collision rule). */
  nameKey: string;
  /** Set by an operator (admin CLI): the token is refused and the user is hidden from discovery. */
  disabledAt: number | null;
}

export type FriendshipStatus = 'pending' | 'accepted' | 'blocked';

export interface FriendshipRecord {
  /** The smaller user id of the pair. */
  userA: number;
  /** The larger user id of the pair. */
  userB: number;
  initiatedBy: number;
  status: FriendshipStatus;
  blockedBy: number | null;
  createdAt: number;
  updatedAt: number;
}

/** A message to be stored in `toId`'s inbox; the store assigns its per-recipient id. */
export interface NewMessage {
  toId: number;
  fromId: number | null;
  type: MessageType;
  content: string;
  attachment: AttachmentView | null;
  createdAt: number;
  /** The group of a `group` message (absent/null otherwise). */
  groupId?: number | null;
  /** This recipient's copy of a group message mentions it. */
  mentioned?: boolean;
  /** End-to-end ciphertext envelope, stored as given and never read (content is then the placeholder). */
  e2e?: string | null;
}

/** A group row. Dissolved groups keep their row (stored messages still name them) but have no members. */
export interface GroupRecord {
  id: number;
  name: string;
  description: string | null;
  ownerId: number;
  createdAt: number;
  dissolvedAt: number | null;
}
