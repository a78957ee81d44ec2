// The client against the real relay over loopback, in JSON mode (auto-detected) and in text mode (the
// reference's behaviour, `mode: 'text'`): every endpoint, the error mapping, streams and downloads.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClientError } from '../../../tests/helpers/client-error.ts';
import { startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import { freePort } from '../../../tests/helpers/process.ts';
import { ClientError, RelayClient, type ClientMode, type StreamEvent } from './index.ts';

let relay: TestRelay;
let tmp: string;

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 20 });
  tmp = await mkdtemp(join(tmpdir(), 'owc-client-'));
});
afterAll(async () => {
  await relay?.close();
  await rm(tmp, { recursive: true, force: true });
});

/** Collects stream events until `n` messages arrived. */
async function take(events: AsyncGenerator<StreamEvent>, n: number): Promise<StreamEvent[]> {
  const got: StreamEvent[] = [];
  let messages = 0;
  for await (const ev of events) {
    got.push(ev);
    if (ev.type === 'message' && ++messages >= n) break;
  }
  return got;
}

describe('capabilities', () => {
  it('tells our relay from the reference', async () => {
    expect(await new RelayClient({ baseUrl: `${relay.url}/` }).capabilities()).toEqual({
      kind: 'openwechat',
      version: '0.1.0',
      features: ['json', 'resume', 'idempotency', 'files', 'groups', 'receipts', 'e2e'],
      json: true,
      resume: true,
      idempotency: true,
      files: true,
      groups: true,
      receipts: true,
    });
    expect((await new RelayClient({ baseUrl: relay.url, mode: 'text' }).capabilities()).kind).toBe(
      'reference',
    );
  });

  it('rejects addresses that are not http(s)', () => {
    expect(() => new RelayClient({ baseUrl: 'ftp://x' })).toThrow(ClientError);
    expect(() => new RelayClient({ baseUrl: 'not a url' })).toThrow(/not a URL/);
  });
});

