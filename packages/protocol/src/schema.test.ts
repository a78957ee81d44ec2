import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkJson } from './check.ts';
import { friendJson, groupJson, groupMemberJson, messageJson, userJson } from './json.ts';
import { MESSAGE_TYPES, USER_STATUSES, type MessageView } from './model.ts';
import { ProtocolParseError } from './parse.ts';
import {
  AttachmentSchema,
  ENDPOINTS,
  FriendSchema,
  GroupMemberSchema,
  GroupSchema,
  InboxPageSchema,
  MessageSchema,
  ReceiptSchema,
  UserSchema,
} from './schema.ts';

const T = Date.UTC(2026, 2, 9, 16, 30, 5);
const user = {
  id: 1,
  name: 'ann',
  description: null,
  status: 'open' as const,
  createdAt: T,
  lastSeenAt: null,
};

const arbMessage: fc.Arbitrary<MessageView> = fc.record({
  id: fc.nat(),
  type: fc.constantFrom(...MESSAGE_TYPES),
  createdAt: fc.integer({ min: 0, max: 4102444800000 }),
  fromId: fc.option(fc.nat()),
  from: fc.option(fc.record({ id: fc.nat(), name: fc.string(), description: fc.option(fc.string()) })),
  content: fc.string(),
  attachment: fc.option(
    fc.record({
      name: fc.string(),
      fileId: fc.option(fc.stringMatching(/^[0-9a-f]{1,32}$/), { nil: undefined }),
      size: fc.option(fc.nat(), { nil: undefined }),
      contentType: fc.option(fc.string(), { nil: undefined }),
      expiresAt: fc.option(fc.integer({ min: 0, max: 4102444800000 }), { nil: undefined }),
    }),
  ),
  group: fc.option(fc.record({ id: fc.nat(), name: fc.string() })),
  mentioned: fc.boolean(),
});

describe('the JSON renderers produce what the schemas describe', () => {
  it('messageJson() of any message is a valid Message', () => {
    fc.assert(
      fc.property(arbMessage, (m) => {
        expect(checkJson(MessageSchema, messageJson(m), 'message')).toEqual(messageJson(m));
      }),
    );
  });

  it('users, friends, groups and members', () => {
    for (const status of USER_STATUSES) {
      expect(() => checkJson(UserSchema, userJson({ ...user, status, lastSeenAt: T }), 'user')).not.toThrow();
    }
    expect(() => checkJson(FriendSchema, friendJson({ user, since: T }), 'friend')).not.toThrow();
    const group = {
      id: 3,
      name: 'g',
      description: 'd',
      ownerId: 1,
      ownerName: 'ann',
      memberCount: 2,
      createdAt: T,
      role: 'owner' as const,
    };
    expect(() => checkJson(GroupSchema, groupJson(group), 'group')).not.toThrow();
    const member = { id: 2, name: 'bob', description: null, role: 'member' as const, joinedAt: T };
    expect(() => checkJson(GroupMemberSchema, groupMemberJson(member), 'member')).not.toThrow();
  });
});

describe('checkJson', () => {
  const page = { total: 1, fetched: 1, remaining: 0, messages: [messageJson(arbSample())] };

  function arbSample(): MessageView {
    return fc.sample(arbMessage, { numRuns: 1, seed: 7 })[0]!;
  }

  it('names the request and the first wrong field', () => {
    const bad = { ...page, messages: [{ ...page.messages[0], id: '7' }] };
    expect(() => checkJson(InboxPageSchema, bad, 'GET /messages')).toThrow(ProtocolParseError);
    expect(() => checkJson(InboxPageSchema, bad, 'GET /messages')).toThrow(
      /^GET \/messages: \/messages\/0\/id: /,
    );
  });

  it('refuses a time that is not ISO-8601, and a missing field', () => {
    const u = userJson(user);
    expect(() => checkJson(UserSchema, { ...u, created_at: 'yesterday' }, 'u')).toThrow(/\/created_at/);
    const { name: _name, ...noName } = u;
    expect(() => checkJson(UserSchema, noName, 'u')).toThrow(/\/name/);
  });

  it('accepts extra fields, and messages of a relay without groups', () => {
    const { group: _g, mentioned: _m, ...old } = page.messages[0]!;
    expect(checkJson(InboxPageSchema, { ...page, messages: [{ ...old, later: 1 }] }, 'x').total).toBe(1);
  });
});

describe('ENDPOINTS', () => {
  it('keys every endpoint as METHOD /path with :params', () => {
    for (const key of Object.keys(ENDPOINTS))
      expect(key).toMatch(/^(GET|POST|PUT|PATCH|DELETE) \/[a-z_/:.-]*$/);
  });
});

describe('docs/protocol.md', () => {
  it('names every field of the JSON shapes it summarises', () => {
    const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## JSON shapes'), doc.indexOf('| Endpoint |'));
    const shapes = { UserJson: UserSchema, MessageJson: MessageSchema, GroupJson: GroupSchema };
    const more = { AttachmentJson: AttachmentSchema, FriendJson: FriendSchema, ReceiptJson: ReceiptSchema };
    for (const [name, schema] of Object.entries({ ...shapes, ...more })) {
      const start = section.indexOf(`${name} `);
      expect(start, name).toBeGreaterThanOrEqual(0);
      const next = section.slice(start + name.length).search(/\n[A-Z][A-Za-z]+Json\s+=/);
      const text = section.slice(start, next < 0 ? undefined : start + name.length + next);
      const own = name === 'FriendJson' ? ['friends_since'] : Object.keys(schema.properties);
      for (const field of own) expect(text, `${name}.${field}`).toMatch(new RegExp(`\\b${field}\\b`));
    }
  });
});
