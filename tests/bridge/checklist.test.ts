// The seed checklist's own names (seeds/003): an operator who set OPENCLAW_WEBHOOK_URL,
// OPENCLAW_WEBHOOK_SECRET and IM_BOT_TOKEN as the checklist's example does — plus the relay side's
// RELAY_BASE_URL and RELAY_TOKEN — starts `npm run bridge` with nothing else, and messages flow both ways,
// signed with the checklist's secret. Also: BRIDGE_RECORD_FORMAT=gewechat on the wire, one conversationId
// form per hop, and the warning for an env file readable by others. Real relay, real bridge process.

import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { register, send, type User } from '../relay/client.ts';
import {
  callSend,
  expectNoSecrets,
  spawnBridge,
  startReceiver,
  tempDirs,
  until,
  type BridgeProcess,
  type Receiver,
} from './helpers.ts';

const tempDir = tempDirs('owc-bridge-checklist-');
const CHECKLIST_SECRET = 'checklist-webhook-secret-7d1e';
const CHECKLIST_BOT_TOKEN = 'checklist-bot-token-3a9f0c';

function logLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("the bridge with only the checklist's variable names", () => {
  let relay: TestRelay;
  let receiver: Receiver;
  let bridge: BridgeProcess;
  let bot: User;
  let alice: User;

  beforeAll(async () => {
    relay = await startRelay({ sseMaxPerIp: 10 });
    bot = await register(relay.url, 'abot_checklist');
    alice = await register(relay.url, 'alice_checklist');
    // The receiver verifies X-Wechat-Abot-Signature with the checklist's secret (401 otherwise).
    receiver = await startReceiver(CHECKLIST_SECRET);
    // The environment holds the checklist's names and the relay's; where the bridge listens and keeps its
    // data are flags, so that nothing of ours is in the environment.
    bridge = await spawnBridge(
      {
        RELAY_BASE_URL: relay.url,
        RELAY_TOKEN: bot.token,
        OPENCLAW_WEBHOOK_URL: receiver.url,
        OPENCLAW_WEBHOOK_SECRET: CHECKLIST_SECRET,
        IM_BOT_TOKEN: CHECKLIST_BOT_TOKEN,
      },
      ['--bridge-port', '0', '--bridge-data-dir', await tempDir(), '--log-level', 'debug'],
    );
  });

  afterAll(async () => {
    await bridge?.kill();
    await receiver?.stop();
    await relay?.close();
    if (bridge)
      expectNoSecrets(bridge.stdout(), [CHECKLIST_SECRET, CHECKLIST_BOT_TOKEN, bot.token], receiver.all);
  });

  it('delivers signed with OPENCLAW_WEBHOOK_SECRET and answers the send API for IM_BOT_TOKEN', async () => {
    expect((await send(relay.url, alice, bot.id, 'hello from the checklist')).status).toBe(200);
    await until(
      () => receiver.accepted().some((d) => d.json.Content?.string === 'hello from the checklist'),
      'the signed AddMsg',
    );
    const d = receiver.accepted().find((x) => x.json.Content.string === 'hello from the checklist')!;
    expect(d.plainOk).toBe(true);
    expect(d.json.FromUserName.string).toBe(`owc_${alice.id}`);

    // The wrong token is refused; the checklist's is accepted. `to` as a bare id on purpose (see below).
    expect(
      (await callSend(bridge.url, { to: String(alice.id), text: 'x' }, { token: 'not-it' })).status,
    ).toBe(401);
    const reply = await callSend(
      bridge.url,
      { to: String(alice.id), text: 'hi alice' },
      { token: CHECKLIST_BOT_TOKEN },
    );
    expect(reply.status).toBe(200);
    expect(reply.json.messageId).toMatch(new RegExp(`^out_${alice.id}_\\d+$`));
  });

  it('names the conversation one way in every log line of a hop (a bare id is logged as owc_<id>)', async () => {
    await until(
      () => logLines(bridge.stdout()).some((l) => l.hop === 'send_api' && l.messageId !== undefined),
      'the send_api log line',
    );
    const lines = logLines(bridge.stdout());
    const sendHop = lines.filter((l) => l.hop === 'send_api' || l.hop === 'relay_send');
    expect(sendHop.map((l) => l.hop)).toEqual(expect.arrayContaining(['send_api', 'relay_send']));
    for (const l of sendHop.filter((x) => x.conversationId !== undefined))
      expect(l.conversationId, JSON.stringify(l)).toBe(`owc_${alice.id}`);
    const inHop = lines.filter((l) => (l.hop === 'relay_in' || l.hop === 'webhook') && l.conversationId);
    expect(inHop.length).toBeGreaterThanOrEqual(2);
    for (const l of inHop) expect(l.conversationId, JSON.stringify(l)).toBe(`owc_${alice.id}`);
    // Nothing of ours was in its environment, so nothing was warned about either.
    expect(lines.filter((l) => l.hop === 'startup' && String(l.msg).startsWith('configuration'))).toEqual([]);
  });
});

