// Files that arrive (docs/protocol.md "Files that arrive", fix of reference W-15 and W-17): POST /send/file
// streams the upload into storage, the recipient's block shows `附件：<safe name>` and
// `附件下载：/files/<file_id>`, and GET /files/<file_id> hands the very same bytes to the recipient or the
// sender only. Files go when they expire, or once the recipient has downloaded them completely and the
// message is acknowledged. Everything goes over real sockets.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay, type TestRelayOptions } from '../helpers/relay.ts';
import { openSse, sleep } from '../helpers/sse.ts';
import {
  befriend,
  bj,
  Clock,
  expectReply,
  expectSoftError,
  HEAVY,
  messages,
  register,
  req,
  SEP,
  sendOk,
  senderLine,
  stats,
  TEXT_TYPE,
  type Reply,
  type Sender,
  type User,
} from '../relay/client.ts';
import { seededBytes, sha256 } from '../helpers/bytes.ts';

const MB = 1024 * 1024;
const DAY_MS = 86_400_000;
const NOT_FOUND = '错误 404：文件不存在或已过期';
const TOO_LARGE = '错误：文件大小超过限制（最大 10MB）';
const QUOTA_1MB = '待对方接收的附件总量超过限制（最多 1MB），请等对方接收后再发送';
const EVIL_NAME = '../../etc/我的 报告.pdf';
const SAFE_NAME = '我的 报告.pdf';
/** RFC 6266 header for SAFE_NAME: non-ASCII replaced by `_` in the fallback, RFC 5987 UTF-8 encoding. */
const SAFE_DISPOSITION = `attachment; filename="__ __.pdf"; filename*=UTF-8''%E6%88%91%E7%9A%84%20%E6%8A%A5%E5%91%8A.pdf`;

// ── Helpers ──────────────────────────────────────────────────────────────────────────────────────

const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function start(opts: TestRelayOptions = {}): Promise<TestRelay> {
  const relay = await startRelay(opts);
  cleanup.push(() => relay.close());
  return relay;
}

interface FileToSend {
  bytes: Uint8Array<ArrayBuffer>;
  name: string;
  /** Declared content type of the part (default application/octet-stream). */
  type?: string;
  content?: string;
  headers?: Record<string, string>;
}

/** POST /send/file as multipart `to_id`, `content`, `file`. */
async function sendFile(base: string, from: { token: string }, toId: number, f: FileToSend): Promise<Reply> {
  const form = new FormData();
  form.set('to_id', String(toId));
  if (f.content !== undefined) form.set('content', f.content);
  form.set('file', new Blob([f.bytes], { type: f.type ?? 'application/octet-stream' }), f.name);
  return req(base, 'POST', '/send/file', { token: from.token, body: form, headers: f.headers });
}

async function sendFileOk(
  base: string,
  from: { token: string },
  toId: number,
  f: FileToSend,
  success = '发送成功',
): Promise<Reply> {
  const r = await sendFile(base, from, toId, f);
  expect({ status: r.status, first: r.body.split('\n')[0] }, r.body).toEqual({ status: 200, first: success });
  return r;
}

interface Download {
  status: number;
  headers: Headers;
  bytes: Buffer;
  text: string;
}

async function download(
  base: string,
  token: string | undefined,
  fileId: string,
  jsonMode = false,
): Promise<Download> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers['X-Token'] = token;
  if (jsonMode) headers['Accept'] = 'application/json';
  const res = await fetch(`${base}/files/${fileId}`, { headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, bytes, text: bytes.toString('utf8') };
}

/** A complete download of exactly these bytes. */
async function expectDownload(
  base: string,
  token: string,
  fileId: string,
  bytes: Uint8Array,
): Promise<Download> {
  const d = await download(base, token, fileId);
  expect(d.status, d.text.slice(0, 200)).toBe(200);
  expect(d.bytes.length).toBe(bytes.length);
  expect(sha256(d.bytes)).toBe(sha256(bytes));
  return d;
}

