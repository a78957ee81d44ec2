// PostgreSQL: the end-to-end key directory (KeyStore, docs/e2e.md). One row per account: its signed
// public keys. The rules are domain/keys.ts's, decided on the row locked FOR UPDATE (two instances
// publishing for one account take turns; a first publish races on the primary key and retries once).

import type { PgDb } from './postgres-connection.ts';
import { decideKeyBundle } from '../domain/keys.ts';
import { KEY_BUNDLE_COLUMNS, toKeyBundle, type KeyBundleRow } from './rows.ts';
import type { KeyBundleRecord, KeyStore, NewKeyBundle } from './types.ts';

export class PgKeys implements KeyStore {
  constructor(private readonly db: PgDb) {}

  async putKeyBundle(
    bundle: NewKeyBundle,
    now: number,
  ): Promise<{ keys: KeyBundleRecord; identityChanged: boolean }> {
    return this.db.tx(async (c) => {
      // The user's row serialises publishes for one account, including the very first (no key row yet).
      await c.query('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [bundle.userId]);
      const { rows } = await c.query<KeyBundleRow>(
        `SELECT ${KEY_BUNDLE_COLUMNS} FROM key_bundles WHERE user_id = $1`,
        [bundle.userId],
      );
      const d = decideKeyBundle(rows[0] ? toKeyBundle(rows[0]) : null, bundle, now);
      if (d.write) {
        const k = d.keys;
        await c.query(
          `INSERT INTO key_bundles (user_id, identity_key, encryption_key, version, signature, updated_at,
                                    identity_since)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (user_id) DO UPDATE SET identity_key = excluded.identity_key,
             encryption_key = excluded.encryption_key, version = excluded.version,
             signature = excluded.signature, updated_at = excluded.updated_at,
             identity_since = excluded.identity_since`,
          [k.userId, k.identityKey, k.encryptionKey, k.version, k.signature, k.updatedAt, k.identitySince],
        );
      }
      return { keys: d.keys, identityChanged: d.identityChanged };
    });
  }

  async getKeyBundle(userId: number): Promise<KeyBundleRecord | null> {
    const { rows } = await this.db.pool.query<KeyBundleRow>(
      `SELECT ${KEY_BUNDLE_COLUMNS} FROM key_bundles WHERE user_id = $1`,
      [userId],
    );
    return rows[0] ? toKeyBundle(rows[0]) : null;
  }
}
