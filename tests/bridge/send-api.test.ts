// The send API (OpenClaw → relay) against a real relay: every row of the error table in its case,
// idempotency (a requestId repeated 5 times sends once), long texts in parts, and the bridge's own retries
// of transient relay errors (against a scripted fake relay, the only way to make a relay fail on cue).

import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/process.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { befriend, register, req, type User } from '../relay/client.ts';
import { drainInbox } from '../delivery/util.ts';
import {
  BOT_TOKEN,
  bridgeEnv,
  callSend,
  expectNoSecrets,
  SECRET,
  startReceiver,
  startTestBridge,
  type LogCapture,
  type Receiver,
} from './helpers.ts';
import type { Bridge } from '@openwechat/bridge';

const dirs: string[] = [];
const bridges: Array<{ bridge: Bridge; logs: LogCapture }> = [];
const secrets: string[] = [SECRET, BOT_TOKEN];
let receiver: Receiver;

async function bridgeFor(
  relayUrl: string,
  relayToken: string,
  extra: Record<string, string> = {},
): Promise<Bridge> {
  const dataDir = await mkdtemp(join(tmpdir(), 'owc-bridge-send-'));
  dirs.push(dataDir);
  const started = await startTestBridge(
    bridgeEnv({ relayUrl, relayToken, webhookUrl: receiver.url, dataDir, extra }),
  );
  bridges.push(started);
  secrets.push(relayToken);
  return started.bridge;
}

beforeAll(async () => {
  receiver = await startReceiver();
});

afterAll(async () => {
  for (const b of bridges) await b.bridge.close();
  await receiver?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  expectNoSecrets(bridges.map((b) => b.logs.text).join('\n'), secrets, receiver.all);
});