function expectNotFound(d: Download): void {
  expect({ status: d.status, body: d.text, type: d.headers.get('content-type') }).toEqual({
    status: 404,
    body: NOT_FOUND,
    type: TEXT_TYPE,
  });
}

/**
 * Polls GET /files with the *sender's* token (a sender's download never changes anything) until it
 * answers 404; fails when the file is still served after `ms`.
 */
async function waitGone(base: string, sender: User, fileId: string, why: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const d = await download(base, sender.token, fileId);
    if (d.status === 404) return expectNotFound(d);
    if (Date.now() > deadline) {
      throw new Error(`file ${fileId} still served (HTTP ${d.status}) ${ms} ms after ${why}`);
    }
    await sleep(25);
  }
}

/** The `附件下载：/files/<id>` ids of a text body, in order. */
function fileIds(body: string): string[] {
  return [...body.matchAll(/^附件下载：\/files\/([0-9a-f]{32})$/gm)].map((m) => m[1]!);
}

function onlyFileId(body: string): string {
  const ids = fileIds(body);
  expect(ids, body).toHaveLength(1);
  return ids[0]!;
}

/** The temporary upload folder must hold nothing once a request is over (waits up to 2 s). */
async function expectUploadsEmpty(relay: TestRelay): Promise<void> {
  const dir = join(relay.dataDir, 'uploads');
  const deadline = Date.now() + 2000;
  let left = await readdir(dir);
  while (left.length && Date.now() < deadline) {
    await sleep(20);
    left = await readdir(dir);
  }
  expect(left).toEqual([]);
}

/** Chat or friend-request block with an attachment (docs/compat.md block formats + docs/protocol.md additions). */
function fileBlock(o: {
  type: 'chat' | 'friend_request';
  time: number;
  from: Sender;
  content: string;
  file: string;
  fileId: string;
  id: number;
}): string {
  return [
    o.type === 'chat' ? '类型：聊天消息' : '类型：好友申请',
    `时间：${bj(o.time)}`,
    `发件人：${senderLine(o.from)}`,
    `内容：${o.content}`,
    `附件：${o.file}`,
    `附件下载：/files/${o.fileId}`,
    ...(o.type === 'friend_request'
      ? [`操作提示：回复对方（to_id:${o.from.id}）任意消息即可建立好友关系`]
      : []),
    `消息ID：${o.id}`,
  ].join('\n');
}

function inboxOf(blocks: string[]): string {
  const items = blocks.map((b, i) => `[${i + 1}]\n${b}`).join(`\n${SEP}\n`);
  return `收件箱共 ${blocks.length} 条 | 本次读取并清除 ${blocks.length} 条 | 剩余 0 条（已全部读取）\n${HEAVY}\n${items}\n${HEAVY}`;
}

/** Two friends with empty inboxes; bob's next message id is 3, alice's 3. */
async function friends(base: string, tag: string): Promise<{ alice: User; bob: User }> {
  const alice = await register(base, `${tag}_alice`);
  const bob = await register(base, `${tag}_bob`);
  await befriend(base, alice, bob);
  for (const u of [alice, bob]) expect((await messages(base, u)).body).toMatch(/^收件箱共 2 条/);
  return { alice, bob };
}

/** A relay (closed after the test) on which `<tag>_alice` and `<tag>_bob` are friends. */
async function startFriends(
  tag: string,
  opts: TestRelayOptions = {},
): Promise<{ relay: TestRelay; base: string; alice: User; bob: User }> {
  const relay = await start(opts);
  return { relay, base: relay.url, ...(await friends(relay.url, tag)) };
}

/** POST /messages/ack up to `upTo`, which acknowledges exactly one message. */
async function ackOne(base: string, user: User, upTo: number): Promise<void> {
  expectReply(
    await req(base, 'POST', '/messages/ack', { token: user.token, json: { up_to: upTo } }),
    200,
    `已确认 1 条消息（消息ID ≤ ${upTo}）`,
  );
}