describe.each<ClientMode>(['auto', 'text'])('every endpoint (%s mode)', (mode) => {
  const tag = mode === 'auto' ? 'j' : 't';
  let a: RelayClient;
  let b: RelayClient;
  let aId: number;
  let bId: number;

  beforeAll(async () => {
    const anon = new RelayClient({ baseUrl: relay.url, mode });
    const ra = await anon.register({ name: `alice-${tag}`, description: 'first\nline?'.replace('\n', ' ') });
    const rb = await anon.register({ name: `bob-${tag}`, status: 'open' });
    expect(ra.token).toMatch(/^[0-9a-f]{32}$/);
    expect(ra.user).toMatchObject({ name: `alice-${tag}`, description: 'first line?', status: 'open' });
    a = new RelayClient({ baseUrl: relay.url, token: ra.token, mode });
    b = new RelayClient({ baseUrl: relay.url, token: rb.token, mode });
    aId = ra.user.id;
    bId = rb.user.id;
  });

  it('register refuses a taken name', async () => {
    await expectClientError(
      new RelayClient({ baseUrl: relay.url, mode }).register({ name: `alice-${tag}` }),
      {
        kind: 'relay',
        code: 'name_taken',
        status: 409,
      },
    );
  });

  it('friend request, one-message rule, reply, chat, inbox read with and without ids', async () => {
    const first = await a.send(bId, 'hello', { idempotencyKey: `k-${tag}` });
    expect(first.outcome).toBe('request');
    expect(first.messageId).toBe(mode === 'auto' ? 1 : null);
    await expectClientError(a.send(bId, 'again'), {
      kind: 'relay',
      code: 'request_pending',
      status: mode === 'auto' ? 409 : 200,
    });
    const page = await b.readInbox({ limit: 10 });
    expect(page).toMatchObject({ total: 1, fetched: 1, remaining: 0 });
    expect(page.messages[0]).toMatchObject({
      id: 1,
      type: 'friend_request',
      fromId: aId,
      from: { id: aId, name: `alice-${tag}` },
      content: 'hello',
      attachment: null,
    });
    const reply = await b.send(aId, 'hi\nthere');
    expect(reply.outcome).toBe('accepted');
    const chat = await a.send(bId, 'chat 1');
    expect(chat.outcome).toBe('chat');
    // Idempotent replay on our relay; the reference has no keys.
    if (mode === 'auto') {
      const again = await a.send(bId, 'chat 1', { idempotencyKey: 'same' });
      const replay = await a.send(bId, 'chat 1', { idempotencyKey: 'same' });
      expect(replay).toMatchObject({ replayed: true, messageId: again.messageId });
    }
    const inbox = await a.readInbox();
    expect(inbox.messages.map((m) => [m.type, m.content])).toEqual([
      ['chat', 'hi\nthere'],
      ['system', `您与 bob-${tag}（ID:${bId}）已成功建立好友关系。${inbox.messages[1]!.content.slice(-26)}`],
    ]);
  });

  it('friends, discovery, profiles, status', async () => {
    const friends = await a.friends();
    expect(friends.map((f) => [f.id, f.name])).toEqual([[bId, `bob-${tag}`]]);
    expect(friends[0]!.friendsSince).toEqual(expect.any(Number));
    const found = await a.discover(`bob-${tag}`);
    expect(found.users.map((u) => u.id)).toEqual([bId]);
    expect(await a.user(bId)).toMatchObject({ id: bId, name: `bob-${tag}`, status: 'open' });
    await expectClientError(a.user(999_999), { kind: 'relay', code: 'user_not_found' });
    expect((await b.setStatus('friends_only')).status).toBe('friends_only');
    expect((await a.user(bId)).status).toBe('friends_only');
    await b.setStatus('open');
  });

  it('block and unblock', async () => {
    expect(await a.block(bId)).toEqual({ id: bId, name: `bob-${tag}` });
    await expectClientError(b.send(aId, 'x'), { code: 'blocked_by_recipient' });
    expect(await a.unblock(bId)).toEqual({ id: bId, name: `bob-${tag}` });
    await expectClientError(a.unblock(bId), { code: 'no_block_record' });
    await expectClientError(a.block(bId), { code: 'not_friends' });
  });

  it('homepage upload and view', async () => {
    const html = `<!DOCTYPE html><html><body><h1>${tag} 主页</h1></body></html>`;
    const { url } = await a.uploadHomepage(html);
    expect(url).toBe(`${relay.url}/homepage/${aId}`);
    expect(await b.homepage(aId)).toBe(html);
    await expectClientError(a.uploadHomepage('{"html": 1}'), { code: 'homepage_is_json', status: 400 });
    await expectClientError(b.homepage(999_999), { code: 'user_not_found', status: 404 });
  });

  it('send a file and download it', async () => {
    const src = join(tmp, `report-${tag}.txt`);
    await writeFile(src, `bytes of ${tag}\n`);
    // Strangers again after the unblock: the file goes with a friend request.
    const sent = await a.sendFile(bId, { path: src, filename: `我的 report-${tag}.txt` }, 'see file');
    expect(sent.outcome).toBe('request');
    const page = await b.readInbox();
    const m = page.messages.at(-1)!;
    expect(m.attachment).toMatchObject({
      name: `我的 report-${tag}.txt`,
      fileId: expect.stringMatching(/^[0-9a-f]{32}$/),
    });
    const got = await b.downloadFile(`/files/${m.attachment!.fileId}`, join(tmp, `got-${tag}`));
    expect(got).toMatchObject({ name: `我的 report-${tag}.txt`, size: 11 });
    expect(await readFile(join(tmp, `got-${tag}`), 'utf8')).toBe(`bytes of ${tag}\n`);
    await expectClientError(b.downloadFile('0'.repeat(32), join(tmp, 'none')), {
      code: 'file_not_found',
      status: 404,
    });
    await expectClientError(a.sendFile(bId, null, '   '), { code: 'content_or_file_required' });
  });

  it('a wrong token, and a relay that is not there', async () => {
    const bad = new RelayClient({ baseUrl: relay.url, token: 'f'.repeat(32), mode });
    await expectClientError(bad.friends(), {
      kind: 'relay',
      code: 'invalid_token',
      status: mode === 'auto' ? 401 : 200,
    });
    await expectClientError(bad.openStream({ since: null }), {
      kind: 'relay',
      code: 'invalid_token',
      status: 401,
    });
    const gone = new RelayClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, token: 'x', mode });
    await expectClientError(gone.friends(), { kind: 'network', code: 'network_error' });
  });
});

