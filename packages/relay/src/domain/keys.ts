// The key directory's rules (docs/e2e.md), as pure functions both store backends call inside their
// transaction. The relay cannot read a ciphertext, but it can refuse a key bundle that does not verify,
// so a typo or a truncated key never reaches the peers that fetch it.

import { createPublicKey, verify } from 'node:crypto';
import { keyBundleSigningInput, RelayError } from '@openwechat/protocol';

export interface KeyBundleRecord {
  userId: number;
  /** Ed25519 public key, base64 of the raw 32 bytes. */
  identityKey: string;
  /** X25519 public key, base64 of the raw 32 bytes. */
  encryptionKey: string;
  version: number;
  /** Ed25519 signature by identityKey over keyBundleSigningInput(), base64. */
  signature: string;
  updatedAt: number;
  /** When this identity key was first published (a new identity resets it: the change is visible). */
  identitySince: number;
}

export type NewKeyBundle = Omit<KeyBundleRecord, 'updatedAt' | 'identitySince'>;

/** Raw public keys carried inside SPKI DER: the fixed 12-byte prefixes of RFC 8410. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** base64 of exactly `n` bytes (canonical: re-encoding gives the same text), else null. */
function rawBytes(b64: string, n: number): Buffer | null {
  const buf = Buffer.from(b64, 'base64');
  return buf.length === n && buf.toString('base64') === b64 ? buf : null;
}

/** Throws invalid_key_bundle unless both keys are well formed and the signature verifies. */
export function checkKeyBundle(b: NewKeyBundle): void {
  const identity = rawBytes(b.identityKey, 32);
  const encryption = rawBytes(b.encryptionKey, 32);
  const signature = rawBytes(b.signature, 64);
  if (!identity) throw new RelayError('invalid_key_bundle', '密钥包无效：identity_key 须为 32 字节的 base64');
  if (!encryption)
    throw new RelayError('invalid_key_bundle', '密钥包无效：encryption_key 须为 32 字节的 base64');
  if (!signature) throw new RelayError('invalid_key_bundle', '密钥包无效：signature 须为 64 字节的 base64');
  let ok = false;
  try {
    // Both must be valid curve points for Node to accept them as keys.
    createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, encryption]), format: 'der', type: 'spki' });
    const pub = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, identity]),
      format: 'der',
      type: 'spki',
    });
    ok = verify(null, keyBundleSigningInput(b), pub, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new RelayError('invalid_key_bundle', '密钥包无效：签名校验失败');
}

/**
 * What publishing `next` over `prior` stores. The same identity key may only move its version forward
 * (a rotated encryption key), or repeat the stored bundle exactly (a retry). A different identity key
 * (a lost device, a new install) replaces the bundle at any version and restarts identitySince, which
 * is how peers and the directory show the change. The account's token is the authority here; what a
 * peer trusts is decided by its own pins (TOFU), not by the relay.
 */
export function decideKeyBundle(
  prior: KeyBundleRecord | null,
  next: NewKeyBundle,
  now: number,
): { keys: KeyBundleRecord; identityChanged: boolean; write: boolean } {
  checkKeyBundle(next);
  if (!prior)
    return { keys: { ...next, updatedAt: now, identitySince: now }, identityChanged: false, write: true };
  if (prior.identityKey !== next.identityKey) {
    return { keys: { ...next, updatedAt: now, identitySince: now }, identityChanged: true, write: true };
  }
  if (
    next.version === prior.version &&
    next.encryptionKey === prior.encryptionKey &&
    next.signature === prior.signature
  ) {
    return { keys: prior, identityChanged: false, write: false };
  }
  if (next.version <= prior.version) {
    throw new RelayError('key_version_stale', `密钥版本必须大于已发布的版本（当前 ${prior.version}）`);
  }
  return {
    keys: { ...next, updatedAt: now, identitySince: prior.identitySince },
    identityChanged: false,
    write: true,
  };
}
