// End-to-end encryption in the MCP server (issue 27): two servers (the built bundle, the official SDK
// client over stdio) with OPENWECHAT_E2E=preferred exchange an encrypted message and file through a real
// relay, which stores only the placeholder; `required` refuses plaintext both ways; keys stay in the data
// folder (0600) and never appear in a tool result.

import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eSession, RelayClient } from '@openwechat/client';
import { E2E_PLACEHOLDER } from '@openwechat/protocol';
import { suiteRelay } from '../helpers/fixtures.ts';
import {
  befriend,
  call,
  connectStdio,
  newUser,
  tempDir,
  until,
  type McpConn,
  type RelayUser,
} from './harness.ts';

const relay = suiteRelay();

interface Msg {
  id: number;
  from_id: number | null;
  content: string;
  encrypted?: boolean;
  attachment: { file_id: string | null; name: string; size: number | null } | null;
}
const msgs = (s: Record<string, unknown>): Msg[] => (s.messages as Msg[]) ?? [];

describe('MCP server with end-to-end encryption', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let alice: RelayUser;
  let bob: RelayUser;
  let carol: RelayUser;
  let dave: RelayUser;
  let a: McpConn;
  let b: McpConn;
  let c: McpConn;

  const env = (u: RelayUser, policy: string, name: string): Record<string, string> => ({
    OPENWECHAT_BASE_URL: relay.url,
    OPENWECHAT_TOKEN: u.token,
    OPENWECHAT_DATA_DIR: join(dir.dir, name),
    OPENWECHAT_MCP_FILE_ROOTS: join(dir.dir, 'share'),
    OPENWECHAT_E2E: policy,
  });

  beforeAll(async () => {
    dir = await tempDir();
    await mkdir(join(dir.dir, 'share'));
    alice = await newUser(relay.url, 'alice');
    bob = await newUser(relay.url, 'bob');
    carol = await newUser(relay.url, 'carol');
    dave = await newUser(relay.url, 'dave');
    await befriend(alice, bob);
    await befriend(carol, dave);
    // The friendship's plaintext hellos are read away before the servers start.
    for (const u of [alice, bob, carol, dave]) {
      const p = await u.client.readInbox({ limit: 50 });
      const last = Math.max(0, ...p.messages.map((m) => m.id ?? 0));
      if (last) await u.client.ack(last);
    }
    a = await connectStdio(env(alice, 'preferred', 'a'));
    b = await connectStdio(env(bob, 'preferred', 'b'));
    c = await connectStdio(env(carol, 'required', 'c'));
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), c?.close()]);
    await dir?.remove();
  });

  it('preferred: an encrypted message; the relay stores the placeholder; the reader sees the text', async () => {
    // Both have published their keys (at start-up; encryption_keys waits for it).
    const ka = await call(a.client, 'encryption_keys', {});
    const kb = await call(b.client, 'encryption_keys', { peer_id: alice.id });
    expect(ka.isError, ka.text).toBe(false);
    expect(String(ka.structured.fingerprint).replace(/ /g, '')).toMatch(/^\d{30}$/);
    expect(String(kb.structured.safety_number).replace(/ /g, '')).toMatch(/^\d{60}$/);

    const text = `the secret plan ${Date.now()}`;
    const sent = await call(a.client, 'send_message', { to_id: bob.id, content: text });
    expect(sent.isError, sent.text).toBe(false);
    expect(sent.structured).toMatchObject({ encrypted: true, plaintext_reason: null });
    expect(sent.text).toContain('[end-to-end encrypted]');

    // What the relay holds for bob: the placeholder and an opaque envelope, never the text.
    const stored = await bob.client.readInbox({ after: 0, limit: 50 });
    const copy = stored.messages.find((m) => m.id === sent.structured.message_id)!;
    expect(copy.content).toBe(E2E_PLACEHOLDER);
    expect(copy.e2e).toBeTruthy();
    expect(copy.e2e).not.toContain('secret plan');

    const read = await call(b.client, 'read_inbox', {});
    const got = msgs(read.structured).find((m) => m.id === sent.structured.message_id)!;
    expect(got).toMatchObject({ content: text, from_id: alice.id, encrypted: true });
    expect(read.text).toContain(text);
    expect(read.text).toContain('e2e="encrypted"');
    expect(read.structured.refused).toEqual([]);

    // Both sides compute the same safety number.
    const sa = await call(a.client, 'encryption_keys', { peer_id: bob.id });
    expect(sa.structured.safety_number).toBe(kb.structured.safety_number);
  });

  it('preferred: a file is encrypted on upload and decrypted on download', async () => {
    const bytes = Buffer.from(`confidential report ${Date.now()}\n`.repeat(5000));
    const src = join(dir.dir, 'share', 'report.txt');
    await writeFile(src, bytes);
    const sent = await call(a.client, 'send_file', { to_id: bob.id, path: src, content: 'the report' });
    expect(sent.isError, sent.text).toBe(false);
    expect(sent.structured.encrypted).toBe(true);

    const stored = await bob.client.readInbox({ after: 0, limit: 50 });
    const copy = stored.messages.find((m) => m.id === sent.structured.message_id)!;
    expect(copy.attachment?.name).toBe('encrypted.bin');
    const raw = await bob.client.openFile(copy.attachment!.fileId!);
    const ciphertext = Buffer.from(await raw.arrayBuffer());
    expect(ciphertext.includes(Buffer.from('confidential report'))).toBe(false);

    const read = await call(b.client, 'read_inbox', {});
    const got = msgs(read.structured).find((m) => m.id === sent.structured.message_id)!;
    expect(got, JSON.stringify([sent.structured, read.structured])).toMatchObject({
      content: 'the report',
      encrypted: true,
    });
    expect(got.attachment).toMatchObject({ name: 'report.txt', size: bytes.length });
    const dl = await call(b.client, 'download_file', { file_id: got.attachment!.file_id });
    expect(dl.isError, dl.text).toBe(false);
    expect(dl.structured.encrypted).toBe(true);
    expect((await readFile(dl.structured.path as string)).equals(bytes)).toBe(true);
  });

  it('required: plaintext from a peer is refused (reported, never shown); sending to a peer without keys is refused', async () => {
    await call(c.client, 'encryption_keys', {});
    const text = `plain words ${Date.now()}`;
    const r = await dave.client.send(carol.id, text);
    // The inbox resource (a peek) says a message was refused, without its text.
    const res = await until(async () => {
      const x = await c.client.readResource({ uri: 'openwechat://inbox' });
      const t = (x.contents[0] as { text: string }).text;
      return t.includes('refused') ? t : null;
    });
    expect(res).not.toContain(text);
    const read = await until(async () => {
      const x = await call(c.client, 'read_inbox', {});
      return (x.structured.refused as unknown[])?.length ? x : null;
    });
    expect(read.text).not.toContain(text);
    expect(JSON.stringify(read.structured)).not.toContain(text);
    expect(read.structured.refused).toEqual([
      expect.objectContaining({ id: r.messageId, from_id: dave.id, code: 'plaintext_refused' }),
    ]);
    expect(read.text).toMatch(/Refused 1 message/);
    // Marked read: the refused message is not offered again.
    const again = await call(c.client, 'read_inbox', {});
    expect(msgs(again.structured)).toEqual([]);
    expect(again.structured.refused).toEqual([]);

    const before = (await dave.client.readInbox({ after: 0, limit: 50 })).total;
    const out = await call(c.client, 'send_message', { to_id: dave.id, content: 'must not go out' });
    expect(out.isError).toBe(true);
    expect(out.structured.error).toMatchObject({ code: 'no_keys', kind: 'e2e' });
    expect((await dave.client.readInbox({ after: 0, limit: 50 })).total).toBe(before);
  });

  it('keys live in the data folder, 0600, and no tool result carries the private keys', async () => {
    const file = join(dir.dir, 'a', 'e2e', 'e2e_identity.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const id = JSON.parse(await readFile(file, 'utf8')) as {
      identity: { private: string };
      encryption: { private: string };
    };
    const who = await call(a.client, 'whoami', {});
    const keys = await call(a.client, 'encryption_keys', { peer_id: bob.id });
    for (const out of [who, keys]) {
      const all = out.text + JSON.stringify(out.structured);
      expect(all).not.toContain(id.identity.private);
      expect(all).not.toContain(id.encryption.private);
    }
    expect(who.structured.e2e).toBe('preferred');
  });

  it("a peer's changed key: refused (key_changed, never shown) until accept_peer_key", async () => {
    // alice reinstalls: a new identity sends from outside the MCP server.
    const fresh = new E2eSession({
      client: new RelayClient({ baseUrl: relay.url, token: alice.token }),
      userId: alice.id,
      store: join(dir.dir, 'alice-new-keys'),
      policy: 'preferred',
    });
    await fresh.init();
    const text = `from the new install ${Date.now()}`;
    const first = await fresh.send(bob.id, text);
    expect(first.encrypted).toBe(true);
    const read = await call(b.client, 'read_inbox', {});
    expect(read.text).not.toContain(text);
    expect(read.structured.refused).toEqual([
      expect.objectContaining({ id: first.result.messageId, from_id: alice.id, code: 'key_changed' }),
    ]);
    const keys = await call(b.client, 'encryption_keys', {});
    expect(keys.structured.peers).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          user_id: alice.id,
          key_changed: true,
          new_fingerprint: await fresh.fingerprint(),
        }),
      ]),
    );
    // Sending to her is refused too, nothing goes out.
    const out = await call(b.client, 'send_message', { to_id: alice.id, content: 'to the changed key' });
    expect(out.structured.error).toMatchObject({ code: 'key_changed' });

    const acc = await call(b.client, 'accept_peer_key', { peer_id: alice.id });
    expect(acc.isError, acc.text).toBe(false);
    expect(acc.structured.fingerprint).toBe(await fresh.fingerprint());
    const again = `accepted ${Date.now()}`;
    await fresh.send(bob.id, again);
    const after = await call(b.client, 'read_inbox', {});
    expect(msgs(after.structured).map((m) => [m.content, m.encrypted])).toEqual([[again, true]]);
  });
});
