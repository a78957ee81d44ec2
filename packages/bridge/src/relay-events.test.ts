import { ClientError, type ClientErrorCode } from '@openwechat/client';
import { describe, expect, it } from 'vitest';
import { buildAddMsg, serializeAddMsg } from './addmsg.ts';
import { BridgeError } from './errors.ts';
import { groupWxid, parseGroupWxid, parseUserWxid, relayMsgId, relayNewMsgId } from './ids.ts';
import {
  hasMentionText,
  isMessageJson,
  relayDisposition,
  relayMessageToEvent,
  withMentionText,
  type RelayMessageJson,
} from './relay-events.ts';
import { mapRelayError, messageIdFor, parseSendTarget } from './send-api.ts';

const CREATED = '2026-01-01T00:01:00.000Z';
const CREATED_MS = Date.parse(CREATED);

/** A group message as the bot's resume stream carries it (docs/groups-api.md, JSON). */
function groupMessage(over: Partial<RelayMessageJson> = {}): RelayMessageJson {
  return {
    id: 41,
    type: 'group' as RelayMessageJson['type'],
    created_at: CREATED,
    from_id: 3,
    from: { id: 3, name: 'alice', description: null },
    content: "what's the weather?",
    attachment: null,
    group: { id: 7, name: 'Team' },
    mentioned: true,
    ...over,
  };
}

/** The example of docs/bridge.md ("Groups"), byte for byte. */
const DOC_EXAMPLE =
  '{"MsgId":41,"FromUserName":{"string":"owc_g7@chatroom"},"ToUserName":{"string":"owc_1"},"MsgType":1,"Content":{"string":"owc_3:\\n@abot\\u2005what\'s the weather?"},"Status":3,"ImgStatus":1,"ImgBuf":{"iLen":0},"CreateTime":1767225660,"MsgSource":"<msgsource><atuserlist><![CDATA[,owc_1]]></atuserlist><silence>0</silence><signature>v1_openwechat</signature></msgsource>","PushContent":"alice在群聊中@了你","NewMsgId":2285122735197300,"MsgSeq":41}';

const opts = { botRelayId: 1, botName: 'abot', systemNotices: 'forward' as const };
const bytes = (m: RelayMessageJson, o: Partial<typeof opts> = {}): string =>
  serializeAddMsg(buildAddMsg(relayMessageToEvent(m, { ...opts, ...o })!)).toString('utf8');

