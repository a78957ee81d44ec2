// The client's group calls (docs/groups-api.md) against the real relay over loopback: every endpoint, the
// typed refusals, group messages through the inbox (JSON and text) and streams, a group file, idempotent
// sends, and a relay without groups reported as `unsupported`.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClientError } from '../../../tests/helpers/client-error.ts';
import { startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import { ClientError, GROUP_ERROR_CODES, isGroupError, RelayClient, type StreamEvent } from './index.ts';

let relay: TestRelay;
let tmp: string;
let owner: RelayClient;
let bob: RelayClient;
let carol: RelayClient;
let dave: RelayClient;
const ids = { owner: 0, bob: 0, carol: 0, dave: 0 };

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 20 });
  tmp = await mkdtemp(join(tmpdir(), 'owc-client-groups-'));
  const anon = new RelayClient({ baseUrl: relay.url });
  const reg = async (name: string): Promise<[RelayClient, number]> => {
    const r = await anon.register({ name });
    return [new RelayClient({ baseUrl: relay.url, token: r.token }), r.user.id];
  };
  [owner, ids.owner] = await reg('g-owner');
  [bob, ids.bob] = await reg('g-bob');
  [carol, ids.carol] = await reg('g-carol');
  [dave, ids.dave] = await reg('g-dave');
  // bob and carol become the owner's friends; dave stays a stranger.
  for (const [c, id] of [
    [bob, ids.bob],
    [carol, ids.carol],
  ] as const) {
    await owner.send(id, 'hi');
    await c.send(ids.owner, 'hi back');
    await c.ack((await c.readInbox({ after: 0 })).messages.at(-1)!.id!);
  }
});
afterAll(async () => {
  await relay?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('groups', () => {
  let gid = 0;

  it('create, list, show', async () => {
    const g = await owner.createGroup({
      name: 'crew',
      description: 'the crew',
      memberIds: [ids.bob, ids.carol],
    });
    gid = g.id;
    expect(g).toEqual({
      id: gid,
      name: 'crew',
      description: 'the crew',
      ownerId: ids.owner,
      ownerName: 'g-owner',
      memberCount: 3,
      createdAt: expect.any(Number),
      role: 'owner',
    });
    expect((await bob.groups()).map((x) => [x.id, x.name, x.role, x.memberCount])).toEqual([
      [gid, 'crew', 'member', 3],
    ]);
    const detail = await carol.group(gid);
    expect(detail.group).toMatchObject({ id: gid, role: 'member' });
    expect(detail.members.map((m) => [m.id, m.name, m.role])).toEqual([
      [ids.owner, 'g-owner', 'owner'],
      [ids.bob, 'g-bob', 'member'],
      [ids.carol, 'g-carol', 'member'],
    ]);
    expect(detail.members[0]!.joinedAt).toEqual(expect.any(Number));
    // The added members were told.
    const notice = (await bob.readInbox({ after: 0 })).messages.at(-1)!;
    expect(notice).toMatchObject({
      type: 'system',
      content: `你已被 g-owner（ID:${ids.owner}）加入群组 crew（群ID:${gid}）`,
      group: null,
      mentioned: false,
    });
  });

  it('send with mentions: each copy says whether it mentions its reader (JSON, text, stream)', async () => {
    const stream = await carol.openStream({
      since: (await carol.readInbox({ after: 0 })).messages.at(-1)!.id!,
      format: 'json',
    });
    const sent = await owner.sendGroup(gid, 'hello @g-carol', {
      mentionIds: [ids.bob],
      idempotencyKey: 'g-1',
    });
    expect(sent).toMatchObject({
      message: '发送成功（群组 crew，送达 2 位成员）',
      groupId: gid,
      recipients: 2,
      replayed: false,
    });
    const replay = await owner.sendGroup(gid, 'hello @g-carol', {
      mentionIds: [ids.bob],
      idempotencyKey: 'g-1',
    });
    expect(replay).toMatchObject({ replayed: true, recipients: 2 });

    const atBob = (await bob.readInbox({ after: 0 })).messages.filter((m) => m.type === 'group');
    expect(atBob).toEqual([
      {
        id: expect.any(Number),
        type: 'group',
        createdAt: expect.any(Number),
        fromId: ids.owner,
        from: { id: ids.owner, name: 'g-owner', description: null },
        content: 'hello @g-carol',
        attachment: null,
        group: { id: gid, name: 'crew' },
        mentioned: true,
      },
    ]);
    // Carol is mentioned by name; her copy, read as text the way the reference client would, says so.
    const textCarol = new RelayClient({ baseUrl: relay.url, token: carol.token, mode: 'text' });
    const page = await textCarol.readInbox({ fromId: ids.owner });
    expect(page.messages.filter((m) => m.type === 'group')).toEqual([
      expect.objectContaining({
        group: { id: gid, name: 'crew' },
        mentioned: true,
        content: 'hello @g-carol',
      }),
    ]);
    let ev: StreamEvent | undefined;
    for await (const e of stream.events()) {
      if (e.type === 'message') {
        ev = e;
        break;
      }
    }
    stream.close();
    expect(ev).toMatchObject({
      type: 'message',
      message: { type: 'group', group: { id: gid }, mentioned: true },
    });

    // Bob answers without mentioning anyone: nobody's copy is mentioned.
    await bob.sendGroup(gid, 'ok');
    const atOwner = (await owner.readInbox({ after: 0 })).messages.filter((m) => m.type === 'group');
    expect(atOwner.map((m) => [m.content, m.mentioned, m.fromId])).toEqual([['ok', false, ids.bob]]);
  });

  it('a group file: stored once, every member downloads it', async () => {
    const src = join(tmp, 'plan.txt');
    await writeFile(src, 'the plan\n');
    const sent = await owner.sendGroupFile(gid, { path: src }, 'see plan', { mentionIds: [ids.carol] });
    expect(sent.recipients).toBe(2);
    for (const [who, mentioned] of [
      [bob, false],
      [carol, true],
    ] as const) {
      const m = (await who.readInbox({ after: 0 })).messages.at(-1)!;
      expect(m).toMatchObject({
        type: 'group',
        content: 'see plan',
        mentioned,
        attachment: { name: 'plan.txt' },
      });
      const dest = join(tmp, `plan-${String(mentioned)}`);
      await who.downloadFile(m.attachment!.fileId!, dest);
      expect(await readFile(dest, 'utf8')).toBe('the plan\n');
    }
  });

  it('members: add, remove, leave; settings: rename, describe, transfer; dissolve', async () => {
    await expectClientError(owner.addGroupMembers(gid, [ids.dave]), {
      kind: 'relay',
      code: 'not_friends_of_owner',
      status: 409,
    });
    await expectClientError(owner.addGroupMembers(gid, [ids.bob]), { code: 'already_member', status: 409 });
    await expectClientError(bob.addGroupMembers(gid, [ids.carol]), { code: 'not_group_owner', status: 403 });
    await expectClientError(dave.group(gid), { code: 'group_not_found', status: 404 });
    await expectClientError(owner.leaveGroup(gid), { code: 'owner_cannot_leave', status: 409 });
    await expectClientError(owner.removeGroupMember(gid, ids.dave), {
      code: 'not_group_member',
      status: 404,
    });
    await expectClientError(owner.createGroup({ name: 'a\nb' }), { code: 'invalid_group_name', status: 400 });

    await carol.leaveGroup(gid);
    expect(await carol.groups()).toEqual([]);
    expect(await owner.addGroupMembers(gid, [ids.carol])).toEqual([{ id: ids.carol, name: 'g-carol' }]);
    await owner.removeGroupMember(gid, ids.carol);
    expect((await carol.readInbox({ after: 0 })).messages.at(-1)!.content).toBe(
      `你已被移出群组 crew（群ID:${gid}）`,
    );

    expect(await owner.updateGroup(gid, { name: 'crew 2', description: 'renamed' })).toMatchObject({
      name: 'crew 2',
      description: 'renamed',
      memberCount: 2,
    });
    expect(await owner.updateGroup(gid, { description: null })).toMatchObject({ description: null });
    expect(await owner.updateGroup(gid, { ownerId: ids.bob })).toMatchObject({
      ownerId: ids.bob,
      role: 'member',
    });
    await expectClientError(owner.dissolveGroup(gid), { code: 'not_group_owner' });
    await bob.dissolveGroup(gid);
    expect((await owner.readInbox({ after: 0 })).messages.at(-1)!.content).toBe(
      `群组 crew 2（群ID:${gid}）已被群主解散`,
    );
    await expectClientError(bob.group(gid), { code: 'group_not_found' });
  });

  it('the group refusals are typed', async () => {
    const err = await expectClientError(dave.sendGroup(999_999, 'x'), { code: 'group_not_found' });
    expect(isGroupError(err)).toBe(true);
    expect(isGroupError(new ClientError('relay', 'user_not_found', 'x'))).toBe(false);
    expect(GROUP_ERROR_CODES).toContain('owner_cannot_leave');
    await expectClientError(owner.group(0), { kind: 'unsupported' });
  });
});

describe('a relay without groups', () => {
  it('is reported as unsupported (a 404 route, or a text answer)', async () => {
    const server = createServer((req, res) => {
      if (req.url === '/groups' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('暂无群组');
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"detail":"Not Found"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const c = new RelayClient({ baseUrl: url, token: 'x', mode: 'text' });
      await expectClientError(c.createGroup({ name: 'x' }), {
        kind: 'unsupported',
        code: 'unsupported',
        status: 404,
      });
      await expectClientError(c.groups(), { kind: 'unsupported', code: 'unsupported' });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
