// Group chats through the bridge (issue 11, docs/groups-api.md "Skill and bridge"), end to end with real
// processes over real sockets: one relay, two bot accounts each with its own bridge and fake OpenClaw
// receiver (signatures verified by independent implementations), and human members on the relay.
//   bridge A (abot): plain signing, every group message forwarded, membership notices forwarded;
//                    its receiver answers "weather" questions into the group through the send API
//   bridge B (bbot): standard signing, BRIDGE_GROUP_REQUIRE_MENTION=true, system notices suppressed

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayNewMsgId, type Bridge } from '@openwechat/bridge';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, type SseConnection } from '../helpers/sse.ts';
import { befriend, register, req, type User } from '../relay/client.ts';
import {
  BOT_TOKEN,
  bridgeEnv,
  callSend,
  expectNoSecrets,
  SECRET,
  startReceiver,
  startTestBridge,
  until,
  type Delivery,
  type LogCapture,
  type Receiver,
  type SendApiReply,
  tempDirs,
} from './helpers.ts';

interface GroupMessage {
  id: number;
  type: string;
  created_at: string;
  from_id: number | null;
  content: string;
  group: { id: number; name: string } | null;
  mentioned: boolean;
}

const tempDir = tempDirs('owc-bridge-groups-');

/** JSON-mode relay call; the parsed body. */
async function relayJson(
  base: string,
  user: User,
  method: string,
  path: string,
  json?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await req(base, method, path, { token: user.token, jsonMode: true, json });
  return { status: r.status, body: JSON.parse(r.body) as Record<string, unknown> };
}

/** Group messages in a user's relay inbox (JSON mode; reading clears them). */
async function inboxGroupMessages(base: string, user: User): Promise<GroupMessage[]> {
  const r = await relayJson(base, user, 'GET', '/messages');
  expect(r.status).toBe(200);
  return (r.body.messages as GroupMessage[]).filter((m) => m.type === 'group');
}

const textOf = (d: Delivery): string => d.json.Content?.string ?? '';

