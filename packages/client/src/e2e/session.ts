// E2eSession: end-to-end encryption around a RelayClient (docs/e2e.md). Every consumer (skill, channel
// plugin, bridge, MCP server) gets it from here: give it the client, the account id and a key store
// (a folder), then use send/sendGroup/sendFile/sendGroupFile instead of the client's, open() on every
// delivered message (e.g. in a StreamConsumer's onMessage) and downloadFile() for attachments. Policy:
//   off        plaintext as before; encrypted messages are handed over unopened (content = placeholder).
//   preferred  encrypt whenever the peer (every member of a group) has published keys; otherwise send
//              plaintext and say so (`encrypted: false` with `plaintextReason`).
//   required   refuse to send plaintext, and refuse plaintext from peers (system notices excepted).
// A peer's identity key is pinned on first use; a different one later is refused (key_changed) until
// accept() — whatever the policy, because a silent change is what an attacker in the middle needs.

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { E2E_PLACEHOLDER, keyBundleSigningInput, type KeyBundleJson } from '@openwechat/protocol';
import type { RelayClient } from '../client.ts';
import type { Delivery } from '../consumer.ts';
import { ClientError } from '../errors.ts';
import type { GroupSendResult, Message, SendResult } from '../types.ts';
import {
  checkSignature,
  decryptStream,
  ed25519Public,
  encryptStream,
  FILE_CHUNK,
  fingerprint,
  newKeyPair,
  openEnvelope,
  parseEnvelope,
  privateKeyOf,
  safetyNumber,
  sealEnvelope,
  signBytes,
  verifyBytes,
  type Body,
  type FileSecret,
} from './crypto.ts';
import { FileKeyStore, type E2eKeyStore, type Identity, type Pin, type SeenNonce } from './keystore.ts';

export type E2ePolicy = 'off' | 'preferred' | 'required';
export const E2E_POLICIES: readonly E2ePolicy[] = ['off', 'preferred', 'required'];

export type E2eErrorCode =
  /** Not an envelope, or one this client cannot read (version, algorithm, shape). */
  | 'malformed'
  /** The ciphertext or a wrapped key failed authentication: changed in transit or at rest. */
  | 'tampered'
  /** A message nonce already opened under another message id. */
  | 'replayed'
  /** The envelope names a sender other than the account the relay says sent it. */
  | 'sender_mismatch'
  /** The signature does not verify with the sender's pinned identity key. */
  | 'bad_signature'
  /** The message was not encrypted to this account (e.g. a member added after it was sent). */
  | 'not_a_recipient'
  /** The peer's identity key differs from the pinned one: refused until accepted. */
  | 'key_changed'
  /** The directory served an older key version than already seen for the same identity. */
  | 'key_rollback'
  /** The directory's bundle does not verify. */
  | 'invalid_bundle'
  /** policy `required`: the peer (or a member) has no keys, or the relay has no key directory. */
  | 'no_keys'
  /** policy `required`: a plaintext message from a peer. */
  | 'plaintext_refused'
  /** Older than the replay window (its nonce may have been forgotten). */
  | 'expired'
  /** More than the 1000 characters a message may hold. */
  | 'too_long';

/** A refusal by this client (never the relay's): nothing was sent, or the message was not accepted. */
export class E2eError extends Error {
  constructor(
    readonly code: E2eErrorCode,
    message: string,
    readonly peerId: number | null = null,
  ) {
    super(message);
    this.name = 'E2eError';
  }
}

export interface E2eSessionOptions {
  client: RelayClient;
  /** This account's id (the bundle is signed for it). */
  userId: number;
  /** A key store, or a folder for a FileKeyStore (created 0700, files 0600). */
  store: E2eKeyStore | string;
  policy?: E2ePolicy;
  /** Clock (ms); injected by tests. */
  now?: () => number;
  /**
   * How long a peer's fetched keys are used before asking the directory again (default 60 s). A message
   * whose signature does not verify with the cached key always asks again.
   */
  keyRefreshMs?: number;
  /** Nonces are remembered this long; older messages are refused as `expired` (default 30 days). */
  replayWindowMs?: number;
}

/** What a send did: the relay's answer, and whether it went encrypted. */
export interface E2eSent<R> {
  result: R;
  encrypted: boolean;
  /** policy `preferred`, sent in plaintext: why (say it to the user). */
  plaintextReason: string | null;
}