describe('group messages from the relay → AddMsg (the group form of docs/bridge.md)', () => {
  it('a message that mentions the bot: room id, "<sender>:\\n" prefix, @name\\u2005, atuserlist, push text', () => {
    expect(bytes(groupMessage())).toBe(DOC_EXAMPLE);
    expect(JSON.parse(DOC_EXAMPLE)).toMatchObject({
      NewMsgId: relayNewMsgId(1, 41, CREATED_MS),
      MsgId: relayMsgId(41),
    });
    // Stable: the same relay message always gives the same bytes (same NewMsgId).
    expect(bytes(groupMessage())).toBe(bytes(groupMessage()));
  });

  it('a message without a mention: no atuserlist, no @ text, the ordinary push text', () => {
    const rec = buildAddMsg(
      relayMessageToEvent(groupMessage({ mentioned: false, content: 'lunch?' }), opts)!,
    );
    expect(rec).toMatchObject({
      FromUserName: { string: 'owc_g7@chatroom' },
      Content: { string: 'owc_3:\nlunch?' },
      MsgSource: '<msgsource><silence>0</silence><signature>v1_openwechat</signature></msgsource>',
      PushContent: 'alice : lunch?',
    });
  });

  it('a body that already mentions the bot is kept as written (mobile U+2005 or PC space, anywhere)', () => {
    for (const content of ['@abot\u2005hi', '@abot hi', 'hi @abot, are you there?', '@abot']) {
      const e = relayMessageToEvent(groupMessage({ content }), opts)!;
      expect(e.text).toBe(content);
    }
    // A longer name that starts with the bot's is not a mention of the bot.
    expect(relayMessageToEvent(groupMessage({ content: '@abotx hi' }), opts)!.text).toBe(
      '@abot\u2005@abotx hi',
    );
    expect(hasMentionText('@Abot。你好', 'Abot')).toBe(true);
    expect(hasMentionText('mail@Abotnet', 'Abot')).toBe(false);
    expect(withMentionText('hi', null)).toBe('hi');
  });

  it('an attachment adds its line after the body: name, size, type, and the media link when there is one', () => {
    const m = groupMessage({
      mentioned: false,
      content: 'the report',
      attachment: {
        name: 'r.pdf',
        original_name: 'r.pdf',
        file_id: 'f1',
        url: '/files/f1',
        size: 3,
        content_type: 'application/pdf',
        expires_at: null,
      },
    });
    expect(buildAddMsg(relayMessageToEvent(m, opts)!).Content.string).toBe(
      'owc_3:\nthe report\n[附件] r.pdf (3 B, application/pdf)',
    );
    const seen: Array<[string | null, number]> = [];
    const mediaUrl = (a: { file_id: string | null }, createdAtMs: number): string => {
      seen.push([a.file_id, createdAtMs]);
      return 'http://127.0.0.1:8088/media/tok';
    };
    const withLink = buildAddMsg(relayMessageToEvent(m, { ...opts, mediaUrl })!).Content.string;
    expect(withLink).toBe(
      'owc_3:\nthe report\n[附件] r.pdf (3 B, application/pdf) http://127.0.0.1:8088/media/tok',
    );
    expect(seen).toEqual([['f1', CREATED_MS]]);
    // The line the bridge sent before media links is a prefix of today's.
    expect(withLink.startsWith('owc_3:\nthe report\n[附件] r.pdf')).toBe(true);
    // A file sent without text: the line alone (in a direct chat too).
    const direct = { ...m, type: 'chat' as RelayMessageJson['type'], group: null, content: '(附件)' };
    expect(buildAddMsg(relayMessageToEvent(direct, { ...opts, mediaUrl })!).Content.string).toBe(
      '[附件] r.pdf (3 B, application/pdf) http://127.0.0.1:8088/media/tok',
    );
  });

  it('BRIDGE_GROUP_REQUIRE_MENTION: unaddressed group text is filtered, mentioned text and chats pass', () => {
    const on = { ...opts, groupRequireMention: true };
    const off = { ...opts, groupRequireMention: false };
    expect(relayDisposition(groupMessage({ mentioned: false }), on).status).toBe('filtered');
    expect(relayDisposition(groupMessage({ mentioned: false }), off).status).toBe('forward');
    expect(relayDisposition(groupMessage(), on).status).toBe('forward');
    const chat = groupMessage({ type: 'chat', group: null, mentioned: false });
    expect(relayDisposition(chat, on).status).toBe('forward');
  });

  it("the bot's own group message is never pushed", () => {
    expect(relayDisposition(groupMessage({ from_id: 1 }), { ...opts, groupRequireMention: false })).toEqual({
      status: 'suppressed',
    });
  });

  it('membership notices become MsgType 10000 tips in that group, or are suppressed by setting', () => {
    const notice = (content: string): RelayMessageJson =>
      groupMessage({ type: 'system', from_id: null, from: null, group: null, mentioned: false, content });
    const added = notice('你已被 owner（ID:3）加入群组 Team（群ID:7）');
    const rec = buildAddMsg(relayMessageToEvent(added, opts)!);
    expect(rec).toMatchObject({
      FromUserName: { string: 'owc_g7@chatroom' },
      MsgType: 10000,
      Content: { string: '你已被 owner（ID:3）加入群组 Team（群ID:7）' },
      PushContent: '',
    });
    // A group name imitating the marker does not move the tip: the last marker is the real one.
    const dissolved = notice('群组 x（群ID:99）（群ID:8）已被群主解散');
    expect(buildAddMsg(relayMessageToEvent(dissolved, opts)!).FromUserName.string).toBe('owc_g8@chatroom');
    expect(relayMessageToEvent(added, { ...opts, systemNotices: 'suppress' })).toBeNull();
    // Other notices stay where they were.
    const friends = notice('您与 Alice（ID:3）已成功建立好友关系。');
    expect(buildAddMsg(relayMessageToEvent(friends, opts)!).FromUserName.string).toBe('owc_3');
  });

  it('accepts the two new fields in the stream shape check, and relays without them', () => {
    expect(isMessageJson(groupMessage())).toBe(true);
    const { group: _g, mentioned: _m, ...old } = groupMessage({ type: 'chat' });
    expect(isMessageJson(old)).toBe(true);
    expect(isMessageJson(groupMessage({ group: { id: 0, name: 'x' } }))).toBe(false);
    expect(isMessageJson({ ...groupMessage(), mentioned: 'yes' })).toBe(false);
  });
});