interface AttachmentJson {
  name: string;
  original_name: string;
  file_id: string | null;
  url: string | null;
  size: number | null;
  content_type: string | null;
  expires_at: string | null;
}

interface InboxJson {
  total: number;
  messages: { id: number; type: string; content: string; attachment: AttachmentJson | null }[];
}

async function inboxJson(base: string, user: User, query = ''): Promise<InboxJson> {
  const r = await req(base, 'GET', `/messages${query}`, { token: user.token, jsonMode: true });
  expect(r.status, r.body).toBe(200);
  return JSON.parse(r.body) as InboxJson;
}

/** The file id of the first message kept in the user's inbox (GET /messages?after=0 acknowledges nothing). */
async function firstFileId(base: string, user: User): Promise<string> {
  return (await inboxJson(base, user, '?after=0')).messages[0]!.attachment!.file_id!;
}

// ── Delivery and download ────────────────────────────────────────────────────────────────────────

describe('POST /send/file → GET /files/<file_id>', () => {
  it('a 1-byte file with a hostile name: the block shows the safe name and a download link', async () => {
    const clock = new Clock();
    const { base, alice, bob } = await startFriends('one', { now: clock.now });
    const bytes = new Uint8Array([0xff]);

    const r = await sendFile(base, alice, bob.id, {
      bytes,
      name: EVIL_NAME,
      type: 'application/pdf',
      content: '报告',
    });
    expectReply(r, 200, '发送成功');

    const inbox = await messages(base, bob);
    const fileId = onlyFileId(inbox.body);
    expectReply(
      inbox,
      200,
      inboxOf([
        fileBlock({
          type: 'chat',
          time: clock.t,
          from: alice,
          content: '报告',
          file: SAFE_NAME,
          fileId,
          id: 3,
        }),
      ]),
    );

    const d = await expectDownload(base, bob.token, fileId, bytes);
    expect({
      type: d.headers.get('content-type'),
      length: d.headers.get('content-length'),
      disposition: d.headers.get('content-disposition'),
      nosniff: d.headers.get('x-content-type-options'),
      bytes: [...d.bytes],
    }).toEqual({
      type: 'application/pdf',
      length: '1',
      disposition: SAFE_DISPOSITION,
      nosniff: 'nosniff',
      bytes: [0xff],
    });
  });

  it('1 MB of binary: JSON mode carries the attachment, both sides download identical bytes', async () => {
    const clock = new Clock();
    const { base, alice, bob } = await startFriends('json', { now: clock.now });
    const bytes = seededBytes(MB, 1);
    await sendFileOk(base, alice, bob.id, { bytes, name: EVIL_NAME, content: '  ' });

    const inbox = await inboxJson(base, bob);
    expect(inbox.total).toBe(1);
    const m = inbox.messages[0]!;
    const fileId = m.attachment?.file_id ?? '';
    expect(fileId).toMatch(/^[0-9a-f]{32}$/);
    expect({ id: m.id, type: m.type, content: m.content, attachment: m.attachment }).toEqual({
      id: 3,
      type: 'chat',
      content: '(附件)',
      attachment: {
        name: SAFE_NAME,
        // The multipart parser keeps only the last path segment of the part's filename.
        original_name: SAFE_NAME,
        file_id: fileId,
        url: `/files/${fileId}`,
        size: MB,
        content_type: 'application/octet-stream',
        expires_at: new Date(clock.t + 7 * DAY_MS).toISOString(),
      },
    });

    // The sender may fetch it too.
    await expectDownload(base, alice.token, fileId, bytes);
    const d = await expectDownload(base, bob.token, fileId, bytes);
    expect(d.headers.get('content-disposition')).toBe(SAFE_DISPOSITION);
    expect(d.headers.get('content-length')).toBe(String(MB));
    // That JSON read was read-and-clear, and bob has now downloaded it completely: the file is gone.
    await waitGone(base, alice, fileId, 'an acknowledged message’s file was downloaded', 1000);
    expectNotFound(await download(base, bob.token, fileId));
  });

  it('a non-ASCII name with RFC 5987 specials gets an ASCII fallback and an exact UTF-8 filename*', async () => {
    const { base, alice, bob } = await startFriends('name');
    const bytes = seededBytes(1000, 2);
    await sendFileOk(base, alice, bob.id, {
      bytes,
      name: "résumé (v2)'*.txt",
      type: 'text/plain',
      content: 'cv',
    });
    const fileId = onlyFileId((await messages(base, bob)).body);
    const d = await expectDownload(base, bob.token, fileId, bytes);
    expect(d.headers.get('content-disposition')).toBe(
      `attachment; filename="r_sum_ (v2)'*.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%28v2%29%27%2A.txt`,
    );
    expect(d.headers.get('content-type')).toBe('text/plain');
  });

  it('only the sender and the recipient may download; others get the exact refusals', async () => {
    const { base, alice, bob } = await startFriends('acl');
    const carol = await register(base, 'acl_carol');
    const bytes = seededBytes(4096, 3);
    await sendFileOk(base, alice, bob.id, { bytes, name: 'secret.bin', content: 'x' });
    // Peek (?after=0 acknowledges nothing): the message stays stored, so downloads keep the file.
    const fileId = await firstFileId(base, bob);

    expectNotFound(await download(base, carol.token, fileId));
    expectNotFound(await download(base, bob.token, 'f'.repeat(32)));
    expectNotFound(await download(base, bob.token, fileId.toUpperCase()));
    expectNotFound(await download(base, bob.token, 'not-a-file-id'));

    const noToken = await download(base, undefined, fileId);
    expect({ status: noToken.status, body: noToken.text }).toEqual({
      status: 422,
      body: '请求格式错误：header -> X-Token: Field required',
    });
    const badToken = await download(base, 'a'.repeat(32), fileId);
    expect({ status: badToken.status, body: badToken.text }).toEqual({
      status: 401,
      body: '错误 401：Token 无效',
    });

    const json = await download(base, carol.token, fileId, true);
    expect({ status: json.status, body: JSON.parse(json.text) as unknown }).toEqual({
      status: 404,
      body: { error: { code: 'file_not_found', message: '文件不存在或已过期' } },
    });

    // None of that consumed the file.
    await expectDownload(base, bob.token, fileId, bytes);
    await expectDownload(base, alice.token, fileId, bytes);
  });

  it('exactly MAX_UPLOAD_MB is accepted and arrives byte-identical', async () => {
    const { relay, base, alice, bob } = await startFriends('max', { maxUploadMb: 10 });
    const bytes = seededBytes(10 * MB, 4);
    await sendFileOk(base, alice, bob.id, { bytes, name: EVIL_NAME, content: 'big' });
    const fileId = onlyFileId((await messages(base, bob)).body);
    const d = await expectDownload(base, bob.token, fileId, bytes);
    expect(d.headers.get('content-length')).toBe(String(10 * MB));
    await expectUploadsEmpty(relay);
  });

  it('MAX_UPLOAD_MB + 1 byte is refused and nothing is stored', async () => {
    const { relay, base, alice, bob } = await startFriends('over', { maxUploadMb: 10, uploadQuotaMb: 10 });
    const before = await stats(base);

    const r = await sendFile(base, alice, bob.id, { bytes: seededBytes(10 * MB + 1, 5), name: 'big.bin' });
    expectReply(r, 200, TOO_LARGE);

    expectReply(await messages(base, bob), 200, '收件箱为空');
    expect((await stats(base)).messages).toBe(before.messages);
    await expectUploadsEmpty(relay);

    // Nothing of it counts against the sender's quota (10 MB): a full 10 MB file still fits.
    const bytes = seededBytes(10 * MB, 6);
    await sendFileOk(base, alice, bob.id, { bytes, name: 'fits.bin', content: 'ok' });
    await expectDownload(base, bob.token, onlyFileId((await messages(base, bob)).body), bytes);
  });

  it('declared text/html and SVG are served as application/octet-stream; image/png is kept', async () => {
    const { base, alice, bob } = await startFriends('type');
    const html = new TextEncoder().encode('<script>alert(1)</script>');
    const cases: [string, string, string][] = [
      ['page.html', 'text/html', 'application/octet-stream'],
      ['pic.svg', 'image/svg+xml', 'application/octet-stream'],
      ['pic.png', 'image/png', 'image/png'],
    ];
    for (const [name, type] of cases)
      await sendFileOk(base, alice, bob.id, { bytes: html, name, type, content: name });
    const inbox = await inboxJson(base, bob);
    expect(inbox.messages.map((m) => [m.content, m.attachment?.content_type])).toEqual(
      cases.map(([name, , served]) => [name, served]),
    );
    for (const [i, [, , served]] of cases.entries()) {
      const d = await expectDownload(base, bob.token, inbox.messages[i]!.attachment!.file_id!, html);
      expect([d.headers.get('content-type'), d.headers.get('x-content-type-options')]).toEqual([
        served,
        'nosniff',
      ]);
    }
  });
});

