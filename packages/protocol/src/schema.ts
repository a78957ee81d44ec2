// The JSON wire format, written once as TypeBox schemas (JSON Schema with static types). From these come
// the TypeScript types (json.ts), the relay's request validation (relay/src/http/input.ts, in the
// reference's pydantic wording), the OpenAPI document (relay/src/http/openapi.ts) and the clients' checks
// of what a relay answered (check.ts). A field added or changed here changes all four at once.
//
// Property order matters: request validation reports problems in this order, as pydantic does for the
// reference's models. Times are ISO-8601 UTC strings; `date-time` is checked by check.ts.

import {
  Type,
  type SchemaOptions,
  type Static,
  type TLiteral,
  type TNull,
  type TSchema,
  type TUnion,
} from '@sinclair/typebox';
import { ERRORS } from './errors.ts';
import { E2E_MAX_CHARS, E2E_PLACEHOLDER, MESSAGE_TYPES, USER_STATUSES } from './model.ts';

// ── Building blocks ───────────────────────────────────────────────────────────────────────────────

export const Nullable = <T extends TSchema>(schema: T, options: SchemaOptions = {}): TUnion<[T, TNull]> =>
  Type.Union([schema, Type.Null()], options);

type LiteralsOf<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K]> };

/** One of fixed strings: a union of literals (checked by TypeBox, rendered as an `enum` in OpenAPI). */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnion<LiteralsOf<T>> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    options,
  ) as unknown as TUnion<LiteralsOf<T>>;
}

function IdempotencyKeyHeaderSchema() {
  return Type.String({ minLength: 1, maxLength: 255 });
}
const DateTime = (options: SchemaOptions = {}) => Type.String({ format: 'date-time', ...options });
const Id = (options: SchemaOptions = {}) => Type.Integer(options);

export const GROUP_ROLES = ['owner', 'member'] as const;

// ── Shapes in responses ───────────────────────────────────────────────────────────────────────────

export const UserSchema = Type.Object({
  id: Id(),
  name: Type.String(),
  description: Nullable(Type.String()),
  status: StringEnum(USER_STATUSES),
  created_at: DateTime(),
  last_seen_at: Nullable(DateTime()),
});

export const FriendSchema = Type.Composite([UserSchema, Type.Object({ friends_since: DateTime() })]);

export const AttachmentSchema = Type.Object({
  name: Type.String({ description: 'sanitised display name (displayFilename)' }),
  original_name: Type.String({ description: 'the filename as given by the sender' }),
  file_id: Nullable(Type.String()),
  url: Nullable(
    Type.String({ description: 'relay-relative `/files/<file_id>`; null while no bytes are stored' }),
  ),
  size: Nullable(Type.Integer()),
  content_type: Nullable(Type.String()),
  expires_at: Nullable(DateTime()),
});

export const SenderSchema = Type.Object({
  id: Id(),
  name: Type.String(),
  description: Nullable(Type.String()),
});
export const GroupRefSchema = Type.Object({
  id: Id(),
  name: Type.String({ description: 'the current name' }),
});

export const MessageSchema = Type.Object({
  id: Id({ description: 'per recipient, increasing in commit order' }),
  type: StringEnum(MESSAGE_TYPES),
  created_at: DateTime(),
  from_id: Nullable(Id({ description: 'null for system notices' })),
  from: Nullable(SenderSchema),
  content: Type.String(),
  attachment: Nullable(AttachmentSchema),
  // Both always sent by this relay; absent from relays without the `groups` feature, which clients accept.
  group: Type.Optional(Nullable(GroupRefSchema, { description: "a `group` message's group; else null" })),
  mentioned: Type.Optional(
    Type.Boolean({ description: 'this copy of a group message mentions its recipient (else false)' }),
  ),
  e2e: Type.Optional(
    Type.String({
      description: `end-to-end ciphertext envelope (docs/e2e.md), stored opaquely; only on encrypted messages, whose content is \`${E2E_PLACEHOLDER}\``,
    }),
  ),
});

/** A signed key bundle (docs/e2e.md): base64 of the raw 32-byte public keys and the 64-byte signature. */
export const KeyBundleSchema = Type.Object({
  user_id: Id(),
  identity_key: Type.String({ description: 'Ed25519 public key, base64 (32 bytes)' }),
  encryption_key: Type.String({
    description: 'X25519 public key, base64 (32 bytes), signed by identity_key',
  }),
  version: Type.Integer({ minimum: 1, description: 'grows with each rotation of the encryption key' }),
  signature: Type.String({ description: 'Ed25519 signature by identity_key over the bundle (docs/e2e.md)' }),
  updated_at: DateTime({ description: 'when this bundle was published' }),
  identity_since: DateTime({
    description: 'when this identity key was first published: a change is visible',
  }),
});

