// Store contract, files: chunked storage, reads, quotas, sweeps.
// Run against every backend by ../contract.ts; `h.store` is a new, empty store for each test.

import { randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { RelayError, type AttachmentView } from '@openwechat/protocol';
import type { NewFile, Store, UserRecord } from '../../../packages/relay/src/store/types.ts';
import { piecesOf, readAll, sha256, T0, type Harness } from '../harness.ts';

export function filesContract(h: Harness): void {
  let store: Store;
  beforeEach(() => {
    store = h.store;
  });
  const { user, send, befriend } = h;

  describe('files', () => {
    let fileSeq = 0;
    function newFile(
      sender: UserRecord,
      recipient: UserRecord,
      bytes: Buffer,
      o: Partial<NewFile> = {},
    ): NewFile {
      fileSeq++;
      return {
        id: randomBytes(16).toString('hex'),
        senderId: sender.id,
        recipientId: recipient.id,
        name: `file-${fileSeq}.bin`,
        contentType: 'application/octet-stream',
        size: bytes.length,
        sha256: sha256(bytes),
        createdAt: T0,
        expiresAt: T0 + 86_400_000,
        groupId: null,
        ...o,
      };
    }
    const attachmentOf = (f: NewFile): AttachmentView => ({
      name: f.name,
      fileId: f.id,
      size: f.size,
      contentType: f.contentType,
      expiresAt: f.expiresAt,
    });

    it('putFile with quotaBytes admits a file only within the quota, atomically, and stores nothing over it', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      const kb = randomBytes(1000);
      const one = async () => {
        const f = newFile(alice, bob, kb);
        // A fractional quota (UPLOAD_QUOTA_MB=0.0035) counts whole bytes.
        await store.putFile(f, piecesOf(kb, [300]), { quotaBytes: 3500.5 });
        return f.id;
      };
      // Ten at once: exactly three fit (3,000 ≤ 3,500.5 < 4,000).
      const results = await Promise.allSettled(Array.from({ length: 10 }, one));
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r) => r.status === 'rejected');
      expect(ok).toHaveLength(3);
      for (const r of refused) {
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RelayError);
        expect(((r as PromiseRejectedResult).reason as RelayError).code).toBe('upload_quota_exceeded');
      }
      expect(await store.storedFileBytes(alice.id)).toBe(3000);
      for (const r of ok)
        expect(await store.getFile((r as PromiseFulfilledResult<string>).value)).not.toBeNull();
      // Bob's own quota is his own.
      await store.putFile(newFile(bob, alice, kb), piecesOf(kb, [1000]), { quotaBytes: 1000 });
      expect(await store.storedFileBytes(bob.id)).toBe(1000);
    });

    it('putFile from odd-sized pieces round-trips byte for byte; getFile is null for unknown ids', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      // Larger than two storage chunks, in pieces that never line up with them.
      const bytes = randomBytes(700_001);
      const file = newFile(alice, bob, bytes, { name: 'photo 照片.png', contentType: 'image/png' });
      let seenWhileWriting: unknown = 'not checked';
      async function* upload(): AsyncIterable<Buffer> {
        let first = true;
        for await (const piece of piecesOf(bytes, [1, 7, 65_537, 100_003, 4096, 262_145])) {
          yield piece;
          if (first) {
            first = false;
            // An upload in progress is never served.
            seenWhileWriting = await store.getFile(file.id);
          }
        }
      }
      await store.putFile(file, upload());
      expect(seenWhileWriting).toBeNull();
      expect(await store.getFile(file.id)).toEqual({ ...file, downloadedAt: null });
      const back = await readAll(store.readFile(file.id));
      expect(back.length).toBe(bytes.length);
      expect(back.equals(bytes)).toBe(true);
      // Reading again gives the same bytes.
      expect(sha256(await readAll(store.readFile(file.id)))).toBe(file.sha256);
      expect(await store.getFile(randomBytes(16).toString('hex'))).toBeNull();
      expect(await readAll(store.readFile(randomBytes(16).toString('hex')))).toEqual(Buffer.alloc(0));
      // An empty file is a file too.
      const empty = newFile(alice, bob, Buffer.alloc(0));
      await store.putFile(empty, piecesOf(Buffer.alloc(0), [1]));
      expect(await store.getFile(empty.id)).toEqual({ ...empty, downloadedAt: null });
      expect((await readAll(store.readFile(empty.id))).length).toBe(0);
    });

    it('a failed upload leaves nothing behind', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      const bytes = randomBytes(300_000);
      const file = newFile(alice, bob, bytes);
      async function* broken(): AsyncIterable<Buffer> {
        yield bytes.subarray(0, 280_000);
        throw new Error('client went away');
      }
      await expect(store.putFile(file, broken())).rejects.toThrow('client went away');
      expect(await store.getFile(file.id)).toBeNull();
      expect(await store.storedFileBytes(alice.id)).toBe(0);
      expect(await readAll(store.readFile(file.id))).toEqual(Buffer.alloc(0));
      // The id can be used again.
      await store.putFile(file, piecesOf(bytes, [99_999]));
      expect((await readAll(store.readFile(file.id))).equals(bytes)).toBe(true);
    });

    it('storedFileBytes sums the sender’s stored files; deleteFile removes record and bytes', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      expect(await store.storedFileBytes(alice.id)).toBe(0);
      const b1 = randomBytes(1000);
      const b2 = randomBytes(300_000);
      const f1 = newFile(alice, bob, b1);
      const f2 = newFile(alice, bob, b2);
      const f3 = newFile(bob, alice, b1);
      for (const [f, b] of [
        [f1, b1],
        [f2, b2],
        [f3, b1],
      ] as const) {
        await store.putFile(f, piecesOf(b, [4097]));
      }
      expect(await store.storedFileBytes(alice.id)).toBe(301_000);
      expect(await store.storedFileBytes(bob.id)).toBe(1000);
      await store.deleteFile(f2.id);
      expect(await store.getFile(f2.id)).toBeNull();
      expect(await readAll(store.readFile(f2.id))).toEqual(Buffer.alloc(0));
      expect(await store.storedFileBytes(alice.id)).toBe(1000);
      await store.deleteFile(f2.id);
      await store.deleteFile(randomBytes(16).toString('hex'));
      expect((await readAll(store.readFile(f1.id))).equals(b1)).toBe(true);
    });

    it('markFileDownloaded keeps the first time', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      const f = newFile(alice, bob, Buffer.from('hello'));
      await store.putFile(f, piecesOf(Buffer.from('hello'), [2]));
      await store.markFileDownloaded(f.id, T0 + 10);
      await store.markFileDownloaded(f.id, T0 + 20);
      expect((await store.getFile(f.id))?.downloadedAt).toBe(T0 + 10);
    });

    it('sweepFiles deletes expired files and downloaded files no stored message references', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      await befriend(alice, bob);
      const now = T0 + 50_000;
      const bytes = randomBytes(5000);
      const expired = newFile(alice, bob, bytes, { expiresAt: now - 1 });
      const edge = newFile(alice, bob, bytes, { expiresAt: now });
      const ackedDownloaded = newFile(alice, bob, bytes);
      const storedDownloaded = newFile(alice, bob, bytes);
      const ackedNotDownloaded = newFile(alice, bob, bytes);
      const neverSent = newFile(alice, bob, bytes);
      const all = [expired, edge, ackedDownloaded, storedDownloaded, ackedNotDownloaded, neverSent];
      for (const f of all) await store.putFile(f, piecesOf(bytes, [777]));
      // Messages referencing them: bob acks the first one only.
      const m1 = await send(alice, bob, 'acked', { attachment: attachmentOf(ackedDownloaded) });
      await send(alice, bob, 'stored', { attachment: attachmentOf(storedDownloaded) });
      const m3 = await send(alice, bob, 'acked too', { attachment: attachmentOf(ackedNotDownloaded) });
      await store.deleteMessages(bob.id, [m1.messageId, m3.messageId]);
      await store.markFileDownloaded(ackedDownloaded.id, now - 100);
      await store.markFileDownloaded(storedDownloaded.id, now - 100);
      expect(await store.sweepFiles(now)).toBe(2);
      expect(await store.getFile(expired.id)).toBeNull();
      expect(await store.getFile(ackedDownloaded.id)).toBeNull();
      for (const f of [edge, storedDownloaded, ackedNotDownloaded, neverSent]) {
        expect(await store.getFile(f.id)).not.toBeNull();
      }
      expect(await store.storedFileBytes(alice.id)).toBe(4 * bytes.length);
      expect(await store.sweepFiles(now)).toBe(0);
      // Once its message is acknowledged, the downloaded file goes too.
      await store.ackInbox(bob.id, await store.lastMessageId(bob.id));
      expect(await store.sweepFiles(now)).toBe(1);
      expect(await store.getFile(storedDownloaded.id)).toBeNull();
      // Later, everything expired goes.
      expect(await store.sweepFiles(T0 + 86_400_001)).toBe(3);
      expect(await store.storedFileBytes(alice.id)).toBe(0);
    });

    it('collectFile applies the sweep rule to one downloaded file only', async () => {
      const alice = await user('alice');
      const bob = await user('bob');
      await befriend(alice, bob);
      const now = T0 + 50_000;
      const bytes = randomBytes(3000);
      const [acked, pending, notDownloaded, other] = [1, 2, 3, 4].map(() => newFile(alice, bob, bytes));
      for (const f of [acked, pending, notDownloaded, other])
        await store.putFile(f!, piecesOf(bytes, [1000]));
      const m1 = await send(alice, bob, 'a', { attachment: attachmentOf(acked!) });
      await send(alice, bob, 'b', { attachment: attachmentOf(pending!) });
      const m3 = await send(alice, bob, 'c', { attachment: attachmentOf(notDownloaded!) });
      const m4 = await send(alice, bob, 'd', { attachment: attachmentOf(other!) });
      await store.deleteMessages(bob.id, [m1.messageId, m3.messageId, m4.messageId]);
      for (const f of [acked, pending, other]) await store.markFileDownloaded(f!.id, now - 10);
      // Its message is still stored: kept. Not downloaded: kept. Unknown id: nothing.
      expect(await store.collectFile(pending!.id, now)).toBe(false);
      expect(await store.collectFile(notDownloaded!.id, now)).toBe(false);
      expect(await store.collectFile('0'.repeat(32), now)).toBe(false);
      // Downloaded and acknowledged: gone — and only that one (`other` qualifies too, but was not asked).
      expect(await store.collectFile(acked!.id, now)).toBe(true);
      expect(await store.getFile(acked!.id)).toBeNull();
      expect(await store.collectFile(acked!.id, now)).toBe(false);
      for (const f of [pending, notDownloaded, other]) expect(await store.getFile(f!.id)).not.toBeNull();
      expect(await store.storedFileBytes(alice.id)).toBe(3 * bytes.length);
    });
  });
}
