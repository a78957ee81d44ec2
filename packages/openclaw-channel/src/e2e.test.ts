// The channel's end-to-end wiring against the real relay over loopback (the plugin inside the real
// OpenClaw is tests/openclaw/e2e.test.ts): the account's session from the stream's first line, inbound
// opening and refusals, encrypted attachments, outbound through the sender, the key methods.

import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eSession, RelayClient, type Message } from '@openwechat/client';
import { registerJsonUser, startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import {
  AccountE2e,
  keyFolder,
  keyMethods,
  outboundSender,
  registerLive,
  summaryLine,
  userIdFromStreamLog,
  type E2eHooks,
} from './e2e.ts';
import { RelayDeliveryError, sendToRelay, type RetryPolicy } from './outbound.ts';
import { emptyState, type AccountState } from './state.ts';

let relay: TestRelay;
let tmp: string;

const noRetry: RetryPolicy = { attempts: 1, baseMs: 1, maxMs: 1, random: () => 0, sleep: async () => {} };

const user = (name: string) => registerJsonUser(relay.url, name);

/** Everything in the inbox (after=0 acknowledges nothing), as the stream would deliver it. */
async function inbox(client: RelayClient): Promise<Array<Message & { id: number }>> {
  return (await client.readInbox({ after: 0, limit: 100 })).messages as Array<Message & { id: number }>;
}

function recorder(): E2eHooks & { logs: string[]; statuses: unknown[]; state: AccountState } {
  const logs: string[] = [];
  const statuses: unknown[] = [];
  return {
    logs,
    statuses,
    state: emptyState(),
    log: (level, msg) => void logs.push(`${level} ${msg}`),
    save: async () => {},
    status: (f) => void statuses.push(f),
    now: () => Date.now(),
  };
}

const connected = (id: number) =>
  `stream_connected request_id=r1 user_id=${id} ip=127.0.0.1 ts=2026-12-07T00:00:00Z`;

beforeAll(async () => {
  relay = await startRelay();
  tmp = await mkdtemp(join(tmpdir(), 'owc-plugin-e2e-'));
});
afterAll(async () => {
  await relay.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('helpers', () => {
  it('reads the account id from the stream_connected line only', () => {
    expect(userIdFromStreamLog(connected(42))).toBe(42);
    expect(userIdFromStreamLog('something_else user_id=42')).toBeNull();
    expect(userIdFromStreamLog('stream_connected request_id=r1 ip=x')).toBeNull();
    expect(userIdFromStreamLog('stream_connected user_id=0')).toBeNull();
  });

  it('keeps each account in its own folder under the plugin state, names made safe', () => {
    expect(keyFolder('/s', 'default')).toBe('/s/plugins/openwechat/e2e/default');
    expect(keyFolder('/s', '../x y')).toBe('/s/plugins/openwechat/e2e/.._x_y');
  });

  it('summarises refusals and plaintext sends, pointing at the accept method on a key change', () => {
    const s = emptyState();
    expect(summaryLine(s)).toBeNull();
    s.e2e = {
      refused: 2,
      recentRefused: [{ id: 9, from: 4, code: 'key_changed', at: 1 }],
      plaintextSent: 1,
      lastPlaintext: { to: 'user 5', reason: 'user 5 published no end-to-end keys', at: 1 },
    };
    expect(summaryLine(s)).toBe(
      'End-to-end encryption: 2 message(s) refused, never shown (last: message 9 from id 4, key_changed); ' +
        '1 reply(ies) sent NOT encrypted (last to user 5: user 5 published no end-to-end keys). ' +
        "A peer's key changed: the operator accepts it with openwechat.keys.accept.",
    );
  });
});

describe('an account with e2e required', () => {
  let agent: Awaited<ReturnType<typeof user>>;
  let bob: Awaited<ReturnType<typeof user>>;
  let carol: Awaited<ReturnType<typeof user>>;
  let bobE2e: E2eSession;
  let hooks: ReturnType<typeof recorder>;
  let e2e: AccountE2e;
  let store: string;

  beforeAll(async () => {
    agent = await user('agent');
    bob = await user('bob');
    carol = await user('carol');
    bobE2e = new E2eSession({
      client: bob.client,
      userId: bob.id,
      store: join(tmp, 'bob'),
      policy: 'required',
    });
    await bobE2e.init();
    hooks = recorder();
    store = keyFolder(join(tmp, 'state'), 'default');
    e2e = new AccountE2e('default', 'required', agent.client, store, hooks);
  });

  it('a message before the stream named the account is not settled', async () => {
    await expect(e2e.open({ ...({} as Message), id: 1, fromId: bob.id, content: 'x' })).rejects.toThrow(
      /not known yet/,
    );
  });

  it('the first stream line creates the keys (private folder) and publishes them', async () => {
    await e2e.onServerLog('some other log line');
    expect(e2e.current()).toBeNull();
    await e2e.onServerLog(connected(agent.id));
    expect(e2e.current()?.userId).toBe(agent.id);
    expect(await agent.client.getKeys(agent.id)).not.toBeNull();
    expect((await stat(store)).mode & 0o777).toBe(0o700);
    expect((await stat(join(store, 'e2e_identity.json'))).mode & 0o777).toBe(0o600);
    expect(hooks.logs.at(-1)).toMatch(
      /^info end-to-end encryption required: keys published for user \d+, fingerprint (\d{5} ){5}\d{5}$/,
    );
    expect(hooks.statuses.at(-1)).toMatchObject({ e2e: { policy: 'required', refused: 0 } });
  });

  it('opens an encrypted message (a friend request) to the decrypted text', async () => {
    await bobE2e.send(agent.id, 'SECRET-hello');
    const [m1] = await inbox(agent.client);
    expect(m1!.content).not.toContain('SECRET');
    const o1 = await e2e.open(m1!);
    expect(o1).toMatchObject({ id: m1!.id, content: 'SECRET-hello', fromId: bob.id, e2e: null });
  });

  it('replies encrypted to a peer with keys and refuses a keyless one (nothing sent)', async () => {
    const sent = await sendToRelay(
      e2e.sender(),
      { target: { kind: 'user', id: bob.id }, text: 'SECRET-reply', idempotencyKey: 'k-e2e-1' },
      noRetry,
    );
    const stored = (await inbox(bob.client)).find((m) => String(m.id) === sent.messageId)!;
    expect(stored.content).not.toContain('SECRET');
    expect((await bobE2e.open(stored)).text).toBe('SECRET-reply');

    const refused = sendToRelay(
      e2e.sender(),
      { target: { kind: 'user', id: carol.id }, text: 'SECRET-to-carol', idempotencyKey: 'k-e2e-2' },
      noRetry,
    );
    await expect(refused).rejects.toBeInstanceOf(RelayDeliveryError);
    await expect(refused).rejects.toMatchObject({ code: 'e2e_no_keys', retryable: false });
    await expect(refused).rejects.toThrow(/published no end-to-end keys; nothing was sent/);
    expect((await inbox(carol.client)).filter((m) => m.fromId === agent.id)).toEqual([]);
  });

  it('sends media encrypted: the relay stores ciphertext under a neutral name, the peer decrypts it', async () => {
    const sent = await sendToRelay(
      e2e.sender(),
      {
        target: { kind: 'user', id: bob.id },
        text: 'SECRET-report caption',
        file: {
          buffer: Buffer.from('SECRET-report-bytes\n'),
          fileName: 'report.txt',
          contentType: 'text/plain',
        },
        idempotencyKey: 'k-e2e-media',
      },
      noRetry,
    );
    const stored = (await inbox(bob.client)).find((m) => String(m.id) === sent.messageId)!;
    expect(stored.attachment?.name).toBe('encrypted.bin');
    const opened = await bobE2e.open(stored);
    expect(opened.text).toBe('SECRET-report caption');
    const got = await bobE2e.downloadFile(opened, join(tmp, 'bob-dl', 'report.txt'));
    expect(got.name).toBe('report.txt');
    expect(await readFile(got.path, 'utf8')).toBe('SECRET-report-bytes\n');
  });

  it('opens an encrypted file; it is decrypted and verified on download', async () => {
    const file = join(tmp, 'notes.txt');
    await writeFile(file, 'SECRET-file-body\n'.repeat(100));
    await bobE2e.sendFile(agent.id, { path: file, contentType: 'text/plain' }, 'SECRET-caption');
    const m2 = (await inbox(agent.client)).at(-1)!;
    expect(m2.attachment?.name).toBe('encrypted.bin');
    const o2 = (await e2e.open(m2))!;
    expect(o2.content).toBe('SECRET-caption');
    expect(o2.attachment).toMatchObject({ name: 'notes.txt', contentType: 'text/plain', size: 1700 });
    const got = await e2e.download(o2.attachment!.fileId!, join(tmp, 'dl', 'f'));
    expect(got).toMatchObject({ name: 'notes.txt', contentType: 'text/plain' });
    expect(await readFile(got!.path, 'utf8')).toBe('SECRET-file-body\n'.repeat(100));
    // A retried turn downloads it again, decrypted again.
    const again = await e2e.download(o2.attachment!.fileId!, join(tmp, 'dl', 'f2'));
    expect(await readFile(again!.path, 'utf8')).toBe('SECRET-file-body\n'.repeat(100));
    // Not an encrypted file of this session: the caller downloads it as it is.
    expect(await e2e.download('f_unknown', join(tmp, 'dl', 'g'))).toBeNull();
  });

  it('refuses plaintext under required: recorded and logged with its reason, never its text', async () => {
    await carol.client.send(agent.id, 'SECRET-plain-from-carol');
    const m = (await inbox(agent.client)).find((x) => x.fromId === carol.id)!;
    expect(await e2e.open(m)).toBeNull();
    expect(hooks.state.e2e).toMatchObject({
      refused: 1,
      recentRefused: [{ id: m.id, from: carol.id, code: 'plaintext_refused' }],
    });
    expect(hooks.logs.at(-1)).toMatch(
      /^warn message \d+ from \d+ refused by end-to-end encryption \(plaintext_refused\)/,
    );
    expect(hooks.logs.join('\n')).not.toContain('SECRET');
    expect(hooks.statuses.at(-1)).toMatchObject({ e2e: { refused: 1 } });
  });

  it("a peer's new identity is refused until the operator accepts it through the gateway method", async () => {
    const unregister = registerLive('default', e2e);
    try {
      const [list, accept] = keyMethods();
      const call = async (method: typeof list, params: Record<string, unknown>) => {
        let out: { ok: boolean; payload?: unknown; error?: { message: string } } | null = null;
        await method!.handler({
          params,
          respond: (ok, payload, error) => void (out = { ok, payload, error }),
        });
        return out!;
      };
      const before = await call(list, {});
      expect(before.ok).toBe(true);
      const pinned = (before.payload as { peers: Array<{ userId: number; safetyNumber: string }> }).peers;
      expect(pinned.find((p) => p.userId === bob.id)?.safetyNumber).toBe(await bobE2e.safetyNumber(agent.id));

      // Bob reinstalls: a new identity, published.
      const bob2 = new E2eSession({
        client: bob.client,
        userId: bob.id,
        store: join(tmp, 'bob2'),
        policy: 'required',
      });
      await bob2.send(agent.id, 'SECRET-after-reinstall');
      const first = (await inbox(agent.client)).at(-1)!;
      expect(await e2e.open(first)).toBeNull();
      expect(hooks.state.e2e?.recentRefused?.[0]?.code).toBe('key_changed');
      expect(hooks.logs.at(-1)).toContain(`accept with openwechat.keys.accept {"peerId":${bob.id}}`);

      expect(await call(accept, { peerId: 'nope' })).toMatchObject({
        ok: false,
        error: { message: /peerId must be/ },
      });
      expect(await call(accept, { peerId: bob.id, accountId: 'other' })).toMatchObject({
        ok: false,
        error: { message: /no running openwechat account "other"/ },
      });
      const accepted = await call(accept, { peerId: String(bob.id) });
      expect(accepted.ok).toBe(true);
      expect((accepted.payload as { safetyNumber: string }).safetyNumber).toBe(
        await bob2.safetyNumber(agent.id),
      );
      await bob2.send(agent.id, 'SECRET-accepted');
      expect((await e2e.open((await inbox(agent.client)).at(-1)!))?.content).toBe('SECRET-accepted');
    } finally {
      unregister();
    }
    // Once the account stopped, the methods say so.
    const after: Array<{ ok: boolean; message?: string }> = [];
    await keyMethods()[0]!.handler({
      params: {},
      respond: (ok, _p, error) => void after.push({ ok, message: error?.message }),
    });
    expect(after).toEqual([
      { ok: false, message: expect.stringMatching(/^no running openwechat account with/) },
    ]);
  });

  it('outside the gateway the sender uses the key folder; without keys required refuses, preferred says why', async () => {
    const viaFolder = await outboundSender('default', 'required', agent.client, join(tmp, 'state'));
    const r = await viaFolder.send(bob.id, 'SECRET-from-cli', {});
    const stored = (await inbox(bob.client)).find((m) => m.id === r.messageId)!;
    expect(stored.e2e).toBeTruthy();

    const none = join(tmp, 'empty-state');
    const required = await outboundSender('x', 'required', agent.client, none);
    await expect(required.send(bob.id, 'SECRET-nope', {})).rejects.toThrow(
      /no end-to-end keys yet.*nothing was sent/,
    );
    const said: string[] = [];
    const preferred = await outboundSender(
      'x',
      'preferred',
      agent.client,
      none,
      (to, why) => void said.push(`${to}: ${why}`),
    );
    const plain = await preferred.send(bob.id, 'plain-from-cli', {});
    expect((await inbox(bob.client)).find((m) => m.id === plain.messageId)?.content).toBe('plain-from-cli');
    expect(said).toEqual([
      `user ${bob.id}: this account has no end-to-end keys yet (the gateway creates and publishes them at its first start)`,
    ]);
    expect(await outboundSender('x', 'off', agent.client, none)).toBe(agent.client);
  });
});

describe('an account with e2e preferred', () => {
  it('sends plaintext to a keyless peer and says so (log, state, status)', async () => {
    const agent = await user('agent-p');
    const dave = await user('dave');
    const hooks = recorder();
    const e2e = new AccountE2e('p', 'preferred', agent.client, keyFolder(join(tmp, 'state'), 'p'), hooks);
    await e2e.onServerLog(connected(agent.id));
    await sendToRelay(
      e2e.sender(),
      { target: { kind: 'user', id: dave.id }, text: 'hello dave', idempotencyKey: 'k-p-1' },
      noRetry,
    );
    expect((await inbox(dave.client))[0]?.content).toBe('hello dave');
    expect(hooks.logs.at(-1)).toBe(
      `warn message to user ${dave.id} sent NOT end-to-end encrypted: user ${dave.id} has published no end-to-end keys`,
    );
    expect(hooks.state.e2e).toMatchObject({ plaintextSent: 1, lastPlaintext: { to: `user ${dave.id}` } });
    expect(hooks.statuses.at(-1)).toMatchObject({ e2e: { policy: 'preferred', plaintextSent: 1 } });
    // Plaintext from a keyless peer is accepted under preferred.
    await dave.client.send(agent.id, 'hi back');
    expect((await e2e.open((await inbox(agent.client))[0]!))?.content).toBe('hi back');
  });
});