export const GroupSchema = Type.Object({
  id: Id(),
  name: Type.String(),
  description: Nullable(Type.String()),
  owner_id: Id(),
  owner_name: Type.String(),
  member_count: Type.Integer({ description: 'the owner included' }),
  created_at: DateTime(),
  role: StringEnum(GROUP_ROLES, { description: "the caller's role" }),
});

export const GroupMemberSchema = Type.Object({
  id: Id(),
  name: Type.String(),
  description: Nullable(Type.String()),
  role: StringEnum(GROUP_ROLES),
  joined_at: DateTime(),
});

const InboxPreview = Type.Object({ total: Type.Integer(), preview: Type.Array(MessageSchema) });

export const SendResultSchema = Type.Object({
  result: StringEnum(['request', 'accepted', 'chat']),
  message: Type.String(),
  message_id: Type.Integer(),
  inbox: InboxPreview,
});

/** One member's copy of a group message: the id it has in that member's inbox (receipts are per copy). */
export const GroupCopySchema = Type.Object({ to_id: Id(), message_id: Type.Integer() });

export const GroupSendResultSchema = Type.Object({
  result: StringEnum(['group']),
  message: Type.String(),
  group_id: Id(),
  recipients: Type.Integer({ description: 'members the message was stored for (everyone but the sender)' }),
  /**
   * Ours (receipts): each member's copy, by member id. Optional because the reference relay does not
   * send it, nor does a replay of a send recorded before receipts existed.
   */
  copies: Type.Optional(Type.Array(GroupCopySchema)),
  inbox: InboxPreview,
});

export const RECEIPT_STATES = ['accepted', 'delivered'] as const;

/**
 * The delivery state of one message the caller sent (docs/protocol.md, Receipts): `accepted` while it is
 * stored in the recipient's inbox, `delivered` once the recipient's client acknowledged it (or read it
 * with a read-and-clear GET /messages, or a legacy stream wrote it).
 */
export const ReceiptSchema = Type.Object({
  message_id: Type.Integer({ description: "the id in the recipient's inbox (POST /send's message_id)" }),
  to_id: Id(),
  group_id: Nullable(Id()),
  state: StringEnum(RECEIPT_STATES),
  at: Nullable(DateTime({ description: 'when it was delivered; null while accepted' })),
});

export const InboxPageSchema = Type.Object({
  total: Type.Integer(),
  fetched: Type.Integer(),
  remaining: Type.Integer(),
  messages: Type.Array(MessageSchema),
});

export const ErrorSchema = Type.Object({
  error: Type.Object({ code: StringEnum(Object.keys(ERRORS)), message: Type.String() }),
});

export const HealthSchema = Type.Object({
  status: Type.String(),
  /** The reference answers a bare `{"status":"ok"}`: version and features are ours. */
  version: Type.Optional(Type.String()),
  features: Type.Optional(Type.Array(Type.String())),
});

export const SentReceiptSchema = Type.Object({ receipt: ReceiptSchema });

/**
 * GET /sent?idempotency_key=: the send made with that key — its original JSON success body, and the
 * receipt of the message (a private send) or of each member's copy (a group send; `receipt` is null).
 */
export const SentByKeySchema = Type.Object({
  key: Type.String(),
  result: Type.Union([SendResultSchema, GroupSendResultSchema]),
  receipt: Nullable(ReceiptSchema),
  receipts: Type.Optional(Type.Array(ReceiptSchema)),
});

const UserRef = Type.Object({ id: Id(), name: Type.String() });
const Ok = Type.Object({ ok: Type.Boolean() });
const GroupReply = Type.Object({ group: GroupSchema });

/** Named shapes, as they appear under components/schemas in the OpenAPI document. */
export const COMPONENTS = {
  User: UserSchema,
  Friend: FriendSchema,
  Attachment: AttachmentSchema,
  Message: MessageSchema,
  Group: GroupSchema,
  GroupMember: GroupMemberSchema,
  SendResult: SendResultSchema,
  GroupSendResult: GroupSendResultSchema,
  Receipt: ReceiptSchema,
  InboxPage: InboxPageSchema,
  KeyBundle: KeyBundleSchema,
  Error: ErrorSchema,
} as const;

// ── Requests ──────────────────────────────────────────────────────────────────────────────────────
// Limits count characters (code points), as pydantic does. A field absent from a body is Optional here;
// a field that is present is validated as required (so `"owner_id": null` is refused, not ignored).

