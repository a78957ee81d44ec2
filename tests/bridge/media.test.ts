// Attachments through the bridge's media links (docs/bridge.md "Attachments: media links"), end to end over
// real sockets: a relay, the bridge and the fake OpenClaw receiver. A friend sends the bot a binary file
// with a non-ASCII name; the bridge copies it before storing the message; the AddMsg text carries
// `[附件] <name> (<size>, <type>) <url>`; GET on the URL serves exactly those bytes with safe headers, any
// number of times, after the relay has deleted its copy and after a restart. Tampered, expired and foreign
// tokens, files the relay no longer has (before the bridge takes the message too), an unreachable relay,
// the source-IP allowlist, the expiry sweep and the size cap give the documented answers.
// Tokens are minted independently in the tests (HMAC-SHA256 from node:crypto, not the bridge's signer).

import { createHash, createHmac } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayAccountId, type Bridge } from '@openwechat/bridge';
import { befriend, postFile, req, type Upload, type User } from '../relay/client.ts';
import { bridgeSuite, sleep, until, type Delivery, type LogCapture } from './helpers.ts';
import { seededBytes, sha256 } from '../helpers/bytes.ts';

const DAY_MS = 86_400_000;
const FILE_NAME = '扫描件 “季度” 报告.bin';
/** RFC 6266 header for FILE_NAME: `_` for non-ASCII in the fallback, the exact UTF-8 name in filename*. */
const FILE_DISPOSITION = `attachment; filename="___ ____ __.bin"; filename*=UTF-8''${encodeURIComponent(FILE_NAME)}`;
const LINE_RE = /^\[附件\] (.+) \(([^,()]+), ([^()]+)\) (\S+)$/m;

/** A media token minted independently of the bridge: `<file id>.<exp>.<base64url HMAC-SHA256>`. */
function mintToken(key: Buffer, relayToken: string, fileId: string, expSeconds: number): string {
  const account = createHash('sha256').update(relayToken).digest('hex').slice(0, 16);
  const mac = createHmac('sha256', key)
    .update(`owc-media-v1\n${account}\n${fileId}\n${expSeconds}`)
    .digest('base64url');
  return `${fileId}.${expSeconds}.${mac}`;
}

/** POST /send/file (or /groups/<gid>/send/file) as multipart; the relay's JSON answer. */
async function sendFile(
  base: string,
  from: User,
  path: string,
  fields: Record<string, string>,
  file: Upload,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await postFile(base, from, path, fields, file, { jsonMode: true });
  return { status: r.status, json: JSON.parse(r.body) as Record<string, unknown> };
}

interface Got {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: Record<string, unknown> | null;
}

async function get(url: string, init: RequestInit = {}): Promise<Got> {
  const res = await fetch(url, init);
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: Record<string, unknown> | null = null;
  if ((res.headers.get('content-type') ?? '').startsWith('application/json'))
    json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  return { status: res.status, headers: res.headers, bytes, json };
}

const textOf = (d: Delivery): string => d.json.Content?.string ?? '';

