// The end-to-end construction (docs/e2e.md), from Node's own crypto only — no home-made primitive:
//
//   identity   Ed25519 key pair (long-term); signs the key bundle and every message.
//   encryption X25519 key pair, signed by the identity key in the published bundle (rotatable).
//   message    a fresh 32-byte message key encrypts the body with ChaCha20-Poly1305 (RFC 8439). The
//              message key is wrapped to each recipient as a sealed box: a fresh ephemeral X25519 key
//              per message, HKDF-SHA256 (RFC 5869) of the shared secret, salt = ephemeral ‖ recipient
//              public key, then ChaCha20-Poly1305 of the message key (the KEM/DEM shape of HPKE
//              base mode, RFC 9180, with HKDF in place of its labelled extract/expand).
//   binding    the header (version, sender, recipients, group, client nonce, ephemeral key, every
//              wrapped key) is the AEAD's associated data; the body inside carries an Ed25519
//              signature by the sender's identity key over the header hash and the body, so the
//              sender is authenticated to every recipient (not only "someone who knew the key").
//   files      STREAM (Hoang, Reyhanitabar, Rogaway, Vizár 2015, as in age): 64 KiB chunks, each
//              ChaCha20-Poly1305 under a fresh file key with nonce = 7 zero bytes ‖ counter (u32 BE) ‖
//              last-chunk flag, so chunks cannot be reordered, dropped or the file cut short.
// Everything on the wire is base64 (standard alphabet) inside one JSON envelope.

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

export const E2E_VERSION = 1;
export const ALG = 'x25519-hkdf-sha256-chacha20poly1305-ed25519';
const TAG = 16;
const ZERO_NONCE = Buffer.alloc(12);

export const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** base64 of exactly `n` bytes (canonical), else null. */
export function unb64(s: unknown, n?: number): Buffer | null {
  if (typeof s !== 'string') return null;
  const buf = Buffer.from(s, 'base64');
  if (buf.toString('base64') !== s) return null;
  if (n !== undefined && buf.length !== n) return null;
  return buf;
}

// Keys cross Node's API as JWK (RFC 8037 OKP): importing and exporting DER goes through OpenSSL's
// decoders, ~0.5–2 ms a key on the bench machine, JWK in ~0.1 ms. Parsed keys are kept (bounded), so a
// running session parses its own and each peer's keys once.
const parsed = new Map<string, KeyObject>();
function remember(id: string, make: () => KeyObject): KeyObject {
  let k = parsed.get(id);
  if (!k) {
    k = make();
    if (parsed.size >= 2048) parsed.clear();
    parsed.set(id, k);
  }
  return k;
}

