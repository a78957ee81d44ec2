// The bridge suites' shared set-up: a real relay with a bot account (and any human accounts), a fake
// OpenClaw receiver, and bridges for the bot started on demand with the suite's environment. At the end
// of the suite every bridge, the receiver and the relay are closed, their data folders removed, and the
// bridges' logs checked for secrets: the webhook secret, the bot token, every account's relay token and
// whatever the tests add to `secrets`, and every signature the receiver saw.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { Bridge, BridgeConfig, BridgeDeps } from '@openwechat/bridge';
import { late } from '../helpers/fixtures.ts';
import { startRelay, type TestRelay, type TestRelayOptions } from '../helpers/relay.ts';
import { register, type User } from '../relay/client.ts';
import {
  BOT_TOKEN,
  bridgeEnv,
  expectNoSecrets,
  SECRET,
  startReceiver,
  startTestBridge,
  type LogCapture,
  type Receiver,
} from './helpers.ts';

export interface StartedBridge {
  bridge: Bridge;
  logs: LogCapture;
  config: BridgeConfig;
  dataDir: string;
}

export interface BridgeStartOptions {
  /** Settings on top of bridgeEnv's (BRIDGE_*, WECHAT_ABOT_*). */
  extra?: Record<string, string>;
  deps?: BridgeDeps;
  /** Default: a new temp folder (removed after the suite). */
  dataDir?: string;
  /** Where the bridge reaches the relay; default the suite's relay (a proxy in front of it, say). */
  relayUrl?: string;
}

export interface BridgeSuite<Names extends readonly string[] = readonly string[]> {
  relay: TestRelay;
  receiver: Receiver;
  /** The bot account the bridges run as. */
  bot: User;
  /** The accounts named in `users`, in that order. */
  users: { [K in keyof Names]: User };
  /** More strings the bridges' logs must not hold. */
  secrets: string[];
  /** Every bridge started by startBridge (closed at the end). */
  started: StartedBridge[];
  /** Starts a bridge for the bot on the suite's relay and receiver. */
  startBridge(options?: BridgeStartOptions): Promise<StartedBridge>;
}

export interface BridgeSuiteOptions<Names extends readonly string[]> {
  /** Default { sseMaxPerIp: 10 }. */
  relay?: TestRelayOptions;
  bot: string;
  users?: Names;
}

/**
 * Registers the suite's hooks; the relay, receiver and accounts are ready in the tests and in any hook
 * registered after this call. A suite that starts no bridge skips the log check (there are no logs).
 */
export function bridgeSuite<const Names extends readonly string[] = []>(
  options: BridgeSuiteOptions<Names>,
): BridgeSuite<Names> {
  const relay = late<TestRelay>('the relay');
  const receiver = late<Receiver>('the receiver');
  const bot = late<User>(`the bot ${options.bot}`);
  const users = (options.users ?? []).map((name) => late<User>(`the user ${name}`));
  const dirs: string[] = [];
  const suite: BridgeSuite<Names> = {
    relay: relay.ref,
    receiver: receiver.ref,
    bot: bot.ref,
    users: users.map((u) => u.ref) as { [K in keyof Names]: User },
    secrets: [],
    started: [],
    async startBridge(o = {}) {
      let dataDir = o.dataDir;
      if (!dataDir) {
        dataDir = await mkdtemp(join(tmpdir(), 'owc-bridge-'));
        dirs.push(dataDir);
      }
      const env = bridgeEnv({
        relayUrl: o.relayUrl ?? suite.relay.url,
        relayToken: suite.bot.token,
        webhookUrl: suite.receiver.url,
        dataDir,
        extra: o.extra,
      });
      const started = { ...(await startTestBridge(env, o.deps)), dataDir };
      suite.started.push(started);
      return started;
    },
  };

  beforeAll(async () => {
    relay.set(await startRelay(options.relay ?? { sseMaxPerIp: 10 }));
    bot.set(await register(relay.ref.url, options.bot));
    for (const [i, name] of (options.users ?? []).entries())
      users[i]!.set(await register(relay.ref.url, name));
    receiver.set(await startReceiver());
  });

  afterAll(async () => {
    for (const s of suite.started) await s.bridge.close();
    if (receiver.isSet()) await receiver.ref.stop();
    if (relay.isSet()) await relay.ref.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    if (suite.started.length === 0) return;
    const tokens = [bot, ...users].filter((u) => u.isSet()).map((u) => u.ref.token);
    expectNoSecrets(
      suite.started.map((s) => s.logs.text).join(''),
      [SECRET, BOT_TOKEN, ...tokens, ...suite.secrets],
      receiver.ref.all,
    );
  });

  return suite;
}