describe('streams', () => {
  it('resume: replays what is not acknowledged, then pushes live; ack and ?after= confirm', async () => {
    const anon = new RelayClient({ baseUrl: relay.url });
    const ra = await anon.register({ name: 'stream-a' });
    const rb = await anon.register({ name: 'stream-b' });
    const a = new RelayClient({ baseUrl: relay.url, token: ra.token });
    const b = new RelayClient({ baseUrl: relay.url, token: rb.token });
    await a.send(rb.user.id, 'one');
    await b.send(ra.user.id, 'ok');
    await a.send(rb.user.id, 'two');
    // b's inbox: 1 friend_request, 2 system notice, 3 chat "two".
    const s1 = await b.openStream({ since: 0, format: 'json' });
    expect(s1.mode).toBe('resume');
    const ev1 = await take(s1.events(), 3);
    s1.close();
    expect(ev1[0]).toMatchObject({ type: 'log', data: expect.stringMatching(/^stream_connected /) });
    expect(ev1.filter((e) => e.type === 'retry')).toEqual([{ type: 'retry', ms: 3000 }]);
    expect(
      ev1
        .filter((e) => e.type === 'message')
        .map((e) => (e.type === 'message' ? [e.id, e.message.content] : null)),
    ).toEqual([
      [1, 'one'],
      [2, expect.stringContaining('已成功建立好友关系')],
      [3, 'two'],
    ]);
    // Resume after 2: 3 is replayed, then a live one arrives.
    const s2 = await b.openStream({ since: 2, format: 'text' });
    const pending = take(s2.events(), 2);
    await a.send(rb.user.id, 'three');
    const ev2 = await pending;
    s2.close();
    expect(
      ev2
        .filter((e) => e.type === 'message')
        .map((e) => (e.type === 'message' ? [e.id, e.message.content] : null)),
    ).toEqual([
      [3, 'two'],
      [4, 'three'],
    ]);
    expect((await b.readInbox({ after: 3 })).messages.map((m) => m.id)).toEqual([4]);
    expect(await b.ack(4)).toEqual({ acked: 1 });
    expect((await b.readInbox({ after: 4 })).total).toBe(0);
  });

  it('legacy (text mode): the reference’s stream, read-and-clear inbox, no acks', async () => {
    const anon = new RelayClient({ baseUrl: relay.url, mode: 'text' });
    const ra = await anon.register({ name: 'legacy-a' });
    const rb = await anon.register({ name: 'legacy-b' });
    const a = new RelayClient({ baseUrl: relay.url, token: ra.token, mode: 'text' });
    const b = new RelayClient({ baseUrl: relay.url, token: rb.token, mode: 'text' });
    const s = await b.openStream({ since: null });
    expect(s.mode).toBe('legacy');
    const pending = take(s.events(), 1);
    await a.send(rb.user.id, 'pushed\nline 2');
    const ev = await pending;
    s.close();
    const m = ev.find((e) => e.type === 'message');
    expect(m).toMatchObject({
      type: 'message',
      id: 1,
      message: { type: 'friend_request', content: 'pushed\nline 2' },
    });
    await expectClientError(b.ack(1), { kind: 'unsupported' });
    await expectClientError(b.readInbox({ after: 0 }), { kind: 'unsupported' });
  });

  it('a silent stream is reported as idle', async () => {
    const anon = new RelayClient({ baseUrl: relay.url });
    const r = await anon.register({ name: 'idle-one' });
    const c = new RelayClient({ baseUrl: relay.url, token: r.token });
    const s = await c.openStream({ since: 0, idleTimeoutMs: 200 });
    await expectClientError(take(s.events(), 1), { kind: 'network', code: 'stream_idle' });
  });
});

describe('rate limits', () => {
  it('429 with Retry-After is rate_limited', async () => {
    const limited = await startRelay({ rateLimitEnabled: true, rateLimitQps: 1 });
    try {
      const r = await new RelayClient({ baseUrl: limited.url }).register({ name: 'busy' });
      const c = new RelayClient({ baseUrl: limited.url, token: r.token });
      await c.friends();
      const err = await expectClientError(c.friends(), { kind: 'relay', code: 'rate_limited', status: 429 });
      expect(err.retryAfterMs).toEqual(expect.any(Number));
    } finally {
      await limited.close();
    }
  });
});
