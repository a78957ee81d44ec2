// The bridge as a real child process (`node packages/bridge/dist/main.js`), SIGKILLed while a
// webhook request is in flight, restarted on the same outbox: every message still arrives, in order, and
// the only repeats are the ones whose answer was lost — with the same NewMsgId and the same bytes.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnRelay, stopAllRelays } from '../helpers/process.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { befriend, register, req, send, type User } from '../relay/client.ts';
import {
  BOT_TOKEN,
  bridgeEnv,
  expectNoSecrets,
  SECRET,
  sleep,
  spawnBridge,
  startReceiver,
  until,
  type BridgeProcess,
  type Receiver,
} from './helpers.ts';

let relay: TestRelay;
let receiver: Receiver;
let dataDir: string;
let bot: User;
let alice: User;
const procs: BridgeProcess[] = [];

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 10 });
  bot = await register(relay.url, 'abot');
  alice = await register(relay.url, 'alice');
  await befriend(relay.url, alice, bot);
  expect(
    (await req(relay.url, 'POST', '/messages/ack', { token: bot.token, json: { up_to: 1_000_000 } })).status,
  ).toBe(200);
  receiver = await startReceiver();
  dataDir = await mkdtemp(join(tmpdir(), 'owc-bridge-crash-'));
});

afterAll(async () => {
  for (const p of procs) await p.kill('SIGKILL');
  await stopAllRelays();
  await receiver?.stop();
  await relay?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('bridge crash', () => {
  it('SIGKILL mid-delivery: after a restart the rest is delivered; a repeat only with the same NewMsgId', async () => {
    const env = bridgeEnv({ relayUrl: relay.url, relayToken: bot.token, webhookUrl: receiver.url, dataDir });
    // A slow receiver; the 5th request is held open until the bridge has been killed.
    let releaseHeld!: () => void;
    const held = new Promise<void>((r) => (releaseHeld = r));
    let count = 0;
    receiver.behaviour = () => {
      count++;
      return count === 5 ? { status: 200, wait: held } : { status: 200, wait: sleep(100) };
    };

    const first = await spawnBridge(env);
    procs.push(first);
    const texts: string[] = [];
    for (let i = 1; i <= 12; i++) {
      texts.push(`m${i}`);
      expect((await send(relay.url, alice, bot.id, `m${i}`)).status).toBe(200);
    }
    await until(() => receiver.all.length >= 5, 'the 5th request (held)');
    await first.kill('SIGKILL');
    releaseHeld();
    const heldDelivery = receiver.all[4]!;

    // Messages sent while the bridge is dead wait on the relay.
    for (let i = 13; i <= 16; i++) {
      texts.push(`m${i}`);
      expect((await send(relay.url, alice, bot.id, `m${i}`)).status).toBe(200);
    }
    receiver.behaviour = () => ({ status: 200 });
    const second = await spawnBridge(env);
    procs.push(second);

    const distinct = (): Set<string> => new Set(receiver.accepted().map((d) => d.json.Content.string));
    await until(() => texts.every((t) => distinct().has(t)), 'every message after the restart', 30_000);
    await sleep(300);

    const got = receiver.accepted();
    // Order of first arrival is the send order.
    const firstSeen: string[] = [];
    for (const d of got)
      if (!firstSeen.includes(d.json.Content.string)) firstSeen.push(d.json.Content.string);
    expect(firstSeen).toEqual(texts);
    // One NewMsgId per message, and every copy of it is byte-identical.
    const byText = new Map<string, Set<number>>();
    const bytesById = new Map<number, Set<string>>();
    for (const d of receiver.all) {
      byText.set(
        d.json.Content.string,
        (byText.get(d.json.Content.string) ?? new Set()).add(d.json.NewMsgId),
      );
      bytesById.set(d.json.NewMsgId, (bytesById.get(d.json.NewMsgId) ?? new Set()).add(d.raw));
    }
    for (const ids of byText.values()) expect(ids.size).toBe(1);
    for (const raws of bytesById.values()) expect(raws.size).toBe(1);
    expect(new Set(byText.values()).size).toBe(texts.length);
    // The only message that may repeat is the one whose answer the killed bridge never read.
    const repeats = got.filter((d, i) => got.findIndex((x) => x.json.NewMsgId === d.json.NewMsgId) !== i);
    expect(repeats.map((r) => r.json.NewMsgId)).toEqual([heldDelivery.json.NewMsgId]);

    // A clean stop on SIGTERM.
    await second.kill('SIGTERM');
    expect(second.child.exitCode).toBe(0);
    const allLogs = procs.map((p) => p.stdout() + p.stderr()).join('\n');
    expect(allLogs).toMatch(/"hop":"webhook"/);
    expectNoSecrets(allLogs, [SECRET, BOT_TOKEN, bot.token, alice.token], receiver.all);
  });
});

describe('relay crash', () => {
  it('the relay SIGKILLed and restarted: the bridge reconnects, resumes and loses nothing', async () => {
    const relayDir = await mkdtemp(join(tmpdir(), 'owc-bridge-relay-'));
    const bridgeDir = await mkdtemp(join(tmpdir(), 'owc-bridge-relay-b-'));
    try {
      let relayProc = await spawnRelay({ dataDir: relayDir });
      const bot2 = await register(relayProc.url, 'abot2');
      const bob = await register(relayProc.url, 'bob');
      await befriend(relayProc.url, bob, bot2);
      await req(relayProc.url, 'POST', '/messages/ack', { token: bot2.token, json: { up_to: 1_000_000 } });
      const rec = await startReceiver();
      const bridge = await spawnBridge(
        bridgeEnv({
          relayUrl: relayProc.url,
          relayToken: bot2.token,
          webhookUrl: rec.url,
          dataDir: bridgeDir,
        }),
      );
      procs.push(bridge);
      expect((await send(relayProc.url, bob, bot2.id, 'before')).status).toBe(200);
      await until(() => rec.accepted().some((d) => d.json.Content.string === 'before'), 'the first message');

      await relayProc.kill('SIGKILL');
      relayProc = await spawnRelay({ dataDir: relayDir, port: relayProc.port });
      for (const t of ['after 1', 'after 2'])
        expect((await send(relayProc.url, bob, bot2.id, t)).status).toBe(200);
      await until(
        () => rec.accepted().some((d) => d.json.Content.string === 'after 2'),
        'messages after the restart',
      );
      expect(rec.accepted().map((d) => d.json.Content.string)).toEqual(['before', 'after 1', 'after 2']);
      expect(bridge.stdout()).toMatch(/"hop":"relay_stream","status":"disconnected"/);
      await bridge.kill('SIGTERM');
      await rec.stop();
      expectNoSecrets(bridge.stdout() + bridge.stderr(), [SECRET, BOT_TOKEN, bot2.token, bob.token], rec.all);
    } finally {
      await rm(relayDir, { recursive: true, force: true });
      await rm(bridgeDir, { recursive: true, force: true });
    }
  });
});
