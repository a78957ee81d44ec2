// Webhook delivery under failure: OpenClaw down for "60 s" (timings scaled 1:20 through the bridge's own
// settings — backoff base 1 s → 50 ms, cap 60 s → 3 s, outage 60 s → 3 s; the code path is the production
// one), 503 + Retry-After, and a permanent 400 that goes to the dead letters and is replayed by the CLI.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { befriend, req, send, type User } from '../relay/client.ts';
import {
  BOT_TOKEN,
  bridgeEnv,
  bridgeSuite,
  expectNoSecrets,
  runCli,
  SECRET,
  sleep,
  startReceiver,
  startTestBridge,
  until,
  type Delivery,
  type LogCapture,
} from './helpers.ts';
import { runDeadLetterCli, type Bridge } from '@openwechat/bridge';

const SCALE = 1 / 20;
const OUTAGE_MS = 60_000 * SCALE;

const { relay, receiver, bot, users, startBridge } = bridgeSuite({ bot: 'abot', users: ['u1', 'u2', 'u3'] });
let bridge: Bridge;
let logs: LogCapture;
let dataDir: string;

beforeAll(async () => {
  for (const u of users) await befriend(relay.url, u, bot);
  // The set-up traffic is not what these tests look at: acknowledge it before the bridge starts.
  const ack = await req(relay.url, 'POST', '/messages/ack', { token: bot.token, json: { up_to: 1_000_000 } });
  expect(ack.status).toBe(200);
  ({ bridge, logs, dataDir } = await startBridge({
    extra: {
      BRIDGE_RETRY_BASE_MS: String(1000 * SCALE),
      BRIDGE_RETRY_MAX_DELAY_MS: String(60_000 * SCALE),
      BRIDGE_RETRY_HORIZON_SECONDS: '600',
    },
  }));
});

const content = (d: Delivery): string => d.json.Content?.string ?? '';

describe('webhook delivery', () => {
  it('OpenClaw down for 60 s (scaled): afterwards every message arrives, in order per conversation, once', async () => {
    await receiver.stop();
    const sent: Array<{ user: User; text: string }> = [];
    for (let round = 1; round <= 4; round++) {
      for (const u of users) {
        const text = `${u.name} #${round}`;
        expect((await send(relay.url, u, bot.id, text)).status).toBe(200);
        sent.push({ user: u, text });
      }
    }
    // Every conversation has tried and failed at least once while the receiver was down.
    await until(() => {
      const failed = logs.lines().filter((l) => l.hop === 'webhook' && l.outcome === 'retry');
      return new Set(failed.map((l) => l.conversationId)).size === users.length;
    }, 'failed attempts in every conversation');
    await sleep(OUTAGE_MS);
    expect(receiver.all).toHaveLength(0);
    await receiver.start();

    await until(() => receiver.accepted().length >= sent.length, 'all messages after the outage', 30_000);
    await sleep(200); // any stray duplicate would show up now
    const got = receiver.accepted();
    expect(got).toHaveLength(sent.length);
    const ids = got.map((d) => d.json.NewMsgId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const u of users) {
      const expected = sent.filter((s) => s.user === u).map((s) => s.text);
      const order = got.filter((d) => d.json.FromUserName.string === `owc_${u.id}`).map(content);
      expect(order).toEqual(expected);
    }
    const retries = logs.lines().filter((l) => l.hop === 'webhook' && l.outcome === 'retry');
    expect(retries.every((l) => String(l.status).startsWith('network'))).toBe(true);
  });

  it('503 with Retry-After is honoured, and the retry carries the same bytes and NewMsgId', async () => {
    let refused = false;
    receiver.behaviour = (d) => {
      if (content(d) === 'slow down' && !refused) {
        refused = true;
        return { status: 503, headers: { 'retry-after': '1' } };
      }
      return { status: 200 };
    };
    expect((await send(relay.url, users[0]!, bot.id, 'slow down')).status).toBe(200);
    await until(() => receiver.accepted().some((d) => content(d) === 'slow down'), 'the retried message');
    const tries = receiver.all.filter((d) => content(d) === 'slow down');
    expect(tries.map((d) => d.status)).toEqual([503, 200]);
    expect(tries[1]!.raw).toBe(tries[0]!.raw);
    // The planned wait respected Retry-After, and so did the real one (a lower bound cannot flake).
    const planned = logs
      .lines()
      .find(
        (l) => l.hop === 'webhook' && l.outcome === 'retry' && l.eventId === String(tries[0]!.json.NewMsgId),
      );
    expect(planned).toMatchObject({ status: '503', retry_after_ms: 1000 });
    expect(Number(planned!.retry_in_ms)).toBeGreaterThanOrEqual(1000);
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(990);
  });

  it('a 400 goes to the dead letters at once, does not block the conversation, and the CLI replays it', async () => {
    let poisonAccepted = false;
    receiver.behaviour = (d) =>
      content(d) === 'poison' && !poisonAccepted ? { status: 400 } : { status: 200 };
    const u = users[1]!;
    expect((await send(relay.url, u, bot.id, 'poison')).status).toBe(200);
    expect((await send(relay.url, u, bot.id, 'after poison')).status).toBe(200);
    // FIFO: "after poison" is only attempted once "poison" is settled, so the count below is final.
    await until(() => receiver.accepted().some((d) => content(d) === 'after poison'), 'the next message');
    const poison = receiver.all.filter((d) => content(d) === 'poison');
    expect(poison.map((d) => d.status)).toEqual([400]);

    const list = await runCli(dataDir, ['list', '--json']);
    expect(list.code).toBe(0);
    const dead = JSON.parse(list.stdout) as Array<{
      seq: number;
      eventId: string;
      lastStatus: string;
      attempts: number;
    }>;
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({
      eventId: String(poison[0]!.json.NewMsgId),
      lastStatus: '400',
      attempts: 1,
    });
    const health = (await (await fetch(`${bridge.url}/health`)).json()) as { outbox: { dead: number } };
    expect(health.outbox.dead).toBe(1);

    poisonAccepted = true;
    const replay = await runCli(dataDir, ['replay', String(dead[0]!.seq)]);
    expect(replay).toMatchObject({ code: 0, stdout: 'queued again: 1\n' });
    await until(() => receiver.accepted().some((d) => content(d) === 'poison'), 'the replayed dead letter');
    const replayed = receiver.accepted().find((d) => content(d) === 'poison')!;
    expect(replayed.raw).toBe(poison[0]!.raw);
    const out: string[] = [];
    expect(runDeadLetterCli(['list'], dataDir, { out: (l) => out.push(l), err: (l) => out.push(l) })).toBe(0);
    expect(out).toEqual(['no dead letters']);
  });
});

