// The `openwechat` channel plugin inside the real OpenClaw (issue 15 §3.2–3.4): packed, installed with
// `openclaw plugins install npm-pack:…`, loaded by a real gateway, talking to our real relay; only the
// model is fake. One gateway carries the conversation tests; the crash test SIGKILLs it mid-turn and
// starts it again (with the context summary switched off, which the hook test checks on that restart).

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayClient, type Message } from '@openwechat/client';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { startFakeModel, type FakeModel, type ModelAnswer } from './fake-model.ts';
import {
  createOpenClawHome,
  ensureOpenClaw,
  packPlugin,
  waitFor,
  type GatewayProcess,
  type OpenClawHome,
} from './harness.ts';
import { figures } from './figures.ts';

const SUMMARY_MARK = '[openwechat relay activity';

interface Account {
  id: number;
  name: string;
  client: RelayClient;
}

async function account(relay: TestRelay, name: string): Promise<Account & { token: string }> {
  const anon = new RelayClient({ baseUrl: relay.url, mode: 'json' });
  const { user, token } = await anon.register({ name });
  return { id: user.id, name, token, client: new RelayClient({ baseUrl: relay.url, token, mode: 'json' }) };
}

/** Everything in the inbox (non-destructive: `after=0` acknowledges nothing). */
async function inbox(a: Account): Promise<Message[]> {
  return (await a.client.readInbox({ after: 0, limit: 100 })).messages;
}

function fromAgent(messages: Message[], agentId: number, text?: string): Message[] {
  return messages.filter((m) => m.fromId === agentId && (text === undefined || m.content.includes(text)));
}