const Content = Type.String({ minLength: 1, maxLength: 1000 });
const E2eField = Type.String({
  minLength: 1,
  maxLength: E2E_MAX_CHARS,
  description: `end-to-end ciphertext envelope (docs/e2e.md); content must then be \`${E2E_PLACEHOLDER}\``,
});
const Description = Nullable(Type.String({ maxLength: 200 }));
const GroupName = Type.String({ minLength: 1, maxLength: 50 });

export const RegisterBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  description: Type.Optional(Description),
  status: Type.Optional(StringEnum(USER_STATUSES, { default: 'open' })),
});
export const StatusBody = Type.Object({ status: StringEnum(USER_STATUSES) });
export const SendBody = Type.Object({ to_id: Id(), content: Content, e2e: Type.Optional(E2eField) });
/**
 * The multipart forms are described here for the document; the relay reads their fields itself, because
 * the reference refuses a long content there as `content_too_long` (an error, not a validation message).
 */
export const SendFileBody = Type.Object({
  to_id: Id(),
  content: Type.Optional(Type.String({ maxLength: 1000 })),
  file: Type.Optional(Type.String({ format: 'binary' })),
  e2e: Type.Optional(E2eField),
});
export const AckBody = Type.Object({ up_to: Type.Integer({ minimum: 0 }) });
export const CreateGroupBody = Type.Object({
  name: GroupName,
  description: Type.Optional(Description),
  member_ids: Type.Optional(Type.Array(Id())),
});
export const UpdateGroupBody = Type.Object({
  name: Type.Optional(GroupName),
  description: Type.Optional(Description),
  owner_id: Type.Optional(Id({ description: 'a current member' })),
});
export const AddMembersBody = Type.Object({ user_ids: Type.Array(Id(), { minItems: 1 }) });
export const GroupSendBody = Type.Object({
  content: Content,
  mention_ids: Type.Optional(Type.Array(Id())),
  e2e: Type.Optional(E2eField),
});
export const GroupSendFileBody = Type.Object({
  content: Type.Optional(Type.String({ maxLength: 1000 })),
  file: Type.Optional(Type.String({ format: 'binary' })),
  mention_ids: Type.Optional(Type.String({ description: 'comma-separated user ids' })),
  e2e: Type.Optional(E2eField),
});
export const PutKeysBody = Type.Object({
  identity_key: Type.String({ minLength: 1, maxLength: 64 }),
  encryption_key: Type.String({ minLength: 1, maxLength: 64 }),
  version: Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 }),
  signature: Type.String({ minLength: 1, maxLength: 128 }),
});
export const RateLimitBody = Type.Object({ enabled: Type.Boolean() });

export const DiscoverQuery = Type.Object({ keyword: Type.Optional(Type.String()) });
export const InboxQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  from_id: Type.Optional(Id()),
  after: Type.Optional(Type.Integer({ minimum: 0 })),
});
export const SentQuery = Type.Object({ idempotency_key: IdempotencyKeyHeaderSchema() });
export const StreamQuery = Type.Object({
  since: Type.Optional(Type.Integer({ minimum: 0 })),
  format: Type.Optional(StringEnum(['text', 'json'])),
});

/** Path parameters by name: every `:name` in a route's URL is one of these. */
export const PATH_PARAMS = {
  user_id: Id(),
  to_id: Id(),
  message_id: Type.Integer({ minimum: 1 }),
  group_id: Id(),
  file_id: Type.String(),
} as const;
export const UserIdPath = Type.Object({ user_id: PATH_PARAMS.user_id });
export const GroupIdPath = Type.Object({ group_id: PATH_PARAMS.group_id });
export const MemberPath = Type.Object({ group_id: PATH_PARAMS.group_id, user_id: PATH_PARAMS.user_id });

export const IdempotencyKeyHeader = IdempotencyKeyHeaderSchema();
export const SentPath = Type.Object({ to_id: PATH_PARAMS.to_id, message_id: PATH_PARAMS.message_id });

// ── The endpoints ─────────────────────────────────────────────────────────────────────────────────

export interface Endpoint {
  summary: string;
  tag: 'ops' | 'accounts' | 'messages' | 'friends' | 'groups' | 'homepage' | 'keys' | 'admin';
  query?: TSchema;
  body?: { type: 'json' | 'multipart' | 'html'; schema: TSchema };
  /** JSON-mode success body (with `Accept: application/json`); text mode renders the text layouts. */
  json?: TSchema;
  /** The answer is the same in both modes and not a text layout (ops JSON, SSE, HTML, a file). */
  produces?: { type: string; schema?: TSchema };
}