describe('send API against a real relay', () => {
  let relay: TestRelay;
  let bridge: Bridge;
  let bot: User;
  let friend: User;

  beforeAll(async () => {
    relay = await startRelay({ sseMaxPerIp: 10 });
    bot = await register(relay.url, 'abot');
    friend = await register(relay.url, 'friend');
    await befriend(relay.url, friend, bot);
    await drainInbox(relay.url, friend);
    bridge = await bridgeFor(relay.url, bot.token, {
      BRIDGE_MAX_TEXT_CHARS: '3000',
      BRIDGE_MAX_BODY_KB: '16',
    });
    secrets.push(friend.token);
  });

  afterAll(async () => {
    await relay?.close();
  });

  it('200 {"messageId"} and the message reaches the recipient', async () => {
    const r = await callSend(bridge.url, {
      to: `owc_${friend.id}`,
      text: 'hello friend',
      replyToMessageId: '123',
    });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ messageId: expect.stringMatching(/^out_\d+_\d+$/) });
    const inbox = await drainInbox(relay.url, friend);
    expect(inbox.map((m) => [m.from_id, m.content])).toEqual([[bot.id, 'hello friend']]);
  });

  it('400 invalid_request: malformed JSON, missing or empty to/text', async () => {
    for (const raw of [
      '{"to":',
      '"text"',
      JSON.stringify({ text: 'x' }),
      JSON.stringify({ to: 'owc_1' }),
      JSON.stringify({ to: 'owc_1', text: ' ' }),
    ]) {
      const r = await callSend(bridge.url, null, { raw });
      expect(r.status, raw).toBe(400);
      expect(r.json).toMatchObject({ error: { code: 'invalid_request' } });
    }
  });

  it('401 unauthorized with WWW-Authenticate, for a missing or wrong token', async () => {
    const none = await callSend(bridge.url, { to: `owc_${friend.id}`, text: 'x' }, { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="openwechat-bridge"');
    expect(none.json).toMatchObject({ error: { code: 'unauthorized' } });
    const wrong = await callSend(
      bridge.url,
      { to: `owc_${friend.id}`, text: 'x' },
      { token: 'not-the-token' },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const basic = await callSend(
      bridge.url,
      { to: `owc_${friend.id}`, text: 'x' },
      {
        token: null,
        headers: { authorization: `Basic ${Buffer.from(`x:${BOT_TOKEN}`).toString('base64')}` },
      },
    );
    expect(basic.status).toBe(401);
  });

  it('403 forbidden: the recipient blocked the bot, or does not take messages', async () => {
    const blocker = await register(relay.url, 'blocker');
    secrets.push(blocker.token);
    await befriend(relay.url, blocker, bot);
    expect((await req(relay.url, 'POST', `/block/${bot.id}`, { token: blocker.token })).status).toBe(200);
    const blocked = await callSend(bridge.url, { to: `owc_${blocker.id}`, text: 'hi' });
    expect(blocked.status).toBe(403);
    expect(blocked.json).toMatchObject({ error: { code: 'forbidden', relay_code: 'blocked_by_recipient' } });

    const dnd = await register(relay.url, 'dnd', { status: 'do_not_disturb' });
    secrets.push(dnd.token);
    const r = await callSend(bridge.url, { to: `owc_${dnd.id}`, text: 'hi' });
    expect(r.status).toBe(403);
    expect(r.json).toMatchObject({ error: { code: 'forbidden', relay_code: 'recipient_dnd' } });
  });

  it('404 conversation_not_found: an unknown user, a foreign id, a room that is not a relay group', async () => {
    for (const to of ['owc_999999', 'wxid_somebody', '38120000001@chatroom']) {
      const r = await callSend(bridge.url, { to, text: 'hi' });
      expect(r.status, to).toBe(404);
      expect(r.json).toMatchObject({ error: { code: 'conversation_not_found' } });
    }
  });

  it('409: a second message to a stranger before they answer; a requestId reused with another body', async () => {
    const stranger = await register(relay.url, 'stranger');
    secrets.push(stranger.token);
    expect((await callSend(bridge.url, { to: `owc_${stranger.id}`, text: 'nice to meet you' })).status).toBe(
      200,
    );
    const pending = await callSend(bridge.url, { to: `owc_${stranger.id}`, text: 'hello?' });
    expect(pending.status).toBe(409);
    expect(pending.json).toMatchObject({ error: { code: 'request_pending' } });

    expect(
      (await callSend(bridge.url, { to: `owc_${friend.id}`, text: 'one', requestId: 'conflict-1' })).status,
    ).toBe(200);
    const conflict = await callSend(bridge.url, {
      to: `owc_${friend.id}`,
      text: 'two',
      requestId: 'conflict-1',
    });
    expect(conflict.status).toBe(409);
    expect(conflict.json).toMatchObject({ error: { code: 'idempotency_conflict' } });
    await drainInbox(relay.url, friend);
  });

  it('413: text over BRIDGE_MAX_TEXT_CHARS (text_too_long), body over BRIDGE_MAX_BODY_KB (payload_too_large)', async () => {
    const long = await callSend(bridge.url, { to: `owc_${friend.id}`, text: 'x'.repeat(3001) });
    expect(long.status).toBe(413);
    expect(long.json).toMatchObject({ error: { code: 'text_too_long' } });
    const huge = await callSend(bridge.url, { to: `owc_${friend.id}`, text: 'y'.repeat(20_000) });
    expect(huge.status).toBe(413);
    expect(huge.json).toMatchObject({ error: { code: 'payload_too_large' } });
    expect(await drainInbox(relay.url, friend)).toEqual([]);
  });

  it('text over the relay limit of 1000 characters arrives as consecutive parts', async () => {
    const text = `${'a'.repeat(900)}\n${'b'.repeat(900)}\n${'c'.repeat(500)}`;
    const r = await callSend(bridge.url, { to: `owc_${friend.id}`, text, requestId: 'long-1' });
    expect(r.status).toBe(200);
    expect(r.json.messageIds).toHaveLength(3);
    expect(r.json.messageId).toBe((r.json.messageIds as string[])[0]);
    const inbox = await drainInbox(relay.url, friend);
    expect(inbox.map((m) => m.content).join('')).toBe(text);
  });

  it('a requestId repeated 5 times (concurrently and after) sends once', async () => {
    const body = { to: `owc_${friend.id}`, text: 'exactly once', requestId: 'req-5x' };
    const concurrent = await Promise.all([1, 2, 3].map(() => callSend(bridge.url, body)));
    const later = [
      await callSend(bridge.url, body),
      await callSend(bridge.url, body, { path: '/messages/send' }),
    ];
    const all = [...concurrent, ...later];
    expect(all.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(all.map((r) => r.json.messageId)).size).toBe(1);
    expect(all.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(4);
    // The Idempotency-Key header works the same way.
    const h = { headers: { 'idempotency-key': 'hdr-1' } };
    const a = await callSend(bridge.url, { to: `owc_${friend.id}`, text: 'by header' }, h);
    const b = await callSend(bridge.url, { to: `owc_${friend.id}`, text: 'by header' }, h);
    expect(b.json.messageId).toBe(a.json.messageId);
    const inbox = await drainInbox(relay.url, friend);
    expect(inbox.map((m) => m.content)).toEqual(['exactly once', 'by header']);
  });
});

describe('send API: relay rate limit and outages', () => {
  it('429 rate_limited with a Retry-After header and a retry_after field', async () => {
    const relay = await startRelay({ sseMaxPerIp: 10, rateLimitEnabled: true, rateLimitQps: 2 });
    try {
      const bot = await register(relay.url, 'abot');
      const friend = await register(relay.url, 'friend');
      secrets.push(friend.token);
      await befriend(relay.url, friend, bot);
      const bridge = await bridgeFor(relay.url, bot.token);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          callSend(bridge.url, { to: `owc_${friend.id}`, text: `burst ${i}` }),
        ),
      );
      const limited = results.filter((r) => r.status === 429);
      expect(limited.length).toBeGreaterThan(0);
      expect(results.every((r) => r.status === 200 || r.status === 429)).toBe(true);
      for (const r of limited) {
        const after = Number(r.headers.get('retry-after'));
        expect(after).toBeGreaterThanOrEqual(1);
        expect(r.json).toMatchObject({
          retry_after: after,
          error: { code: 'rate_limited', retry_after: after },
        });
      }
    } finally {
      await relay.close();
    }
  });

  it('source allowlists: 403 ip_not_allowed outside BRIDGE_ALLOWED_IPS / BRIDGE_INBOUND_ALLOWED_IPS', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const closed = await bridgeFor(down, 'relay-token-allowlist-test-1', {
      BRIDGE_ALLOWED_IPS: '10.0.0.0/8',
    });
    const r = await callSend(closed.url, { to: 'owc_2', text: 'x' });
    expect(r.status).toBe(403);
    expect(r.json).toMatchObject({ error: { code: 'ip_not_allowed' } });
    expect((await fetch(`${closed.url}/health`)).status).toBe(403);

    const open = await bridgeFor(down, 'relay-token-allowlist-test-2', {
      BRIDGE_ALLOWED_IPS: '127.0.0.0/8,::1',
      BRIDGE_INBOUND_ALLOWED_IPS: '10.9.9.9',
    });
    const inbound = await fetch(`${open.url}/im/inbound`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BOT_TOKEN}` },
      body: '{"NewMsgId":1}',
    });
    expect(inbound.status).toBe(403);
    // The send API stays open to loopback (it reaches the relay, which is down here: 503).
    expect((await callSend(open.url, { to: 'owc_2', text: 'x' })).status).toBe(503);
  });

  it('503 upstream_unavailable with Retry-After when the relay cannot be reached', async () => {
    const bridge = await bridgeFor(
      `http://127.0.0.1:${await freePort()}`,
      'relay-token-for-a-relay-that-is-down',
    );
    const r = await callSend(bridge.url, { to: 'owc_2', text: 'anyone?' });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('5');
    expect(r.json).toMatchObject({ retry_after: 5, error: { code: 'upstream_unavailable' } });
  });

  describe('against a scripted relay', () => {
    let server: Server;
    let url = '';
    const calls: Array<{ key: string; body: string }> = [];
    let script: Array<{ status: number; body: unknown; headers?: Record<string, string> }> = [];

    beforeAll(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          if (req.url === '/send' && req.method === 'POST') {
            calls.push({ key: String(req.headers['idempotency-key']), body });
            const next = script.shift() ?? {
              status: 500,
              body: { error: { code: 'internal_error', message: 'x' } },
            };
            res.writeHead(next.status, { 'content-type': 'application/json', ...(next.headers ?? {}) });
            res.end(JSON.stringify(next.body));
            return;
          }
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end('{"detail":"Not Found"}');
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    });

    const internal = {
      status: 500,
      body: { error: { code: 'internal_error', message: '内部错误，请重试' } },
    };
    const unavailable = { status: 503, body: { error: { code: 'x', message: 'busy' } } };
    const ok = {
      status: 200,
      body: { result: 'chat', message: '发送成功', message_id: 77, inbox: { total: 0, preview: [] } },
    };

    it('transient relay errors are retried with the same Idempotency-Key, then succeed', async () => {
      const bridge = await bridgeFor(url, 'relay-token-for-the-scripted-relay');
      calls.length = 0;
      script = [internal, unavailable, ok];
      const r = await callSend(bridge.url, { to: 'owc_5', text: 'retry me', requestId: 'transient-1' });
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ messageId: 'out_5_77' });
      expect(calls).toHaveLength(3);
      expect(new Set(calls.map((c) => c.key)).size).toBe(1);
      expect(JSON.parse(calls[0]!.body)).toEqual({ to_id: 5, content: 'retry me' });
    });

    it('502 upstream_error once the retries are used up; 422 when the relay refuses the content', async () => {
      const bridge = await bridgeFor(url, 'relay-token-for-the-scripted-relay');
      calls.length = 0;
      script = [internal, internal, internal];
      const r = await callSend(bridge.url, { to: 'owc_5', text: 'no luck' });
      expect(r.status).toBe(502);
      expect(r.json).toMatchObject({ error: { code: 'upstream_error' } });
      expect(calls).toHaveLength(3);

      calls.length = 0;
      script = [
        {
          status: 422,
          body: { error: { code: 'validation_failed', message: '请求格式错误：body -> content' } },
        },
      ];
      const v = await callSend(bridge.url, { to: 'owc_5', text: 'refused' });
      expect(v.status).toBe(422);
      expect(v.json).toMatchObject({ error: { code: 'unprocessable', relay_code: 'validation_failed' } });
      expect(calls).toHaveLength(1);
    });
  });
});
