// The OpenAPI 3.1 document, built from the route table: every route gets its path, method, guards and
// both renderings (text and JSON mode). DOCS below adds what the table cannot know (summaries, bodies,
// JSON shapes); buildOpenApi() refuses to build if a route has no entry, so the document cannot drift.

import { ERRORS } from '@openwechat/protocol';
import type { RouteSpec } from './route.ts';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
const nullable = (s: Schema): Schema => ({ anyOf: [s, { type: 'null' }] });
const obj = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({
  type: 'object',
  properties,
  required,
});

const SCHEMAS: Record<string, Schema> = {
  User: obj({
    id: int(),
    name: str(),
    description: nullable(str()),
    status: str({ enum: ['open', 'friends_only', 'do_not_disturb'] }),
    created_at: str({ format: 'date-time' }),
    last_seen_at: nullable(str({ format: 'date-time' })),
  }),
  Friend: { allOf: [ref('User'), obj({ friends_since: str({ format: 'date-time' }) })] },
  Attachment: obj({
    name: str({ description: 'sanitised display name' }),
    original_name: str(),
    file_id: nullable(str()),
    url: nullable(str({ description: '/files/<file_id>' })),
    size: nullable(int()),
    content_type: nullable(str()),
    expires_at: nullable(str({ format: 'date-time' })),
  }),
  Message: obj({
    id: int({ description: 'per recipient, increasing in commit order' }),
    type: str({ enum: ['chat', 'friend_request', 'system', 'group'] }),
    created_at: str({ format: 'date-time' }),
    from_id: nullable(int()),
    from: nullable(obj({ id: int(), name: str(), description: nullable(str()) })),
    content: str(),
    attachment: nullable(ref('Attachment')),
    group: nullable(obj({ id: int(), name: str({ description: 'the current name' }) })),
    mentioned: { type: 'boolean', description: 'this copy of a group message mentions its recipient' },
  }),
  Group: obj({
    id: int(),
    name: str(),
    description: nullable(str()),
    owner_id: int(),
    owner_name: str(),
    member_count: int({ description: 'the owner included' }),
    created_at: str({ format: 'date-time' }),
    role: str({ enum: ['owner', 'member'], description: "the caller's role" }),
  }),
  GroupMember: obj({
    id: int(),
    name: str(),
    description: nullable(str()),
    role: str({ enum: ['owner', 'member'] }),
    joined_at: str({ format: 'date-time' }),
  }),
  GroupSendResult: obj({
    result: str({ enum: ['group'] }),
    message: str(),
    group_id: int(),
    recipients: int({ description: 'members the message was stored for (everyone but the sender)' }),
    inbox: obj({ total: int(), preview: { type: 'array', items: ref('Message') } }),
  }),
  InboxPage: obj({
    total: int(),
    fetched: int(),
    remaining: int(),
    messages: { type: 'array', items: ref('Message') },
  }),
  SendResult: obj({
    result: str({ enum: ['request', 'accepted', 'chat'] }),
    message: str(),
    message_id: int(),
    inbox: obj({ total: int(), preview: { type: 'array', items: ref('Message') } }),
  }),
  Error: obj({
    error: obj({ code: str({ enum: Object.keys(ERRORS) }), message: str() }),
  }),
};

interface Doc {
  summary: string;
  tag: string;
  query?: Record<string, Schema>;
  body?: { type: 'json' | 'multipart' | 'html'; schema: Schema };
  /** JSON-mode success schema; omitted: same body in both modes (JSON) or not JSON at all. */
  json?: Schema;
  /** The answer is not text/JSON (SSE, HTML, a file). */
  produces?: string;
}