// ── Friendship paths ─────────────────────────────────────────────────────────────────────────────

describe('attachments on the friendship paths', () => {
  it('a first message with a file is a friend request that carries it', async () => {
    const clock = new Clock();
    const relay = await start({ now: clock.now });
    const base = relay.url;
    const alice = await register(base, 'req_alice');
    const bob = await register(base, 'req_bob');
    const bytes = seededBytes(MB, 7);
    expectReply(
      await sendFile(base, alice, bob.id, { bytes, name: EVIL_NAME, content: '你好' }),
      200,
      '发送成功（好友申请已发出，等待对方回复）',
    );
    const inbox = await messages(base, bob);
    const fileId = onlyFileId(inbox.body);
    expectReply(
      inbox,
      200,
      inboxOf([
        fileBlock({
          type: 'friend_request',
          time: clock.t,
          from: alice,
          content: '你好',
          file: SAFE_NAME,
          fileId,
          id: 1,
        }),
      ]),
    );
    await expectDownload(base, bob.token, fileId, bytes);
  });

  it('the reply that accepts a friendship carries the file (W-15)', async () => {
    const clock = new Clock();
    const relay = await start({ now: clock.now });
    const base = relay.url;
    const alice = await register(base, 'acc_alice');
    const bob = await register(base, 'acc_bob');
    await sendOk(base, alice, bob.id, 'hi', '发送成功（好友申请已发出，等待对方回复）');
    const bytes = seededBytes(MB + 17, 8);
    await sendFileOk(base, bob, alice.id, { bytes, name: EVIL_NAME }, '发送成功（好友关系已建立）');

    const inbox = await messages(base, alice);
    const fileId = onlyFileId(inbox.body);
    const chat = fileBlock({
      type: 'chat',
      time: clock.t,
      from: bob,
      content: '(附件)',
      file: SAFE_NAME,
      fileId,
      id: 1,
    });
    expect(
      inbox.body.startsWith(
        `收件箱共 2 条 | 本次读取并清除 2 条 | 剩余 0 条（已全部读取）\n${HEAVY}\n[1]\n${chat}\n${SEP}\n[2]\n类型：系统通知\n`,
      ),
    ).toBe(true);
    await expectDownload(base, alice.token, fileId, bytes);
  });

  it('a refused send stores nothing (self, unknown user, do-not-disturb)', async () => {
    const relay = await start({ uploadQuotaMb: 1 });
    const base = relay.url;
    const alice = await register(base, 'ref_alice');
    const dnd = await register(base, 'ref_dnd', { status: 'do_not_disturb' });
    const bob = await register(base, 'ref_bob');
    const big = seededBytes(700 * 1024, 9);
    const before = await stats(base);

    expectSoftError(await sendFile(base, alice, alice.id, { bytes: big, name: 'a.bin' }), '不能给自己发消息');
    expectSoftError(await sendFile(base, alice, 999_999, { bytes: big, name: 'a.bin' }), '用户不存在');
    expectSoftError(
      await sendFile(base, alice, dnd.id, { bytes: big, name: 'a.bin' }),
      '该用户已开启免打扰，不接受任何消息',
    );
    expect((await stats(base)).messages).toBe(before.messages);
    expectReply(await messages(base, dnd), 200, '收件箱为空');
    await expectUploadsEmpty(relay);

    // The refused copies hold no quota: 700 KB still fits under 1 MB.
    await sendFileOk(
      base,
      alice,
      bob.id,
      { bytes: big, name: 'a.bin' },
      '发送成功（好友申请已发出，等待对方回复）',
    );
  });
});