describe('attachments reach OpenClaw as media links served by the bridge', () => {
  const { relay, receiver, bot, secrets, startBridge, users } = bridgeSuite({
    bot: 'mbot',
    users: ['alice_m', 'mallory_m'],
  });
  const [alice, mallory] = users;
  let bridge: Bridge;
  let logs: LogCapture;
  let dataDir: string;
  /** Added to the bridge's clock (the relay keeps real time). */
  let skewMs = 0;
  let key: Buffer;
  const bytes = seededBytes(1024 * 1024 + 123, 7);
  let mediaUrl = '';
  let fileId = '';
  const urls: string[] = [];

  beforeAll(async () => {
    ({ bridge, logs, dataDir } = await startBridge({ deps: { now: () => Date.now() + skewMs } }));
    await befriend(relay.url, alice, bot);
    await befriend(relay.url, alice, mallory);
    // No BRIDGE_MEDIA_SECRET: the key was generated into the data folder.
    key = Buffer.from((await readFile(join(dataDir, 'media-secret'), 'utf8')).trim(), 'hex');
    secrets.push(key.toString('hex'));
  });

  // Runs before the suite's own afterAll (hooks unwind in reverse), which checks the logs.
  afterAll(() => secrets.push(...urls.map((u) => u.slice(u.lastIndexOf('/') + 1))));

  it('the media key was generated once into BRIDGE_DATA_DIR with mode 0600', async () => {
    expect(key).toHaveLength(32);
    expect((await stat(join(dataDir, 'media-secret'))).mode & 0o777).toBe(0o600);
  });

  it("a friend's binary file with a non-ASCII name arrives with a one-line media link", async () => {
    const sent = await sendFile(
      relay.url,
      alice,
      '/send/file',
      { to_id: String(bot.id), content: 'the scan' },
      { bytes, name: FILE_NAME, type: 'application/octet-stream' },
    );
    expect(sent.status).toBe(200);
    await until(() => receiver.accepted().some((d) => textOf(d).includes('[附件]')), 'the AddMsg');
    const d = receiver.accepted().find((x) => textOf(x).includes('[附件]'))!;
    expect(d.plainOk).toBe(true);
    expect(d.json).toMatchObject({ MsgType: 1, FromUserName: { string: `owc_${alice.id}` } });
    const text = textOf(d);
    // The text before media links is a prefix; the attachment is one line after the content.
    expect(text.startsWith(`the scan\n[附件] ${FILE_NAME}`)).toBe(true);
    expect(text.split('\n')).toHaveLength(2);
    const m = LINE_RE.exec(text)!;
    expect(m, text).not.toBeNull();
    expect([m[1], m[2], m[3]]).toEqual([FILE_NAME, '1 MB', 'application/octet-stream']);
    mediaUrl = m[4]!;
    urls.push(mediaUrl);
    expect(mediaUrl.startsWith(`${bridge.url}/media/`)).toBe(true);
    // The link is a capability of the bridge: it never holds the relay token nor a relay URL.
    expect(d.raw).not.toContain(bot.token);
    expect(mediaUrl).not.toContain(relay.url);
    fileId = mediaUrl.slice(mediaUrl.lastIndexOf('/') + 1).split('.')[0]!;
    expect(fileId).toMatch(/^[0-9a-f]{32}$/);
    // Its expiry: BRIDGE_MEDIA_LINK_MAX_HOURS (7 days) after the message (the bridge holds a copy).
    const exp = Number(mediaUrl.split('.').at(-2));
    const created = d.json.CreateTime;
    expect(exp).toBeGreaterThan(created + 7 * 86_400 - 5);
    expect(exp).toBeLessThanOrEqual(created + 7 * 86_400 + 1);
    // The bridge signs what an independent implementation computes.
    expect(mediaUrl.slice(mediaUrl.lastIndexOf('/') + 1)).toBe(mintToken(key, bot.token, fileId, exp));
  });

  it('a tampered, an expired and a forged token all get the same 404', async () => {
    const token = mediaUrl.slice(mediaUrl.lastIndexOf('/') + 1);
    const [id, exp, sig] = token.split('.') as [string, string, string];
    const flip = (s: string, i: number): string =>
      s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const base = `${bridge.url}/media/`;
    const tampered = [
      `${id}.${exp}.${flip(sig, 10)}`,
      `${id}.${Number(exp) + DAY_MS / 1000}.${sig}`,
      `${id.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))}.${exp}.${sig}`,
      `${id}.${exp}`,
      'nonsense',
      // Genuine shape, wrong key.
      mintToken(Buffer.alloc(32, 1), bot.token, id, Number(exp)),
      // Right key, another account.
      mintToken(key, alice.token, id, Number(exp)),
    ];
    const answers: Got[] = [];
    for (const t of tampered) answers.push(await get(base + t));
    skewMs = 7 * DAY_MS + 60_000;
    try {
      answers.push(await get(mediaUrl));
    } finally {
      skewMs = 0;
    }
    for (const a of answers) {
      expect(a.status).toBe(404);
      expect(a.json).toEqual({
        error: { code: 'media_not_found', message: 'no such media link, or it has expired' },
      });
      expect(a.headers.get('cache-control')).toBe('no-store');
    }
    // Same bytes whatever was wrong: no oracle.
    expect(new Set(answers.map((a) => a.bytes.toString('utf8'))).size).toBe(1);
  });

  it('a genuine token for a file the bot may not read, or for no file, is 404 file_gone', async () => {
    // alice → mallory: a real file id the bot has no right to.
    const other = await sendFile(
      relay.url,
      alice,
      '/send/file',
      { to_id: String(mallory.id), content: 'private' },
      { bytes: seededBytes(100, 3), name: 'x.bin', type: 'application/octet-stream' },
    );
    expect(other.status).toBe(200);
    const inbox = await req(relay.url, 'GET', '/messages', { token: mallory.token, jsonMode: true });
    const msgs = (JSON.parse(inbox.body) as { messages: Array<{ attachment: { file_id: string } | null }> })
      .messages;
    const foreignId = msgs.find((x) => x.attachment)!.attachment!.file_id;
    const exp = Math.floor(Date.now() / 1000) + 3600;
    for (const id of [foreignId, '0'.repeat(32)]) {
      const t = mintToken(key, bot.token, id, exp);
      urls.push(t);
      const a = await get(`${bridge.url}/media/${t}`);
      expect(a.status).toBe(404);
      expect(a.json).toMatchObject({ error: { code: 'file_gone', relay_code: 'file_not_found' } });
      expect(String((a.json!.error as { message: string }).message)).toMatch(/no longer has this file/);
    }
  });

  it('GET on the link streams exactly the bytes, with safe headers; only GET is allowed', async () => {
    const post = await get(mediaUrl, { method: 'POST' });
    expect(post.status).toBe(405);
    const a = await get(mediaUrl);
    expect(a.status, a.bytes.toString('utf8').slice(0, 200)).toBe(200);
    expect(a.bytes.length).toBe(bytes.length);
    expect(sha256(a.bytes)).toBe(sha256(bytes));
    expect({
      type: a.headers.get('content-type'),
      length: a.headers.get('content-length'),
      disposition: a.headers.get('content-disposition'),
      nosniff: a.headers.get('x-content-type-options'),
      cache: a.headers.get('cache-control'),
      csp: a.headers.get('content-security-policy'),
    }).toEqual({
      type: 'application/octet-stream',
      length: String(bytes.length),
      disposition: FILE_DISPOSITION,
      nosniff: 'nosniff',
      cache: 'private, no-store',
      csp: "sandbox; default-src 'none'",
    });
    // One log line for the download, with the path cut before its secret part.
    await until(
      () => logs.lines().some((l) => l.hop === 'media' && l.status === 200 && l.outcome === 'complete'),
      'the media log line',
    );
    const line = logs.lines().find((l) => l.hop === 'media' && l.status === 200)!;
    expect(line).toMatchObject({
      path: '/media/…',
      bytes: bytes.length,
      fileId: fileId.slice(0, 8),
      source: 'local',
    });
    expect(
      logs
        .lines()
        .filter((l) => l.hop === 'media')
        .every((l) => l.path === '/media/…'),
    ).toBe(true);
    const metrics = await (await fetch(`${bridge.url}/metrics`)).text();
    expect(metrics).toMatch(/^bridge_media_requests_total\{status="200"\} 1$/m);
    expect(metrics).toMatch(/^bridge_media_requests_total\{status="404"\} \d+$/m);
  });

  it('the copy was kept before the message was stored: 0600 in BRIDGE_DATA_DIR/media, logged with its sha256', async () => {
    const dir = join(dataDir, 'media');
    expect((await readdir(dir)).sort()).toEqual([fileId, `${fileId}.json`]);
    expect((await stat(join(dir, fileId))).mode & 0o777).toBe(0o600);
    expect(sha256(await readFile(join(dir, fileId)))).toBe(sha256(bytes));
    const kept = logs.lines().find((l) => l.msg === 'media copy kept')!;
    expect(kept).toMatchObject({ hop: 'media_store', bytes: bytes.length, sha256: sha256(bytes) });
    const lines = logs.lines();
    const keptAt = lines.findIndex((l) => l.msg === 'media copy kept');
    expect(keptAt).toBeGreaterThanOrEqual(0);
    // The file message is the last one the bot got (after the friend request).
    const storedAt = lines.map((l) => l.msg).lastIndexOf('relay message stored');
    expect(keptAt).toBeLessThan(storedAt);
  });

  it('the same link fetched 3 times gives the same bytes, also after the relay deleted its copy', async () => {
    // Relay rule (docs/protocol.md "Files"): collected by its recipient and its message acknowledged → deleted.
    let own = await req(relay.url, 'GET', `/files/${fileId}`, { token: bot.token, jsonMode: true });
    for (let i = 0; i < 200 && own.status !== 404; i++) {
      await sleep(25);
      own = await req(relay.url, 'GET', `/files/${fileId}`, { token: bot.token, jsonMode: true });
    }
    expect(own.status).toBe(404);
    const digests: string[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await get(mediaUrl);
      expect(a.status).toBe(200);
      expect(a.headers.get('content-length')).toBe(String(bytes.length));
      digests.push(sha256(a.bytes));
    }
    expect(digests).toEqual([sha256(bytes), sha256(bytes), sha256(bytes)]);
  });

  it('a restarted bridge (same data folder) still serves the link from disk', async () => {
    await bridge.close();
    ({ bridge, logs } = await startBridge({ dataDir, deps: { now: () => Date.now() + skewMs } }));
    const url = `${bridge.url}/media/${mediaUrl.slice(mediaUrl.lastIndexOf('/') + 1)}`;
    const a = await get(url);
    expect(a.status).toBe(200);
    expect(sha256(a.bytes)).toBe(sha256(bytes));
    expect(a.headers.get('content-disposition')).toBe(FILE_DISPOSITION);
    await until(() => logs.lines().some((l) => l.hop === 'media' && l.status === 200), 'the media log line');
    expect(logs.lines().find((l) => l.hop === 'media' && l.status === 200)).toMatchObject({
      source: 'local',
    });
    // Only one AddMsg for the message, across the restart.
    expect(receiver.accepted().filter((d) => textOf(d).includes('[附件]'))).toHaveLength(1);
  });
});

