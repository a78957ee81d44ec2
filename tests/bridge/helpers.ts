// Test pieces for the bridge suites: a fake OpenClaw webhook receiver (a real HTTP server that verifies
// every signature with independent implementations: @octokit/webhooks-methods for `sha256=` and
// standardwebhooks for strong mode), bridge config/start helpers with captured logs, the bridge as a child
// process, the "no secret in the logs" check, and bridgeSuite (below): the suites' shared set-up.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { verify as verifySha256 } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig, startBridge, type Bridge, type BridgeConfig, type BridgeDeps } from '@openwechat/bridge';
import { late } from '../helpers/fixtures.ts';
import { startRelay, type TestRelay, type TestRelayOptions } from '../helpers/relay.ts';
import { register, type User } from '../relay/client.ts';
import { bundlePath } from '../../scripts/build.ts';

export const SECRET = 'test-webhook-secret-5f1c0e8a9b';
export const BOT_TOKEN = 'test-bot-token-8c2d4e6f0a1b3c5d';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The bundle `npm run bridge` runs (built once per test run by tests/global-setup.ts). */
const MAIN = bundlePath('bridge');

/** A temp-folder maker for one test file: every folder it makes is removed after the file's tests. */
export function tempDirs(prefix: string): () => Promise<string> {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  return async () => {
    const d = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls a condition (cheap checks on in-memory state) until it holds; rejects with `what` after timeout. */
export async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export interface AddMsgJson {
  MsgId: number;
  FromUserName: { string: string };
  ToUserName: { string: string };
  MsgType: number;
  Content: { string: string };
  Status: number;
  ImgStatus: number;
  ImgBuf: { iLen: number };
  CreateTime: number;
  MsgSource: string;
  PushContent: string;
  NewMsgId: number;
  MsgSeq: number;
}

export interface Delivery {
  /** The exact body as received. */
  raw: string;
  json: AddMsgJson;
  headers: IncomingHttpHeaders;
  /** X-Wechat-Abot-Signature verified by @octokit/webhooks-methods. */
  plainOk: boolean;
  /** Standard Webhooks headers verified by standardwebhooks (null when absent). */
  strongOk: boolean | null;
  /** performance.now() at arrival. */
  at: number;
  /** Status this receiver answered. */
  status: number;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
  /** Hold the answer until this resolves (a slow receiver). */
  wait?: Promise<void>;
}

export interface Receiver {
  url: string;
  port: number;
  /** Every request received (including refused ones), in arrival order. */
  all: Delivery[];
  /** Requests answered with 2xx. */
  accepted(): Delivery[];
  behaviour: (d: Delivery) => Answer;
  /** Stops listening and drops open connections ("OpenClaw is down"). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
}

export async function startReceiver(secret = SECRET, port = 0): Promise<Receiver> {
  const wh = new Webhook(secret, { format: 'raw' });
  let server: Server | null = null;
  const rec: Receiver = {
    url: '',
    port,
    all: [],
    accepted: () => rec.all.filter((d) => d.status >= 200 && d.status < 300),
    behaviour: () => ({ status: 200 }),
    async stop() {
      const s = server;
      server = null;
      if (!s) return;
      const closed = new Promise<void>((r) => s.close(() => r()));
      s.closeAllConnections();
      await closed;
    },
    async start() {
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          void (async () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            const sig = String(req.headers['x-wechat-abot-signature'] ?? '');
            const plainOk = await verifySha256(secret, raw, sig).catch(() => false);
            let strongOk: boolean | null = null;
            if (req.headers['webhook-signature'] !== undefined) {
              try {
                wh.verify(raw, {
                  'webhook-id': String(req.headers['webhook-id']),
                  'webhook-timestamp': String(req.headers['webhook-timestamp']),
                  'webhook-signature': String(req.headers['webhook-signature']),
                });
                strongOk = true;
              } catch {
                strongOk = false;
              }
            }
            let json: AddMsgJson;
            try {
              json = JSON.parse(raw) as AddMsgJson;
            } catch {
              json = {} as AddMsgJson;
            }
            const d: Delivery = {
              raw,
              json,
              headers: req.headers,
              plainOk,
              strongOk,
              at: performance.now(),
              status: 0,
            };
            // An unsigned or wrongly signed request is refused as the plugin would (401).
            const answer: Answer = plainOk && strongOk !== false ? rec.behaviour(d) : { status: 401 };
            d.status = answer.status;
            rec.all.push(d);
            if (answer.wait) await answer.wait;
            res.writeHead(answer.status, { 'content-type': 'application/json', ...(answer.headers ?? {}) });
            res.end(JSON.stringify({ ok: answer.status < 300 }));
          })();
        });
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(rec.port, '127.0.0.1', () => resolve());
      });
      server = s;
      rec.port = (s.address() as AddressInfo).port;
      rec.url = `http://127.0.0.1:${rec.port}/wechat_abot/webhook`;
    },
  };
  await rec.start();
  return rec;
}

/** Collects a bridge's JSON log lines. */
export class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString('utf8');
    cb();
  }
  lines(): Array<Record<string, unknown>> {
    return this.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

/** Environment for a bridge (the same names an operator sets). */
export function bridgeEnv(o: {
  relayUrl: string;
  relayToken: string;
  webhookUrl: string;
  dataDir: string;
  extra?: Record<string, string>;
}): Record<string, string> {
  return {
    RELAY_BASE_URL: o.relayUrl,
    RELAY_TOKEN: o.relayToken,
    OPENCLAW_WEBHOOK_URL: o.webhookUrl,
    WECHAT_ABOT_WEBHOOK_SECRET: SECRET,
    WECHAT_ABOT_BOT_TOKEN: BOT_TOKEN,
    BRIDGE_HOST: '127.0.0.1',
    BRIDGE_PORT: '0',
    BRIDGE_DATA_DIR: o.dataDir,
    // Scaled-down timings (the logic is the production one): 1 s → 50 ms, 60 s → 1 s.
    BRIDGE_RETRY_BASE_MS: '50',
    BRIDGE_RETRY_MAX_DELAY_MS: '1000',
    LOG_LEVEL: 'debug',
    ...o.extra,
  };
}

export async function startTestBridge(
  env: Record<string, string>,
  deps: BridgeDeps = {},
): Promise<{ bridge: Bridge; logs: LogCapture; config: BridgeConfig }> {
  const logs = new LogCapture();
  const config = loadConfig(env);
  const bridge = await startBridge(config, { logStream: logs, ...deps });
  return { bridge, logs, config };
}

export interface SendApiReply {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

export async function callSend(
  bridgeUrl: string,
  body: unknown,
  opts: { token?: string | null; headers?: Record<string, string>; path?: string; raw?: string } = {},
): Promise<SendApiReply> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  const token = opts.token === undefined ? BOT_TOKEN : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const res = await fetch(bridgeUrl + (opts.path ?? '/api/messages/send'), {
    method: 'POST',
    headers,
    body: opts.raw ?? JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = { text };
  }
  return { status: res.status, headers: res.headers, json };
}

/**
 * The logs must hold no secret: not the webhook secret, the bot token, the relay token(s), nor any full
 * signature that was sent (hex or base64 form).
 */
export function expectNoSecrets(logText: string, secrets: string[], deliveries: Delivery[] = []): void {
  expect(logText.length).toBeGreaterThan(0);
  const needles = [...secrets];
  for (const d of deliveries) {
    const plain = String(d.headers['x-wechat-abot-signature'] ?? '');
    if (plain) needles.push(plain, plain.replace(/^sha256=/, ''));
    const strong = d.headers['webhook-signature'];
    if (strong) needles.push(String(strong), String(strong).replace(/^v1,/, ''));
  }
  for (const n of needles.filter((x) => x.length >= 8)) {
    if (logText.includes(n)) throw new Error(`a secret or signature appears in the logs: ${n.slice(0, 6)}…`);
  }
}

export interface BridgeProcess {
  url: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** Runs `node packages/bridge/dist/main.js` with the given environment. */
export async function spawnBridge(env: Record<string, string>, args: string[] = []): Promise<BridgeProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<void>((r) =>
    child.once('exit', () => {
      children.delete(child);
      r();
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail('did not start within 20 s'), 20_000);
    const onData = (): void => {
      const m = /openwechat bridge listening on (http:\/\/[\d.:]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolve(m[1]!);
      }
    };
    const onExit = (): void => fail('exited before listening');
    function fail(why: string): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`bridge ${why}\n--- stderr ---\n${err}\n--- stdout ---\n${out}`));
    }
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  return {
    url,
    child,
    stdout: () => out,
    stderr: () => err,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Runs the dead-letter CLI as the operator would; returns its stdout. */
export async function runCli(
  dataDir: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, 'dead-letters', ...args], {
    cwd: ROOT,
    env: { ...process.env, BRIDGE_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return { code, stdout, stderr };
}

// ── bridgeSuite ──────────────────────────────────────────────────────────────────────────────────────
// A real relay with a bot account (and any human accounts), a fake OpenClaw receiver, and bridges for the
// bot started on demand. At the end of the suite every bridge, the receiver and the relay are closed,
// their data folders removed, and the bridges' logs checked for secrets: the webhook secret, the bot
// token, every account's relay token, whatever the tests add to `secrets`, and every signature sent.

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