describe('BRIDGE_RECORD_FORMAT=gewechat from an env file readable by others', () => {
  let relay: TestRelay;
  let receiver: Receiver;
  let bridge: BridgeProcess;
  let bot: User;
  let alice: User;
  let envFile: string;

  beforeAll(async () => {
    relay = await startRelay({ sseMaxPerIp: 10 });
    bot = await register(relay.url, 'abot_gewe');
    alice = await register(relay.url, 'alice_gewe');
    receiver = await startReceiver(CHECKLIST_SECRET);
    const dir = await tempDir();
    envFile = join(dir, 'bridge.env');
    // As `cp bridge.env.sample bridge.env` leaves it under a usual umask: 0644.
    writeFileSync(
      envFile,
      [
        `RELAY_BASE_URL=${relay.url}`,
        `RELAY_TOKEN=${bot.token}`,
        `OPENCLAW_WEBHOOK_URL=${receiver.url}`,
        `OPENCLAW_WEBHOOK_SECRET=${CHECKLIST_SECRET}`,
        `IM_BOT_TOKEN=${CHECKLIST_BOT_TOKEN}`,
        'BRIDGE_RECORD_FORMAT=gewechat',
        'BRIDGE_PORT=0',
        `BRIDGE_DATA_DIR=${join(dir, 'data')}`,
        '',
      ].join('\n'),
    );
    chmodSync(envFile, 0o644);
    bridge = await spawnBridge({}, ['--env-file', envFile]);
  });

  afterAll(async () => {
    await bridge?.kill();
    await receiver?.stop();
    await relay?.close();
  });

  it('warns at start that the env file is readable by others', async () => {
    await until(() => bridge.stdout().includes('readable by others'), 'the warning');
    const warning = logLines(bridge.stdout()).find((l) => String(l.msg).includes('env file'))!;
    expect(warning).toMatchObject({ level: 40, hop: 'startup', path: envFile });
  });

  it('wraps each record in the gewechat envelope, signed over the bytes sent', async () => {
    expect((await send(relay.url, alice, bot.id, 'hello gewe')).status).toBe(200);
    await until(() => receiver.accepted().some((d) => d.raw.includes('hello gewe')), 'the envelope');
    const d = receiver.accepted().find((x) => x.raw.includes('hello gewe'))!;
    // The receiver checked the signature over the raw body: the envelope.
    expect(d.plainOk).toBe(true);
    const envelope = JSON.parse(d.raw) as Record<string, unknown>;
    expect(Object.keys(envelope)).toEqual(['TypeName', 'Appid', 'Wxid', 'Data']);
    expect(envelope).toMatchObject({
      TypeName: 'AddMsg',
      Appid: `owc_${bot.id}`,
      Wxid: `owc_${bot.id}`,
      Data: {
        FromUserName: { string: `owc_${alice.id}` },
        ToUserName: { string: `owc_${bot.id}` },
        MsgType: 1,
        Content: { string: 'hello gewe' },
      },
    });
    // What gewe-openclaw requires before it accepts a payload (non-empty Appid, Wxid, Data with ids).
    const data = envelope.Data as { NewMsgId: number };
    expect(Number.isSafeInteger(data.NewMsgId)).toBe(true);
    expect(d.raw).toBe(JSON.stringify(envelope));
  });
});