describe('group attachments, BRIDGE_PUBLIC_URL, an unreachable relay and the IP allowlist', () => {
  const { relay, receiver, bot, secrets, startBridge, users } = bridgeSuite({
    bot: 'gbot',
    users: ['alice_g'],
  });
  const [alice] = users;
  let bridge: Bridge;
  const MEDIA_SECRET = 'media-secret-for-tests-0123456789abcdef';

  beforeAll(async () => {
    secrets.push(MEDIA_SECRET);
    ({ bridge } = await startBridge({
      // Behind a reverse proxy that maps https://bridge.example/owc/… to the bridge.
      extra: { BRIDGE_PUBLIC_URL: 'https://bridge.example/owc/', BRIDGE_MEDIA_SECRET: MEDIA_SECRET },
    }));
    await befriend(relay.url, alice, bot);
  });

  it('a file sent to a group reaches OpenClaw in the group form with its link, which serves the bytes', async () => {
    const created = await req(relay.url, 'POST', '/groups', {
      token: alice.token,
      jsonMode: true,
      json: { name: 'Files', member_ids: [bot.id] },
    });
    expect(created.status).toBe(200);
    const gid = (JSON.parse(created.body) as { group: { id: number } }).group.id;
    const bytes = seededBytes(200_000, 11);
    const sent = await sendFile(
      relay.url,
      alice,
      `/groups/${gid}/send/file`,
      { content: '会议纪要' },
      { bytes, name: '纪要.pdf', type: 'application/pdf' },
    );
    expect(sent.status).toBe(200);
    await until(() => receiver.accepted().some((d) => textOf(d).includes('[附件]')), 'the group AddMsg');
    const d = receiver.accepted().find((x) => textOf(x).includes('[附件]'))!;
    expect(d.json.FromUserName.string).toBe(`owc_g${gid}@chatroom`);
    const text = textOf(d);
    expect(text.startsWith(`owc_${alice.id}:\n会议纪要\n[附件] 纪要.pdf (195 KB, application/pdf) `)).toBe(
      true,
    );
    const m = LINE_RE.exec(text)!;
    expect(m[4]!.startsWith('https://bridge.example/owc/media/')).toBe(true);
    const token = m[4]!.slice('https://bridge.example/owc/media/'.length);
    // Independent check of the signature with the configured secret.
    const [id, exp] = token.split('.') as [string, string];
    expect(token).toBe(mintToken(Buffer.from(MEDIA_SECRET), bot.token, id, Number(exp)));
    // What the proxy would forward:
    const a = await get(`${bridge.url}/media/${token}`);
    expect(a.status).toBe(200);
    expect(sha256(a.bytes)).toBe(sha256(bytes));
    expect(a.headers.get('content-type')).toBe('application/pdf');
    expect(a.headers.get('content-disposition')).toBe(
      `attachment; filename="__.pdf"; filename*=UTF-8''${encodeURIComponent('纪要.pdf')}`,
    );
    expect(relayAccountId(bot.token)).toHaveLength(16);
  });

  it('an unreachable relay is 502; a caller outside BRIDGE_ALLOWED_IPS is 403', async () => {
    const start = async (extra: Record<string, string>) =>
      (
        await startBridge({
          relayUrl: 'http://127.0.0.1:1',
          extra: { BRIDGE_MEDIA_SECRET: MEDIA_SECRET, ...extra },
        })
      ).bridge;
    const token = mintToken(
      Buffer.from(MEDIA_SECRET),
      bot.token,
      'f'.repeat(32),
      Math.floor(Date.now() / 1000) + 60,
    );
    const down = await start({ BRIDGE_ALLOWED_IPS: '127.0.0.1,::1' });
    const a = await get(`${down.url}/media/${token}`);
    expect(a.status).toBe(502);
    expect(a.json).toMatchObject({ error: { code: 'upstream_error', message: 'the relay is unreachable' } });
    const fenced = await start({ BRIDGE_ALLOWED_IPS: '10.0.0.0/8' });
    const b = await get(`${fenced.url}/media/${token}`);
    expect(b.status).toBe(403);
    expect(b.json).toMatchObject({ error: { code: 'ip_not_allowed' } });
    const off = await start({ BRIDGE_MEDIA_LINKS: 'false' });
    expect((await get(`${off.url}/media/${token}`)).status).toBe(404);
  });
});

