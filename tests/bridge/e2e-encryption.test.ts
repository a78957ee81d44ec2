// End-to-end encryption terminated by the bridge (BRIDGE_E2E, issue 27): the real bridge process
// (packages/bridge/dist/main.js) in front of a real relay. A peer's encrypted message reaches the webhook
// as plaintext (E2E ends at the bridge) while the relay's database holds only the placeholder; a replayed
// envelope is refused, logged and never forwarded; the send API encrypts to a peer with keys; `required`
// refuses plaintext both ways; the keys stay in the bridge's data folder (0600).

import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eSession, RelayClient } from '@openwechat/client';
import { E2E_PLACEHOLDER } from '@openwechat/protocol';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { befriend, register, type User } from '../relay/client.ts';
import { drainInbox } from '../delivery/util.ts';
import { bundlePath } from '../../scripts/build.ts';
import {
  bridgeEnv,
  callSend,
  spawnBridge,
  startReceiver,
  until,
  type BridgeProcess,
  type Receiver,
} from './helpers.ts';

const dirs: string[] = [];
const procs: BridgeProcess[] = [];
let relay: TestRelay;
let receiver: Receiver;

async function tmp(prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function bridgeFor(
  bot: User,
  policy: string,
  dir?: string,
): Promise<{ proc: BridgeProcess; dataDir: string; env: Record<string, string> }> {
  const dataDir = dir ?? (await tmp('owc-bridge-e2e-'));
  const env = bridgeEnv({
    relayUrl: relay.url,
    relayToken: bot.token,
    webhookUrl: receiver.url,
    dataDir,
    extra: { BRIDGE_E2E: policy },
  });
  const proc = await spawnBridge(env);
  procs.push(proc);
  return { proc, dataDir, env };
}

/** Every file under `dir`, concatenated (the relay's SQLite database and files folder). */
async function allBytes(dir: string): Promise<Buffer> {
  const out: Buffer[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(await readFile(join(e.parentPath, e.name)).catch(() => Buffer.alloc(0)));
  }
  return Buffer.concat(out);
}

/** `openwechat-bridge keys …` with the bridge's settings, as an operator runs it. */
async function keysCli(
  env: Record<string, string>,
  args: string[],
): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [bundlePath('bridge'), 'keys', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { code, out };
}

const logLines = (p: BridgeProcess): Array<Record<string, unknown>> =>
  p
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  relay = await startRelay();
  receiver = await startReceiver();
});