describe('openwechat channel plugin in the real OpenClaw', () => {
  let relay: TestRelay;
  let model: FakeModel;
  let oc: OpenClawHome;
  let gateway: GatewayProcess;
  let agent: Account & { token: string };
  let alice: Account;
  let mallory: Account;
  let packDir: string;
  let inspectReport: {
    plugin: { status: string; channelIds: string[] };
    typedHooks: Array<{ name: string }>;
  };
  /** Held answers for the crash test, by marker. */
  const holds = new Map<string, { promise: Promise<void>; release: () => void }>();

  beforeAll(async () => {
    const t0 = Date.now();
    const install = await ensureOpenClaw();
    figures.record('install or cache check (s)', (Date.now() - t0) / 1000);
    relay = await startRelay();
    model = await startFakeModel();
    // Deterministic replies: "pong <marker>" for each "ping-…" marker; a reply carrying a file when asked.
    model.script = (call): ModelAnswer | null => {
      const marker = /\b((?:ping|crash|group|file)-[\w-]+)/.exec(call.userText)?.[1];
      if (!marker) return null;
      const hold = holds.get(marker);
      const answer: ModelAnswer = { text: `pong ${marker}` };
      return hold ? { hold: hold.promise, then: answer } : answer;
    };
    agent = await account(relay, 'claw-agent');
    alice = await account(relay, 'alice');
    mallory = await account(relay, 'mallory');
    oc = await createOpenClawHome(install, {
      modelBaseUrl: model.baseUrl,
      env: { OPENWECHAT_TEST_TOKEN: agent.token },
    });
    packDir = await mkdtemp(join(tmpdir(), 'owc-pack-'));
    const tgz = await packPlugin(packDir);
    const t1 = Date.now();
    await oc.cli(['plugins', 'install', `npm-pack:${tgz}`, '--force', '--accept-capabilities'], 180_000);
    figures.record('plugins install (s)', (Date.now() - t1) / 1000);
    await oc.patchConfig({
      plugins: {
        entries: {
          openwechat: {
            enabled: true,
            config: { contextSummary: true },
            hooks: { allowConversationAccess: true },
          },
        },
      },
      channels: {
        openwechat: {
          baseUrl: relay.url,
          // OpenClaw's secret mechanism: an env SecretRef, so the token is never in the config file.
          token: { source: 'env', provider: 'default', id: 'OPENWECHAT_TEST_TOKEN' },
          dmPolicy: 'allowlist',
          allowFrom: [String(alice.id)],
          friendRequests: 'reply',
          requireMention: true,
        },
      },
    });
    // Inspected before the gateway starts: a CLI process that loads the plugin runtime takes OpenClaw's
    // state lock, and a turn starting meanwhile in the gateway would fail on it.
    const inspected = await oc.cli(['plugins', 'inspect', 'openwechat', '--runtime', '--json'], 120_000);
    inspectReport = JSON.parse(inspected.stdout.slice(inspected.stdout.indexOf('{'))) as typeof inspectReport;
    gateway = await oc.startGateway();
    figures.record('gateway start (s)', gateway.startMs / 1000);
  }, 420_000);

  afterAll(async () => {
    for (const h of holds.values()) h.release();
    await gateway?.kill('SIGTERM');
    await oc?.dispose();
    await model?.close();
    await relay?.close();
    if (packDir) await rm(packDir, { recursive: true, force: true });
    figures.flush();
  }, 60_000);

  it('inspect reports the plugin loaded with its channel and its prompt hook', () => {
    expect(inspectReport.plugin.status).toBe('loaded');
    expect(inspectReport.plugin.channelIds).toEqual(['openwechat']);
    expect(inspectReport.typedHooks.map((h) => h.name)).toContain('before_prompt_build');
  });

  it('a relay user writes to the agent: the model answers and the reply lands in her inbox', async () => {
    const sentAt = Date.now();
    // Alice's first message to a stranger is a friend request; the agent's reply accepts it.
    await alice.client.send(agent.id, 'hello there ping-1');
    const reply = await waitFor(
      'the reply to ping-1',
      async () => fromAgent(await inbox(alice), agent.id, 'pong ping-1')[0],
      90_000,
      100,
    );
    figures.record('first reply latency, relay send → reply stored (s)', (Date.now() - sentAt) / 1000);
    expect(reply.type).not.toBe('system');
    const call = model.calls.find((c) => c.userText.includes('ping-1'));
    expect(call?.userText).toContain('alice');
    // They are friends now: a second message is a chat, answered in the same way.
    const secondAt = Date.now();
    await alice.client.send(agent.id, 'and again ping-2');
    await waitFor(
      'the reply to ping-2',
      async () => fromAgent(await inbox(alice), agent.id, 'pong ping-2')[0],
      90_000,
    );
    figures.record('second reply latency, warm session (s)', (Date.now() - secondAt) / 1000);
    const friends = await alice.client.friends();
    expect(friends.map((f) => f.id)).toContain(agent.id);
  }, 200_000);

  it('the channel turn carries the relay-activity summary (hook enabled)', () => {
    const call = [...model.calls].reverse().find((c) => c.userText.includes('ping-2'));
    // Exactly once, naming Alice with her unanswered message.
    expect(call?.promptText.split(SUMMARY_MARK)).toHaveLength(2);
    expect(call?.promptText).toMatch(/- alice \(id \d+\): 1 unread/);
  });

  it('a sender off the allowlist never reaches the model', async () => {
    await mallory.client.send(agent.id, 'let me in ping-mallory');
    // Alice writes after Mallory: once her message is answered, Mallory's (earlier id) has been settled.
    await alice.client.send(agent.id, 'after mallory ping-3');
    await waitFor(
      'the reply to ping-3',
      async () => fromAgent(await inbox(alice), agent.id, 'pong ping-3')[0],
      90_000,
    );
    expect(model.calls.some((c) => c.promptText.includes('ping-mallory'))).toBe(false);
    expect(fromAgent(await inbox(mallory), agent.id)).toEqual([]);
  }, 150_000);

  it('group messages: without an @-mention nothing is dispatched, with one the agent answers the group', async () => {
    const group = await alice.client.createGroup({ name: 'claw-group', memberIds: [agent.id] });
    await alice.client.sendGroup(group.id, 'no mention here group-quiet');
    await alice.client.sendGroup(group.id, `@${agent.name} are you there group-loud`, {
      mentionIds: [agent.id],
    });
    const reply = await waitFor(
      'the group reply',
      async () => fromAgent(await inbox(alice), agent.id, 'pong group-loud')[0],
      90_000,
    );
    expect(reply.type).toBe('group');
    expect(reply.group?.id).toBe(group.id);
    expect(
      model.calls.some((c) => c.promptText.includes('group-quiet') && c.userText.includes('group-quiet')),
    ).toBe(false);
    const call = model.calls.find((c) => c.userText.includes('group-loud'));
    expect(call?.userText).toContain('alice');
  }, 150_000);

  it('an attachment from a relay user reaches the agent as media', async () => {
    const bytes = Buffer.from(`attachment body ${'x'.repeat(2000)}\n`);
    const dir = await mkdtemp(join(tmpdir(), 'owc-att-'));
    const path = join(dir, 'notes.txt');
    await writeFile(path, bytes);
    await alice.client.sendFile(agent.id, { path, contentType: 'text/plain' }, 'see attached file-in-1');
    await waitFor(
      'the reply to file-in-1',
      async () => fromAgent(await inbox(alice), agent.id, 'pong file-in-1')[0],
      90_000,
    );
    const call = model.calls.find((c) => c.userText.includes('file-in-1'));
    // OpenClaw stages the stored media for the turn, names it, and shows a text file's content inline.
    const staged = /\[media attached: (\S+) \(text\/plain\)\]/.exec(call?.userText ?? '')?.[1];
    expect(staged, call?.userText).toMatch(/notes/);
    expect(call?.userText).toContain(bytes.toString('utf8').trim());
    if (staged && existsSync(staged)) {
      expect(
        createHash('sha256')
          .update(await readFile(staged))
          .digest('hex'),
      ).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
    await rm(dir, { recursive: true, force: true });
  }, 150_000);

  it('`openclaw message send` reaches a relay user, with a file, and a group by its target', async () => {
    const file = join(oc.workspace, 'report.txt');
    await writeFile(file, 'report from the agent\n');
    await oc.cli(
      [
        'message',
        'send',
        '--channel',
        'openwechat',
        '--target',
        String(alice.id),
        '--message',
        'cli-text-1',
        '--media',
        file,
      ],
      150_000,
    );
    const got = await waitFor(
      'the CLI message',
      async () => fromAgent(await inbox(alice), agent.id).find((m) => m.attachment?.name === 'report.txt'),
      30_000,
    );
    expect(got.attachment?.fileId).toBeTruthy();
    const dl = await mkdtemp(join(tmpdir(), 'owc-dl-'));
    const saved = await alice.client.downloadFile(got.attachment!.fileId!, join(dl, 'r.txt'));
    expect(await readFile(saved.path, 'utf8')).toBe('report from the agent\n');
    await rm(dl, { recursive: true, force: true });
    expect(fromAgent(await inbox(alice), agent.id, 'cli-text-1').length).toBeGreaterThan(0);
  }, 200_000);

  it('crash: SIGKILL mid-turn, restart: the message is answered once and nothing else is lost', async () => {
    let release!: () => void;
    const promise = new Promise<void>((r) => (release = r));
    holds.set('crash-1', { promise, release });
    await alice.client.send(agent.id, 'slow one crash-1');
    await alice.client.send(agent.id, 'queued behind crash-2');
    await waitFor(
      'the model call for crash-1',
      () => (model.calls.some((c) => c.userText.includes('crash-1')) ? true : undefined),
      90_000,
    );
    await gateway.kill('SIGKILL');
    holds.delete('crash-1');
    release();
    const callsBefore = model.calls.length;
    // Restart with the summary switched off (checked by the next test on the replayed turn).
    await oc.patchConfig({ plugins: { entries: { openwechat: { config: { contextSummary: false } } } } });
    gateway = await oc.startGateway();
    figures.record('gateway restart after SIGKILL (s)', gateway.startMs / 1000);
    await waitFor(
      'both answers after the restart',
      async () => {
        const msgs = await inbox(alice);
        return fromAgent(msgs, agent.id, 'pong crash-1').length &&
          fromAgent(msgs, agent.id, 'pong crash-2').length
          ? true
          : undefined;
      },
      120_000,
    );
    const msgs = await inbox(alice);
    const answered1 = fromAgent(msgs, agent.id, 'pong crash-1').length;
    const answered2 = fromAgent(msgs, agent.id, 'pong crash-2').length;
    figures.record('crash test: messages lost', (answered1 ? 0 : 1) + (answered2 ? 0 : 1));
    figures.record('crash test: replies duplicated', Math.max(0, answered1 - 1) + Math.max(0, answered2 - 1));
    expect(answered1).toBe(1);
    expect(answered2).toBe(1);
    // The interrupted turn was dispatched again after the restart.
    expect(model.calls.slice(callsBefore).some((c) => c.userText.includes('crash-1'))).toBe(true);
    // Every earlier answer is still there exactly once.
    for (const marker of ['ping-1', 'ping-2', 'ping-3', 'file-in-1']) {
      expect(fromAgent(msgs, agent.id, `pong ${marker}`)).toHaveLength(1);
    }
  }, 300_000);

  it('the context summary is absent when the plugin config turns it off', () => {
    const replayed = [...model.calls].reverse().find((c) => c.userText.includes('crash-2'));
    expect(replayed).toBeDefined();
    expect(replayed!.promptText).not.toContain(SUMMARY_MARK);
  });
});