describe('media links stream: nothing is held in memory, a caller that goes away cancels the read', () => {
  const { relay, receiver, bot, startBridge, users } = bridgeSuite({
    relay: { sseMaxPerIp: 10, maxUploadMb: 64 },
    bot: 'sbot',
    users: ['alice_s'],
  });
  const [alice] = users;
  let logs: LogCapture;

  beforeAll(async () => {
    ({ logs } = await startBridge());
    await befriend(relay.url, alice, bot);
  });

  it('a download broken off after its first bytes is logged incomplete; the next one is complete', async () => {
    // Far more than any chain of socket buffers holds.
    const bytes = seededBytes(32 * 1024 * 1024, 5);
    const sent = await sendFile(
      relay.url,
      alice,
      '/send/file',
      { to_id: String(bot.id), content: 'big' },
      { bytes, name: 'big.bin', type: 'application/octet-stream' },
    );
    expect(sent.status).toBe(200);
    await until(() => receiver.accepted().some((d) => textOf(d).includes('[附件]')), 'the AddMsg');
    const url = LINE_RE.exec(textOf(receiver.accepted().find((d) => textOf(d).includes('[附件]'))!))![4]!;

    const controller = new AbortController();
    const res = await fetch(url, { signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    controller.abort();
    await reader.cancel().catch(() => {});
    await until(
      () => logs.lines().some((l) => l.hop === 'media' && l.outcome === 'incomplete'),
      'the bridge noticing the caller left',
    );
    const broken = logs.lines().find((l) => l.hop === 'media' && l.outcome === 'incomplete')!;
    expect(broken.bytes as number).toBeLessThan(bytes.length);

    const full = await get(url);
    expect(full.status).toBe(200);
    expect(sha256(full.bytes)).toBe(sha256(bytes));
  });
});

describe('a file the relay no longer has when the bridge takes the message', () => {
  /** Added to the relay's clock. */
  let relaySkewMs = 0;
  const { relay, receiver, bot, startBridge, users } = bridgeSuite({
    relay: { sseMaxPerIp: 10, fileRetentionDays: 1, now: () => Date.now() + relaySkewMs },
    bot: 'xbot',
    users: ['alice_x'],
  });
  const [alice] = users;

  beforeAll(async () => {
    await befriend(relay.url, alice, bot);
  });

  it('the message still reaches OpenClaw, once, with the line without a URL', async () => {
    // Sent while the bridge is not running; then the file expires on the relay (FILE_RETENTION_DAYS=1; its
    // message does not). The bridge's copy attempt meets the relay's 404 (logged below).
    const sent = await sendFile(
      relay.url,
      alice,
      '/send/file',
      { to_id: String(bot.id), content: 'old scan' },
      { bytes: seededBytes(3000, 9), name: 'old.bin', type: 'application/octet-stream' },
    );
    expect(sent.status).toBe(200);
    relaySkewMs = 2 * DAY_MS;
    const { bridge, logs, dataDir } = await startBridge();
    await until(() => receiver.accepted().some((d) => textOf(d).includes('[附件]')), 'the AddMsg');
    await sleep(300);
    const got = receiver.accepted().filter((d) => textOf(d).includes('[附件]'));
    expect(got).toHaveLength(1);
    expect(textOf(got[0]!)).toBe(
      'old scan\n[附件] old.bin (2.9 KB, application/octet-stream) （文件已过期或已删除）',
    );
    expect(await readdir(join(dataDir, 'media'))).toEqual([]);
    expect(logs.lines().find((l) => l.msg === 'attachment gone from the relay')).toMatchObject({
      relayStatus: 404,
    });
    expect(bridge.outbox.counts()).toMatchObject({ pending: 0, dead: 0 });
  });
});

describe('local copies: the expiry sweep and the size cap', () => {
  const { relay, receiver, bot, startBridge, users } = bridgeSuite({ bot: 'cbot', users: ['alice_c'] });
  const [alice] = users;
  let bridge: Bridge;
  let logs: LogCapture;
  let dataDir: string;
  /** Added to the bridge's clock. */
  let skewMs = 0;

  beforeAll(async () => {
    ({ bridge, logs, dataDir } = await startBridge({
      extra: { BRIDGE_MEDIA_MAX_MB: '1' },
      deps: { now: () => Date.now() + skewMs },
    }));
    await befriend(relay.url, alice, bot);
  });

  const links: Array<{ url: string; fileId: string; bytes: Uint8Array<ArrayBuffer> }> = [];

  it('over BRIDGE_MEDIA_MAX_MB the oldest copy is evicted: its link is 404 file_gone, the others serve', async () => {
    for (let i = 0; i < 3; i++) {
      const bytes = seededBytes(400 * 1024, 20 + i);
      const sent = await sendFile(
        relay.url,
        alice,
        '/send/file',
        { to_id: String(bot.id), content: `part ${i}` },
        { bytes, name: `p${i}.bin`, type: 'application/octet-stream' },
      );
      expect(sent.status).toBe(200);
      await until(() => receiver.accepted().some((d) => textOf(d).startsWith(`part ${i}\n`)), `AddMsg ${i}`);
      const url = LINE_RE.exec(
        textOf(receiver.accepted().find((d) => textOf(d).startsWith(`part ${i}\n`))!),
      )![4]!;
      links.push({ url, fileId: url.slice(url.lastIndexOf('/') + 1).split('.')[0]!, bytes });
      // Distinct storage times, so "oldest" is well defined.
      await sleep(5);
    }
    // 3 × 400 KB > 1 MB: the first copy went when the third was kept.
    const deleted = logs.lines().filter((l) => l.msg === 'media copy deleted');
    expect(deleted.map((l) => [l.level, l.reason, l.fileId])).toEqual([
      [30, 'size_cap', links[0]!.fileId.slice(0, 8)],
    ]);
    // The relay has deleted its copy too (collected and acknowledged).
    const relayGone = async (id: string): Promise<boolean> =>
      (await req(relay.url, 'GET', `/files/${id}`, { token: bot.token, jsonMode: true })).status === 404;
    for (let i = 0; i < 200 && !(await relayGone(links[0]!.fileId)); i++) await sleep(25);
    expect(await relayGone(links[0]!.fileId)).toBe(true);
    const evicted = await get(links[0]!.url);
    expect(evicted.status).toBe(404);
    expect(evicted.json).toMatchObject({ error: { code: 'file_gone' } });
    for (const l of links.slice(1)) {
      const a = await get(l.url);
      expect(a.status).toBe(200);
      expect(sha256(a.bytes)).toBe(sha256(l.bytes));
    }
    expect((await readdir(join(dataDir, 'media'))).sort()).toEqual(
      links
        .slice(1)
        .flatMap((l) => [l.fileId, `${l.fileId}.json`])
        .sort(),
    );
  });

  it('the sweep removes the copies whose link has expired', async () => {
    expect(bridge.media!.sweep()).toEqual({ expired: 0, evicted: 0 });
    skewMs = 7 * DAY_MS + 60_000;
    expect(bridge.media!.sweep()).toEqual({ expired: 2, evicted: 0 });
    expect(await readdir(join(dataDir, 'media'))).toEqual([]);
    const expired = logs
      .lines()
      .filter((l) => l.msg === 'media copy deleted' && l.reason === 'expired')
      .map((l) => l.fileId);
    expect(expired.sort()).toEqual(
      links
        .slice(1)
        .map((l) => l.fileId.slice(0, 8))
        .sort(),
    );
  });
});