export function rawPublic(k: KeyObject): string {
  return Buffer.from(k.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}

function okpPublic(crv: 'Ed25519' | 'X25519', raw: string): KeyObject {
  return remember(`${crv}:${raw}`, () => {
    const bytes = unb64(raw, 32);
    if (!bytes) throw new Error('not a 32-byte base64 key');
    return createPublicKey({ key: { kty: 'OKP', crv, x: bytes.toString('base64url') }, format: 'jwk' });
  });
}

export const ed25519Public = (raw: string): KeyObject => okpPublic('Ed25519', raw);
export const x25519Public = (raw: string): KeyObject => okpPublic('X25519', raw);

/** A private key kept as PKCS#8 DER, base64 (the key store's form). */
export interface KeyPairB64 {
  public: string;
  private: string;
}

export function newKeyPair(kind: 'ed25519' | 'x25519'): KeyPairB64 {
  const { publicKey, privateKey } = generateKeyPairSync(kind as 'ed25519');
  return { public: rawPublic(publicKey), private: b64(privateKey.export({ format: 'der', type: 'pkcs8' })) };
}

export function privateKeyOf(pkcs8: string): KeyObject {
  return remember(`private:${pkcs8}`, () =>
    createPrivateKey({ key: Buffer.from(pkcs8, 'base64'), format: 'der', type: 'pkcs8' }),
  );
}

export function signBytes(priv: KeyObject, data: Uint8Array): string {
  return b64(sign(null, data, priv));
}

export function verifyBytes(pub: KeyObject, data: Uint8Array, sig: string): boolean {
  const s = unb64(sig, 64);
  if (!s) return false;
  try {
    return verify(null, data, pub, s);
  } catch {
    return false;
  }
}

export function sha256(...parts: Array<Uint8Array | string>): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function seal(key: Uint8Array, nonce: Uint8Array, plain: Uint8Array, aad?: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  if (aad) c.setAAD(aad, { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** null when the tag does not verify (tampered, wrong key, wrong associated data). */
export function unseal(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad?: Uint8Array,
): Buffer | null {
  if (sealed.length < TAG) return null;
  const body = sealed.subarray(0, sealed.length - TAG);
  try {
    const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    if (aad) d.setAAD(aad, { plaintextLength: body.length });
    return Buffer.concat([d.update(body), d.final()]);
  } catch {
    return null;
  }
}

function wrapKey(shared: Buffer, epk: string, recipientKey: string): Buffer {
  return Buffer.from(
    hkdfSync(
      'sha256',
      shared,
      Buffer.concat([unb64(epk, 32)!, unb64(recipientKey, 32)!]),
      'openwechat-e2e-v1 wrap',
      32,
    ),
  );
}

/** The message envelope: what travels in the `e2e` field (JSON). */
export interface Envelope {
  v: number;
  alg: string;
  /** Sender's account id. */
  from: number;
  /** Recipients' account ids, ascending (a group message: every member it was encrypted to). */
  to: number[];
  /** The group of a group message, else null. */
  group: number | null;
  /** Client nonce, 16 random bytes: the replay key. */
  n: string;
  /** Ephemeral X25519 public key. */
  epk: string;
  /** Recipient id → message key sealed to that recipient's encryption key. */
  keys: Record<string, string>;
  /** Body nonce. */
  iv: string;
  /** ChaCha20-Poly1305(message key, iv, inner, aad = header hash). */
  ct: string;
}

/** What the signature and the AEAD bind: every header field, wrapped keys included, in fixed order. */
export function headerHash(e: Omit<Envelope, 'iv' | 'ct'>): Buffer {
  const keys = Object.keys(e.keys)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => [k, e.keys[k]]);
  return sha256(
    'openwechat-e2e-v1 header\n',
    JSON.stringify([e.v, e.alg, e.from, e.to, e.group, e.n, e.epk, keys]),
  );
}

/** The decrypted body. `ts` is the sender's clock (ms); the replay window is measured against it. */
export interface Body {
  text: string;
  ts: number;
  file?: FileSecret;
}

/** What a recipient needs to fetch and check an encrypted attachment. */
export interface FileSecret {
  name: string;
  size: number;
  content_type: string;
  /** SHA-256 of the plaintext, hex. */
  sha256: string;
  /** The file key, base64 (32 bytes). */
  key: string;
  /** Plaintext bytes per chunk. */
  chunk: number;
}

function signingInput(header: Buffer, body: string): Buffer {
  return Buffer.concat([Buffer.from('openwechat-e2e-v1 message\n'), header, sha256(body)]);
}

/** Encrypts `body` from `from` (its identity private key) to recipients (id → X25519 public, base64). */
export function sealEnvelope(input: {
  from: number;
  identityPrivate: KeyObject;
  recipients: ReadonlyMap<number, string>;
  group: number | null;
  body: Body;
}): Envelope {
  const msgKey = randomBytes(32);
  const eph = generateKeyPairSync('x25519');
  const epk = rawPublic(eph.publicKey);
  const n = b64(randomBytes(16));
  const to = [...input.recipients.keys()].sort((a, b) => a - b);
  const keys: Record<string, string> = {};
  for (const id of to) {
    const pk = input.recipients.get(id)!;
    const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: x25519Public(pk) });
    // The wrap binds who it is for and which message (sender, nonce): a wrap cannot be moved.
    keys[String(id)] = b64(
      seal(wrapKey(shared, epk, pk), ZERO_NONCE, msgKey, Buffer.from(`${input.from}|${n}|${id}`)),
    );
  }
  const header = { v: E2E_VERSION, alg: ALG, from: input.from, to, group: input.group, n, epk, keys };
  const hh = headerHash(header);
  const body = JSON.stringify(input.body);
  const inner = JSON.stringify({ body, sig: signBytes(input.identityPrivate, signingInput(hh, body)) });
  const iv = randomBytes(12);
  return { ...header, iv: b64(iv), ct: b64(seal(msgKey, iv, Buffer.from(inner), hh)) };
}

/** Why an envelope did not open (E2eError codes). */
export type OpenFailure = 'malformed' | 'not_a_recipient' | 'tampered';

/** Parses and shape-checks an envelope; null when it is not one. */
export function parseEnvelope(text: string): Envelope | null {
  let e: unknown;
  try {
    e = JSON.parse(text);
  } catch {
    return null;
  }
  if (!e || typeof e !== 'object') return null;
  const o = e as Record<string, unknown>;
  const ints = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x));
  if (
    typeof o.v !== 'number' ||
    typeof o.alg !== 'string' ||
    !Number.isSafeInteger(o.from) ||
    !ints(o.to) ||
    !(o.group === null || Number.isSafeInteger(o.group)) ||
    !unb64(o.n, 16) ||
    !unb64(o.epk, 32) ||
    !o.keys ||
    typeof o.keys !== 'object' ||
    !Object.values(o.keys).every((k) => unb64(k, 48)) ||
    !unb64(o.iv, 12) ||
    !unb64(o.ct)
  ) {
    return null;
  }
  return o as unknown as Envelope;
}

/**
 * Unwraps the message key with one of `myKeys` (X25519 private, PKCS#8 base64, newest first: a rotated
 * key still opens what was sent to it) and decrypts. The signature is checked by the caller, which
 * knows the sender's pinned identity key.
 */
