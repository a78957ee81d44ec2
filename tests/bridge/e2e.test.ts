// End to end with real processes over real sockets: a relay, the bridge, and a fake OpenClaw receiver that
// verifies every signature with independent implementations and answers like the wechat_abot plugin: it
// acks the webhook, then replies through the bridge's send API. The user holds a resume stream on the relay.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSse, type SseConnection } from '../helpers/sse.ts';
import { req, send } from '../relay/client.ts';
import {
  BOT_TOKEN,
  bridgeSuite,
  callSend,
  until,
  type Delivery,
  type LogCapture,
  type SendApiReply,
} from './helpers.ts';
import type { Bridge } from '@openwechat/bridge';

const ADDMSG_KEYS = [
  'MsgId',
  'FromUserName',
  'ToUserName',
  'MsgType',
  'Content',
  'Status',
  'ImgStatus',
  'ImgBuf',
  'CreateTime',
  'MsgSource',
  'PushContent',
  'NewMsgId',
  'MsgSeq',
];

/** Well-formed enough for an XML parser: one <msgsource> root of simple, closed elements (CDATA allowed). */
function isSimpleXml(s: string): boolean {
  return /^<msgsource>(?:<(\w+)>(?:<!\[CDATA\[[^\]]*\]\]>|[^<&]|&#\d+;)*<\/\1>)*<\/msgsource>$/.test(s);
}

describe.each(['plain', 'standard'] as const)('relay ⇄ OpenClaw end to end (%s signing)', (mode) => {
  const { relay, receiver, bot, startBridge, users } = bridgeSuite({
    bot: `abot_${mode}`,
    users: [`alice_${mode}`],
  });
  const [alice] = users;
  let bridge: Bridge;
  let aliceStream: SseConnection;
  const replies: SendApiReply[] = [];

  beforeAll(async () => {
    // The fake plugin: acknowledge at once, then answer text messages through the send API.
    receiver.behaviour = (d: Delivery) => {
      if (d.json.MsgType === 1) {
        void callSend(bridge.url, {
          to: d.json.FromUserName.string,
          text: `echo: ${d.json.Content.string}`,
          replyToMessageId: String(d.json.NewMsgId),
          requestId: `reply-${d.json.NewMsgId}`,
        }).then((r) => replies.push(r));
      }
      return { status: 200 };
    };
    ({ bridge } = await startBridge({ extra: { WECHAT_ABOT_SIGNING: mode } }));
    aliceStream = await openSse(relay.url, {
      token: alice.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': '0' },
    });
  });

  afterAll(() => aliceStream?.close());

  it("a user's message reaches OpenClaw as a correct, signed AddMsg; the reply reaches the user", async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await send(relay.url, alice, bot.id, 'hello bot');
    expect(r.status).toBe(200);
    await until(() => receiver.accepted().some((d) => d.json.Content?.string === 'hello bot'), 'the AddMsg');
    const d = receiver.accepted().find((x) => x.json.Content.string === 'hello bot')!;

    expect(d.plainOk).toBe(true);
    expect(d.headers['x-wechat-abot-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(d.headers['content-type']).toBe('application/json; charset=utf-8');
    if (mode === 'standard') {
      expect(d.strongOk).toBe(true);
      expect(d.headers['webhook-id']).toBe(String(d.json.NewMsgId));
    } else {
      expect(d.strongOk).toBeNull();
      expect(d.headers['webhook-id']).toBeUndefined();
    }

    expect(Object.keys(d.json)).toEqual(ADDMSG_KEYS);
    expect(d.json).toMatchObject({
      FromUserName: { string: `owc_${alice.id}` },
      ToUserName: { string: `owc_${bot.id}` },
      MsgType: 1,
      Content: { string: 'hello bot' },
      Status: 3,
      ImgStatus: 1,
      ImgBuf: { iLen: 0 },
      PushContent: `alice_${mode} : hello bot`,
    });
    expect(d.json.FromUserName.string).not.toContain(':');
    expect(isSimpleXml(d.json.MsgSource)).toBe(true);
    expect(Number.isSafeInteger(d.json.NewMsgId) && d.json.NewMsgId > 0).toBe(true);
    expect(Number.isInteger(d.json.MsgId) && d.json.MsgId > 0 && d.json.MsgId < 2 ** 31).toBe(true);
    expect(d.json.CreateTime).toBeGreaterThanOrEqual(before - 1);
    expect(d.json.CreateTime).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    // The body is compact JSON, serialised once: what was signed is what JSON.stringify would give back.
    expect(d.raw).toBe(JSON.stringify(d.json));

    const events = await aliceStream.waitForEvents(1, {
      timeoutMs: 15_000,
      filter: (e) => e.event === 'message' && e.data.includes('echo: hello bot'),
    });
    const m = JSON.parse(events[0]!.data) as { from_id: number; type: string; content: string };
    expect(m).toMatchObject({ from_id: bot.id, type: 'chat', content: 'echo: hello bot' });
    await until(() => replies.length > 0, 'the send API answer');
    const reply = replies.find((x) => x.status === 200);
    expect(reply?.json.messageId).toMatch(/^out_\d+_\d+$/);
  });

  it('the friendship notice arrives as a MsgType 10000 tip in that conversation', async () => {
    await until(() => receiver.accepted().some((d) => d.json.MsgType === 10000), 'the system notice');
    const tip = receiver.accepted().find((d) => d.json.MsgType === 10000)!;
    expect(tip.json.FromUserName.string).toBe(`owc_${alice.id}`);
    expect(tip.json.Content.string).toContain('已成功建立好友关系');
    expect(tip.json.PushContent).toBe('');
  });

  it('a chat between friends flows both ways, each NewMsgId once, and the relay inbox is acknowledged', async () => {
    for (const text of ['second', 'third'])
      expect((await send(relay.url, alice, bot.id, text)).status).toBe(200);
    await aliceStream.waitForEvents(1, {
      timeoutMs: 15_000,
      filter: (e) => e.event === 'message' && e.data.includes('echo: third'),
    });
    const ids = receiver.accepted().map((d) => d.json.NewMsgId);
    expect(new Set(ids).size).toBe(ids.length);
    const texts = receiver
      .accepted()
      .filter((d) => d.json.MsgType === 1)
      .map((d) => d.json.Content.string);
    expect(texts).toEqual(['hello bot', 'second', 'third']);
    // Everything the bridge stored was acknowledged on the relay (GET /messages?after=0 acks nothing).
    let total = -1;
    for (let i = 0; i < 100 && total !== 0; i++) {
      const r = await req(relay.url, 'GET', '/messages?after=0', { token: bot.token, jsonMode: true });
      total = (JSON.parse(r.body) as { total: number }).total;
      if (total) await new Promise((res) => setTimeout(res, 50));
    }
    expect(total).toBe(0);
  });
});

describe('bridge endpoints: generic inbound, alias, suppression, health and metrics', () => {
  const { relay, receiver, bot, secrets, startBridge, users } = bridgeSuite({
    bot: 'abot_x',
    users: ['carol_x'],
  });
  const [carol] = users;
  let bridge: Bridge;
  let logs: LogCapture;

  beforeAll(async () => {
    secrets.push('inbound-token-77aa88bb99cc');
    ({ bridge, logs } = await startBridge({
      extra: { BRIDGE_SYSTEM_NOTICES: 'suppress', BRIDGE_INBOUND_TOKEN: 'inbound-token-77aa88bb99cc' },
    }));
  });

  it('/im/inbound forwards the exact bytes, signed, once per NewMsgId; it needs its bearer token', async () => {
    // A foreign IM's record with a 64-bit NewMsgId that JSON numbers cannot hold, and spacing we must keep.
    const raw =
      '{ "MsgId": 1, "FromUserName": {"string": "wxid_zed"}, "ToUserName": {"string":"wxid_bot"}, "MsgType": 1, "Content": {"string": "from another IM"}, "NewMsgId": 8449132831264840264 }';
    const post = (token: string | null, body = raw) =>
      fetch(`${bridge.url}/im/inbound`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body,
      });
    expect((await post(null)).status).toBe(401);
    expect((await post(BOT_TOKEN)).status).toBe(401);
    expect((await post('inbound-token-77aa88bb99cc', '{"not json')).status).toBe(400);
    const first = await post('inbound-token-77aa88bb99cc');
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ accepted: true, eventId: '8449132831264840264', duplicate: false });
    const again = await post('inbound-token-77aa88bb99cc');
    expect(await again.json()).toMatchObject({ duplicate: true });
    await until(() => receiver.accepted().some((d) => d.raw === raw), 'the inbound record');
    expect(receiver.all.filter((d) => d.raw === raw)).toHaveLength(1);
    expect(receiver.accepted().find((d) => d.raw === raw)!.plainOk).toBe(true);
  });

  it('system notices are acknowledged but not forwarded when suppressed; /messages/send is an alias', async () => {
    // carol's request → the bot replies (through the alias) → friendship → two system notices.
    expect((await send(relay.url, carol, bot.id, 'hi bot')).status).toBe(200);
    await until(() => receiver.accepted().some((d) => d.json.Content?.string === 'hi bot'), 'the request');
    const r = await callSend(
      bridge.url,
      { to: `owc_${carol.id}`, text: 'welcome' },
      { path: '/messages/send' },
    );
    expect(r.status).toBe(200);
    expect((await send(relay.url, carol, bot.id, 'after')).status).toBe(200);
    await until(() => receiver.accepted().some((d) => d.json.Content?.string === 'after'), 'the chat');
    expect(receiver.all.some((d) => d.json.MsgType === 10000)).toBe(false);
    const suppressed = logs.lines().filter((l) => l.hop === 'relay_in' && l.status === 'suppressed');
    expect(suppressed.length).toBeGreaterThanOrEqual(1);
  });

  it('/health reports the relay stream and the outbox; /metrics is Prometheus text', async () => {
    const h = (await (await fetch(`${bridge.url}/health`)).json()) as Record<string, Record<string, unknown>>;
    expect(h.status).toBe('ok');
    expect(h.relay).toMatchObject({ connected: true, botId: bot.id });
    expect(h.outbox).toMatchObject({ pending: 0, dead: 0 });
    const res = await fetch(`${bridge.url}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toMatch(/^# HELP bridge_relay_messages_total /m);
    expect(text).toMatch(/^bridge_webhook_attempts_total\{result="delivered"\} [1-9]\d*$/m);
    expect(text).toMatch(/^bridge_relay_stream_connected 1$/m);
    expect(text).toMatch(/^bridge_outbox_messages\{state="pending"\} 0$/m);
    expect((await fetch(`${bridge.url}/nope`)).status).toBe(404);
    expect((await fetch(`${bridge.url}/api/messages/send`)).status).toBe(405);
  });
});