export const DOCS: Record<string, Doc> = {
  'GET /': { summary: 'What this server is; points to /docs and /health', tag: 'ops' },
  'GET /health': {
    summary: 'Liveness and capabilities (version, features)',
    tag: 'ops',
    produces: 'application/json',
  },
  'GET /metrics': { summary: 'Prometheus metrics', tag: 'ops', produces: 'text/plain' },
  'GET /livez': { summary: 'Liveness probe', tag: 'ops', produces: 'application/json' },
  'GET /readyz': {
    summary: 'Readiness probe (503 while shutting down)',
    tag: 'ops',
    produces: 'application/json',
  },
  'GET /openapi.json': {
    summary: 'This document (rendered at /docs)',
    tag: 'ops',
    produces: 'application/json',
  },
  'GET /stats': {
    summary: 'Counts of users, friendships and messages',
    tag: 'ops',
    produces: 'application/json',
  },
  'POST /register': {
    summary: 'Register; the token is shown once',
    tag: 'accounts',
    body: {
      type: 'json',
      schema: obj(
        {
          name: str({ minLength: 1, maxLength: 100 }),
          description: nullable(str({ maxLength: 200 })),
          status: str({ enum: ['open', 'friends_only', 'do_not_disturb'] }),
        },
        ['name'],
      ),
    },
    json: obj({ user: ref('User'), token: str(), top_users: { type: 'array', items: ref('User') } }),
  },
  'GET /users': {
    summary: 'Discover up to 10 random open users',
    tag: 'accounts',
    query: { keyword: str() },
    json: obj({ total: int(), users: { type: 'array', items: ref('User') } }),
  },
  'GET /users/:user_id': { summary: 'One user', tag: 'accounts', json: obj({ user: ref('User') }) },
  'PATCH /me': {
    summary: 'Set my status',
    tag: 'accounts',
    body: {
      type: 'json',
      schema: obj({ status: str({ enum: ['open', 'friends_only', 'do_not_disturb'] }) }),
    },
    json: obj({ user: ref('User') }),
  },
  'POST /send': {
    summary: 'Send a message (a first message is a friend request; a reply accepts it)',
    tag: 'messages',
    body: { type: 'json', schema: obj({ to_id: int(), content: str({ minLength: 1, maxLength: 1000 }) }) },
    json: ref('SendResult'),
  },
  'POST /send/file': {
    summary: 'Send a file (multipart: to_id, content, file)',
    tag: 'messages',
    body: {
      type: 'multipart',
      schema: obj({ to_id: int(), content: str({ maxLength: 1000 }), file: str({ format: 'binary' }) }, [
        'to_id',
      ]),
    },
    json: ref('SendResult'),
  },
  'GET /messages': {
    summary: 'Read the inbox: read-and-clear, or with after=n non-destructive (acks ≤ n)',
    tag: 'messages',
    query: {
      limit: int({ minimum: 1, maximum: 500, default: 100 }),
      from_id: int(),
      after: int({ minimum: 0 }),
    },
    json: ref('InboxPage'),
  },
  'POST /messages/ack': {
    summary: 'Acknowledge (delete) every message with id ≤ up_to',
    tag: 'messages',
    body: { type: 'json', schema: obj({ up_to: int({ minimum: 0 }) }) },
    json: obj({ acked: int(), up_to: int() }),
  },
  'GET /friends': {
    summary: 'Accepted friends',
    tag: 'friends',
    json: obj({ friends: { type: 'array', items: ref('Friend') } }),
  },
  'POST /block/:user_id': {
    summary: 'Block a friend (purges their messages from my inbox)',
    tag: 'friends',
    json: obj({ user: obj({ id: int(), name: str() }), status: str({ enum: ['blocked'] }) }),
  },
  'POST /unblock/:user_id': {
    summary: 'Unblock (the relationship is deleted)',
    tag: 'friends',
    json: obj({ user: obj({ id: int(), name: str() }), status: str({ enum: ['none'] }) }),
  },
  'POST /groups': {
    summary: 'Create a group (the caller owns it; initial members must be accepted friends)',
    tag: 'groups',
    body: {
      type: 'json',
      schema: obj(
        {
          name: str({ minLength: 1, maxLength: 50 }),
          description: nullable(str({ maxLength: 200 })),
          member_ids: { type: 'array', items: int() },
        },
        ['name'],
      ),
    },
    json: obj({ group: ref('Group') }),
  },
  'GET /groups': {
    summary: 'The groups I belong to',
    tag: 'groups',
    json: obj({ groups: { type: 'array', items: ref('Group') } }),
  },
  'GET /groups/:group_id': {
    summary: 'A group and its members (members only)',
    tag: 'groups',
    json: obj({ group: ref('Group'), members: { type: 'array', items: ref('GroupMember') } }),
  },
  'PATCH /groups/:group_id': {
    summary: 'Rename, re-describe or hand over a group (owner)',
    tag: 'groups',
    body: {
      type: 'json',
      schema: obj(
        {
          name: str({ minLength: 1, maxLength: 50 }),
          description: nullable(str({ maxLength: 200 })),
          owner_id: int({ description: 'a current member' }),
        },
        [],
      ),
    },
    json: obj({ group: ref('Group') }),
  },
  'DELETE /groups/:group_id': {
    summary: 'Dissolve a group (owner); the other members get a notice',
    tag: 'groups',
    json: obj({ ok: { type: 'boolean' } }),
  },
  'POST /groups/:group_id/members': {
    summary: "Add members (owner): the owner's accepted friends, all or nothing",
    tag: 'groups',
    body: { type: 'json', schema: obj({ user_ids: { type: 'array', items: int(), minItems: 1 } }) },
    json: obj({ added: { type: 'array', items: obj({ id: int(), name: str() }) } }),
  },
  'DELETE /groups/:group_id/members/:user_id': {
    summary: 'Remove a member (owner), or myself (= leave)',
    tag: 'groups',
    json: obj({ ok: { type: 'boolean' } }),
  },
  'POST /groups/:group_id/leave': {
    summary: 'Leave a group (not the owner)',
    tag: 'groups',
    json: obj({ ok: { type: 'boolean' } }),
  },
  'POST /groups/:group_id/send': {
    summary: 'Send to every other member (one stored copy each; @name or mention_ids mention)',
    tag: 'groups',
    body: {
      type: 'json',
      schema: obj(
        { content: str({ minLength: 1, maxLength: 1000 }), mention_ids: { type: 'array', items: int() } },
        ['content'],
      ),
    },
    json: ref('GroupSendResult'),
  },
  'POST /groups/:group_id/send/file': {
    summary: 'Send a file to the group (multipart: content, file, mention_ids comma-separated)',
    tag: 'groups',
    body: {
      type: 'multipart',
      schema: obj(
        {
          content: str({ maxLength: 1000 }),
          file: str({ format: 'binary' }),
          mention_ids: str({ description: 'comma-separated user ids' }),
        },
        [],
      ),
    },
    json: ref('GroupSendResult'),
  },
  'GET /files/:file_id': {
    summary: 'Download an attachment (sender or recipient; any member for a group attachment)',
    tag: 'messages',
    produces: 'application/octet-stream',
  },
  'PUT /homepage': {
    summary: 'Publish my homepage (raw HTML body or multipart file), ≤ 512 KB',
    tag: 'homepage',
    body: { type: 'html', schema: str() },
    json: obj({ url: str() }),
  },
  'GET /homepage/:user_id': {
    summary: 'A homepage, served in a sandbox',
    tag: 'homepage',
    produces: 'text/html',
  },
  'GET /stream': {
    summary: 'SSE stream: legacy, or resume with Last-Event-ID / since',
    tag: 'messages',
    query: { since: int({ minimum: 0 }), format: str({ enum: ['text', 'json'] }) },
    produces: 'text/event-stream',
  },
  'GET /admin/rate-limit': { summary: 'Rate limiter state', tag: 'admin', produces: 'application/json' },
  'POST /admin/rate-limit': {
    summary: 'Turn the rate limiter on or off (this instance)',
    tag: 'admin',
    body: { type: 'json', schema: obj({ enabled: { type: 'boolean' } }) },
    produces: 'application/json',
  },
};

