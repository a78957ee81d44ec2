// The bridge's copy of an attachment when the relay's `GET /files/<id>` fails (docs/bridge.md "Attachments:
// media links"): transient failures (5xx, a connection reset, a size mismatch) are retried with the shared
// backoff, 4 attempts in all, each wait capped at min(BRIDGE_RETRY_MAX_DELAY_MS, 10 s); then the message
// goes out with a link that streams from the relay. 404 is final (no retry, no URL), other answers give up
// at once. Real relay, real bridge, real fake OpenClaw receiver; between the bridge and the relay a small
// fault-injecting HTTP proxy (below) that forwards everything — SSE included, unbuffered — except the first
// N `GET /files/<id>` requests, which it answers with the chosen failure.

import { once } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Bridge } from '@openwechat/bridge';
import { seededBytes, sha256 } from '../helpers/bytes.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { befriend, postFile, register, type Upload, type User } from '../relay/client.ts';
import {
  BOT_TOKEN,
  bridgeEnv,
  expectNoSecrets,
  SECRET,
  sleep,
  startReceiver,
  startTestBridge,
  tempDirs,
  until,
  type Delivery,
  type LogCapture,
  type Receiver,
} from './helpers.ts';

const LINE_RE = /^\[附件\] (.+) \(([^,()]+), ([^()]+)\) (\S+)$/m;
const GONE_NOTE = '（文件已过期或已删除）';
const FILE_RE = /^\/files\/([^/?#]+)/;

// Backoff scaled down (the logic is the production one) and made deterministic: with random() = 0.999 the
// full-jitter wait after failure n is floor(0.999 · min(MAX, BASE · 2^(n−1))) = 19, 39, then 49 (capped).
const BASE_MS = 20;
const MAX_DELAY_MS = 50;
const RANDOM = 0.999;
const EXPECTED_WAITS = [19, 39, 49];

const tempDir = tempDirs('owc-bridge-media-retry-');

// ── The fault-injecting proxy ──────────────────────────────────────────────────────────────────────────

type Fault =
  | { kind: 'status'; status: number }
  /** The TCP connection is reset (RST) before any answer. */
  | { kind: 'reset' }
  /** The relay's answer with its last byte cut off (Content-Length adjusted): a size mismatch. */
  | { kind: 'truncate' };

interface FileRequest {
  fileId: string;
  /** What the proxy did with it. */
  answer: Fault['kind'] | 'pass';
  /** performance.now() at arrival. */
  at: number;
}

interface FaultProxy {
  url: string;
  /** Every `GET /files/…` request seen, in arrival order. */
  files: FileRequest[];
  /** Every `GET /stream` request seen (the bridge's relay stream). */
  streams: number;
  /** The next `n` `GET /files/…` requests get `fault` (Infinity: all of them); the rest pass. */
  failFiles(n: number, fault: Fault): void;
  /** Forward everything from now on. */
  passAll(): void;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

function endToEnd(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

async function startFaultProxy(target: string): Promise<FaultProxy> {
  const up = new URL(target);
  let remaining = 0;
  let fault: Fault = { kind: 'status', status: 503 };
  const proxy: FaultProxy = {
    url: '',
    files: [],
    streams: 0,
    failFiles(n, f) {
      remaining = n;
      fault = f;
    },
    passAll() {
      remaining = 0;
    },
    close: async () => {},
  };

  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const file = req.method === 'GET' ? FILE_RE.exec(path) : null;
    if (req.method === 'GET' && path.startsWith('/stream')) proxy.streams++;
    let truncate = false;
    if (file) {
      const f = remaining > 0 ? fault : null;
      if (f) remaining--;
      proxy.files.push({
        fileId: decodeURIComponent(file[1]!),
        answer: f?.kind ?? 'pass',
        at: performance.now(),
      });
      if (f?.kind === 'reset') {
        req.socket.resetAndDestroy();
        return;
      }
      if (f?.kind === 'status') {
        const body = JSON.stringify({
          error: { code: 'injected', message: `HTTP ${f.status} from the test proxy` },
        });
        res.writeHead(f.status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
        return;
      }
      truncate = f?.kind === 'truncate';
    }
    // Forward: a fresh upstream connection per request (agent: false), bodies streamed both ways.
    const upstream = httpRequest(
      {
        host: up.hostname,
        port: up.port,
        method: req.method,
        path,
        headers: { ...endToEnd(req.headers), host: up.host },
        agent: false,
      },
      (ur) => {
        const headers = endToEnd(ur.headers);
        if (truncate) {
          const n = Number(ur.headers['content-length']);
          headers['content-length'] = String(n - 1);
          res.writeHead(ur.statusCode ?? 502, headers);
          let left = n - 1;
          ur.on('data', (c: Buffer) => {
            if (left > 0) res.write(c.subarray(0, Math.min(left, c.length)));
            left -= c.length;
          });
          ur.on('end', () => res.end());
          ur.on('error', () => res.destroy());
          return;
        }
        res.writeHead(ur.statusCode ?? 502, headers);
        // Headers out now (an SSE answer has no body yet), then every chunk as it comes: res.write does not
        // buffer (the server sockets are noDelay), so `event:` lines and `: ping` reach the bridge at once.
        res.flushHeaders();
        pipeline(ur, res, () => {});
      },
    );
    upstream.on('error', () => res.destroy());
    // The bridge went away (closed its stream, aborted a download): drop the upstream request too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    pipeline(req, upstream, () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = async () => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections();
    await closed;
  };
  return proxy;
}

// ── Test pieces ────────────────────────────────────────────────────────────────────────────────────────

/** POST /send/file as multipart; the relay's status. */
async function sendFile(base: string, from: User, to: User, content: string, file: Upload): Promise<number> {
  return (
    await postFile(base, from, '/send/file', { to_id: String(to.id), content }, file, { jsonMode: true })
  ).status;
}

async function get(url: string): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(url);
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

const textOf = (d: Delivery): string => d.json.Content?.string ?? '';
const withAttachment = (r: Receiver): Delivery[] => r.accepted().filter((d) => textOf(d).includes('[附件]'));
const byMsg = (logs: LogCapture, msg: string): Array<Record<string, unknown>> =>
  logs.lines().filter((l) => l.msg === msg);

describe('copying an attachment through a faulty relay connection (fault-injecting proxy)', () => {
  let relay: TestRelay;
  let proxy: FaultProxy;
  let alice: User;
  /** The current case's pieces (one bot, receiver, data folder and bridge per case). */
  let bot: User;
  let receiver: Receiver;
  let bridge: Bridge | null;
  let logs: LogCapture;
  let dataDir: string;
  let n = 0;
  const secrets: string[] = [SECRET, BOT_TOKEN];

  beforeAll(async () => {
    relay = await startRelay({ sseMaxPerIp: 20 });
    proxy = await startFaultProxy(relay.url);
    alice = await register(relay.url, 'alice_r');
    secrets.push(alice.token);
  });

  afterAll(async () => {
    await proxy?.close();
    await relay?.close();
  });

  beforeEach(async () => {
    n++;
    bot = await register(relay.url, `rbot${n}`);
    secrets.push(bot.token);
    await befriend(relay.url, alice, bot);
    receiver = await startReceiver();
    dataDir = await tempDir();
    proxy.passAll();
    proxy.files.length = 0;
    const streamsBefore = proxy.streams;
    // The bridge talks to the relay only through the proxy.
    ({ bridge, logs } = await startTestBridge(
      bridgeEnv({
        relayUrl: proxy.url,
        relayToken: bot.token,
        webhookUrl: receiver.url,
        dataDir,
        extra: { BRIDGE_RETRY_BASE_MS: String(BASE_MS), BRIDGE_RETRY_MAX_DELAY_MS: String(MAX_DELAY_MS) },
      }),
      { random: () => RANDOM },
    ));
    // The relay stream is up (through the proxy) and the friend request has been forwarded.
    await until(() => receiver.accepted().length >= 1, 'the friend request through the proxied stream');
    expect(proxy.streams).toBeGreaterThan(streamsBefore);
    expect(proxy.files).toEqual([]);
  });

  afterEach(async () => {
    await bridge?.close();
    bridge = null;
    await receiver.stop();
    expectNoSecrets(logs.text, secrets, receiver.all);
  });

  /** Alice sends the bot a file; resolves with the one AddMsg carrying it (and checks it stays one). */
  async function sendAndReceive(
    content: string,
    bytes: Uint8Array<ArrayBuffer>,
    name: string,
  ): Promise<{ text: string; delivery: Delivery }> {
    expect(
      await sendFile(relay.url, alice, bot, content, { bytes, name, type: 'application/octet-stream' }),
    ).toBe(200);
    await until(() => withAttachment(receiver).length > 0, 'the AddMsg with the attachment');
    // Long enough for a duplicate (a replay, a second delivery) to show up.
    await sleep(300);
    const got = withAttachment(receiver);
    expect(got).toHaveLength(1);
    expect(got[0]!.plainOk).toBe(true);
    expect(bridge!.outbox.counts()).toMatchObject({ pending: 0, dead: 0 });
    return { text: textOf(got[0]!), delivery: got[0]! };
  }

  function linkOf(
    text: string,
    content: string,
    name: string,
    size: string,
  ): { url: string; fileId: string } {
    expect(text.startsWith(`${content}\n[附件] ${name} (${size}, application/octet-stream) `), text).toBe(
      true,
    );
    const m = LINE_RE.exec(text);
    expect(m, text).not.toBeNull();
    const url = m![4]!;
    expect(url.startsWith(`${bridge!.url}/media/`)).toBe(true);
    return { url, fileId: url.slice(url.lastIndexOf('/') + 1).split('.')[0]! };
  }

  async function metric(name: string, labels: string): Promise<number | null> {
    const text = await (await fetch(`${bridge!.url}/metrics`)).text();
    const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  }

  /** The copy is on disk (bytes + description) with exactly these bytes. */
  async function expectCopyOnDisk(fileId: string, bytes: Uint8Array): Promise<void> {
    const dir = join(dataDir, 'media');
    expect((await readdir(dir)).sort()).toEqual([fileId, `${fileId}.json`]);
    expect(sha256(await readFile(join(dir, fileId)))).toBe(sha256(bytes));
    const meta = JSON.parse(await readFile(join(dir, `${fileId}.json`), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ fileId, size: bytes.length, sha256: sha256(bytes) });
  }

  /** GET on the link: the bytes, and where the bridge took them from (its media log line). */
  async function fetchLink(url: string, bytes: Uint8Array, source: 'local' | 'relay'): Promise<void> {
    const before = logs.lines().filter((l) => l.hop === 'media').length;
    const a = await get(url);
    expect(a.status, a.bytes.toString('utf8').slice(0, 200)).toBe(200);
    expect(a.bytes.length).toBe(bytes.length);
    expect(sha256(a.bytes)).toBe(sha256(bytes));
    await until(() => logs.lines().filter((l) => l.hop === 'media').length > before, 'the media log line');
    expect(logs.lines().filter((l) => l.hop === 'media')[before]).toMatchObject({
      status: 200,
      outcome: 'complete',
      source,
    });
  }

  it('503 twice, then the relay answers: one AddMsg with a link, the copy kept on the 3rd attempt', async () => {
    proxy.failFiles(2, { kind: 'status', status: 503 });
    const bytes = seededBytes(300 * 1024 + 17, 41);
    const { text } = await sendAndReceive('retry me', bytes, 'r503.bin');
    const { url, fileId } = linkOf(text, 'retry me', 'r503.bin', '300 KB');
    expect(proxy.files.map((f) => [f.fileId, f.answer])).toEqual([
      [fileId, 'status'],
      [fileId, 'status'],
      [fileId, 'pass'],
    ]);
    await expectCopyOnDisk(fileId, bytes);

    // The bridge logged each failed attempt with its backoff wait, then the kept copy (before storing).
    const retries = byMsg(logs, 'media copy failed; retrying');
    expect(retries.map((l) => [l.level, l.attempt, l.reason, l.retry_in_ms, l.fileId])).toEqual([
      [30, 1, 'HTTP 503', EXPECTED_WAITS[0], fileId.slice(0, 8)],
      [30, 2, 'HTTP 503', EXPECTED_WAITS[1], fileId.slice(0, 8)],
    ]);
    // It really waited between attempts.
    expect(proxy.files[1]!.at - proxy.files[0]!.at).toBeGreaterThanOrEqual(EXPECTED_WAITS[0]! - 2);
    expect(proxy.files[2]!.at - proxy.files[1]!.at).toBeGreaterThanOrEqual(EXPECTED_WAITS[1]! - 2);
    const kept = byMsg(logs, 'media copy kept');
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatchObject({ attempt: 3, bytes: bytes.length, sha256: sha256(bytes) });
    expect(
      byMsg(logs, 'media copy failed; the link will stream from the relay while it has the file'),
    ).toEqual([]);
    const msgs = logs.lines().map((l) => l.msg);
    expect(msgs.indexOf('media copy kept')).toBeLessThan(msgs.lastIndexOf('relay message stored'));
    expect(await metric('bridge_media_copies_total', 'outcome="kept"')).toBe(1);

    // The link serves the copy from disk: identical bytes, no further request to the relay.
    await fetchLink(url, bytes, 'local');
    expect(proxy.files).toHaveLength(3);
  });

  it('a connection reset on the first attempt, then the relay answers: one AddMsg with a link, 2 requests', async () => {
    proxy.failFiles(1, { kind: 'reset' });
    const bytes = seededBytes(64 * 1024 + 5, 42);
    const { text } = await sendAndReceive('reset me', bytes, 'reset.bin');
    const { url, fileId } = linkOf(text, 'reset me', 'reset.bin', '64 KB');
    expect(proxy.files.map((f) => [f.fileId, f.answer])).toEqual([
      [fileId, 'reset'],
      [fileId, 'pass'],
    ]);
    await expectCopyOnDisk(fileId, bytes);
    const retries = byMsg(logs, 'media copy failed; retrying');
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ attempt: 1, retry_in_ms: EXPECTED_WAITS[0] });
    // A network error, not an HTTP answer.
    expect(String(retries[0]!.reason)).toMatch(/ECONNRESET|UND_ERR_SOCKET|other side closed/);
    expect(byMsg(logs, 'media copy kept')).toMatchObject([{ attempt: 2, sha256: sha256(bytes) }]);
    await fetchLink(url, bytes, 'local');
    expect(proxy.files).toHaveLength(2);
  });

  it('503 on every attempt: after 4 attempts one AddMsg with a link that streams from the relay', async () => {
    proxy.failFiles(Infinity, { kind: 'status', status: 503 });
    const bytes = seededBytes(200 * 1024 + 3, 43);
    const { text } = await sendAndReceive('never copied', bytes, 'r503x4.bin');
    const { url, fileId } = linkOf(text, 'never copied', 'r503x4.bin', '200 KB');
    expect(proxy.files.map((f) => [f.fileId, f.answer])).toEqual(Array(4).fill([fileId, 'status']));
    expect(await readdir(join(dataDir, 'media'))).toEqual([]);
    // Waits 19, 39, then 49: the third is capped by BRIDGE_RETRY_MAX_DELAY_MS (BASE·4 = 80 without it).
    expect(
      byMsg(logs, 'media copy failed; retrying').map((l) => [l.attempt, l.reason, l.retry_in_ms]),
    ).toEqual([
      [1, 'HTTP 503', EXPECTED_WAITS[0]],
      [2, 'HTTP 503', EXPECTED_WAITS[1]],
      [3, 'HTTP 503', EXPECTED_WAITS[2]],
    ]);
    for (let i = 1; i < 4; i++)
      expect(proxy.files[i]!.at - proxy.files[i - 1]!.at).toBeGreaterThanOrEqual(EXPECTED_WAITS[i - 1]! - 2);
    const gaveUp = byMsg(
      logs,
      'media copy failed; the link will stream from the relay while it has the file',
    );
    expect(gaveUp.map((l) => [l.level, l.attempt, l.reason])).toEqual([[40, 4, 'HTTP 503']]);
    expect(byMsg(logs, 'media copy kept')).toEqual([]);
    expect(await metric('bridge_media_copies_total', 'outcome="failed"')).toBe(1);

    // The link has no copy behind it: the bridge streams the file from the relay (through the proxy).
    proxy.passAll();
    await fetchLink(url, bytes, 'relay');
    expect(proxy.files.map((f) => f.answer)).toEqual(['status', 'status', 'status', 'status', 'pass']);
    expect(await readdir(join(dataDir, 'media'))).toEqual([]);
  });

  it('404 for the file: forwarded once without a URL, ending （文件已过期或已删除）; no retry, nothing on disk', async () => {
    proxy.failFiles(Infinity, { kind: 'status', status: 404 });
    const { text } = await sendAndReceive('gone', seededBytes(5000, 44), 'gone.bin');
    expect(text).toBe(`gone\n[附件] gone.bin (4.9 KB, application/octet-stream) ${GONE_NOTE}`);
    expect(text).not.toMatch(/https?:\/\//);
    expect(proxy.files.map((f) => f.answer)).toEqual(['status']);
    expect(await readdir(join(dataDir, 'media'))).toEqual([]);
    expect(byMsg(logs, 'attachment gone from the relay')).toMatchObject([{ relayStatus: 404 }]);
    expect(byMsg(logs, 'media copy failed; retrying')).toEqual([]);
    expect(await metric('bridge_media_copies_total', 'outcome="gone"')).toBe(1);
  });

  it('any other answer (403) gives up at once: one request, a link that streams from the relay', async () => {
    proxy.failFiles(1, { kind: 'status', status: 403 });
    const bytes = seededBytes(9000, 45);
    const { text } = await sendAndReceive('forbidden', bytes, 'r403.bin');
    const { url } = linkOf(text, 'forbidden', 'r403.bin', '8.8 KB');
    expect(proxy.files.map((f) => f.answer)).toEqual(['status']);
    expect(byMsg(logs, 'media copy failed; retrying')).toEqual([]);
    expect(
      byMsg(logs, 'media copy failed; the link will stream from the relay while it has the file').map((l) => [
        l.attempt,
        l.reason,
      ]),
    ).toEqual([[1, 'HTTP 403']]);
    expect(await readdir(join(dataDir, 'media'))).toEqual([]);
    await fetchLink(url, bytes, 'relay');
    expect(proxy.files.map((f) => f.answer)).toEqual(['status', 'pass']);
  });

  it('a size mismatch (a body one byte short) is retried; the 2nd attempt keeps the full copy', async () => {
    proxy.failFiles(1, { kind: 'truncate' });
    const bytes = seededBytes(50_000, 46);
    const { text } = await sendAndReceive('short', bytes, 'short.bin');
    const { url, fileId } = linkOf(text, 'short', 'short.bin', '49 KB');
    expect(proxy.files.map((f) => f.answer)).toEqual(['truncate', 'pass']);
    expect(byMsg(logs, 'media copy failed; retrying').map((l) => [l.attempt, l.reason])).toEqual([
      [1, `MediaSizeMismatch: received ${bytes.length - 1} bytes, the relay announced ${bytes.length}`],
    ]);
    await expectCopyOnDisk(fileId, bytes);
    await fetchLink(url, bytes, 'local');
    expect(proxy.files).toHaveLength(2);
  });
});