export function openEnvelope(
  e: Envelope,
  me: number,
  myKeys: readonly KeyPairB64[],
): { ok: true; body: Body; bodyText: string; sig: string; header: Buffer } | { ok: false; why: OpenFailure } {
  if (e.v !== E2E_VERSION || e.alg !== ALG) return { ok: false, why: 'malformed' };
  const wrapped = e.keys[String(me)];
  if (!wrapped || !e.to.includes(me)) return { ok: false, why: 'not_a_recipient' };
  let msgKey: Buffer | null = null;
  for (const k of myKeys) {
    let shared: Buffer;
    try {
      shared = diffieHellman({ privateKey: privateKeyOf(k.private), publicKey: x25519Public(e.epk) });
    } catch {
      return { ok: false, why: 'malformed' };
    }
    msgKey = unseal(
      wrapKey(shared, e.epk, k.public),
      ZERO_NONCE,
      unb64(wrapped)!,
      Buffer.from(`${e.from}|${e.n}|${me}`),
    );
    if (msgKey) break;
  }
  if (!msgKey) return { ok: false, why: 'tampered' };
  const hh = headerHash(e);
  const inner = unseal(msgKey, unb64(e.iv)!, unb64(e.ct)!, hh);
  if (!inner) return { ok: false, why: 'tampered' };
  try {
    const o = JSON.parse(inner.toString('utf8')) as { body: string; sig: string };
    const body = JSON.parse(o.body) as Body;
    if (typeof body.text !== 'string' || typeof body.ts !== 'number' || typeof o.sig !== 'string') {
      return { ok: false, why: 'malformed' };
    }
    return { ok: true, body, bodyText: o.body, sig: o.sig, header: hh };
  } catch {
    return { ok: false, why: 'malformed' };
  }
}

export function checkSignature(
  identityKey: string,
  opened: { bodyText: string; sig: string; header: Buffer },
): boolean {
  return verifyBytes(ed25519Public(identityKey), signingInput(opened.header, opened.bodyText), opened.sig);
}

// ── Files: STREAM over ChaCha20-Poly1305 ────────────────────────────────────────────────────────────

export const FILE_CHUNK = 64 * 1024;

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(counter, 7);
  n[11] = last ? 1 : 0;
  return n;
}

/** Encrypts a byte stream chunk by chunk; yields the ciphertext. One chunk of look-ahead finds the last. */
export async function* encryptStream(
  key: Uint8Array,
  plain: AsyncIterable<Uint8Array>,
  chunk = FILE_CHUNK,
): AsyncIterable<Buffer> {
  let pending = Buffer.alloc(0);
  let counter = 0;
  for await (const piece of plain) {
    pending = pending.length ? Buffer.concat([pending, piece]) : Buffer.from(piece);
    while (pending.length > chunk) {
      yield seal(key, chunkNonce(counter++, false), pending.subarray(0, chunk));
      pending = pending.subarray(chunk);
    }
  }
  yield seal(key, chunkNonce(counter, true), pending);
}

/** The inverse; throws Error('tampered') when any chunk fails, is missing, reordered or cut short. */
export async function* decryptStream(
  key: Uint8Array,
  sealed: AsyncIterable<Uint8Array>,
  chunk = FILE_CHUNK,
): AsyncIterable<Buffer> {
  const size = chunk + TAG;
  let pending = Buffer.alloc(0);
  let counter = 0;
  for await (const piece of sealed) {
    pending = pending.length ? Buffer.concat([pending, piece]) : Buffer.from(piece);
    while (pending.length > size) {
      const plain = unseal(key, chunkNonce(counter++, false), pending.subarray(0, size));
      if (!plain) throw new Error('tampered');
      yield plain;
      pending = pending.subarray(size);
    }
  }
  const last = unseal(key, chunkNonce(counter, true), pending);
  if (!last) throw new Error('tampered');
  yield last;
}

// ── Fingerprints and safety numbers ─────────────────────────────────────────────────────────────────

/** 30 digits (6 groups of 5) for one account's identity key, as Signal's safety numbers do per party. */
function partyDigits(userId: number, identityKey: string): string {
  const h = sha256('openwechat-e2e-v1 fingerprint\n', String(userId), '\n', unb64(identityKey) ?? '');
  const groups: string[] = [];
  for (let i = 0; i < 6; i++) groups.push(String(h.readUIntBE(i * 5, 5) % 100_000).padStart(5, '0'));
  return groups.join(' ');
}

/** One identity's fingerprint: what a user reads aloud to show who they are. */
export function fingerprint(userId: number, identityKey: string): string {
  return partyDigits(userId, identityKey);
}

/** The pair's safety number: both parties' digits, lower id first, so both sides see the same 60. */
export function safetyNumber(a: { id: number; key: string }, b: { id: number; key: string }): string {
  const [x, y] = a.id <= b.id ? [a, b] : [b, a];
  return `${partyDigits(x.id, x.key)} ${partyDigits(y.id, y.key)}`;
}
