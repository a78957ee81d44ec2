// SQLite: the end-to-end key directory (KeyStore, docs/e2e.md). One row per account: its signed public
// keys. The rules (what may replace what) are domain/keys.ts's, applied inside one write transaction.

import type Database from 'better-sqlite3';
import { decideKeyBundle } from '../domain/keys.ts';
import { immediate } from './sqlite-messages.ts';
import { KEY_BUNDLE_COLUMNS, toKeyBundle, type KeyBundleRow } from './rows.ts';
import type { KeyBundleRecord, KeyStore, NewKeyBundle } from './types.ts';

type DB = Database.Database;

export class SqliteKeys implements KeyStore {
  private readonly get: Database.Statement<[number], KeyBundleRow>;
  private readonly put: (b: NewKeyBundle, now: number) => { keys: KeyBundleRecord; identityChanged: boolean };

  constructor(db: DB) {
    this.get = db.prepare<[number], KeyBundleRow>(
      `SELECT ${KEY_BUNDLE_COLUMNS} FROM key_bundles WHERE user_id = ?`,
    );
    const upsert = db.prepare<[number, string, string, number, string, number, number]>(
      `INSERT INTO key_bundles (user_id, identity_key, encryption_key, version, signature, updated_at,
                                identity_since)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET identity_key = excluded.identity_key,
         encryption_key = excluded.encryption_key, version = excluded.version,
         signature = excluded.signature, updated_at = excluded.updated_at,
         identity_since = excluded.identity_since`,
    );
    this.put = immediate(db, (b: NewKeyBundle, now: number) => {
      const row = this.get.get(b.userId);
      const d = decideKeyBundle(row ? toKeyBundle(row) : null, b, now);
      if (d.write) {
        const k = d.keys;
        upsert.run(
          k.userId,
          k.identityKey,
          k.encryptionKey,
          k.version,
          k.signature,
          k.updatedAt,
          k.identitySince,
        );
      }
      return { keys: d.keys, identityChanged: d.identityChanged };
    });
  }

  async putKeyBundle(
    bundle: NewKeyBundle,
    now: number,
  ): Promise<{ keys: KeyBundleRecord; identityChanged: boolean }> {
    return this.put(bundle, now);
  }

  async getKeyBundle(userId: number): Promise<KeyBundleRecord | null> {
    const row = this.get.get(userId);
    return row ? toKeyBundle(row) : null;
  }
}
