// End-to-end encryption between agents (issue 27, docs/e2e.md), over a real relay child process on the
// suite's backend (SQLite, or PostgreSQL under `npm run test:postgres`) with trace-level logs.
// What is checked: the relay keeps no plaintext anywhere (database bytes or pg_dump, data folder, log);
// a text-mode reader sees the placeholder; tampering, replays and forged senders are refused locally
// and leave nothing behind; a changed key is refused until accepted; the policies; groups, including a
// member added later who cannot read what came before.

import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eError, KEY_FILES, type Message } from '@openwechat/client';
import { E2E_PLACEHOLDER } from '@openwechat/protocol';
import { newKeyPair, privateKeyOf, sealEnvelope } from '../../packages/client/src/e2e/crypto.ts';
import { stopAllRelays } from '../helpers/process.ts';
import { TEST_BACKEND } from '../helpers/relay.ts';
import {
  account,
  inbox,
  lastFrom,
  newDevice,
  removeDirs,
  startE2eRelay,
  type Account,
  type E2eRelay,
} from './helpers.ts';

/** The E2eError code a promise rejects with (fails the test when it resolves or throws otherwise). */
async function refusedWith(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof E2eError) return err.code;
    throw err;
  }
  throw new Error('expected an E2eError');
}

const secret = (tag: string) => `SECRET-${tag}-${randomBytes(6).toString('hex')}`;

let relay: E2eRelay;
const accounts: Account[] = [];
let work: string;

beforeAll(async () => {
  relay = await startE2eRelay();
  work = await mkdtemp(join(tmpdir(), 'owc-e2e-work-'));
}, 60_000);

afterAll(async () => {
  await relay?.close();
  await stopAllRelays();
  await removeDirs(accounts);
  if (work) await rm(work, { recursive: true, force: true });
});

async function acct(policy: Parameters<typeof account>[1]): Promise<Account> {
  const a = await account(relay, policy);
  accounts.push(a);
  return a;
}

/** a asks, b replies: friends (the two messages go encrypted when both have keys). */
async function friends(a: Account, b: Account): Promise<void> {
  await (a.session ? a.session.send(b.id, 'hello') : a.client.send(b.id, 'hello'));
  await (b.session ? b.session.send(a.id, 'hi') : b.client.send(a.id, 'hi'));
}

