// Store contract, users: accounts, operator tools, discovery.
// Run against every backend by ../contract.ts; `h.store` is a new, empty store for each test.

import { beforeEach, describe, expect, it } from 'vitest';
import type { Store, UserRecord } from '../../../packages/relay/src/store/types.ts';
import { T0, type Harness } from '../harness.ts';

export function usersContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user } = h;

  describe('operator tools', () => {
    const mk = (name: string, hash = name) =>
      store.createUser({
        name,
        nameKey: name.toLowerCase(),
        description: null,
        status: 'open',
        tokenHash: hash,
        createdAt: T0,
      });

    it('lists users by id with a literal, case-insensitive name filter and paging', async () => {
      const [a, b, c] = [await mk('Ann_1'), await mk('bob'), await mk('ANNIE')];
      const all = await store.listUsers({ query: null, limit: 10, offset: 0 });
      expect(all.total).toBe(3);
      expect(all.users.map((u) => u.id)).toEqual([a.id, b.id, c.id]);
      expect(
        (await store.listUsers({ query: 'ann', limit: 10, offset: 0 })).users.map((u) => u.name),
      ).toEqual(['Ann_1', 'ANNIE']);
      // `_` is literal, not a wildcard.
      expect((await store.listUsers({ query: 'n_', limit: 10, offset: 0 })).users.map((u) => u.name)).toEqual(
        ['Ann_1'],
      );
      const page2 = await store.listUsers({ query: null, limit: 2, offset: 2 });
      expect({ total: page2.total, ids: page2.users.map((u) => u.id) }).toEqual({ total: 3, ids: [c.id] });
      expect(await store.listUsers({ query: 'zzz', limit: 10, offset: 0 })).toEqual({
        total: 0,
        users: [],
      });
    });

    it('a disabled user keeps their token but is hidden from discovery and the top list', async () => {
      const a = await mk('a1');
      const b = await mk('b1');
      const off = await store.setUserDisabled(b.id, T0 + 5);
      expect(off?.disabledAt).toBe(T0 + 5);
      expect((await store.findUserByTokenHash('b1'))?.disabledAt).toBe(T0 + 5);
      expect((await store.discoverUsers({ excludeId: a.id, keyword: null, limit: 10 })).total).toBe(0);
      expect((await store.topActiveUsers(10)).map((u) => u.id)).toEqual([a.id]);
      expect((await store.setUserDisabled(b.id, null))?.disabledAt).toBeNull();
      expect((await store.discoverUsers({ excludeId: a.id, keyword: null, limit: 10 })).total).toBe(1);
      expect(await store.setUserDisabled(999_999, T0)).toBeNull();
    });

    it('a token reset replaces the hash: the old one finds nobody', async () => {
      const a = await mk('t1', 'old-hash');
      expect(await store.setTokenHash(a.id, 'new-hash')).toBe(true);
      expect(await store.findUserByTokenHash('old-hash')).toBeNull();
      expect((await store.findUserByTokenHash('new-hash'))?.id).toBe(a.id);
      expect(await store.setTokenHash(999_999, 'x')).toBe(false);
    });

    it('ping answers', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });

  describe('users', () => {
    it('creates a user and reads it back by id and token hash', async () => {
      const alice = await store.createUser({
        name: 'Alice',
        nameKey: 'alice',
        description: 'likes tea',
        status: 'friends_only',
        tokenHash: 'aa11',
        createdAt: T0,
      });
      const expected: UserRecord = {
        id: alice.id,
        name: 'Alice',
        nameKey: 'alice',
        description: 'likes tea',
        status: 'friends_only',
        createdAt: T0,
        lastSeenAt: null,
        disabledAt: null,
      };
      expect(alice).toEqual(expected);
      expect(Number.isInteger(alice.id)).toBe(true);
      expect(await store.getUser(alice.id)).toEqual(expected);
      expect(await store.findUserByTokenHash('aa11')).toEqual(expected);
      expect(await store.findUserByTokenHash('bb22')).toBeNull();
      expect(await store.getUser(alice.id + 1000)).toBeNull();
    });

    it('gives increasing ids and counts users', async () => {
      expect(await store.countUsers()).toBe(0);
      const a = await user('a');
      const b = await user('b');
      expect(b.id).toBeGreaterThan(a.id);
      expect(await store.countUsers()).toBe(2);
    });

    it('refuses a name whose key exists (BOB vs bob) with name_taken and stores nothing', async () => {
      await user('bob');
      await expect(user('BOB')).rejects.toMatchObject({ name: 'RelayError', code: 'name_taken' });
      expect(await store.countUsers()).toBe(1);
      expect((await user('bobby')).name).toBe('bobby');
      expect(await store.countUsers()).toBe(2);
    });

    it('keeps a null description', async () => {
      const u = await user('nodesc', { description: null });
      expect((await store.getUser(u.id))?.description).toBeNull();
    });

    it('sets the status and returns the updated record; null for an unknown user', async () => {
      const u = await user('carol');
      const updated = await store.setStatus(u.id, 'do_not_disturb');
      expect(updated).toEqual({ ...u, status: 'do_not_disturb' });
      expect((await store.getUser(u.id))?.status).toBe('do_not_disturb');
      expect(await store.setStatus(u.id + 1000, 'open')).toBeNull();
    });

    it('touches last-seen for many users at once, never moving it backwards', async () => {
      const a = await user('a');
      const b = await user('b');
      const c = await user('c');
      await store.touchLastSeen([
        [a.id, T0 + 10],
        [b.id, T0 + 20],
      ]);
      expect((await store.getUser(a.id))?.lastSeenAt).toBe(T0 + 10);
      expect((await store.getUser(b.id))?.lastSeenAt).toBe(T0 + 20);
      expect((await store.getUser(c.id))?.lastSeenAt).toBeNull();
      await store.touchLastSeen([
        [a.id, T0 + 30],
        [b.id, T0 + 5],
      ]);
      expect((await store.getUser(a.id))?.lastSeenAt).toBe(T0 + 30);
      expect((await store.getUser(b.id))?.lastSeenAt).toBe(T0 + 20);
      await store.touchLastSeen([]);
      expect((await store.getUser(a.id))?.lastSeenAt).toBe(T0 + 30);
    });

    it('lists top active open users: last seen desc, never-seen last, then id asc', async () => {
      const u1 = await user('u1');
      const u2 = await user('u2');
      const u3 = await user('u3');
      const fo = await user('fo', { status: 'friends_only' });
      const dnd = await user('dnd', { status: 'do_not_disturb' });
      const u5 = await user('u5');
      await store.touchLastSeen([
        [u2.id, T0 + 10],
        [u3.id, T0 + 20],
        [fo.id, T0 + 30],
        [dnd.id, T0 + 40],
      ]);
      const top = await store.topActiveUsers(10);
      expect(top.map((u) => u.id)).toEqual([u3.id, u2.id, u1.id, u5.id]);
      expect(top[0]).toEqual({ ...u3, lastSeenAt: T0 + 20 });
      expect((await store.topActiveUsers(2)).map((u) => u.id)).toEqual([u3.id, u2.id]);
    });

    it('sets and gets a homepage: undefined for an unknown user, null for none', async () => {
      const u = await user('home');
      expect(await store.getHomepage(u.id)).toBeNull();
      expect(await store.getHomepage(u.id + 1000)).toBeUndefined();
      await store.setHomepage(u.id, '<h1>hi</h1>');
      expect(await store.getHomepage(u.id)).toBe('<h1>hi</h1>');
      const big = `<p>${'x'.repeat(512 * 1024 - 7)}</p>`;
      await store.setHomepage(u.id, big);
      expect(await store.getHomepage(u.id)).toBe(big);
      // The homepage is never part of a user record.
      expect(Object.keys((await store.getUser(u.id))!).sort()).toEqual(
        ['createdAt', 'description', 'disabledAt', 'id', 'lastSeenAt', 'name', 'nameKey', 'status'].sort(),
      );
    });
  });

  describe('discovery', () => {
    it('samples open users other than the caller and reports the total', async () => {
      const me = await user('me');
      const open = [await user('o1'), await user('o2'), await user('o3')];
      await user('fo', { status: 'friends_only' });
      await user('dnd', { status: 'do_not_disturb' });
      const all = await store.discoverUsers({ excludeId: me.id, keyword: null, limit: 10 });
      expect(all.total).toBe(3);
      expect(all.users.map((u) => u.id).sort((x, y) => x - y)).toEqual(open.map((u) => u.id));
      expect(all.users.find((u) => u.id === open[0]!.id)).toEqual(open[0]);
      const two = await store.discoverUsers({ excludeId: me.id, keyword: null, limit: 2 });
      expect(two.total).toBe(3);
      expect(two.users).toHaveLength(2);
      expect(new Set(two.users.map((u) => u.id)).size).toBe(2);
      for (const u of two.users) expect(open.map((o) => o.id)).toContain(u.id);
    });

    it('returns a random sample', async () => {
      const me = await user('me');
      for (let i = 0; i < 5; i++) await user(`r${i}`);
      const seen = new Set<number>();
      for (let i = 0; i < 40; i++) {
        const r = await store.discoverUsers({ excludeId: me.id, keyword: null, limit: 1 });
        seen.add(r.users[0]!.id);
      }
      expect(seen.size).toBeGreaterThan(1);
    });

    it('a keyword with U+0000 matches nothing; one with a lone surrogate is searched, not refused', async () => {
      const me = await user('me');
      await user('bob', { description: 'b' });
      for (const keyword of ['\u0000', 'b\u0000', '\u0000b']) {
        expect(await store.discoverUsers({ excludeId: me.id, keyword, limit: 10 })).toEqual({
          total: 0,
          users: [],
        });
        expect(await store.listUsers({ query: keyword, limit: 10, offset: 0 })).toEqual({
          total: 0,
          users: [],
        });
      }
      expect(await store.discoverUsers({ excludeId: me.id, keyword: '\ud800', limit: 10 })).toEqual({
        total: 0,
        users: [],
      });
      expect((await store.listUsers({ query: '\udfff', limit: 10, offset: 0 })).total).toBe(0);
    });

    it('filters by keyword on name or description, case-insensitively', async () => {
      const me = await user('me');
      const byName = await user('TeaLover');
      const byDesc = await user('x1', { description: 'Drinks TEA daily' });
      await user('x2', { description: null });
      await user('x3', { description: 'coffee' });
      await user('teapot', { status: 'friends_only' });
      const r = await store.discoverUsers({ excludeId: me.id, keyword: 'tea', limit: 10 });
      expect(r.total).toBe(2);
      expect(r.users.map((u) => u.id).sort((x, y) => x - y)).toEqual([byName.id, byDesc.id]);
      const none = await store.discoverUsers({ excludeId: me.id, keyword: 'matcha', limit: 10 });
      expect(none).toEqual({ total: 0, users: [] });
      const self = await store.discoverUsers({ excludeId: byName.id, keyword: 'tealover', limit: 10 });
      expect(self).toEqual({ total: 0, users: [] });
    });

    it('treats % and _ in the keyword literally', async () => {
      const me = await user('me');
      const pct = await user('100%real');
      const under = await user('a_b');
      await user('100xreal');
      await user('axb');
      await user('plain', { description: 'nothing special' });
      const p = await store.discoverUsers({ excludeId: me.id, keyword: '%', limit: 10 });
      expect(p.total).toBe(1);
      expect(p.users.map((u) => u.id)).toEqual([pct.id]);
      const u = await store.discoverUsers({ excludeId: me.id, keyword: '_', limit: 10 });
      expect(u.total).toBe(1);
      expect(u.users.map((x) => x.id)).toEqual([under.id]);
      const both = await store.discoverUsers({ excludeId: me.id, keyword: '0%r', limit: 10 });
      expect(both.users.map((x) => x.id)).toEqual([pct.id]);
      const backslash = await store.discoverUsers({ excludeId: me.id, keyword: '\\', limit: 10 });
      expect(backslash).toEqual({ total: 0, users: [] });
    });
  });
}