// ── Lifetime ─────────────────────────────────────────────────────────────────────────────────────

describe('attachment lifetime', () => {
  it('a file expires after FILE_RETENTION_DAYS and its storage is swept', async () => {
    const clock = new Clock();
    const { base, alice, bob } = await startFriends('exp', {
      now: clock.now,
      fileRetentionDays: 1,
      maintenanceIntervalSeconds: 0.05,
      uploadQuotaMb: 1,
    });
    const bytes = seededBytes(700 * 1024, 10);
    await sendFileOk(base, alice, bob.id, { bytes, name: 'old.bin', content: 'old' });
    const inbox = await inboxJson(base, bob, '?after=0');
    const fileId = inbox.messages[0]!.attachment!.file_id!;
    expect(inbox.messages[0]!.attachment!.expires_at).toBe(new Date(clock.t + DAY_MS).toISOString());

    clock.advance(86_400 - 1);
    await sleep(200); // several maintenance rounds: nothing is due yet
    await expectDownload(base, alice.token, fileId, bytes);

    clock.advance(2);
    expectNotFound(await download(base, bob.token, fileId));
    expectNotFound(await download(base, alice.token, fileId));

    // Gone from storage too: once swept, the 700 KB no longer count against alice's 1 MB quota.
    const deadline = Date.now() + 3000;
    for (;;) {
      const r = await sendFile(base, alice, bob.id, {
        bytes: seededBytes(700 * 1024, 11),
        name: 'new.bin',
        content: 'new',
      });
      if (r.body.split('\n')[0] === '发送成功') break;
      expectSoftError(r, QUOTA_1MB);
      if (Date.now() > deadline) {
        throw new Error(
          'expired file still held in storage 3 s after expiry (maintenanceIntervalSeconds 0.05)',
        );
      }
      await sleep(100);
    }
  });

  it('downloaded while the message is stored: kept; acknowledged (POST /messages/ack) afterwards: deleted', async () => {
    const { base, alice, bob } = await startFriends('ack', { maintenanceIntervalSeconds: 0.05 });
    const bytes = seededBytes(8192, 12);
    await sendFileOk(base, alice, bob.id, { bytes, name: 'a.bin', content: 'a' });
    const fileId = await firstFileId(base, bob);

    await expectDownload(base, bob.token, fileId, bytes);
    await sleep(300); // bookkeeping and several maintenance rounds
    await expectDownload(base, alice.token, fileId, bytes);
    await expectDownload(base, bob.token, fileId, bytes);

    await ackOne(base, bob, 3);
    await waitGone(base, alice, fileId, 'the downloaded file’s message was acknowledged');
    expectNotFound(await download(base, bob.token, fileId));
  });

  it('acknowledged by read-and-clear first, then downloaded completely: deleted at once', async () => {
    const { base, alice, bob } = await startFriends('rac');
    const bytes = seededBytes(MB, 13);
    await sendFileOk(base, alice, bob.id, { bytes, name: 'b.bin', content: 'b' });
    const fileId = onlyFileId((await messages(base, bob)).body);
    expectReply(await messages(base, bob), 200, '收件箱为空');
    // Acknowledged but not yet downloaded: still there (the sender's download changes nothing).
    await sleep(100);
    await expectDownload(base, alice.token, fileId, bytes);

    await expectDownload(base, bob.token, fileId, bytes);
    await waitGone(base, alice, fileId, 'the recipient’s complete download of an acknowledged message', 1000);
    expectNotFound(await download(base, bob.token, fileId));
  });

  it('the sender’s download does not count as the recipient’s', async () => {
    const { base, alice, bob } = await startFriends('snd', { maintenanceIntervalSeconds: 0.05 });
    const bytes = seededBytes(5000, 14);
    await sendFileOk(base, alice, bob.id, { bytes, name: 'c.bin', content: 'c' });
    const fileId = await firstFileId(base, bob);
    await expectDownload(base, alice.token, fileId, bytes);
    await ackOne(base, bob, 3);
    await sleep(300);
    await expectDownload(base, alice.token, fileId, bytes);
    await expectDownload(base, bob.token, fileId, bytes);
    await waitGone(base, alice, fileId, 'the recipient downloaded it', 1000);
  });

  it('a message pushed on a (legacy) stream still lets the recipient download the file', async () => {
    // Grace 0: the legacy write is deleted once flushed (the at-least-once grace: tests/delivery/legacy).
    const { base, alice, bob } = await startFriends('sse', { legacyStreamGraceSeconds: 0 });
    const stream = await openSse(base, { token: bob.token });
    cleanup.push(async () => stream.close());
    expect(stream.status).toBe(200);
    await stream.waitForEvents(1); // the `log` event: the stream is registered

    const bytes = seededBytes(MB, 15);
    await sendFileOk(base, alice, bob.id, { bytes, name: EVIL_NAME, content: 'pushed' });
    const [event] = await stream.waitForMessages(1);
    const fileId = onlyFileId(event!.data);
    expect(event!.data.split('\n').slice(3, 6)).toEqual([
      '内容：pushed',
      `附件：${SAFE_NAME}`,
      `附件下载：/files/${fileId}`,
    ]);
    // The legacy stream counts the message as delivered (it is no longer stored).
    await stream.waitFor(() => stream.messages().length === 1);
    await sleep(100);
    expectReply(await messages(base, bob), 200, '收件箱为空');

    const d = await expectDownload(base, bob.token, fileId, bytes);
    expect(d.headers.get('content-disposition')).toBe(SAFE_DISPOSITION);
    // Delivered and downloaded: now it goes.
    await waitGone(base, alice, fileId, 'the recipient downloaded a pushed attachment', 1000);
  });
});

