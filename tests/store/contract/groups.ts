// Store contract, groups: creation, membership, updates, dissolution and group sends.
// Run against every backend by ../contract.ts; `h.store` is a new, empty store for each test.

import { randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  RelayError,
  formatGroupAddedNotice,
  formatGroupDissolvedNotice,
  formatGroupRemovedNotice,
  type UserStatus,
} from '@openwechat/protocol';
import type { GroupLimits } from '../../../packages/relay/src/domain/groups.ts';
import type {
  InboxMessage,
  NewFile,
  SendOptions,
  Store,
  UserRecord,
} from '../../../packages/relay/src/store/types.ts';
import { ids, piecesOf, sha256, T0, type Harness } from '../harness.ts';

export function groupsContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user, send, befriend } = h;

  describe('groups', () => {
    const LIMITS: GroupLimits = { maxMembers: 500, maxGroupsPerUser: 100 };
    const T1 = T0 + 10_000;

    /** An owner and `n` of its friends (inboxes emptied). */
    async function team(n: number, statuses: UserStatus[] = []) {
      const owner = await user('owner');
      const friends: UserRecord[] = [];
      for (let i = 0; i < n; i++) {
        const f = await user(`f${i}`);
        await befriend(owner, f);
        if (statuses[i]) await store.setStatus(f.id, statuses[i]!);
        friends.push((await store.getUser(f.id))!);
      }
      return { owner, friends };
    }

    function create(owner: UserRecord, members: readonly UserRecord[], o: Partial<GroupLimits> = {}) {
      return store.createGroup({
        ownerId: owner.id,
        name: '项目组',
        description: '周报',
        memberIds: members.map((m) => m.id),
        now: T1,
        limits: { ...LIMITS, ...o },
      });
    }

    function gsend(
      from: UserRecord,
      groupId: number,
      content: string,
      o: { mentionIds?: number[]; now?: number; opts?: SendOptions } = {},
    ) {
      return store.sendToGroup(
        {
          fromId: from.id,
          groupId,
          content,
          attachment: null,
          mentionIds: o.mentionIds ?? [],
          now: o.now ?? T1 + 1000,
        },
        o.opts,
      );
    }

    /** Everything in an inbox, without consuming it. */
    const inbox = async (u: UserRecord) => store.listInbox(u.id, 0, 1000);

    it('creates a group: the owner and the initial members, each told in a notice', async () => {
      const { owner, friends } = await team(2);
      const [a, b] = friends as [UserRecord, UserRecord];
      const r = await create(owner, [a, b, owner, a]);
      const g = r.group;
      expect(g).toEqual({
        id: g.id,
        name: '项目组',
        description: '周报',
        ownerId: owner.id,
        ownerName: 'owner',
        memberCount: 3,
        createdAt: T1,
        role: 'owner',
      });
      expect(r.added).toEqual([
        { id: a.id, name: 'f0' },
        { id: b.id, name: 'f1' },
      ]);
      const text = formatGroupAddedNotice(owner, { id: g.id, name: '项目组' });
      expect(r.delivered).toEqual([
        {
          toId: a.id,
          id: 3,
          type: 'system',
          createdAt: T1,
          fromId: null,
          from: null,
          content: text,
          attachment: null,
          group: null,
          mentioned: false,
        },
        expect.objectContaining({ toId: b.id, id: 3, content: text }),
      ]);
      expect(await inbox(a)).toEqual([r.delivered[0]]);
      expect(await store.listGroups(owner.id)).toEqual([g]);
      expect(await store.listGroups(a.id)).toEqual([{ ...g, role: 'member' }]);
      const detail = await store.getGroup(g.id, b.id);
      expect(detail).toEqual({
        group: { ...g, role: 'member' },
        members: [
          { id: owner.id, name: 'owner', description: 'I am owner', role: 'owner', joinedAt: T1 },
          { id: a.id, name: 'f0', description: 'I am f0', role: 'member', joinedAt: T1 },
          { id: b.id, name: 'f1', description: 'I am f1', role: 'member', joinedAt: T1 },
        ],
      });
      expect(await store.isGroupMember(g.id, b.id)).toBe(true);
      // A group of one is a group too.
      const solo = await create(owner, []);
      expect([solo.group.memberCount, solo.added, solo.delivered]).toEqual([1, [], []]);
      expect((await store.listGroups(owner.id)).map((x) => x.id)).toEqual([g.id, solo.group.id]);
      expect((await store.getStats()).messages).toBeGreaterThanOrEqual(2);
    });

    it('outsiders see nothing: getGroup is null and every change is group_not_found', async () => {
      const { owner, friends } = await team(1);
      const stranger = await user('stranger');
      const { group } = await create(owner, friends);
      expect(await store.getGroup(group.id, stranger.id)).toBeNull();
      expect(await store.getGroup(group.id + 1000, owner.id)).toBeNull();
      expect(await store.isGroupMember(group.id, stranger.id)).toBe(false);
      expect(await store.listGroups(stranger.id)).toEqual([]);
      const now = T1;
      for (const call of [
        () => gsend(stranger, group.id, 'x'),
        () => gsend(owner, group.id + 1000, 'x'),
        () =>
          store.addGroupMembers({
            groupId: group.id,
            actorId: stranger.id,
            userIds: [],
            now,
            limits: LIMITS,
          }),
        () => store.removeGroupMember({ groupId: group.id, actorId: stranger.id, userId: owner.id, now }),
        () => store.leaveGroup({ groupId: group.id, userId: stranger.id, now }),
        () => store.updateGroup({ groupId: group.id, actorId: stranger.id, name: 'x', now }),
        () => store.dissolveGroup({ groupId: group.id, actorId: stranger.id, now }),
      ]) {
        await expect(call()).rejects.toMatchObject({ code: 'group_not_found' });
      }
    });

    it('members must be accepted friends of the owner, reachable, and known; a refusal writes nothing', async () => {
      const { owner, friends } = await team(3, ['open', 'friends_only', 'do_not_disturb']);
      const [open, fo, dnd] = friends as [UserRecord, UserRecord, UserRecord];
      const stranger = await user('stranger');
      const pending = await user('pending');
      await send(owner, pending, 'hi?');
      const blocked = await user('blocked');
      await befriend(owner, blocked);
      await store.block(owner.id, blocked.id, T0 + 2000);
      const before = await store.getStats();
      for (const [who, code] of [
        [stranger.id, 'not_friends_of_owner'],
        [pending.id, 'not_friends_of_owner'],
        [blocked.id, 'not_friends_of_owner'],
        [dnd.id, 'recipient_dnd'],
        [stranger.id + pending.id + blocked.id + 1000, 'user_not_found'],
      ] as const) {
        await expect(
          store.createGroup({
            ownerId: owner.id,
            name: 'g',
            description: null,
            memberIds: [open.id, who],
            now: T1,
            limits: LIMITS,
          }),
        ).rejects.toMatchObject({ code });
      }
      expect(await store.listGroups(owner.id)).toEqual([]);
      expect(await store.listGroups(open.id)).toEqual([]);
      expect(await inbox(open)).toEqual([]);
      expect(await store.getStats()).toEqual(before);
      // friends_only accepts friends.
      const ok = await create(owner, [open, fo]);
      expect(ok.group.memberCount).toBe(3);
    });

    it('limits: members per group (owner included) and groups per user, with the configured numbers', async () => {
      const { owner, friends } = await team(3);
      const [a, b, c] = friends as [UserRecord, UserRecord, UserRecord];
      const full = await create(owner, [a, b, c], { maxMembers: 3 }).catch((e: unknown) => e);
      expect(full).toBeInstanceOf(RelayError);
      expect(full).toMatchObject({ code: 'group_full', detail: '群组成员已达上限（最多 3 人）' });
      const { group } = await create(owner, [a, b], { maxMembers: 3 });
      await expect(
        store.addGroupMembers({
          groupId: group.id,
          actorId: owner.id,
          userIds: [c.id],
          now: T1,
          limits: { ...LIMITS, maxMembers: 3 },
        }),
      ).rejects.toMatchObject({ code: 'group_full' });
      // a is in 1 group: with a limit of 1, a second group cannot take a, nor can the owner (in 1) create.
      await expect(create(owner, [c], { maxGroupsPerUser: 1 })).rejects.toMatchObject({
        code: 'too_many_groups',
        detail: '加入的群组数量已达上限（最多 1 个）',
      });
      const second = await create(owner, [a], { maxGroupsPerUser: 2 });
      expect(second.group.memberCount).toBe(2);
      // The owner is in 2 groups now, and so is a: a third group cannot take a.
      const third = await create(owner, [], { maxGroupsPerUser: 3 });
      await expect(
        store.addGroupMembers({
          groupId: third.group.id,
          actorId: owner.id,
          userIds: [a.id],
          now: T1,
          limits: { ...LIMITS, maxGroupsPerUser: 2 },
        }),
      ).rejects.toMatchObject({ code: 'too_many_groups', detail: '加入的群组数量已达上限（最多 2 个）' });
      expect((await store.listGroups(a.id)).length).toBe(2);
    });

    it('the owner adds members (all or nothing); members and outsiders cannot', async () => {
      const { owner, friends } = await team(4);
      const [a, b, c, d] = friends as [UserRecord, UserRecord, UserRecord, UserRecord];
      const stranger = await user('stranger');
      const { group } = await create(owner, [a]);
      const add = (actor: UserRecord, ids: number[]) =>
        store.addGroupMembers({
          groupId: group.id,
          actorId: actor.id,
          userIds: ids,
          now: T1 + 5,
          limits: LIMITS,
        });
      await expect(add(a, [b.id])).rejects.toMatchObject({ code: 'not_group_owner' });
      await expect(add(owner, [b.id, a.id])).rejects.toMatchObject({ code: 'already_member' });
      await expect(add(owner, [owner.id])).rejects.toMatchObject({ code: 'already_member' });
      await expect(add(owner, [b.id, stranger.id])).rejects.toMatchObject({ code: 'not_friends_of_owner' });
      expect((await store.getGroup(group.id, owner.id))!.group.memberCount).toBe(2);
      expect(await inbox(b)).toEqual([]);
      const r = await add(owner, [c.id, b.id, c.id]);
      expect(r.added).toEqual([
        { id: c.id, name: 'f2' },
        { id: b.id, name: 'f1' },
      ]);
      expect(r.group.memberCount).toBe(4);
      expect(r.delivered.map((m) => [m.toId, m.content])).toEqual([
        [c.id, formatGroupAddedNotice(owner, group)],
        [b.id, formatGroupAddedNotice(owner, group)],
      ]);
      expect(await store.getGroup(group.id, d.id)).toBeNull();
      expect((await store.getGroup(group.id, c.id))!.members.map((m) => [m.id, m.joinedAt])).toEqual([
        [owner.id, T1],
        [a.id, T1],
        [b.id, T1 + 5],
        [c.id, T1 + 5],
      ]);
    });

    it('remove and leave: the owner removes (the member is told), a member leaves, the owner cannot', async () => {
      const { owner, friends } = await team(3);
      const [a, b, c] = friends as [UserRecord, UserRecord, UserRecord];
      const { group } = await create(owner, [a, b, c]);
      for (const u of [a, b, c]) await store.takeInbox(u.id, { limit: 10, fromId: null });
      const now = T1 + 7;
      await expect(
        store.removeGroupMember({ groupId: group.id, actorId: a.id, userId: b.id, now }),
      ).rejects.toMatchObject({ code: 'not_group_owner' });
      const stranger = await user('stranger');
      await expect(
        store.removeGroupMember({ groupId: group.id, actorId: owner.id, userId: stranger.id, now }),
      ).rejects.toMatchObject({ code: 'not_group_member' });
      await expect(store.leaveGroup({ groupId: group.id, userId: owner.id, now })).rejects.toMatchObject({
        code: 'owner_cannot_leave',
      });
      await expect(
        store.removeGroupMember({ groupId: group.id, actorId: owner.id, userId: owner.id, now }),
      ).rejects.toMatchObject({ code: 'owner_cannot_leave' });

      const removed = await store.removeGroupMember({
        groupId: group.id,
        actorId: owner.id,
        userId: b.id,
        now,
      });
      expect(removed).toEqual({
        group: { id: group.id, name: '项目组' },
        removed: { id: b.id, name: 'f1' },
        left: false,
        delivered: [
          expect.objectContaining({ toId: b.id, type: 'system', content: formatGroupRemovedNotice(group) }),
        ],
      });
      const left = await store.leaveGroup({ groupId: group.id, userId: a.id, now });
      expect([left.left, left.removed, left.delivered]).toEqual([true, { id: a.id, name: 'f0' }, []]);
      // A member removing itself is leaving.
      const self = await store.removeGroupMember({ groupId: group.id, actorId: c.id, userId: c.id, now });
      expect([self.left, self.delivered]).toEqual([true, []]);
      expect(await store.getGroup(group.id, a.id)).toBeNull();
      expect(await store.listGroups(b.id)).toEqual([]);
      expect((await store.getGroup(group.id, owner.id))!.group.memberCount).toBe(1);
      const r = await gsend(owner, group.id, 'anyone?');
      expect([r.recipients, r.delivered]).toEqual([0, []]);
      await expect(gsend(a, group.id, 'me?')).rejects.toMatchObject({ code: 'group_not_found' });
    });

    it('the owner renames, re-describes and hands the group over', async () => {
      const { owner, friends } = await team(2);
      const [a, b] = friends as [UserRecord, UserRecord];
      const { group } = await create(owner, [a]);
      await expect(
        store.updateGroup({ groupId: group.id, actorId: a.id, name: 'mine', now: T1 }),
      ).rejects.toMatchObject({ code: 'not_group_owner' });
      await expect(
        store.updateGroup({ groupId: group.id, actorId: owner.id, ownerId: b.id, now: T1 }),
      ).rejects.toMatchObject({ code: 'not_group_member' });
      const renamed = await store.updateGroup({
        groupId: group.id,
        actorId: owner.id,
        name: '新名字',
        now: T1,
      });
      expect([renamed.name, renamed.description]).toEqual(['新名字', '周报']);
      const cleared = await store.updateGroup({
        groupId: group.id,
        actorId: owner.id,
        description: null,
        now: T1,
      });
      expect([cleared.name, cleared.description]).toEqual(['新名字', null]);
      const handed = await store.updateGroup({
        groupId: group.id,
        actorId: owner.id,
        ownerId: a.id,
        now: T1,
      });
      expect([handed.ownerId, handed.ownerName, handed.role]).toEqual([a.id, 'f0', 'member']);
      expect((await store.getGroup(group.id, a.id))!.members.map((m) => [m.id, m.role])).toEqual([
        [a.id, 'owner'],
        [owner.id, 'member'],
      ]);
      // The old owner may leave now; the new one may not.
      await expect(store.leaveGroup({ groupId: group.id, userId: a.id, now: T1 })).rejects.toMatchObject({
        code: 'owner_cannot_leave',
      });
      await store.leaveGroup({ groupId: group.id, userId: owner.id, now: T1 });
      expect((await store.getGroup(group.id, a.id))!.group.memberCount).toBe(1);
    });

    it('dissolve: owner only; every other member is told; the group is gone, its messages stay readable', async () => {
      const { owner, friends } = await team(2);
      const [a, b] = friends as [UserRecord, UserRecord];
      const { group } = await create(owner, [a, b]);
      await gsend(a, group.id, 'before');
      await expect(store.dissolveGroup({ groupId: group.id, actorId: a.id, now: T1 })).rejects.toMatchObject({
        code: 'not_group_owner',
      });
      const r = await store.dissolveGroup({ groupId: group.id, actorId: owner.id, now: T1 + 50 });
      const text = formatGroupDissolvedNotice(group);
      expect(r.group).toEqual({ id: group.id, name: '项目组' });
      expect(r.delivered.map((m) => [m.toId, m.type, m.content, m.createdAt])).toEqual([
        [a.id, 'system', text, T1 + 50],
        [b.id, 'system', text, T1 + 50],
      ]);
      for (const u of [owner, a, b]) {
        expect(await store.listGroups(u.id)).toEqual([]);
        expect(await store.getGroup(group.id, u.id)).toBeNull();
      }
      await expect(gsend(owner, group.id, 'x')).rejects.toMatchObject({ code: 'group_not_found' });
      await expect(
        store.dissolveGroup({ groupId: group.id, actorId: owner.id, now: T1 }),
      ).rejects.toMatchObject({
        code: 'group_not_found',
      });
      // b still has the message sent before, naming the group.
      expect((await inbox(b)).find((m) => m.type === 'group')?.group).toEqual({
        id: group.id,
        name: '项目组',
      });
    });

    it('a group send stores one copy per other member, each with its own id and mention flag', async () => {
      const { owner, friends } = await team(3);
      const [a, b, c] = friends as [UserRecord, UserRecord, UserRecord];
      await send(owner, b, 'extra'); // b's ids are one ahead
      const { group } = await create(owner, [a, b, c]);
      const stats = await store.getStats();
      const r = await gsend(a, group.id, '@f1 和 @owner，看一下', { mentionIds: [c.id, a.id, 999_999] });
      const copy = (to: UserRecord, id: number, mentioned: boolean): InboxMessage => ({
        toId: to.id,
        id,
        type: 'group',
        createdAt: T1 + 1000,
        fromId: a.id,
        from: { id: a.id, name: 'f0', description: 'I am f0' },
        content: '@f1 和 @owner，看一下',
        attachment: null,
        group: { id: group.id, name: '项目组' },
        mentioned,
      });
      // The owner's inbox held the befriend chats and notices (emptied), so its next id is 7.
      const ownerNext = (await store.lastMessageId(owner.id)) as number;
      expect(r).toEqual({
        group: { id: group.id, name: '项目组' },
        recipients: 3,
        delivered: [copy(owner, ownerNext, true), copy(b, 5, true), copy(c, 4, true)].sort(
          (x, y) => x.toId - y.toId,
        ),
        // Each copy's member and id, for receipts (in the order of `delivered`).
        copies: [
          [owner.id, ownerNext],
          [b.id, 5],
          [c.id, 4],
        ].sort((x, y) => x[0]! - y[0]!),
        preview: null,
        replayed: false,
      });
      expect(await store.getStats()).toEqual({ ...stats, messages: stats.messages + 3 });
      expect((await inbox(a)).filter((m) => m.type === 'group')).toEqual([]);
      expect((await inbox(b)).at(-1)).toEqual(copy(b, 5, true));
      // Without a mention nobody is flagged; `@f1x` is not `@f1`.
      const plain = await gsend(b, group.id, 'mail me@f1x or @f0x');
      expect(plain.delivered.map((m) => m.mentioned)).toEqual([false, false, false]);
      // The current group name is shown on stored copies.
      await store.updateGroup({ groupId: group.id, actorId: owner.id, name: '改名', now: T1 });
      expect((await inbox(c)).filter((m) => m.type === 'group').map((m) => m.group!.name)).toEqual([
        '改名',
        '改名',
      ]);
    });

    it('group sends are idempotent per sender and key, and carry the sender’s preview', async () => {
      const { owner, friends } = await team(2);
      const [a, b] = friends as [UserRecord, UserRecord];
      const { group } = await create(owner, [a, b]);
      const opts: SendOptions = {
        idempotency: { key: 'g-1', fingerprint: 'fp', windowMs: 60_000 },
        previewLimit: 5,
      };
      const first = await gsend(a, group.id, 'once', { opts });
      expect(first.preview).toEqual(await store.peekInbox(a.id, 5));
      const again = await gsend(a, group.id, 'once', { opts, now: T1 + 2000 });
      expect(again).toEqual({ ...first, delivered: [], replayed: true });
      expect((await inbox(b)).filter((m) => m.type === 'group')).toHaveLength(1);
      await expect(
        gsend(a, group.id, 'other', {
          opts: { idempotency: { key: 'g-1', fingerprint: 'fp2', windowMs: 60_000 } },
        }),
      ).rejects.toMatchObject({ code: 'idempotency_conflict' });
      // A replay does not consult membership: it answers what was answered.
      await store.leaveGroup({ groupId: group.id, userId: a.id, now: T1 });
      expect((await gsend(a, group.id, 'once', { opts, now: T1 + 3000 })).replayed).toBe(true);
    });

    it('a refused group send (custom decision) writes nothing', async () => {
      const { owner, friends } = await team(1);
      const { group } = await create(owner, friends);
      const before = await store.lastMessageId(friends[0]!.id);
      await expect(
        store.sendToGroup(
          { fromId: owner.id, groupId: group.id, content: 'x', attachment: null, mentionIds: [], now: T1 },
          { idempotency: { key: 'q', fingerprint: 'f', windowMs: 60_000 } },
          () => {
            throw new RelayError('upload_quota_exceeded');
          },
        ),
      ).rejects.toMatchObject({ code: 'upload_quota_exceeded' });
      expect(await store.lastMessageId(friends[0]!.id)).toBe(before);
      // The key was not recorded: the same key now delivers.
      const ok = await gsend(owner, group.id, 'x', {
        opts: { idempotency: { key: 'q', fingerprint: 'f', windowMs: 60_000 } },
      });
      expect([ok.replayed, ok.recipients]).toEqual([false, 1]);
    });

    it('concurrent group and private sends keep every inbox gapless, each message once', async () => {
      const { owner, friends } = await team(4);
      const { group } = await create(owner, friends);
      const [a, b] = friends as [UserRecord, UserRecord];
      const starts = new Map<number, number>();
      for (const u of [owner, ...friends]) starts.set(u.id, await store.lastMessageId(u.id));
      const jobs: Array<Promise<unknown>> = [];
      for (let i = 0; i < 6; i++) {
        jobs.push(gsend(friends[i % 4]!, group.id, `g${i}`, { now: T1 + i }));
        jobs.push(send(a, owner, `p${i}`, { now: T1 + i }));
        jobs.push(send(owner, b, `q${i}`, { now: T1 + i }));
      }
      await Promise.all(jobs);
      for (const u of [owner, ...friends]) {
        const got = await store.listInbox(u.id, starts.get(u.id)!, 1000);
        const first = starts.get(u.id)! + 1;
        expect(ids(got)).toEqual(got.map((_, k) => first + k));
        const groupContents = got.filter((m) => m.type === 'group').map((m) => m.content);
        expect(new Set(groupContents).size).toBe(groupContents.length);
      }
      // Each member gets the sends of the other three: 6 sends, 2 of them its own (4 members).
      expect((await inbox(owner)).filter((m) => m.type === 'group')).toHaveLength(6);
      expect((await inbox(a)).filter((m) => m.type === 'group')).toHaveLength(6 - 2);
    });

    it('a group attachment records its group', async () => {
      const { owner, friends } = await team(1);
      const { group } = await create(owner, friends);
      const bytes = Buffer.from('group file');
      const f: NewFile = {
        id: randomBytes(16).toString('hex'),
        senderId: owner.id,
        recipientId: owner.id,
        groupId: group.id,
        name: 'g.txt',
        contentType: 'text/plain',
        size: bytes.length,
        sha256: sha256(bytes),
        createdAt: T0,
        expiresAt: T0 + 86_400_000,
      };
      await store.putFile(f, piecesOf(bytes, [3]));
      expect(await store.getFile(f.id)).toEqual({ ...f, downloadedAt: null });
    });
  });
}
