// End-to-end encryption between the channel plugin inside the real OpenClaw and the skill's real CLI
// (issue 27): one gateway whose account runs `e2e: required`, and a skill data folder with
// `keys policy required` and its inbox daemon. Both ways encrypted: the fake model sees the decrypted
// text, the skill's conversations.md the decrypted reply, and the relay's data folder (SQLite file and
// WAL) neither; a plaintext message never reaches the model; the safety numbers agree; a reinstalled
// peer is refused until the operator accepts its key with the plugin's gateway method.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eSession, RelayClient } from '@openwechat/client';
import { folderBytes } from '../helpers/bytes.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { cli as skillCli, startDaemon, type Daemon } from '../skill/helpers.ts';
import { startFakeModel, type FakeModel } from './fake-model.ts';
import {
  createOpenClawHome,
  ensureOpenClaw,
  packPlugin,
  waitFor,
  type GatewayProcess,
  type OpenClawHome,
} from './harness.ts';
import { figures } from './figures.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('end-to-end encryption: the plugin in the real OpenClaw and the skill CLI', () => {
  let relay: TestRelay;
  let model: FakeModel;
  let oc: OpenClawHome;
  let gateway: GatewayProcess;
  let tmp: string;
  let skillDir: string;
  let data: string;
  let daemon: Daemon | null = null;
  let agent: { id: number; token: string; client: RelayClient };
  let skillId: number;

  const skill = async (args: string[], code = 0): Promise<Record<string, unknown>> => {
    const r = await skillCli(skillDir, [...args, '--json'], { data, timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(code);
    return r.json!;
  };
  /** The agent's reply to `marker` as the skill's daemon wrote it (decrypted) in conversations.md. */
  const replyLine = (marker: string): Promise<string> =>
    waitFor(
      `the reply to ${marker} in conversations.md`,
      async () =>
        (await readFile(join(data, 'conversations.md'), 'utf8').catch(() => ''))
          .split('\n')
          .find((l) => l.endsWith(`content=SECRET-pong ${marker}`)),
      120_000,
    );
  const modelSaw = (marker: string) => model.calls.filter((c) => c.promptText.includes(marker));
  const gatewayLog = async (): Promise<string> =>
    gateway.output() + (await readFile(join(oc.home, 'openclaw.log'), 'utf8').catch(() => ''));

  beforeAll(async () => {
    const install = await ensureOpenClaw();
    relay = await startRelay();
    model = await startFakeModel();
    // The reply carries its own secret, so the relay's copy of it can be grepped too.
    model.script = (call) => {
      const marker = /\b(e2e-[\w-]+)/.exec(call.userText)?.[1];
      return marker ? { text: `SECRET-pong ${marker}` } : null;
    };
    tmp = await mkdtemp(join(tmpdir(), 'owc-oc-e2e-'));
    skillDir = join(tmp, 'openwechat-im-client');
    data = join(tmp, 'skill-data');
    const anon = new RelayClient({ baseUrl: relay.url, mode: 'json' });
    const reg = await anon.register({ name: 'claw-e2e' });
    agent = {
      id: reg.user.id,
      token: reg.token,
      client: new RelayClient({ baseUrl: relay.url, token: reg.token, mode: 'json' }),
    };
    const t0 = Date.now();
    const [tgz] = await Promise.all([
      packPlugin(tmp),
      run('npm', ['run', 'build:skill', '--silent', '--', '--out', skillDir], {
        cwd: ROOT,
        timeout: 120_000,
      }),
    ]);
    oc = await createOpenClawHome(install, {
      modelBaseUrl: model.baseUrl,
      env: { OPENWECHAT_TEST_TOKEN: agent.token },
    });
    await oc.cli(['plugins', 'install', `npm-pack:${tgz}`, '--force', '--accept-capabilities'], 180_000);
    figures.record('e2e: pack, skill build, plugin install (s)', (Date.now() - t0) / 1000);
    await oc.patchConfig({
      plugins: { entries: { openwechat: { enabled: true, hooks: { allowConversationAccess: true } } } },
      channels: {
        openwechat: {
          baseUrl: relay.url,
          token: { source: 'env', provider: 'default', id: 'OPENWECHAT_TEST_TOKEN' },
          dmPolicy: 'open',
          allowFrom: ['*'],
          e2e: 'required',
        },
      },
    });
    skillId = (await skill(['register', '--base-url', relay.url, '--name', 'e2e_skill'])).id as number;
    expect((await skill(['keys', 'policy', 'required'])).policy).toBe('required');
    gateway = await oc.startGateway();
    figures.record('e2e: gateway start (s)', gateway.startMs / 1000);
    daemon = startDaemon(skillDir, data);
  }, 420_000);

  afterAll(async () => {
    await daemon?.kill('SIGTERM');
    await gateway?.kill('SIGTERM');
    await oc?.dispose();
    await model?.close();
    await relay?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    figures.flush();
  }, 60_000);

  it('the gateway publishes the account keys (private key folder in its state directory)', async () => {
    await waitFor(
      'the agent keys in the directory',
      async () => (await agent.client.getKeys(agent.id)) ?? undefined,
      60_000,
    );
    const folder = join(oc.stateDir, 'plugins/openwechat/e2e/default');
    expect((await stat(folder)).mode & 0o777).toBe(0o700);
    expect((await stat(join(folder, 'e2e_identity.json'))).mode & 0o777).toBe(0o600);
  }, 90_000);

  it('skill → agent → skill, encrypted both ways: the model and the skill see the text, the relay neither', async () => {
    const sentAt = Date.now();
    const ping = 'SECRET-ping-from-the-skill e2e-1';
    expect(await skill(['send', String(agent.id), ping])).toMatchObject({ encrypted: true });
    const line = await replyLine('e2e-1');
    figures.record(
      'e2e: first reply latency, skill send → decrypted reply in conversations.md (s)',
      (Date.now() - sentAt) / 1000,
    );
    expect(line).toMatch(new RegExp(`from=#${agent.id}\\(claw-e2e\\) type=chat content=SECRET-pong e2e-1$`));
    // The model got the decrypted text (never the placeholder).
    const call = modelSaw('e2e-1')[0];
    expect(call?.userText).toContain(ping);
    expect(call?.promptText).not.toContain('[加密消息]');
    const stored = await folderBytes(relay.dataDir);
    for (const text of ['SECRET-ping-from-the-skill', 'SECRET-pong']) {
      expect(stored.includes(Buffer.from(text)), text).toBe(false);
    }
  }, 180_000);

  it('an encrypted file from the skill reaches the agent decrypted', async () => {
    const file = join(tmp, 'plan.txt');
    const body = `SECRET-file-line ${'y'.repeat(40)}\n`.repeat(50);
    await writeFile(file, body);
    expect(
      await skill(['send-file', String(agent.id), file, '--content', 'the plan e2e-file']),
    ).toMatchObject({
      encrypted: true,
    });
    await replyLine('e2e-file');
    const call = modelSaw('e2e-file')[0];
    // OpenClaw stages the decrypted file under its real name and shows a text file's content inline.
    expect(call?.userText).toMatch(/\[media attached: \S*plan\S* \(text\/plain\)\]/);
    expect(call?.userText).toContain(body.trim());
    expect((await folderBytes(relay.dataDir)).includes(Buffer.from('SECRET-file-line'))).toBe(false);
  }, 180_000);

  it('a plaintext message to the required gateway never reaches the model', async () => {
    const anon = new RelayClient({ baseUrl: relay.url, mode: 'json' });
    const m = await anon.register({ name: 'plain-mallory' });
    const mallory = new RelayClient({ baseUrl: relay.url, token: m.token, mode: 'json' });
    await mallory.send(agent.id, 'PLAIN-from-mallory e2e-plain');
    // The skill writes after Mallory: once its message is answered, hers (an earlier id) has been settled.
    await skill(['send', String(agent.id), 'after the plaintext e2e-2']);
    await replyLine('e2e-2');
    expect(modelSaw('PLAIN-from-mallory')).toEqual([]);
    expect((await mallory.readInbox({ after: 0 })).messages.filter((x) => x.fromId === agent.id)).toEqual([]);
    const log = await gatewayLog();
    expect(log).toMatch(
      new RegExp(`from ${m.user.id} refused by end-to-end encryption \\(plaintext_refused\\)`),
    );
    expect(log).not.toContain('PLAIN-from-mallory');
    // The control: the same grep finds a plaintext message in the relay's files.
    expect((await folderBytes(relay.dataDir)).includes(Buffer.from('PLAIN-from-mallory'))).toBe(true);
  }, 180_000);

  it('the safety number is reachable through `openclaw gateway call openwechat.keys` and equals the skill one', async () => {
    const { stdout } = await oc.cli(
      ['gateway', 'call', 'openwechat.keys', '--params', '{}', '--json'],
      60_000,
    );
    const keys = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
      userId: number;
      policy: string;
      peers: Array<{ userId: number; safetyNumber: string; pending: unknown }>;
    };
    expect(keys).toMatchObject({ userId: agent.id, policy: 'required' });
    const peer = keys.peers.find((p) => p.userId === skillId);
    expect(peer?.pending).toBeNull();
    expect(peer?.safetyNumber).toBe((await skill(['keys', 'safety', String(agent.id)])).safety_number);
  }, 90_000);

  it('a reinstalled peer is refused (key_changed) until `openclaw gateway call openwechat.keys.accept`', async () => {
    // The skill's daemon would try (and fail) to open replies meant for the new install: stop it first.
    await daemon?.kill('SIGTERM');
    daemon = null;
    const token = JSON.parse(await readFile(join(data, 'config.json'), 'utf8')).token as string;
    const fresh = new E2eSession({
      client: new RelayClient({ baseUrl: relay.url, token, mode: 'json' }),
      userId: skillId,
      store: join(tmp, 'reinstalled-keys'),
      policy: 'required',
    });
    await fresh.send(agent.id, 'SECRET-from-the-new-install e2e-changed');
    await waitFor(
      'the key_changed refusal in the gateway log',
      async () => ((await gatewayLog()).includes('(key_changed)') ? true : undefined),
      60_000,
    );
    expect(modelSaw('e2e-changed')).toEqual([]);

    const { stdout } = await oc.cli(
      [
        'gateway',
        'call',
        'openwechat.keys.accept',
        '--params',
        JSON.stringify({ peerId: skillId }),
        '--json',
      ],
      60_000,
    );
    const accepted = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
      fingerprint: string;
      safetyNumber: string;
    };
    expect(accepted.fingerprint).toBe(await fresh.fingerprint());
    expect(accepted.safetyNumber).toBe(await fresh.safetyNumber(agent.id));

    // Accepted in the running gateway: the next message is answered, encrypted to the new keys.
    await fresh.send(agent.id, 'after the accept e2e-accepted');
    const reply = await waitFor(
      'the reply to e2e-accepted, opened by the new install',
      async () => {
        const page = await fresh.client.readInbox({ after: 0, limit: 100 });
        for (const m of page.messages.filter((x) => x.fromId === agent.id && x.e2e)) {
          // Earlier replies were encrypted to the old install's keys: not_a_recipient here.
          const text = await fresh.open(m).then(
            (o) => o.text,
            () => null,
          );
          if (text === 'SECRET-pong e2e-accepted') return text;
        }
        return undefined;
      },
      120_000,
    );
    expect(reply).toBe('SECRET-pong e2e-accepted');
    expect(modelSaw('e2e-changed')).toEqual([]);
  }, 240_000);
});