describe('retry horizon (injected clock)', () => {
  it('a message still failing transiently past BRIDGE_RETRY_HORIZON_SECONDS goes to the dead letters', async () => {
    // The bridge's clock runs an hour ahead once the first attempt has failed: the horizon is then passed.
    let offset = 0;
    const rec = await startReceiver();
    rec.behaviour = () => {
      offset = 3_600_000;
      return { status: 500 };
    };
    const dir = await mkdtemp(join(tmpdir(), 'owc-bridge-horizon-'));
    const extra = {
      BRIDGE_RETRY_HORIZON_SECONDS: '3600',
      BRIDGE_RETRY_MAX_DELAY_MS: '60000',
      BRIDGE_RETRY_BASE_MS: '1000',
    };
    const started = await startTestBridge(
      bridgeEnv({ relayUrl: relay.url, relayToken: bot.token, webhookUrl: rec.url, dataDir: dir, extra }),
      { now: () => Date.now() + offset },
    );
    try {
      // A stored-but-undelivered message is what the horizon is about: send one through /im/inbound.
      const raw =
        '{"MsgId":1,"FromUserName":{"string":"wxid_h"},"Content":{"string":"doomed"},"NewMsgId":77}';
      const r = await fetch(`${started.bridge.url}/im/inbound`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BOT_TOKEN}` },
        body: raw,
      });
      expect(r.status).toBe(202);
      await until(() => started.bridge.outbox.list('dead').length === 1, 'the dead letter');
      const [dead] = started.bridge.outbox.list('dead');
      expect(dead).toMatchObject({ eventId: '77', attempts: 1, lastStatus: '500' });
      expect(dead!.deadReason).toMatch(/retry horizon of 3600s exceeded/);
      expect(rec.all).toHaveLength(1);
    } finally {
      await started.bridge.close();
      await rec.stop();
      await rm(dir, { recursive: true, force: true });
      expectNoSecrets(started.logs.text, [SECRET, BOT_TOKEN, bot.token], rec.all);
    }
  });
});