// ── Quota and idempotency ────────────────────────────────────────────────────────────────────────

describe('per-sender quota and Idempotency-Key', () => {
  it('the quota of stored, uncollected bytes gives a clear error and stores nothing', async () => {
    const { relay, base, alice, bob } = await startFriends('quo', { uploadQuotaMb: 1 });
    const carol = await register(base, 'quo_carol');
    const first = seededBytes(600 * 1024, 16);
    await sendFileOk(base, alice, bob.id, { bytes: first, name: 'one.bin', content: 'one' });
    const before = await stats(base);

    expectSoftError(
      await sendFile(base, alice, bob.id, {
        bytes: seededBytes(600 * 1024, 17),
        name: 'two.bin',
        content: 'two',
      }),
      QUOTA_1MB,
    );
    expect((await stats(base)).messages).toBe(before.messages);
    await expectUploadsEmpty(relay);

    // Per sender: carol is not affected by alice's stored bytes.
    await sendFileOk(
      base,
      carol,
      bob.id,
      { bytes: seededBytes(600 * 1024, 18), name: 'c.bin', content: 'carol' },
      '发送成功（好友申请已发出，等待对方回复）',
    );

    // Once bob has collected alice's file (read-and-clear, then a complete download), she may send again.
    const inbox = await inboxJson(base, bob);
    expect(inbox.messages.map((m) => m.content)).toEqual(['one', 'carol']);
    await expectDownload(base, bob.token, inbox.messages[0]!.attachment!.file_id!, first);
    await waitGone(base, alice, inbox.messages[0]!.attachment!.file_id!, 'bob collected it', 1000);
    await sendFileOk(base, alice, bob.id, {
      bytes: seededBytes(600 * 1024, 19),
      name: 'two.bin',
      content: 'two',
    });
  });

  it('the same key and bytes twice deliver one message with one file', async () => {
    const { relay, base, alice, bob } = await startFriends('idem', { uploadQuotaMb: 1 });
    const bytes = seededBytes(400 * 1024, 20);
    const f = { bytes, name: EVIL_NAME, content: 'once', headers: { 'Idempotency-Key': 'file-key-1' } };
    const before = await stats(base);

    const r1 = await sendFile(base, alice, bob.id, f);
    const r2 = await sendFile(base, alice, bob.id, f);
    expectReply(r1, 200, '发送成功');
    expectReply(r2, 200, '发送成功');
    expect([r1.headers.get('idempotent-replayed'), r2.headers.get('idempotent-replayed')]).toEqual([
      null,
      'true',
    ]);
    expect((await stats(base)).messages).toBe(before.messages + 1);

    const inbox = await inboxJson(base, bob, '?after=0');
    expect(inbox.messages.map((m) => [m.content, m.attachment?.name])).toEqual([['once', SAFE_NAME]]);
    await expectDownload(base, bob.token, inbox.messages[0]!.attachment!.file_id!, bytes);
    // The retry's copy was not kept: 400 KB + another 400 KB still fit under the 1 MB quota.
    await sendFileOk(base, alice, bob.id, {
      bytes: seededBytes(400 * 1024, 21),
      name: 'x.bin',
      content: 'x',
    });
    await expectUploadsEmpty(relay);

    // The same key with different bytes is refused and delivers nothing.
    expectSoftError(
      await sendFile(base, alice, bob.id, { ...f, bytes: seededBytes(1000, 22) }),
      '同一 Idempotency-Key 已用于不同的请求内容',
    );
    expect((await stats(base)).messages).toBe(before.messages + 2);
  });

  it('a retry with the same key gets the original answer even when the quota is now used up', async () => {
    const { relay, base, alice, bob } = await startFriends('idq', { uploadQuotaMb: 1 });
    const f = {
      bytes: seededBytes(600 * 1024, 23),
      name: 'q.bin',
      content: 'q',
      headers: { 'Idempotency-Key': 'k' },
    };
    const r1 = await sendFile(base, alice, bob.id, f);
    expectReply(r1, 200, '发送成功');
    // 600 KB stored + the retry's 600 KB exceed 1 MB, but the retry delivers nothing new.
    const r2 = await sendFile(base, alice, bob.id, f);
    expect({ status: r2.status, body: r2.body, replayed: r2.headers.get('idempotent-replayed') }).toEqual({
      status: 200,
      body: r1.body,
      replayed: 'true',
    });
    expect((await inboxJson(base, bob, '?after=0')).total).toBe(1);

    // A *new* key over the quota is still refused, and delivers nothing (not even without its file).
    const before = await stats(base);
    expectSoftError(
      await sendFile(base, alice, bob.id, { ...f, content: 'new', headers: { 'Idempotency-Key': 'k2' } }),
      QUOTA_1MB,
    );
    expect((await stats(base)).messages).toBe(before.messages);
    expect((await inboxJson(base, bob, '?after=0')).total).toBe(1);
    await expectUploadsEmpty(relay);
  });
});
