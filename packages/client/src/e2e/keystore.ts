// Where an E2E client keeps its secrets and what it has learned (docs/e2e.md): its own key pairs, the
// peers' pinned identity keys (trust on first use) and the nonces of messages already opened (replay
// protection). The store is pluggable; FileKeyStore keeps each part in its own JSON file in a folder
// that only its user can read (0700 folder, 0600 files, written atomically): the skill's data folder,
// the plugin's state directory, the bridge's data folder.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../durable.ts';
import type { KeyPairB64 } from './crypto.ts';

/** This account's keys. Private keys never leave the client. */
export interface Identity {
  userId: number;
  /** Ed25519: long-term; a new one is a new identity (peers see the change). */
  identity: KeyPairB64;
  /** X25519, signed by the identity key in the published bundle. */
  encryption: KeyPairB64 & { version: number };
  /** Earlier encryption keys, newest first, kept to open messages sent before a rotation. */
  previous: Array<KeyPairB64 & { version: number }>;
  createdAt: number;
}

/** A peer's pinned identity, and a different one seen since (refused until accepted). */
export interface Pin {
  identityKey: string;
  encryptionKey: string;
  version: number;
  pinnedAt: number;
  /** Refreshed from the directory (the encryption key may rotate under the same identity). */
  checkedAt: number;
  pending?: { identityKey: string; encryptionKey: string; version: number; seenAt: number };
}

/** A message nonce already opened, with the relay's message id it came with (a re-delivery of the same id is no replay). */
export interface SeenNonce {
  messageId: number | null;
  at: number;
}

export interface E2eKeyStore {
  loadIdentity(): Promise<Identity | null>;
  saveIdentity(identity: Identity): Promise<void>;
  loadPins(): Promise<Record<string, Pin>>;
  savePins(pins: Record<string, Pin>): Promise<void>;
  loadSeen(): Promise<Record<string, SeenNonce>>;
  saveSeen(seen: Record<string, SeenNonce>): Promise<void>;
}

/** The file names inside a FileKeyStore folder (the skill's UI must never serve the identity file). */
export const KEY_FILES = {
  identity: 'e2e_identity.json',
  pins: 'e2e_peers.json',
  seen: 'e2e_seen.json',
} as const;

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
}

// One-space indent: the layout the key files have always had (existing folders are read as they are).
const writeJsonAtomic = (path: string, value: unknown): Promise<void> =>
  writeFileAtomic(path, JSON.stringify(value, null, 1) + '\n', { mode: 0o600 });

export class FileKeyStore implements E2eKeyStore {
  private ready: Promise<void> | null = null;

  constructor(readonly dir: string) {}

  private async folder(): Promise<string> {
    this.ready ??= (async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
    })();
    await this.ready;
    return this.dir;
  }

  async loadIdentity(): Promise<Identity | null> {
    return readJson<Identity>(join(await this.folder(), KEY_FILES.identity));
  }
  async saveIdentity(identity: Identity): Promise<void> {
    await writeJsonAtomic(join(await this.folder(), KEY_FILES.identity), identity);
  }
  async loadPins(): Promise<Record<string, Pin>> {
    return (await readJson<Record<string, Pin>>(join(await this.folder(), KEY_FILES.pins))) ?? {};
  }
  async savePins(pins: Record<string, Pin>): Promise<void> {
    await writeJsonAtomic(join(await this.folder(), KEY_FILES.pins), pins);
  }
  async loadSeen(): Promise<Record<string, SeenNonce>> {
    return (await readJson<Record<string, SeenNonce>>(join(await this.folder(), KEY_FILES.seen))) ?? {};
  }
  async saveSeen(seen: Record<string, SeenNonce>): Promise<void> {
    await writeJsonAtomic(join(await this.folder(), KEY_FILES.seen), seen);
  }
}

/** Keeps everything in memory (tests, short-lived tools): a restart is a new identity. */
export class MemoryKeyStore implements E2eKeyStore {
  private identity: Identity | null = null;
  private pins: Record<string, Pin> = {};
  private seen: Record<string, SeenNonce> = {};
  async loadIdentity() {
    return this.identity ? structuredClone(this.identity) : null;
  }
  async saveIdentity(identity: Identity) {
    this.identity = structuredClone(identity);
  }
  async loadPins() {
    return structuredClone(this.pins);
  }
  async savePins(pins: Record<string, Pin>) {
    this.pins = structuredClone(pins);
  }
  async loadSeen() {
    return structuredClone(this.seen);
  }
  async saveSeen(seen: Record<string, SeenNonce>) {
    this.seen = structuredClone(seen);
  }
}
