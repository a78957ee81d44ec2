// Store contract, end-to-end encryption (docs/e2e.md): the key directory's rules and the opaque
// ciphertext column. Run against every backend by ../contract.ts.

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { E2E_PLACEHOLDER, keyBundleSigningInput, RelayError } from '@openwechat/protocol';
import type { NewKeyBundle, Store } from '../../../packages/relay/src/store/types.ts';
import { T0, type Harness } from '../harness.ts';

/** A raw 32-byte public key, base64 (the last 32 bytes of its SPKI DER). */
const raw = (k: KeyObject): string =>
  k.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');

function identity() {
  return generateKeyPairSync('ed25519');
}

function bundle(userId: number, id: ReturnType<typeof identity>, version: number): NewKeyBundle {
  const enc = generateKeyPairSync('x25519');
  const b = { userId, identityKey: raw(id.publicKey), encryptionKey: raw(enc.publicKey), version };
  return { ...b, signature: sign(null, keyBundleSigningInput(b), id.privateKey).toString('base64') };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RelayError) return err.code;
    throw err;
  }
  throw new Error('expected a refusal');
}

export function keysContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user, befriend } = h;

  describe('e2e key directory', () => {
    it('publishes and fetches a bundle; a user without one has none', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      const b = bundle(alice.id, identity(), 1);
      const put = await store.putKeyBundle(b, T0 + 1);
      expect(put).toEqual({
        keys: { ...b, updatedAt: T0 + 1, identitySince: T0 + 1 },
        identityChanged: false,
      });
      expect(await store.getKeyBundle(alice.id)).toEqual(put.keys);
      expect(await store.getKeyBundle(bob.id)).toBeNull();
      expect(await store.getKeyBundle(999_999)).toBeNull();
    });

    it('the same bundle again changes nothing; a rotation must raise the version', async () => {
      const alice = await user('alice');
      const id = identity();
      const b1 = bundle(alice.id, id, 1);
      await store.putKeyBundle(b1, T0 + 1);
      expect((await store.putKeyBundle(b1, T0 + 2)).keys.updatedAt).toBe(T0 + 1);
      const sameVersion = bundle(alice.id, id, 1);
      expect(await refusal(store.putKeyBundle(sameVersion, T0 + 3))).toBe('key_version_stale');
      expect(await store.getKeyBundle(alice.id)).toMatchObject({
        encryptionKey: b1.encryptionKey,
        version: 1,
      });
      const b2 = bundle(alice.id, id, 2);
      const rotated = await store.putKeyBundle(b2, T0 + 4);
      expect(rotated.identityChanged).toBe(false);
      // The identity did not change, so neither does the time it was first seen.
      expect(rotated.keys).toMatchObject({
        version: 2,
        encryptionKey: b2.encryptionKey,
        identitySince: T0 + 1,
      });
      expect(await refusal(store.putKeyBundle(b1, T0 + 5))).toBe('key_version_stale');
    });

    it('a new identity key replaces the bundle and the change is visible', async () => {
      const alice = await user('alice');
      await store.putKeyBundle(bundle(alice.id, identity(), 5), T0 + 1);
      const fresh = bundle(alice.id, identity(), 1);
      const put = await store.putKeyBundle(fresh, T0 + 9);
      expect(put.identityChanged).toBe(true);
      expect(await store.getKeyBundle(alice.id)).toEqual({
        ...fresh,
        updatedAt: T0 + 9,
        identitySince: T0 + 9,
      });
    });

    it('refuses a bundle whose signature or keys do not verify, and keeps the old one', async () => {
      const alice = await user('alice');
      const id = identity();
      const good = bundle(alice.id, id, 1);
      await store.putKeyBundle(good, T0 + 1);
      const other = identity();
      const forged = { ...bundle(alice.id, id, 2), identityKey: raw(other.publicKey) };
      expect(await refusal(store.putKeyBundle(forged, T0 + 2))).toBe('invalid_key_bundle');
      // Signed for another account: the user id is inside what is signed.
      const elsewhere = { ...bundle(alice.id + 1, id, 3), userId: alice.id };
      expect(await refusal(store.putKeyBundle(elsewhere, T0 + 3))).toBe('invalid_key_bundle');
      const short = { ...bundle(alice.id, id, 4), encryptionKey: 'AAAA' };
      expect(await refusal(store.putKeyBundle(short, T0 + 4))).toBe('invalid_key_bundle');
      expect(await store.getKeyBundle(alice.id)).toMatchObject({ version: 1, signature: good.signature });
    });
  });

  describe('e2e ciphertext column', () => {
    it('stores a private and a group ciphertext as given; plaintext messages carry none', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      const carol = await user('carol');
      await befriend(alice, bob);
      await befriend(alice, carol);
      const envelope = `{"v":1,"ct":"${'x'.repeat(40_000)}"}`;
      await store.send({
        fromId: alice.id,
        toId: bob.id,
        content: E2E_PLACEHOLDER,
        attachment: null,
        e2e: envelope,
        now: T0,
      });
      await store.send({ fromId: alice.id, toId: bob.id, content: 'plain', attachment: null, now: T0 + 1 });
      const [enc, plain] = await store.listInbox(bob.id, 0, 10);
      expect(enc).toMatchObject({ content: E2E_PLACEHOLDER, e2e: envelope, type: 'chat' });
      expect(plain!.e2e ?? null).toBeNull();
      expect(plain!.content).toBe('plain');

      const g = await store.createGroup({
        ownerId: alice.id,
        name: 'g',
        description: null,
        memberIds: [bob.id, carol.id],
        now: T0 + 2,
        limits: { maxMembers: 500, maxGroupsPerUser: 100 },
      });
      const sent = await store.sendToGroup({
        fromId: alice.id,
        groupId: g.group.id,
        content: E2E_PLACEHOLDER,
        attachment: null,
        mentionIds: [bob.id],
        e2e: '{"v":1,"g":true}',
        now: T0 + 3,
      });
      expect(sent.delivered.map((m) => m.e2e)).toEqual(['{"v":1,"g":true}', '{"v":1,"g":true}']);
      for (const u of [bob, carol]) {
        const last = (await store.listInbox(u.id, 0, 100)).at(-1)!;
        expect(last).toMatchObject({ type: 'group', content: E2E_PLACEHOLDER, e2e: '{"v":1,"g":true}' });
      }
      // Read-and-clear hands the ciphertext out too.
      const taken = await store.takeInbox(carol.id, { limit: 100, fromId: null });
      expect(taken.messages.at(-1)!.e2e).toBe('{"v":1,"g":true}');
    });
  });
}