describe('group targets of the send API', () => {
  it('owc_g<gid>@chatroom names a group, owc_<id> a user; the two never mix', () => {
    expect(groupWxid(7)).toBe('owc_g7@chatroom');
    expect(parseGroupWxid('owc_g7@chatroom')).toBe(7);
    expect(parseSendTarget('owc_g7@chatroom')).toEqual({ kind: 'group', id: 7 });
    expect(parseSendTarget('owc_7')).toEqual({ kind: 'user', id: 7 });
    expect(parseSendTarget('7')).toEqual({ kind: 'user', id: 7 });
    expect(parseUserWxid('owc_g7@chatroom')).toBeNull();
    for (const bad of [
      'owc_g0@chatroom',
      'owc_g7',
      'g7@chatroom',
      '38120000001@chatroom',
      'owc_g7@chatroom:x',
    ])
      expect(parseSendTarget(bad)).toBeNull();
  });

  it('a group messageId is stable for one relay key and names the group', () => {
    const group = { kind: 'group' as const, id: 7 };
    const a = messageIdFor(group, undefined, 'oc:k1');
    expect(a).toMatch(/^out_g7_\d+$/);
    expect(messageIdFor(group, undefined, 'oc:k1')).toBe(a);
    expect(messageIdFor(group, undefined, 'oc:k2')).not.toBe(a);
    expect(messageIdFor(group, 55, 'oc:k1')).toBe('out_g7_55');
    expect(messageIdFor({ kind: 'user', id: 3 }, 12, 'oc:k1')).toBe('out_3_12');
  });

  it('maps the relay group error codes to the table', () => {
    const e = (code: string, status: number): BridgeError =>
      mapRelayError(new ClientError('relay', code as ClientErrorCode, 'm', { status }));
    const table: Array<[string, number, number, string]> = [
      ['group_not_found', 404, 404, 'conversation_not_found'],
      ['not_group_member', 404, 404, 'conversation_not_found'],
      ['not_group_owner', 403, 403, 'forbidden'],
      ['not_friends_of_owner', 409, 403, 'forbidden'],
      ['already_member', 409, 409, 'group_conflict'],
      ['group_full', 409, 409, 'group_conflict'],
      ['too_many_groups', 409, 409, 'group_conflict'],
      ['owner_cannot_leave', 409, 409, 'group_conflict'],
      ['invalid_group_name', 400, 422, 'unprocessable'],
      ['recipient_dnd', 403, 403, 'forbidden'],
      ['content_too_long', 400, 413, 'text_too_long'],
    ];
    for (const [code, relayStatus, status, bridgeCode] of table) {
      const err = e(code, relayStatus);
      expect([code, err.status, err.code, err.extra.relay_code]).toEqual([code, status, bridgeCode, code]);
    }
  });
});