const json = <S extends TSchema>(schema: S) => ({ type: 'application/json', schema });

/**
 * Every endpoint's request and response shapes, keyed `METHOD /url` as in the relay's route table (which
 * must have an entry here for each route: the OpenAPI build refuses otherwise).
 */
export const ENDPOINTS = {
  'GET /': {
    summary: 'What this server is; points to /docs and /health',
    tag: 'ops',
    json: Type.Object({
      name: Type.String(),
      version: Type.String(),
      docs: Type.String(),
      openapi: Type.String(),
      health: Type.String(),
    }),
  },
  'GET /health': {
    summary: 'Liveness and capabilities (version, features)',
    tag: 'ops',
    produces: json(HealthSchema),
  },
  'GET /metrics': { summary: 'Prometheus metrics', tag: 'ops', produces: { type: 'text/plain' } },
  'GET /livez': { summary: 'Liveness probe', tag: 'ops', produces: { type: 'application/json' } },
  'GET /readyz': {
    summary: 'Readiness probe (503 while shutting down)',
    tag: 'ops',
    produces: { type: 'application/json' },
  },
  'GET /openapi.json': {
    summary: 'This document (rendered at /docs)',
    tag: 'ops',
    produces: { type: 'application/json' },
  },
  'GET /stats': {
    summary: 'Counts of users, friendships and messages',
    tag: 'ops',
    produces: json(
      Type.Object({ users: Type.Integer(), friendships: Type.Integer(), messages: Type.Integer() }),
    ),
  },
  'POST /register': {
    summary: 'Register; the token is shown once',
    tag: 'accounts',
    body: { type: 'json', schema: RegisterBody },
    json: Type.Object({ user: UserSchema, token: Type.String(), top_users: Type.Array(UserSchema) }),
  },
  'GET /users': {
    summary: 'Discover up to 10 random open users',
    tag: 'accounts',
    query: DiscoverQuery,
    json: Type.Object({ total: Type.Integer(), users: Type.Array(UserSchema) }),
  },
  'GET /users/:user_id': { summary: 'One user', tag: 'accounts', json: Type.Object({ user: UserSchema }) },
  'PATCH /me': {
    summary: 'Set my status',
    tag: 'accounts',
    body: { type: 'json', schema: StatusBody },
    json: Type.Object({ user: UserSchema }),
  },
  'POST /send': {
    summary: 'Send a message (a first message is a friend request; a reply accepts it)',
    tag: 'messages',
    body: { type: 'json', schema: SendBody },
    json: SendResultSchema,
  },
  'POST /send/file': {
    summary: 'Send a file (multipart: to_id, content, file)',
    tag: 'messages',
    body: { type: 'multipart', schema: SendFileBody },
    json: SendResultSchema,
  },
  'GET /messages': {
    summary: 'Read the inbox: read-and-clear, or with after=n non-destructive (acks ≤ n)',
    tag: 'messages',
    query: InboxQuery,
    json: InboxPageSchema,
  },
  'POST /messages/ack': {
    summary: 'Acknowledge (delete) every message with id ≤ up_to',
    tag: 'messages',
    body: { type: 'json', schema: AckBody },
    json: Type.Object({ acked: Type.Integer(), up_to: Type.Integer() }),
  },
  'GET /sent/:to_id/:message_id': {
    summary: 'Delivery state (receipt) of a message I sent: accepted or delivered',
    tag: 'messages',
    json: SentReceiptSchema,
  },
  'GET /sent': {
    summary: 'The send I made with this Idempotency-Key (24 h): its result and receipt',
    tag: 'messages',
    query: SentQuery,
    json: SentByKeySchema,
  },
  'GET /friends': {
    summary: 'Accepted friends',
    tag: 'friends',
    json: Type.Object({ friends: Type.Array(FriendSchema) }),
  },
  'POST /block/:user_id': {
    summary: 'Block a friend (purges their messages from my inbox)',
    tag: 'friends',
    json: Type.Object({ user: UserRef, status: StringEnum(['blocked']) }),
  },
  'POST /unblock/:user_id': {
    summary: 'Unblock (the relationship is deleted)',
    tag: 'friends',
    json: Type.Object({ user: UserRef, status: StringEnum(['none']) }),
  },
  'POST /groups': {
    summary: 'Create a group (the caller owns it; initial members must be accepted friends)',
    tag: 'groups',
    body: { type: 'json', schema: CreateGroupBody },
    json: GroupReply,
  },
  'GET /groups': {
    summary: 'The groups I belong to',
    tag: 'groups',
    json: Type.Object({ groups: Type.Array(GroupSchema) }),
  },
  'GET /groups/:group_id': {
    summary: 'A group and its members (members only)',
    tag: 'groups',
    json: Type.Object({ group: GroupSchema, members: Type.Array(GroupMemberSchema) }),
  },
  'PATCH /groups/:group_id': {
    summary: 'Rename, re-describe or hand over a group (owner)',
    tag: 'groups',
    body: { type: 'json', schema: UpdateGroupBody },
    json: GroupReply,
  },
  'DELETE /groups/:group_id': {
    summary: 'Dissolve a group (owner); the other members get a notice',
    tag: 'groups',
    json: Ok,
  },
  'POST /groups/:group_id/members': {
    summary: "Add members (owner): the owner's accepted friends, all or nothing",
    tag: 'groups',
    body: { type: 'json', schema: AddMembersBody },
    json: Type.Object({ added: Type.Array(UserRef) }),
  },
  'DELETE /groups/:group_id/members/:user_id': {
    summary: 'Remove a member (owner), or myself (= leave)',
    tag: 'groups',
    json: Ok,
  },
  'POST /groups/:group_id/leave': { summary: 'Leave a group (not the owner)', tag: 'groups', json: Ok },
  'POST /groups/:group_id/send': {
    summary: 'Send to every other member (one stored copy each; @name or mention_ids mention)',
    tag: 'groups',
    body: { type: 'json', schema: GroupSendBody },
    json: GroupSendResultSchema,
  },
  'POST /groups/:group_id/send/file': {
    summary: 'Send a file to the group (multipart: content, file, mention_ids comma-separated)',
    tag: 'groups',
    body: { type: 'multipart', schema: GroupSendFileBody },
    json: GroupSendResultSchema,
  },
  'GET /files/:file_id': {
    summary: 'Download an attachment (sender or recipient; any member for a group attachment)',
    tag: 'messages',
    produces: { type: 'application/octet-stream' },
  },
  'PUT /homepage': {
    summary: 'Publish my homepage (raw HTML body or multipart file), ≤ 512 KB',
    tag: 'homepage',
    body: { type: 'html', schema: Type.String() },
    json: Type.Object({ url: Type.String() }),
  },
  'PUT /keys': {
    summary: 'Publish my signed end-to-end key bundle (docs/e2e.md)',
    tag: 'keys',
    body: { type: 'json', schema: PutKeysBody },
    json: Type.Object({
      keys: KeyBundleSchema,
      identity_changed: Type.Boolean({ description: 'this bundle replaced a different identity key' }),
    }),
  },
  'GET /keys/:user_id': {
    summary: "A user's published end-to-end key bundle (404 keys_not_found when none)",
    tag: 'keys',
    json: Type.Object({ keys: KeyBundleSchema }),
  },
  'GET /homepage/:user_id': {
    summary: 'A homepage, served in a sandbox',
    tag: 'homepage',
    produces: { type: 'text/html' },
  },
  'GET /stream': {
    summary: 'SSE stream: legacy, or resume with Last-Event-ID / since',
    tag: 'messages',
    query: StreamQuery,
    produces: { type: 'text/event-stream' },
  },
  'GET /admin/rate-limit': {
    summary: 'Rate limiter state',
    tag: 'admin',
    produces: { type: 'application/json' },
  },
  'POST /admin/rate-limit': {
    summary: 'Turn the rate limiter on or off (this instance)',
    tag: 'admin',
    body: { type: 'json', schema: RateLimitBody },
    produces: { type: 'application/json' },
  },
} as const satisfies Record<string, Endpoint>;

// ── Static types ──────────────────────────────────────────────────────────────────────────────────

export type UserJson = Static<typeof UserSchema>;
export type FriendJson = Static<typeof FriendSchema>;
export type AttachmentJson = Static<typeof AttachmentSchema>;
export type MessageJson = Static<typeof MessageSchema>;
export type GroupJson = Static<typeof GroupSchema>;
export type GroupMemberJson = Static<typeof GroupMemberSchema>;
export type SendResultJson = Static<typeof SendResultSchema>;
export type GroupSendResultJson = Static<typeof GroupSendResultSchema>;
export type ReceiptJson = Static<typeof ReceiptSchema>;
export type SentByKeyJson = Static<typeof SentByKeySchema>;
export type KeyBundleJson = Static<typeof KeyBundleSchema>;