/** A delivered message after open(): the text to show and how it travelled. */
export interface OpenedMessage {
  /** The message with `content` replaced by the decrypted text (unchanged for plaintext). */
  message: Message;
  text: string;
  encrypted: boolean;
  /** An encrypted attachment's secrets (downloadFile() uses them); null otherwise. */
  file: (FileSecret & { fileId: string | null }) | null;
  /** The sender's identity fingerprint (encrypted messages). */
  senderFingerprint: string | null;
}

export interface PeerKeyInfo {
  userId: number;
  fingerprint: string;
  version: number;
  pinnedAt: number;
  /** A different identity key the directory served since; refused until accept(). */
  pending: { fingerprint: string; seenAt: number } | null;
}

const MAX_TEXT_CHARS = 1000;
const ENCRYPTED_FILENAME = 'encrypted.bin';

export class E2eSession {
  readonly client: RelayClient;
  readonly userId: number;
  readonly policy: E2ePolicy;
  readonly store: E2eKeyStore;
  private readonly now: () => number;
  private readonly keyRefreshMs: number;
  private readonly replayWindowMs: number;
  private identity: Identity | null = null;
  private pins: Record<string, Pin> | null = null;
  private seen: Record<string, SeenNonce> | null = null;
  private ready: Promise<void> | null = null;
  /** Key-store updates run one at a time (pins and nonces are read-modify-write). */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(opts: E2eSessionOptions) {
    if (!E2E_POLICIES.includes(opts.policy ?? 'preferred')) {
      throw new Error(`e2e policy must be one of ${E2E_POLICIES.join(', ')}, got ${String(opts.policy)}`);
    }
    this.client = opts.client;
    this.userId = opts.userId;
    this.policy = opts.policy ?? 'preferred';
    this.store = typeof opts.store === 'string' ? new FileKeyStore(opts.store) : opts.store;
    this.now = opts.now ?? Date.now;
    this.keyRefreshMs = opts.keyRefreshMs ?? 60_000;
    this.replayWindowMs = opts.replayWindowMs ?? 30 * 86_400_000;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Loads (or, the first time, generates) this account's keys and makes sure the relay's directory has
   * the current bundle. Called by every operation that needs it; call it early to publish at start-up.
   */
  async init(): Promise<void> {
    this.ready ??= this.setUp().catch((err) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  private async setUp(): Promise<void> {
    let id = await this.store.loadIdentity();
    if (!id || id.userId !== this.userId) {
      // First use (or a data folder reused for another account): a new identity.
      const enc = newKeyPair('x25519');
      id = {
        userId: this.userId,
        identity: newKeyPair('ed25519'),
        encryption: { ...enc, version: 1 },
        previous: [],
        createdAt: this.now(),
      };
      await this.store.saveIdentity(id);
    }
    this.identity = id;
    this.pins = await this.store.loadPins();
    this.seen = await this.store.loadSeen();
    await this.publish();
  }

  private me(): Identity {
    if (!this.identity) throw new Error('E2eSession: init() first');
    return this.identity;
  }

  /** Publishes the current bundle unless the directory already has exactly it. */
  async publish(): Promise<{ published: boolean; identityChanged: boolean }> {
    const id = this.me();
    const current = await this.client.getKeys(this.userId);
    if (
      current &&
      current.identity_key === id.identity.public &&
      current.encryption_key === id.encryption.public &&
      current.version === id.encryption.version
    ) {
      return { published: false, identityChanged: false };
    }
    // The directory holds a newer version for this identity (e.g. a key file restored from a backup):
    // continue above it rather than be refused as stale.
    if (current && current.identity_key === id.identity.public && current.version >= id.encryption.version) {
      id.encryption = { ...id.encryption, version: current.version + 1 };
      await this.store.saveIdentity(id);
    }
    const unsigned = {
      userId: this.userId,
      identityKey: id.identity.public,
      encryptionKey: id.encryption.public,
      version: id.encryption.version,
    };
    const signature = signBytes(privateKeyOf(id.identity.private), keyBundleSigningInput(unsigned));
    const r = await this.client.putKeys({ ...unsigned, signature });
    return { published: true, identityChanged: r.identityChanged };
  }

  /** A new encryption key (the identity stays): the old one is kept to open messages already sent to it. */
  async rotate(): Promise<{ version: number }> {
    await this.init();
    const id = this.me();
    const enc = newKeyPair('x25519');
    id.previous = [id.encryption, ...id.previous].slice(0, 10);
    id.encryption = { ...enc, version: id.encryption.version + 1 };
    await this.store.saveIdentity(id);
    await this.publish();
    return { version: id.encryption.version };
  }

  /** This account's identity fingerprint (30 digits), to compare out of band. */
  async fingerprint(): Promise<string> {
    await this.init();
    return fingerprint(this.userId, this.me().identity.public);
  }

  /** The safety number with a pinned peer (60 digits; the same on both sides). */
  async safetyNumber(peerId: number): Promise<string> {
    await this.init();
    const pin = this.pins![String(peerId)] ?? (await this.peerKey(peerId), this.pins![String(peerId)]);
    if (!pin) throw new E2eError('no_keys', `user ${peerId} has published no keys`, peerId);
    return safetyNumber(
      { id: this.userId, key: this.me().identity.public },
      { id: peerId, key: pin.identityKey },
    );
  }

  /** Pinned peers, with any refused change. */
  async peers(): Promise<PeerKeyInfo[]> {
    await this.init();
    return Object.entries(this.pins!).map(([k, p]) => ({
      userId: Number(k),
      fingerprint: fingerprint(Number(k), p.identityKey),
      version: p.version,
      pinnedAt: p.pinnedAt,
      pending: p.pending
        ? { fingerprint: fingerprint(Number(k), p.pending.identityKey), seenAt: p.pending.seenAt }
        : null,
    }));
  }

  /**
   * Accepts the peer's changed identity key (after comparing the new safety number out of band). With
   * no change pending, re-fetches the directory's bundle and pins it (`keys accept` on a fresh peer).
   */
  async accept(peerId: number): Promise<PeerKeyInfo> {
    await this.init();
    await this.serial(async () => {
      const pins = this.pins!;
      const pin = pins[String(peerId)];
      if (pin?.pending) {
        const p = pin.pending;
        pins[String(peerId)] = {
          identityKey: p.identityKey,
          encryptionKey: p.encryptionKey,
          version: p.version,
          pinnedAt: this.now(),
          checkedAt: this.now(),
        };
        await this.store.savePins(pins);
      }
    });
    await this.peerKey(peerId, { force: true });
    const info = (await this.peers()).find((p) => p.userId === peerId);
    if (!info) throw new E2eError('no_keys', `user ${peerId} has published no keys`, peerId);
    return info;
  }

  /** Checks a directory bundle's signature and account. */
  private checkBundle(peerId: number, b: KeyBundleJson): void {
    const ok =
      b.user_id === peerId &&
      (() => {
        try {
          return verifyBytes(
            ed25519Public(b.identity_key),
            keyBundleSigningInput({
              userId: b.user_id,
              identityKey: b.identity_key,
              encryptionKey: b.encryption_key,
              version: b.version,
            }),
            b.signature,
          );
        } catch {
          return false;
        }
      })();
    if (!ok) throw new E2eError('invalid_bundle', `user ${peerId}'s published keys do not verify`, peerId);
  }

  /**
   * The peer's pinned keys, refreshed from the directory when older than keyRefreshMs (or `force`).
   * null when the peer published none (and none is pinned). Throws key_changed / key_rollback.
   */
  async peerKey(peerId: number, opts: { force?: boolean } = {}): Promise<Pin | null> {
    await this.init();
    const cached = this.pins![String(peerId)];
    if (cached && !cached.pending && !opts.force && this.now() - cached.checkedAt < this.keyRefreshMs) {
      return cached;
    }
    const bundle = await this.client.getKeys(peerId);
    return this.serial(async () => {
      const pins = this.pins!;
      const pin = pins[String(peerId)];
      if (!bundle) {
        // Unpublished since we pinned it: keep using the pinned key (a relay cannot downgrade us).
        if (pin && !pin.pending) return pin;
        if (pin?.pending) throw this.changed(peerId);
        return null;
      }
      this.checkBundle(peerId, bundle);
      const now = this.now();
      if (!pin) {
        const fresh: Pin = {
          identityKey: bundle.identity_key,
          encryptionKey: bundle.encryption_key,
          version: bundle.version,
          pinnedAt: now,
          checkedAt: now,
        };
        pins[String(peerId)] = fresh;
        await this.store.savePins(pins);
        return fresh;
      }
      if (bundle.identity_key !== pin.identityKey) {
        if (pin.pending?.identityKey !== bundle.identity_key) {
          pin.pending = {
            identityKey: bundle.identity_key,
            encryptionKey: bundle.encryption_key,
            version: bundle.version,
            seenAt: now,
          };
          await this.store.savePins(pins);
        }
        throw this.changed(peerId);
      }
      if (pin.pending) {
        // The directory is back to the pinned identity: forget the refused one.
        delete pin.pending;
      }
      if (bundle.version < pin.version) {
        throw new E2eError(
          'key_rollback',
          `the relay served user ${peerId}'s key version ${bundle.version}, older than ${pin.version} seen before`,
          peerId,
        );
      }
      pin.encryptionKey = bundle.encryption_key;
      pin.version = bundle.version;
      pin.checkedAt = now;
      await this.store.savePins(pins);
      return pin;
    });
  }

  private changed(peerId: number): E2eError {
    return new E2eError(
      'key_changed',
      `user ${peerId}'s identity key changed: compare the safety number with them, then accept it (keys accept ${peerId})`,
      peerId,
    );
  }

  private async relayHasKeys(): Promise<boolean> {
    return (await this.client.capabilities()).features.includes('e2e');
  }

  private checkText(text: string): void {
    if ([...text].length > MAX_TEXT_CHARS) {
      throw new E2eError('too_long', `a message holds at most ${MAX_TEXT_CHARS} characters`);
    }
  }

  /**
   * The recipients' encryption keys, or why the message goes in plaintext (preferred) — required
   * throws no_keys instead. A changed identity key always throws.
   */
  private async recipients(ids: readonly number[]): Promise<Map<number, string> | string> {
    if (!(await this.relayHasKeys())) {
      if (this.policy === 'required') {
        throw new E2eError('no_keys', 'this relay has no end-to-end key directory; nothing was sent');
      }
      return 'the relay has no end-to-end key directory';
    }
    await this.init();
    const keys = new Map<number, string>();
    const missing: number[] = [];
    for (const id of ids) {
      const pin = await this.peerKey(id);
      if (pin) keys.set(id, pin.encryptionKey);
      else missing.push(id);
    }
    if (missing.length === 0) return keys;
    const who = missing.length === 1 ? `user ${missing[0]} has` : `users ${missing.join(', ')} have`;
    if (this.policy === 'required') {
      throw new E2eError('no_keys', `${who} published no end-to-end keys; nothing was sent`, missing[0]);
    }
    return `${who} published no end-to-end keys`;
  }

  private seal(recipients: Map<number, string>, group: number | null, body: Body): string {
    const id = this.me();
    return JSON.stringify(
      sealEnvelope({
        from: this.userId,
        identityPrivate: privateKeyOf(id.identity.private),
        recipients,
        group,
        body,
      }),
    );
  }

  /** POST /send, encrypted per policy. */
  async send(
    toId: number,
    text: string,
    opts: { idempotencyKey?: string } = {},
  ): Promise<E2eSent<SendResult>> {
    if (this.policy === 'off') return this.plain(await this.client.send(toId, text, opts), null);
    this.checkText(text);
    const to = await this.recipients([toId]);
    if (typeof to === 'string') return this.plain(await this.client.send(toId, text, opts), to);
    const e2e = this.seal(to, null, { text, ts: this.now() });
    return this.sealed(await this.client.send(toId, E2E_PLACEHOLDER, { ...opts, e2e }));
  }

  /** POST /groups/{gid}/send, encrypted to every other current member per policy. */
  async sendGroup(
    gid: number,
    text: string,
    opts: { mentionIds?: number[]; idempotencyKey?: string } = {},
  ): Promise<E2eSent<GroupSendResult>> {
    if (this.policy === 'off') return this.plain(await this.client.sendGroup(gid, text, opts), null);
    this.checkText(text);
    const to = await this.recipients(await this.otherMembers(gid));
    if (typeof to === 'string') return this.plain(await this.client.sendGroup(gid, text, opts), to);
    const e2e = this.seal(to, gid, { text, ts: this.now() });
    return this.sealed(await this.client.sendGroup(gid, E2E_PLACEHOLDER, { ...opts, e2e }));
  }

  /** POST /send/file: the file is encrypted to a temporary copy first; the relay gets only ciphertext. */
  async sendFile(
    toId: number,
    file: { path: string; filename?: string; contentType?: string },
    text = '',
    opts: { idempotencyKey?: string } = {},
  ): Promise<E2eSent<SendResult>> {
    if (this.policy === 'off') return this.plain(await this.client.sendFile(toId, file, text, opts), null);
    this.checkText(text);
    const to = await this.recipients([toId]);
    if (typeof to === 'string') return this.plain(await this.client.sendFile(toId, file, text, opts), to);
    return this.withEncryptedFile(file, async (path, secret) => {
      const e2e = this.seal(to, null, { text, ts: this.now(), file: secret });
      const r = await this.client.sendFile(
        toId,
        { path, filename: ENCRYPTED_FILENAME, contentType: 'application/octet-stream' },
        E2E_PLACEHOLDER,
        { ...opts, e2e },
      );
      return this.sealed(r);
    });
  }

  /** POST /groups/{gid}/send/file, encrypted like sendFile() to every other current member. */
  async sendGroupFile(
    gid: number,
    file: { path: string; filename?: string; contentType?: string },
    text = '',
    opts: { mentionIds?: number[]; idempotencyKey?: string } = {},
  ): Promise<E2eSent<GroupSendResult>> {
    if (this.policy === 'off')
      return this.plain(await this.client.sendGroupFile(gid, file, text, opts), null);
    this.checkText(text);
    const to = await this.recipients(await this.otherMembers(gid));
    if (typeof to === 'string') return this.plain(await this.client.sendGroupFile(gid, file, text, opts), to);
    return this.withEncryptedFile(file, async (path, secret) => {
      const e2e = this.seal(to, gid, { text, ts: this.now(), file: secret });
      const r = await this.client.sendGroupFile(
        gid,
        { path, filename: ENCRYPTED_FILENAME, contentType: 'application/octet-stream' },
        E2E_PLACEHOLDER,
        { ...opts, e2e },
      );
      return this.sealed(r);
    });
  }

  private async otherMembers(gid: number): Promise<number[]> {
    const detail = await this.client.group(gid);
    return detail.members.map((m) => m.id).filter((id) => id !== this.userId);
  }

  private plain<R>(result: R, reason: string | null): E2eSent<R> {
    return { result, encrypted: false, plaintextReason: reason };
  }

  private sealed<R>(result: R): E2eSent<R> {
    return { result, encrypted: true, plaintextReason: null };
  }

  /** Encrypts `file` into a private temporary folder, runs `send`, and removes the copy whatever happens. */
  private async withEncryptedFile<R>(
    file: { path: string; filename?: string; contentType?: string },
    send: (path: string, secret: FileSecret) => Promise<R>,
  ): Promise<R> {
    const dir = await mkdtemp(join(tmpdir(), 'openwechat-e2e-'));
    try {
      const key = randomBytes(32);
      const hash = createHash('sha256');
      let size = 0;
      const out = join(dir, ENCRYPTED_FILENAME);
      let source: AsyncIterable<Buffer>;
      try {
        source = createReadStream(file.path);
      } catch (err) {
        throw new ClientError(
          'unsupported',
          'unsupported',
          `cannot read ${file.path}: ${(err as Error).message}`,
        );
      }
      async function* counted(): AsyncIterable<Buffer> {
        for await (const piece of source) {
          hash.update(piece);
          size += piece.length;
          yield piece;
        }
      }
      try {
        await pipeline(Readable.from(encryptStream(key, counted())), createWriteStream(out, { mode: 0o600 }));
      } catch (err) {
        throw new ClientError(
          'unsupported',
          'unsupported',
          `cannot read ${file.path}: ${(err as Error).message}`,
        );
      }
      return await send(out, {
        name: file.filename ?? basename(file.path),
        size,
        content_type: file.contentType ?? 'application/octet-stream',
        sha256: hash.digest('hex'),
        key: key.toString('base64'),
        chunk: FILE_CHUNK,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Decrypts and verifies a delivered message (a StreamConsumer Delivery or an inbox Message). Throws
   * E2eError when it must not be accepted (tampered, replayed, forged sender, changed key, plaintext
   * under `required`): the caller then stores nothing and lets the user know. A re-delivery of the
   * same message id (a resumed stream) opens again.
   */
  async open(input: Delivery | Message): Promise<OpenedMessage> {
    const m: Message = 'message' in input && 'via' in input ? input.message : (input as Message);
    if (!m.e2e) {
      if (this.policy === 'required' && m.fromId !== null) {
        throw new E2eError(
          'plaintext_refused',
          `message ${m.id ?? '?'} from user ${m.fromId} is not end-to-end encrypted (policy: required)`,
          m.fromId,
        );
      }
      return { message: m, text: m.content, encrypted: false, file: null, senderFingerprint: null };
    }
    if (this.policy === 'off') {
      return { message: m, text: m.content, encrypted: false, file: null, senderFingerprint: null };
    }
    await this.init();
    const fail = (code: E2eErrorCode, why: string) =>
      new E2eError(code, `message ${m.id ?? '?'} from user ${m.fromId ?? '?'}: ${why}`, m.fromId);
    const env = parseEnvelope(m.e2e);
    if (!env) throw fail('malformed', 'not an end-to-end envelope this client can read');
    if (env.from !== m.fromId) {
      throw fail('sender_mismatch', `the envelope claims to be from user ${env.from}; refused`);
    }
    if ((m.group?.id ?? null) !== env.group) {
      throw fail('not_a_recipient', 'encrypted for another conversation; refused');
    }
    const id = this.me();
    const r = openEnvelope(env, this.userId, [id.encryption, ...id.previous]);
    if (!r.ok) {
      const why = {
        malformed: 'not an end-to-end envelope this client can read',
        not_a_recipient: 'not encrypted to this account (sent before it joined, or to someone else)',
        tampered: 'the ciphertext does not authenticate (changed in transit or at rest); refused',
      }[r.why];
      throw fail(r.why, why);
    }
    let pin = await this.peerKey(env.from);
    if (!pin || !checkSignature(pin.identityKey, r)) {
      // The sender may have a new identity the cache has not seen yet: ask the directory before calling
      // the message forged (a new identity then surfaces as key_changed, refused until accepted).
      pin = await this.peerKey(env.from, { force: true });
      if (!pin) throw fail('bad_signature', 'the sender has no published identity key to verify it with');
      if (!checkSignature(pin.identityKey, r)) {
        throw fail(
          'bad_signature',
          "the signature does not verify with the sender's pinned identity key; refused",
        );
      }
    }
    const now = this.now();
    if (now - r.body.ts > this.replayWindowMs) {
      throw fail('expired', 'older than the replay window; refused');
    }
    await this.serial(async () => {
      const seen = this.seen!;
      const prior = seen[env.n];
      if (prior && (prior.messageId === null || prior.messageId !== m.id)) {
        throw fail('replayed', 'this message was already received; the copy is refused');
      }
      if (!prior) {
        seen[env.n] = { messageId: m.id, at: now };
        for (const [n, s] of Object.entries(seen)) if (now - s.at > this.replayWindowMs) delete seen[n];
        await this.store.saveSeen(seen);
      }
    });
    const file = r.body.file ? { ...r.body.file, fileId: m.attachment?.fileId ?? null } : null;
    return {
      message: { ...m, content: r.body.text },
      text: r.body.text,
      encrypted: true,
      file,
      senderFingerprint: fingerprint(env.from, pin.identityKey),
    };
  }

  /**
   * Downloads an opened message's encrypted attachment, decrypting and verifying every chunk, the end
   * and the whole file's SHA-256; `dest` appears only when all of it checked out.
   */
  async downloadFile(
    opened: OpenedMessage,
    dest: string,
  ): Promise<{ path: string; name: string; size: number }> {
    const f = opened.file;
    if (!f) throw new ClientError('unsupported', 'unsupported', 'this message has no encrypted attachment');
    if (!f.fileId)
      throw new ClientError('unsupported', 'unsupported', 'the relay stored no bytes for this attachment');
    const res = await this.client.openFile(f.fileId);
    if (res.status !== 200 || !res.body) {
      const body = await res.text().catch(() => '');
      throw new ClientError(
        'relay',
        'file_not_found',
        `GET /files/${f.fileId}: HTTP ${res.status} ${body.slice(0, 200)}`,
        {
          status: res.status,
        },
      );
    }
    await mkdir(dirname(dest), { recursive: true });
    const tmp = join(dirname(dest), `.${basename(dest)}.part-${process.pid}`);
    const hash = createHash('sha256');
    let size = 0;
    const key = Buffer.from(f.key, 'base64');
    async function* checked(): AsyncIterable<Buffer> {
      for await (const piece of decryptStream(
        key,
        Readable.fromWeb(res.body as import('node:stream/web').ReadableStream),
        f!.chunk,
      )) {
        hash.update(piece);
        size += piece.length;
        yield piece;
      }
    }
    try {
      await pipeline(Readable.from(checked()), createWriteStream(tmp, { mode: 0o600 }));
      if (size !== f.size || hash.digest('hex') !== f.sha256) throw new Error('tampered');
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, dest);
      return { path: dest, name: f.name, size };
    } catch (err) {
      await rm(tmp, { force: true });
      if ((err as Error).message === 'tampered') {
        throw new E2eError(
          'tampered',
          `attachment ${f.fileId}: the bytes do not decrypt to the file that was sent`,
        );
      }
      throw err;
    }
  }
}
