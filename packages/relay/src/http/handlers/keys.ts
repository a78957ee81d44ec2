// The end-to-end key directory (docs/e2e.md): publish my signed key bundle, fetch anyone's. JSON mode
// is the interface (the reference has no such endpoints, and text-mode clients never see them); a
// text-mode request gets a short plain summary. The relay checks the bundle's signature but holds no
// private key and reads no message.

import { PutKeysBody, RelayError, type KeyBundleJson } from '@openwechat/protocol';
import type { KeyBundleRecord } from '../../domain/keys.ts';
import type { KeyStore, UserRecord, UserStore } from '../../store/types.ts';
import { fromSchema, jsonBody, type Issues } from '../input.ts';
import type { Output, StoreCtx } from '../route.ts';

type AuthedCtx = StoreCtx<UserStore & KeyStore> & { user: UserRecord };

export interface PutKeysInput {
  identityKey: string;
  encryptionKey: string;
  version: number;
  signature: string;
}

export function parsePutKeys(req: { body: unknown }, issues: Issues): PutKeysInput {
  const body = jsonBody(issues, req.body);
  if (!body) return { identityKey: '', encryptionKey: '', version: 0, signature: '' };
  const b = fromSchema(issues, 'body', PutKeysBody, body);
  return {
    identityKey: b.identity_key ?? '',
    encryptionKey: b.encryption_key ?? '',
    version: b.version ?? 0,
    signature: b.signature ?? '',
  };
}

export function keyBundleJson(k: KeyBundleRecord): KeyBundleJson {
  return {
    user_id: k.userId,
    identity_key: k.identityKey,
    encryption_key: k.encryptionKey,
    version: k.version,
    signature: k.signature,
    updated_at: new Date(k.updatedAt).toISOString(),
    identity_since: new Date(k.identitySince).toISOString(),
  };
}

function keysText(k: KeyBundleRecord): string {
  return [
    `用户ID：${k.userId}`,
    `身份公钥：${k.identityKey}`,
    `加密公钥：${k.encryptionKey}`,
    `版本：${k.version}`,
  ].join('\n');
}

export async function putKeys(ctx: AuthedCtx, input: PutKeysInput): Promise<Output> {
  const { keys, identityChanged } = await ctx.services.store.putKeyBundle(
    { userId: ctx.user.id, ...input },
    ctx.services.now(),
  );
  return {
    text: `密钥已发布${identityChanged ? '（身份密钥已更换）' : ''}\n${keysText(keys)}`,
    json: { keys: keyBundleJson(keys), identity_changed: identityChanged },
  };
}

export async function getKeys(ctx: AuthedCtx, input: { userId: number }): Promise<Output> {
  const keys = await ctx.services.store.getKeyBundle(input.userId);
  if (!keys) throw new RelayError('keys_not_found');
  return { text: keysText(keys), json: { keys: keyBundleJson(keys) } };
}