describe('group chats through the bridge', () => {
  let relay: TestRelay;
  let alice: User;
  let bob: User;
  let carol: User;
  let abot: User;
  let bbot: User;
  let recA: Receiver;
  let recB: Receiver;
  let bridgeA: Bridge;
  let bridgeB: Bridge;
  let logsA: LogCapture;
  let logsB: LogCapture;
  let aliceStream: SseConnection;
  let gid = 0;
  let room = '';
  const replies: SendApiReply[] = [];
  /** NewMsgIds answered 503 once (to see the retry carry the same bytes). */
  const refusedOnce = new Set<number>();

  beforeAll(async () => {
    relay = await startRelay({ sseMaxPerIp: 20 });
    alice = await register(relay.url, 'alice');
    bob = await register(relay.url, 'bob');
    carol = await register(relay.url, 'carol');
    abot = await register(relay.url, 'abot');
    bbot = await register(relay.url, 'bbot');
    recA = await startReceiver();
    recB = await startReceiver();
    // Plugin A: the first delivery of a group question is refused once (503), then accepted and answered
    // into the group through the send API.
    recA.behaviour = (d) => {
      const group = d.json.FromUserName?.string.endsWith('@chatroom');
      if (d.json.MsgType === 1 && group && textOf(d).includes('weather')) {
        if (!refusedOnce.has(d.json.NewMsgId)) {
          refusedOnce.add(d.json.NewMsgId);
          return { status: 503, headers: { 'retry-after': '0' } };
        }
        void callSend(bridgeA.url, {
          to: d.json.FromUserName.string,
          text: 'sunny, 25°C',
          replyToMessageId: String(d.json.NewMsgId),
          requestId: `reply-${d.json.NewMsgId}`,
        }).then((r) => replies.push(r));
      }
      return { status: 200 };
    };
    ({ bridge: bridgeA, logs: logsA } = await startTestBridge(
      bridgeEnv({
        relayUrl: relay.url,
        relayToken: abot.token,
        webhookUrl: recA.url,
        dataDir: await tempDir(),
        extra: { WECHAT_ABOT_SIGNING: 'plain' },
      }),
    ));
    ({ bridge: bridgeB, logs: logsB } = await startTestBridge(
      bridgeEnv({
        relayUrl: relay.url,
        relayToken: bbot.token,
        webhookUrl: recB.url,
        dataDir: await tempDir(),
        extra: {
          WECHAT_ABOT_SIGNING: 'standard',
          BRIDGE_GROUP_REQUIRE_MENTION: 'true',
          BRIDGE_SYSTEM_NOTICES: 'suppress',
        },
      }),
    ));
    // Members must be the owner's friends (the bots answer alice's request directly on the relay).
    for (const u of [bob, abot, bbot]) await befriend(relay.url, alice, u);
    const created = await relayJson(relay.url, alice, 'POST', '/groups', {
      name: 'Team',
      member_ids: [bob.id, abot.id, bbot.id],
    });
    expect(created.status).toBe(200);
    gid = (created.body.group as { id: number }).id;
    room = `owc_g${gid}@chatroom`;
    aliceStream = await openSse(relay.url, {
      token: alice.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': '0' },
    });
  });

  afterAll(async () => {
    aliceStream?.close();
    await bridgeA?.close();
    await bridgeB?.close();
    await recA?.stop();
    await recB?.stop();
    await relay?.close();
    const tokens = [SECRET, BOT_TOKEN, alice.token, bob.token, carol.token, abot.token, bbot.token];
    expectNoSecrets(logsA.text, tokens, recA.all);
    expectNoSecrets(logsB.text, tokens, recB.all);
  });

  it('the bots learn their relay names; membership notices follow BRIDGE_SYSTEM_NOTICES', async () => {
    const health = async (b: Bridge) =>
      ((await (await fetch(`${b.url}/health`)).json()) as { relay: Record<string, unknown> }).relay;
    await until(
      () => recA.accepted().some((d) => d.json.MsgType === 10000 && d.json.FromUserName.string === room),
      'the notice',
    );
    expect(await health(bridgeA)).toMatchObject({ botId: abot.id, botName: 'abot' });
    expect(await health(bridgeB)).toMatchObject({ botId: bbot.id, botName: 'bbot' });
    // A: "added to the group" is a MsgType 10000 tip inside the group (no sender prefix, no push text).
    const tip = recA.accepted().find((d) => d.json.MsgType === 10000 && d.json.FromUserName.string === room)!;
    expect(tip.json.Content.string).toContain(`加入群组 Team（群ID:${gid}）`);
    expect(tip.json.PushContent).toBe('');
    expect(tip.plainOk).toBe(true);
    // B suppresses system notices: nothing of the kind was sent, and the log says why.
    await until(
      () =>
        logsB.lines().some((l) => l.hop === 'relay_in' && l.status === 'suppressed' && l.type === 'system'),
      'B suppressing the notice',
    );
    expect(recB.all.some((d) => d.json.MsgType === 10000)).toBe(false);
  });

  it('a message that mentions the bot reaches OpenClaw in the group form; the answer reaches every member', async () => {
    const bobStream = await openSse(relay.url, {
      token: bob.token,
      path: '/stream?format=json',
      headers: { 'Last-Event-ID': '0' },
    });
    try {
      const sent = await relayJson(relay.url, alice, 'POST', `/groups/${gid}/send`, {
        content: "what's the weather?",
        mention_ids: [abot.id],
      });
      expect(sent.status).toBe(200);
      expect(sent.body).toMatchObject({ result: 'group', group_id: gid, recipients: 3 });

      await until(() => recA.accepted().some((d) => textOf(d).includes('weather')), 'the group AddMsg');
      const attempts = recA.all.filter((d) => textOf(d).includes('weather'));
      const d = recA.accepted().find((x) => textOf(x).includes('weather'))!;
      expect(d.plainOk).toBe(true);
      expect(d.json).toMatchObject({
        FromUserName: { string: room },
        ToUserName: { string: `owc_${abot.id}` },
        MsgType: 1,
        Content: { string: `owc_${alice.id}:\n@abot\u2005what's the weather?` },
        MsgSource: `<msgsource><atuserlist><![CDATA[,owc_${abot.id}]]></atuserlist><silence>0</silence><signature>v1_openwechat</signature></msgsource>`,
        PushContent: 'alice在群聊中@了你',
        Status: 3,
      });
      // The U+2005 separator travels as a \u escape, in bytes that were signed once.
      expect(d.raw).toContain('@abot\\u2005what');
      // Stable NewMsgId: the refused first attempt and the retry carry the same id and the same bytes, and it
      // is the id derived from the bot's relay copy (MsgSeq = its relay id, created_at shared by every copy).
      expect(attempts.map((a) => a.status)).toEqual([503, 200]);
      expect(attempts[0]!.raw).toBe(d.raw);
      const bobCopy = (
        await bobStream.waitForEvents(1, {
          timeoutMs: 15_000,
          filter: (e) => e.event === 'message' && e.data.includes('weather'),
        })
      ).map((e) => JSON.parse(e.data) as GroupMessage)[0]!;
      expect(bobCopy).toMatchObject({
        type: 'group',
        from_id: alice.id,
        group: { id: gid, name: 'Team' },
        mentioned: false,
      });
      expect(d.json.NewMsgId).toBe(relayNewMsgId(abot.id, d.json.MsgSeq, Date.parse(bobCopy.created_at)));
      expect(d.json.CreateTime).toBe(Math.floor(Date.parse(bobCopy.created_at) / 1000));

      // bbot was not mentioned in its copy: filtered by B (acknowledged, logged, never a dead letter).
      await until(
        () =>
          logsB
            .lines()
            .some((l) => l.hop === 'relay_in' && l.status === 'filtered' && l.conversationId === room),
        'B filtering the message',
      );
      expect(recB.all.some((x) => textOf(x).includes('weather'))).toBe(false);

      // The plugin's answer, sent with to = the group, reaches every other member (alice, bob, bbot).
      await until(() => replies.length > 0, 'the send API answer');
      expect(replies[0]).toMatchObject({ status: 200 });
      expect(replies[0]!.json.messageId).toMatch(new RegExp(`^out_g${gid}_\\d+$`));
      const isAnswer = (e: { event: string; data: string }): boolean =>
        e.event === 'message' && e.data.includes('sunny, 25°C');
      for (const stream of [aliceStream, bobStream]) {
        const [ev] = await stream.waitForEvents(1, { timeoutMs: 15_000, filter: isAnswer });
        expect(JSON.parse(ev!.data)).toMatchObject({
          type: 'group',
          from_id: abot.id,
          content: 'sunny, 25°C',
          group: { id: gid, name: 'Team' },
        });
      }
      await until(
        () =>
          logsB
            .lines()
            .some((l) => l.hop === 'relay_in' && l.status === 'filtered' && l.sender === `owc_${abot.id}`),
        "B receiving (and filtering) abot's answer",
      );
      // abot's own message never comes back to its bridge.
      expect(recA.all.some((x) => textOf(x).includes('sunny'))).toBe(false);
      const log = logsA.lines().find((l) => l.hop === 'send_api' && l.conversationId === room);
      expect(log).toMatchObject({ status: 200, replyTo: String(d.json.NewMsgId) });
    } finally {
      bobStream.close();
    }
  });

  it('without a mention: forwarded when the option is off, filtered when it is on', async () => {
    const sent = await relayJson(relay.url, bob, 'POST', `/groups/${gid}/send`, { content: 'lunch anyone?' });
    expect(sent.status).toBe(200);
    await until(() => recA.accepted().some((d) => textOf(d).includes('lunch')), 'the AddMsg on A');
    const d = recA.accepted().find((x) => textOf(x).includes('lunch'))!;
    expect(d.json).toMatchObject({
      FromUserName: { string: room },
      Content: { string: `owc_${bob.id}:\nlunch anyone?` },
      MsgSource: '<msgsource><silence>0</silence><signature>v1_openwechat</signature></msgsource>',
      PushContent: 'bob : lunch anyone?',
    });
    await until(
      () =>
        logsB
          .lines()
          .some((l) => l.hop === 'relay_in' && l.status === 'filtered' && l.sender === `owc_${bob.id}`),
      'B filtering it',
    );
    expect(recB.all.some((x) => textOf(x).includes('lunch'))).toBe(false);

    // B forwards group messages that mention bbot — here by name in the text, in strong signing mode.
    await relayJson(relay.url, bob, 'POST', `/groups/${gid}/send`, { content: '@bbot are you there?' });
    await until(() => recB.accepted().some((x) => textOf(x).includes('are you there')), 'the AddMsg on B');
    const b = recB.accepted().find((x) => textOf(x).includes('are you there'))!;
    expect([b.plainOk, b.strongOk]).toEqual([true, true]);
    expect(b.headers['webhook-id']).toBe(String(b.json.NewMsgId));
    expect(b.json).toMatchObject({
      FromUserName: { string: room },
      ToUserName: { string: `owc_${bbot.id}` },
      // The body already mentions the bot: kept as written.
      Content: { string: `owc_${bob.id}:\n@bbot are you there?` },
      MsgSource: `<msgsource><atuserlist><![CDATA[,owc_${bbot.id}]]></atuserlist><silence>0</silence><signature>v1_openwechat</signature></msgsource>`,
      PushContent: 'bob在群聊中@了你',
    });

    // Nothing is pending or dead on either bridge; both relay inboxes were acknowledged.
    await until(() => bridgeA.outbox.counts().pending === 0 && bridgeB.outbox.counts().pending === 0, 'idle');
    expect([bridgeA.outbox.counts().dead, bridgeB.outbox.counts().dead]).toEqual([0, 0]);
    for (const bot of [abot, bbot]) {
      let total = -1;
      for (let i = 0; i < 100 && total !== 0; i++) {
        const r = await relayJson(relay.url, bot, 'GET', '/messages?after=0');
        total = r.body.total as number;
        if (total) await new Promise((res) => setTimeout(res, 50));
      }
      expect(total).toBe(0);
    }
  });

  it('group sends are idempotent, and the relay refusals map to the send API table', async () => {
    await inboxGroupMessages(relay.url, bob); // start from an empty inbox
    const body = { to: room, text: 'one announcement', requestId: 'announce-1' };
    const first = await callSend(bridgeA.url, body);
    const again = await callSend(bridgeA.url, body);
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.json.messageId).toBe(first.json.messageId);
    const conflict = await callSend(bridgeA.url, { ...body, text: 'another' });
    expect([conflict.status, (conflict.json.error as { code: string }).code]).toEqual([
      409,
      'idempotency_conflict',
    ]);
    const bobs = (await inboxGroupMessages(relay.url, bob)).filter((m) => m.content === 'one announcement');
    expect(bobs).toHaveLength(1);
    expect(bobs[0]).toMatchObject({ from_id: abot.id, group: { id: gid } });

    // A group abot does not belong to looks like none at all: 404, the relay's group_not_found.
    await befriend(relay.url, alice, carol);
    const other = await relayJson(relay.url, alice, 'POST', '/groups', {
      name: 'Private',
      member_ids: [carol.id],
    });
    const otherId = (other.body.group as { id: number }).id;
    for (const to of [`owc_g${otherId}@chatroom`, 'owc_g999999@chatroom']) {
      const r = await callSend(bridgeA.url, { to, text: 'hello?' });
      expect(r.status).toBe(404);
      expect(r.json.error).toMatchObject({ code: 'conversation_not_found', relay_code: 'group_not_found' });
    }
    // Not a group id the bridge hands out: 404 without asking the relay.
    const foreign = await callSend(bridgeA.url, { to: '38120000001@chatroom', text: 'hello?' });
    expect(foreign.status).toBe(404);
    expect((foreign.json.error as Record<string, unknown>).relay_code).toBeUndefined();
  });
});