const TEXT = { 'text/plain': { schema: str() } };

function operation(route: RouteSpec, doc: Doc): Schema {
  const parameters: Schema[] = [];
  for (const m of route.url.matchAll(/:([a-z_]+)/g)) {
    parameters.push({ name: m[1], in: 'path', required: true, schema: m[1] === 'file_id' ? str() : int() });
  }
  for (const [name, schema] of Object.entries(doc.query ?? {}))
    parameters.push({ name, in: 'query', schema });
  if (route.auth === 'token')
    parameters.push({ name: 'X-Token', in: 'header', required: true, schema: str() });
  if (route.auth === 'admin')
    parameters.push({ name: 'X-Admin-Key', in: 'header', required: true, schema: str() });
  if (['/send', '/send/file', '/groups/:group_id/send', '/groups/:group_id/send/file'].includes(route.url)) {
    parameters.push({ name: 'Idempotency-Key', in: 'header', schema: str({ maxLength: 255 }) });
  }
  if (route.url === '/stream') parameters.push({ name: 'Last-Event-ID', in: 'header', schema: str() });

  const ok: Schema = doc.produces
    ? { description: 'OK', content: { [doc.produces]: { schema: str() } } }
    : {
        description: 'OK (text layout by default; JSON with Accept: application/json)',
        content: { ...TEXT, 'application/json': { schema: doc.json ?? {} } },
      };
  const errorContent = { ...TEXT, 'application/json': { schema: ref('Error') } };
  const responses: Record<string, Schema> = { 200: ok };
  if (route.convention === 'soft') {
    responses[200] = {
      ...ok,
      description: `${ok.description as string}. In text mode refusals also answer 200: 错误：… / 请求格式错误：…`,
    };
  }
  responses['4XX'] = {
    description: 'Refused (real status on hard paths and in JSON mode)',
    content: errorContent,
  };
  responses['5XX'] = { description: 'Server error', content: errorContent };

  const op: Schema = {
    summary: doc.summary,
    tags: [doc.tag],
    operationId: `${route.method.toLowerCase()}${route.url.replace(/[/:](\w)/g, (_, c: string) => c.toUpperCase())}`,
    parameters,
    responses,
  };
  if (doc.body) {
    const type =
      doc.body.type === 'json'
        ? 'application/json'
        : doc.body.type === 'multipart'
          ? 'multipart/form-data'
          : 'text/html';
    op.requestBody = { required: true, content: { [type]: { schema: doc.body.schema } } };
  }
  return op;
}

export function buildOpenApi(routes: readonly RouteSpec[], version: string): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of routes) {
    const doc = DOCS[`${route.method} ${route.url}`];
    if (!doc) throw new Error(`openapi: no documentation for ${route.method} ${route.url}`);
    const path = route.url.replace(/:([a-z_]+)/g, '{$1}');
    (paths[path] ??= {})[route.method.toLowerCase()] = operation(route, doc);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'openwechat relay',
      version,
      description:
        'Wire-compatible with the openwechat-claw relay (plain-text API, SSE), plus JSON mode, message ids, resumable streams, idempotent sends and stored files. See docs/protocol.md.',
    },
    paths,
    components: { schemas: SCHEMAS },
  };
}
