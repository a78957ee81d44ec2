// The relay's side of end-to-end encryption (docs/e2e.md), over real sockets on the suite's backend:
// the key directory's answers and refusals, the opaque `e2e` field's checks, what text mode shows, and
// idempotent retries of encrypted sends. Bad input gets a clear error and changes nothing.

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { E2E_MAX_CHARS, E2E_PLACEHOLDER, keyBundleSigningInput } from '@openwechat/protocol';
import { suiteRelay } from '../helpers/fixtures.ts';
import { befriend, postFile, register, req } from '../relay/client.ts';

const raw = (k: KeyObject): string =>
  k.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');

function bundle(userId: number, id = generateKeyPairSync('ed25519'), version = 1) {
  const b = {
    userId,
    identityKey: raw(id.publicKey),
    encryptionKey: raw(generateKeyPairSync('x25519').publicKey),
    version,
  };
  return {
    identity_key: b.identityKey,
    encryption_key: b.encryptionKey,
    version,
    signature: sign(null, keyBundleSigningInput(b), id.privateKey).toString('base64'),
  };
}

const error = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;

describe('relay: e2e key directory and ciphertext field', () => {
  const relay = suiteRelay();

  it('lists e2e among the /health features', async () => {
    const r = await req(relay.url, 'GET', '/health');
    expect((JSON.parse(r.body) as { features: string[] }).features).toContain('e2e');
  });

  it('publishes, serves and versions key bundles; refuses bad ones without changing anything', async () => {
    const alice = await register(relay.url, 'keys_alice');
    const bob = await register(relay.url, 'keys_bob');
    const get = (id: number) => req(relay.url, 'GET', `/keys/${id}`, { token: bob.token, jsonMode: true });

    let r = await get(alice.id);
    expect([r.status, error(r.body)]).toEqual([404, 'keys_not_found']);
    expect((await req(relay.url, 'GET', `/keys/${alice.id}`, { token: 'nope', jsonMode: true })).status).toBe(
      401,
    );

    const id = generateKeyPairSync('ed25519');
    const b1 = bundle(alice.id, id, 1);
    const forged = { ...b1, encryption_key: bundle(alice.id).encryption_key };
    r = await req(relay.url, 'PUT', '/keys', { token: alice.token, json: forged, jsonMode: true });
    expect([r.status, error(r.body)]).toEqual([400, 'invalid_key_bundle']);
    r = await req(relay.url, 'PUT', '/keys', {
      token: alice.token,
      json: { ...b1, version: 0 },
      jsonMode: true,
    });
    expect(r.status).toBe(422);
    // Signed for Bob's account: refused for Alice's.
    r = await req(relay.url, 'PUT', '/keys', {
      token: alice.token,
      json: bundle(bob.id, id),
      jsonMode: true,
    });
    expect([r.status, error(r.body)]).toEqual([400, 'invalid_key_bundle']);
    expect((await get(alice.id)).status).toBe(404);

    r = await req(relay.url, 'PUT', '/keys', { token: alice.token, json: b1, jsonMode: true });
    expect(r.status, r.body).toBe(200);
    const put = JSON.parse(r.body) as { keys: Record<string, unknown>; identity_changed: boolean };
    expect(put.identity_changed).toBe(false);
    expect(put.keys).toMatchObject({ user_id: alice.id, ...b1 });
    r = await get(alice.id);
    expect(JSON.parse(r.body)).toEqual({ keys: put.keys });

    const b2 = bundle(alice.id, id, 2);
    expect(
      (await req(relay.url, 'PUT', '/keys', { token: alice.token, json: b2, jsonMode: true })).status,
    ).toBe(200);
    r = await req(relay.url, 'PUT', '/keys', {
      token: alice.token,
      json: bundle(alice.id, id, 2),
      jsonMode: true,
    });
    expect([r.status, error(r.body)]).toEqual([409, 'key_version_stale']);
    expect(JSON.parse((await get(alice.id)).body)).toMatchObject({
      keys: { version: 2, encryption_key: b2.encryption_key },
    });

    // A new identity (lost device) replaces it, visibly.
    r = await req(relay.url, 'PUT', '/keys', { token: alice.token, json: bundle(alice.id), jsonMode: true });
    expect((JSON.parse(r.body) as { identity_changed: boolean }).identity_changed).toBe(true);

    // Text mode: a plain summary, no JSON.
    r = await req(relay.url, 'GET', `/keys/${alice.id}`, { token: bob.token });
    expect(r.body).toMatch(/^用户ID：\d+\n身份公钥：/);
  });

  it('stores a ciphertext only with the placeholder content; text mode shows the placeholder', async () => {
    const alice = await register(relay.url, 'ct_alice');
    const bob = await register(relay.url, 'ct_bob');
    await befriend(relay.url, alice, bob);
    const envelope = '{"v":1,"opaque":"' + 'A'.repeat(100) + '"}';
    const send = (json: unknown, headers: Record<string, string> = {}) =>
      req(relay.url, 'POST', '/send', { token: alice.token, json, jsonMode: true, headers });
    const inbox = async () =>
      (
        JSON.parse(
          (await req(relay.url, 'GET', '/messages?after=0', { token: bob.token, jsonMode: true })).body,
        ) as {
          messages: Array<{ content: string; e2e?: string }>;
        }
      ).messages;
    const before = (await inbox()).length;

    let r = await send({ to_id: bob.id, content: 'the real text', e2e: envelope });
    expect([r.status, error(r.body)]).toEqual([400, 'e2e_content_mismatch']);
    r = await send({ to_id: bob.id, content: E2E_PLACEHOLDER, e2e: 'x'.repeat(E2E_MAX_CHARS + 1) });
    expect(r.status).toBe(422);
    r = await send({ to_id: bob.id, content: E2E_PLACEHOLDER, e2e: '' });
    expect(r.status).toBe(422);
    const form = await postFile(
      relay.url,
      alice,
      '/send/file',
      { to_id: String(bob.id), content: 'a caption in clear', e2e: envelope },
      { bytes: new Uint8Array([1, 2, 3]), name: 'encrypted.bin' },
      { jsonMode: true },
    );
    expect([form.status, error(form.body)]).toEqual([400, 'e2e_content_mismatch']);
    expect((await inbox()).length).toBe(before);

    r = await send({ to_id: bob.id, content: E2E_PLACEHOLDER, e2e: envelope }, { 'Idempotency-Key': 'k1' });
    expect(r.status, r.body).toBe(200);
    // A retry is encrypted afresh: another ciphertext under the same key gets the original answer.
    const again = await send(
      { to_id: bob.id, content: E2E_PLACEHOLDER, e2e: envelope.replace('AAAA', 'BBBB') },
      { 'Idempotency-Key': 'k1' },
    );
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    // …but a plaintext send under that key is another request.
    const plain = await send({ to_id: bob.id, content: E2E_PLACEHOLDER }, { 'Idempotency-Key': 'k1' });
    expect(error(plain.body)).toBe('idempotency_conflict');

    const msgs = await inbox();
    expect(msgs.length).toBe(before + 1);
    expect(msgs.at(-1)).toMatchObject({ content: E2E_PLACEHOLDER, e2e: envelope });

    // An encrypted file send may leave content empty: the placeholder is stored.
    const file = await postFile(
      relay.url,
      alice,
      '/send/file',
      { to_id: String(bob.id), e2e: envelope },
      { bytes: new Uint8Array([9, 9, 9]), name: 'encrypted.bin' },
      { jsonMode: true },
    );
    expect(file.status, file.body).toBe(200);
    expect((await inbox()).at(-1)).toMatchObject({ content: E2E_PLACEHOLDER, e2e: envelope });

    const text = (await req(relay.url, 'GET', '/messages', { token: bob.token })).body;
    expect(text).toContain(`内容：${E2E_PLACEHOLDER}`);
    expect(text).not.toContain('opaque');
  });
});