afterAll(async () => {
  for (const p of procs) await p.kill();
  await receiver?.stop();
  await relay?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('BRIDGE_E2E=preferred', () => {
  let bot: User;
  let alice: User;
  let bridge: BridgeProcess;
  let dataDir: string;
  let env: Record<string, string>;
  let e2e: E2eSession;
  /** The envelopes alice's client sent (the body of each POST /send with an e2e field). */
  const envelopes: string[] = [];

  beforeAll(async () => {
    bot = await register(relay.url, 'ebot');
    alice = await register(relay.url, 'ealice');
    await befriend(relay.url, alice, bot);
    await drainInbox(relay.url, bot);
    await drainInbox(relay.url, alice);
    ({ proc: bridge, dataDir, env } = await bridgeFor(bot, 'preferred'));
    const capture: typeof fetch = async (input, init) => {
      if (typeof init?.body === 'string' && init.body.includes('"e2e"')) {
        envelopes.push((JSON.parse(init.body) as { e2e: string }).e2e);
      }
      return fetch(input, init);
    };
    e2e = new E2eSession({
      client: new RelayClient({ baseUrl: relay.url, token: alice.token, fetch: capture }),
      userId: alice.id,
      store: await tmp('owc-alice-keys-'),
      policy: 'preferred',
    });
    await e2e.init();
    // The bridge publishes the bot's keys when its stream connects.
    const end = Date.now() + 20_000;
    while (!(await e2e.client.getKeys(bot.id))) {
      if (Date.now() > end) throw new Error(`the bridge published no keys\n${bridge.stdout()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 60_000);

  it('an encrypted message reaches OpenClaw decrypted; the relay never held the text', async () => {
    const text = `inbound secret ${Date.now()}`;
    const sent = await e2e.send(bot.id, text);
    expect(sent.encrypted).toBe(true);
    await until(() => receiver.all.some((d) => d.json.Content.string === text), 'the decrypted record');
    const d = receiver.all.find((x) => x.json.Content.string === text)!;
    expect(d.plainOk).toBe(true);
    expect(d.json.FromUserName.string).toBe(`owc_${alice.id}`);
    // E2E ended at the bridge: the relay's database and files hold no trace of the text.
    expect((await allBytes(relay.dataDir)).includes(Buffer.from(text))).toBe(false);
  });

  it('a replayed envelope is refused: logged, never forwarded (neither as ciphertext nor as the placeholder)', async () => {
    const before = receiver.all.length;
    expect(envelopes.length).toBeGreaterThan(0);
    const replay = await e2e.client.send(bot.id, E2E_PLACEHOLDER, { e2e: envelopes[0]! });
    await until(
      () => logLines(bridge).some((l) => l.status === 'e2e_refused' && l.relayMessageId === replay.messageId),
      'the refusal in the log',
    );
    const line = logLines(bridge).find(
      (l) => l.relayMessageId === replay.messageId && l.status === 'e2e_refused',
    )!;
    expect(line).toMatchObject({ code: 'replayed', sender: alice.id });
    // A later plaintext message is forwarded: the refused one was acknowledged and skipped, not stuck.
    await e2e.client.send(bot.id, 'after the replay');
    await until(
      () => receiver.all.some((d) => d.json.Content.string === 'after the replay'),
      'the next record',
    );
    const since = receiver.all.slice(before).map((d) => d.json.Content.string);
    expect(since).toEqual(['after the replay']);
    expect(since.join()).not.toContain(E2E_PLACEHOLDER);
  });

  it('the send API encrypts to a peer with keys; the peer opens it', async () => {
    const text = `outbound secret ${Date.now()}`;
    const r = await callSend(bridge.url, { to: `owc_${alice.id}`, text });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const page = await e2e.client.readInbox({ after: 0, limit: 50 });
    const m = page.messages.find((x) => x.fromId === bot.id && x.e2e)!;
    expect(m.content).toBe(E2E_PLACEHOLDER);
    expect(m.e2e).not.toContain('outbound secret');
    expect((await e2e.open(m)).text).toBe(text);
    expect((await allBytes(relay.dataDir)).includes(Buffer.from(text))).toBe(false);
  });

  it("keys live in the bridge's data folder, 0600, and never in its log", async () => {
    const file = join(dataDir, 'e2e', 'e2e_identity.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dataDir, 'e2e'))).mode & 0o777).toBe(0o700);
    const id = JSON.parse(await readFile(file, 'utf8')) as {
      userId: number;
      identity: { private: string; public: string };
    };
    expect(id.userId).toBe(bot.id);
    expect(bridge.stdout() + bridge.stderr()).not.toContain(id.identity.private);
    expect((await e2e.client.getKeys(bot.id))!.identity_key).toBe(id.identity.public);
  });

  it("keys: the safety number matches the peer's; a changed peer key is refused until `keys accept`", async () => {
    const safety = await keysCli(env, ['safety', String(alice.id)]);
    expect(safety.code, safety.out).toBe(0);
    expect(safety.out.trim()).toBe(await e2e.safetyNumber(bot.id));

    // alice reinstalls: a new identity. The bridge refuses her messages (key_changed), never forwards them.
    const fresh = new E2eSession({
      client: new RelayClient({ baseUrl: relay.url, token: alice.token }),
      userId: alice.id,
      store: await tmp('owc-alice-new-keys-'),
      policy: 'preferred',
    });
    await fresh.init();
    const text = `after reinstall ${Date.now()}`;
    const first = await fresh.send(bot.id, text);
    expect(first.encrypted).toBe(true);
    await until(
      () =>
        logLines(bridge).some(
          (l) =>
            l.status === 'e2e_refused' &&
            l.relayMessageId === first.result.messageId &&
            l.code === 'key_changed',
        ),
      'the key_changed refusal',
    );
    expect(receiver.all.some((d) => d.json.Content.string === text)).toBe(false);
    const listed = await keysCli(env, ['list']);
    expect(listed.out).toContain('KEY CHANGED');

    const accepted = await keysCli(env, ['accept', String(alice.id)]);
    expect(accepted.code, accepted.out).toBe(0);
    expect(accepted.out).toContain(await fresh.fingerprint());
    await bridge.kill();
    ({ proc: bridge } = await bridgeFor(bot, 'preferred', dataDir));
    const again = `accepted now ${Date.now()}`;
    await fresh.send(bot.id, again);
    await until(() => receiver.all.some((d) => d.json.Content.string === again), 'the record after accept');
  });
});

describe('BRIDGE_E2E=required', () => {
  it('refuses a plaintext message (not forwarded) and refuses to send to a peer without keys', async () => {
    const bot = await register(relay.url, 'rbot');
    const carol = await register(relay.url, 'rcarol');
    await befriend(relay.url, carol, bot);
    await drainInbox(relay.url, bot);
    await drainInbox(relay.url, carol);
    const { proc } = await bridgeFor(bot, 'required');
    const carolClient = new RelayClient({ baseUrl: relay.url, token: carol.token });
    const text = `plain to a required bot ${Date.now()}`;
    const sent = await carolClient.send(bot.id, text);
    await until(
      () => logLines(proc).some((l) => l.status === 'e2e_refused' && l.relayMessageId === sent.messageId),
      'the refusal in the log',
    );
    expect(
      logLines(proc).find((l) => l.relayMessageId === sent.messageId && l.status === 'e2e_refused'),
    ).toMatchObject({ code: 'plaintext_refused', sender: carol.id });
    expect(receiver.all.some((d) => d.json.Content.string === text)).toBe(false);

    const r = await callSend(proc.url, { to: `owc_${carol.id}`, text: 'must not go out' });
    expect(r.status).toBe(409);
    expect(r.json.error).toMatchObject({ code: 'e2e_refused', e2e_code: 'no_keys' });
    const inbox = await carolClient.readInbox({ after: 0, limit: 50 });
    expect(inbox.messages.some((m) => m.fromId === bot.id)).toBe(false);
  });
});
