// End-to-end key bundles (KeyStore, docs/e2e.md), one implementation over both backends (sql.ts): the
// published bundle is read and replaced under the rules of decideKeyBundle() in one transaction, with
// the user's row locked first on PostgreSQL (as a send locks it), so two publications take turns.

import { decideKeyBundle } from '../domain/keys.ts';
import type { SqlDb } from './sql.ts';
import { step } from './steps.ts';
import type { KeyBundleRecord, KeyStore, NewKeyBundle } from './types.ts';

interface KeyBundleRow {
  user_id: number;
  identity_key: string;
  encryption_key: string;
  version: number;
  signature: string;
  updated_at: number;
  identity_since: number;
}

const KEY_BUNDLE_COLUMNS =
  'user_id, identity_key, encryption_key, version, signature, updated_at, identity_since';

function toKeyBundle(row: KeyBundleRow): KeyBundleRecord {
  return {
    userId: Number(row.user_id),
    identityKey: row.identity_key,
    encryptionKey: row.encryption_key,
    version: Number(row.version),
    signature: row.signature,
    updatedAt: Number(row.updated_at),
    identitySince: Number(row.identity_since),
  };
}

const GET = `SELECT ${KEY_BUNDLE_COLUMNS} FROM key_bundles WHERE user_id = $1`;

export class Keys implements KeyStore {
  constructor(private readonly sql: SqlDb) {}

  putKeyBundle(
    bundle: NewKeyBundle,
    now: number,
  ): Promise<{ keys: KeyBundleRecord; identityChanged: boolean }> {
    return this.sql.tx(function* (q) {
      yield* step(q.all('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [bundle.userId]));
      const row = yield* step(q.get<KeyBundleRow>(GET, [bundle.userId]));
      const d = decideKeyBundle(row ? toKeyBundle(row) : null, bundle, now);
      if (d.write) {
        const k = d.keys;
        yield* step(
          q.run(
            `INSERT INTO key_bundles (user_id, identity_key, encryption_key, version, signature, updated_at,
                                      identity_since)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id) DO UPDATE SET identity_key = excluded.identity_key,
               encryption_key = excluded.encryption_key, version = excluded.version,
               signature = excluded.signature, updated_at = excluded.updated_at,
               identity_since = excluded.identity_since`,
            [k.userId, k.identityKey, k.encryptionKey, k.version, k.signature, k.updatedAt, k.identitySince],
          ),
        );
      }
      return { keys: d.keys, identityChanged: d.identityChanged };
    });
  }

  async getKeyBundle(userId: number): Promise<KeyBundleRecord | null> {
    const row = await this.sql.get<KeyBundleRow>(GET, [userId]);
    return row ? toKeyBundle(row) : null;
  }
}