describe(`e2e on ${TEST_BACKEND}`, () => {
  it('a conversation and a file leave no plaintext in the relay: database, files, trace log', async () => {
    const alice = await acct('required');
    const bob = await acct('required');
    const texts = [secret('request'), secret('reply'), secret('chat'), secret('caption')];
    const fileMarker = secret('file-bytes');
    const fileName = `${secret('filename')}.txt`;

    const r1 = await alice.session!.send(bob.id, texts[0]!);
    expect(r1).toMatchObject({ encrypted: true, plaintextReason: null, result: { outcome: 'request' } });
    const req = await lastFrom(bob, alice.id);
    expect(req.type).toBe('friend_request');
    expect(req.content).toBe(E2E_PLACEHOLDER);
    expect(req.e2e).toBeTruthy();
    expect((await bob.session!.open(req)).text).toBe(texts[0]);

    expect((await bob.session!.send(alice.id, texts[1]!)).result.outcome).toBe('accepted');
    expect((await alice.session!.open(await lastFrom(alice, bob.id))).text).toBe(texts[1]);
    await alice.session!.send(bob.id, texts[2]!);
    expect((await bob.session!.open(await lastFrom(bob, alice.id))).text).toBe(texts[2]);

    // A file of several chunks, its plaintext full of the marker.
    const plainFile = Buffer.concat(
      Array.from({ length: 3000 }, (_, i) => Buffer.from(`${fileMarker} line ${i}\n`)),
    );
    const src = join(work, fileName);
    await writeFile(src, plainFile);
    const sent = await alice.session!.sendFile(bob.id, { path: src, contentType: 'text/plain' }, texts[3]!);
    expect(sent.encrypted).toBe(true);
    const fileMsg = await lastFrom(bob, alice.id);
    expect(fileMsg.attachment?.name).toBe('encrypted.bin');
    const opened = await bob.session!.open(fileMsg);
    expect(opened.text).toBe(texts[3]);
    expect(opened.file).toMatchObject({ name: fileName, size: plainFile.length, content_type: 'text/plain' });
    const dest = join(work, 'downloaded.txt');
    const got = await bob.session!.downloadFile(opened, dest);
    expect(got).toMatchObject({ name: fileName, size: plainFile.length });
    expect(Buffer.compare(await readFile(dest), plainFile)).toBe(0);

    // A text-mode (legacy) reader sees the placeholder, never ciphertext.
    const textInbox = await fetch(`${relay.url}/messages?limit=100`, { headers: { 'X-Token': bob.token } });
    const body = await textInbox.text();
    expect(body).toContain(`内容：${E2E_PLACEHOLDER}`);
    expect(body).not.toMatch(/"ct"|"epk"/);

    // A plaintext control through the same relay, so the grep below is shown to find what is there.
    const carol = await acct(null);
    const control = secret('plaintext-control');
    await carol.client.send(alice.id, control);

    const stored = await relay.storedBytes();
    const log = relay.log();
    expect(stored.includes(Buffer.from(control)), 'the control text is in the stored bytes').toBe(true);
    expect(log).toContain('"level":10'); // trace lines were written
    expect(log).toContain('/send/file');
    for (const t of [...texts, fileMarker, fileName]) {
      expect(stored.includes(Buffer.from(t)), `${t} in the stored bytes`).toBe(false);
      expect(log.includes(t), `${t} in the log`).toBe(false);
    }
    // Files folder: nothing under the data folder holds the file's plaintext (uploads are cleaned up).
    const leftovers = await readdir(relay.dataDir, { recursive: true });
    expect(leftovers.some((f) => String(f).includes('upload-'))).toBe(false);
  }, 120_000);

  it('refuses a tampered ciphertext, a replay and a forged sender, and keeps nothing of them', async () => {
    const alice = await acct('preferred');
    const bob = await acct('preferred');
    const mallory = await acct('preferred');
    await friends(alice, bob);
    await friends(mallory, bob);
    const text = secret('genuine');
    await alice.session!.send(bob.id, text);
    const genuine = await lastFrom(bob, alice.id);
    const seenFile = join(bob.keyDir, KEY_FILES.seen);
    const readSeen = () => readFile(seenFile, 'utf8').catch(() => '{}');
    const seenBefore = await readSeen();

    // Tampered: one byte of the ciphertext changed (as a relay operator could, in the database).
    const env = JSON.parse(genuine.e2e!) as { ct: string };
    const ct = Buffer.from(env.ct, 'base64');
    ct[ct.length - 20]! ^= 0x01;
    const tampered: Message = { ...genuine, e2e: JSON.stringify({ ...env, ct: ct.toString('base64') }) };
    expect(await refusedWith(bob.session!.open(tampered))).toBe('tampered');

    // Forged sender (1): Mallory re-sends Alice's envelope as his own message.
    await mallory.client.send(bob.id, E2E_PLACEHOLDER, { e2e: genuine.e2e! });
    expect(await refusedWith(bob.session!.open(await lastFrom(bob, mallory.id)))).toBe('sender_mismatch');
    // Forged sender (2): an envelope in Mallory's name signed with a key that is not his.
    const impostor = newKeyPair('ed25519');
    const bobKey = (await mallory.client.getKeys(bob.id))!.encryption_key;
    const forged = sealEnvelope({
      from: mallory.id,
      identityPrivate: privateKeyOf(impostor.private),
      recipients: new Map([[bob.id, bobKey]]),
      group: null,
      body: { text: 'trust me', ts: Date.now() },
    });
    await mallory.client.send(bob.id, E2E_PLACEHOLDER, { e2e: JSON.stringify(forged) });
    expect(await refusedWith(bob.session!.open(await lastFrom(bob, mallory.id)))).toBe('bad_signature');

    // None of the refusals left a trace in Bob's key store.
    expect(await readSeen()).toBe(seenBefore);

    // The genuine message opens; its re-delivery under the same id (a resumed stream) opens again;
    // the same envelope under another id (a relay replaying it) is refused.
    expect((await bob.session!.open(genuine)).text).toBe(text);
    expect((await bob.session!.open(genuine)).text).toBe(text);
    expect(await refusedWith(bob.session!.open({ ...genuine, id: genuine.id! + 1000 }))).toBe('replayed');
    // A new session on the same key folder (a restarted daemon) still knows it.
    const restarted = new (bob.session!.constructor as typeof import('@openwechat/client').E2eSession)({
      client: bob.client,
      userId: bob.id,
      store: bob.keyDir,
    });
    expect(await refusedWith(restarted.open({ ...genuine, id: genuine.id! + 2000 }))).toBe('replayed');
    // Only the genuine message's nonce was recorded.
    expect(Object.keys(JSON.parse(await readSeen()) as object)).toHaveLength(
      Object.keys(JSON.parse(seenBefore) as object).length + 1,
    );
  }, 120_000);

  it('a changed identity key is refused until accepted; both sides then see the same safety number', async () => {
    const alice = await acct('preferred');
    let carol = await acct('preferred');
    await friends(alice, carol);
    const before = await alice.session!.safetyNumber(carol.id);
    expect(await carol.session!.safetyNumber(alice.id)).toBe(before);

    // Carol loses her device: a new identity, published over the old one.
    carol = await newDevice(carol);
    accounts.push(carol);
    const published = await carol.client.getKeys(carol.id);
    expect(published!.identity_since).toBe(published!.updated_at);

    // Her first message from the new device is refused (its signature asks the directory, which shows
    // the new identity), and so is every send to her until Alice accepts the change.
    await carol.session!.send(alice.id, secret('from-new-device'));
    const fromNew = await lastFrom(alice, carol.id);
    expect(await refusedWith(alice.session!.open(fromNew))).toBe('key_changed');
    expect(await refusedWith(alice.session!.send(carol.id, 'are you still you?'))).toBe('key_changed');
    expect(await refusedWith(alice.session!.open(fromNew))).toBe('key_changed');
    const pending = (await alice.session!.peers()).find((p) => p.userId === carol.id)!;
    expect(pending.pending).not.toBeNull();

    const accepted = await alice.session!.accept(carol.id);
    expect(accepted.pending).toBeNull();
    const after = await alice.session!.safetyNumber(carol.id);
    expect(after).not.toBe(before);
    expect(await carol.session!.safetyNumber(alice.id)).toBe(after);
    expect((await alice.session!.open(fromNew)).encrypted).toBe(true);
    expect((await alice.session!.send(carol.id, 'welcome back')).encrypted).toBe(true);
  }, 120_000);

  it('preferred talks to a plaintext peer and says so; required refuses both ways', async () => {
    const pref = await acct('preferred');
    const req = await acct('required');
    const plain = await acct(null);
    await friends(pref, plain);
    await friends(plain, req).catch(() => undefined); // req refuses to send the reply in plaintext

    const r = await pref.session!.send(plain.id, 'plain is fine');
    expect(r.encrypted).toBe(false);
    expect(r.plaintextReason).toMatch(/published no end-to-end keys/);
    const got = await lastFrom(plain, pref.id);
    expect(got.content).toBe('plain is fine');
    expect(got.e2e ?? null).toBeNull();

    const before = (await inbox(plain)).length;
    expect(await refusedWith(req.session!.send(plain.id, 'never in plaintext'))).toBe('no_keys');
    expect((await inbox(plain)).length).toBe(before);
    const fromPlain = await lastFrom(req, plain.id);
    expect(await refusedWith(req.session!.open(fromPlain))).toBe('plaintext_refused');
    // A relay notice (no sender) is not a peer's plaintext.
    const notice = (await inbox(req)).find((m) => m.fromId === null);
    if (notice) expect((await req.session!.open(notice)).encrypted).toBe(false);
  }, 120_000);

  it('a 3-member group round-trips; a member added later cannot read earlier messages', async () => {
    const owner = await acct('required');
    const bob = await acct('required');
    const carol = await acct('required');
    await friends(owner, bob);
    await friends(owner, carol);
    const group = await owner.client.createGroup({ name: 'e2e', memberIds: [bob.id, carol.id] });

    const early = secret('group-early');
    expect((await owner.session!.sendGroup(group.id, early)).encrypted).toBe(true);
    const fromCarol = secret('group-carol');
    await carol.session!.sendGroup(group.id, fromCarol);
    for (const [who, from, text] of [
      [bob, owner, early],
      [carol, owner, early],
      [bob, carol, fromCarol],
      [owner, carol, fromCarol],
    ] as const) {
      const m = await lastFrom(who, from.id);
      expect(m).toMatchObject({ type: 'group', content: E2E_PLACEHOLDER, group: { id: group.id } });
      expect((await who.session!.open(m)).text).toBe(text);
    }

    // Dave joins later; he is handed the earlier envelope (as a relay could) and cannot open it.
    const dave = await acct('required');
    await friends(owner, dave);
    await owner.client.addGroupMembers(group.id, [dave.id]);
    const earlier = await lastFrom(bob, owner.id);
    expect(await refusedWith(dave.session!.open(earlier))).toBe('not_a_recipient');
    const late = secret('group-late');
    await owner.session!.sendGroup(group.id, late);
    expect((await dave.session!.open(await lastFrom(dave, owner.id))).text).toBe(late);

    const stored = await relay.storedBytes();
    for (const t of [early, fromCarol, late]) expect(stored.includes(Buffer.from(t))).toBe(false);
  }, 120_000);
});
