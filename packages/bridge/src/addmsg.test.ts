import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import {
  buildAddMsg,
  passesMentionFilter,
  serializeAddMsg,
  serializeRecord,
  type ChatEvent,
} from './addmsg.ts';
import { plainSignature } from './signature.ts';

// The three examples of the wechat_abot record (docs/bridge.md), byte for byte.
const PRIVATE =
  '{"MsgId":1700000001,"FromUserName":{"string":"wxid_alice001"},"ToUserName":{"string":"wxid_bot0001"},"MsgType":1,"Content":{"string":"hello bot"},"Status":3,"ImgStatus":1,"ImgBuf":{"iLen":0},"CreateTime":1767225600,"MsgSource":"<msgsource><signature>v1_test</signature></msgsource>","PushContent":"Alice : hello bot","NewMsgId":4503599627370497,"MsgSeq":900000001}';
const GROUP_MENTION =
  '{"MsgId":1700000002,"FromUserName":{"string":"38120000001@chatroom"},"ToUserName":{"string":"wxid_bot0001"},"MsgType":1,"Content":{"string":"wxid_bob002:\\n@Abot\\u2005what\'s the weather?"},"Status":3,"ImgStatus":1,"ImgBuf":{"iLen":0},"CreateTime":1767225660,"MsgSource":"<msgsource><atuserlist><![CDATA[,wxid_bot0001]]></atuserlist><silence>0</silence><membercount>12</membercount><signature>v1_test</signature></msgsource>","PushContent":"Bob在群聊中@了你","NewMsgId":4503599627370498,"MsgSeq":900000002}';
const GROUP_PLAIN =
  '{"MsgId":1700000003,"FromUserName":{"string":"38120000001@chatroom"},"ToUserName":{"string":"wxid_bot0001"},"MsgType":1,"Content":{"string":"wxid_carol03:\\nlunch anyone?"},"Status":3,"ImgStatus":1,"ImgBuf":{"iLen":0},"CreateTime":1767225720,"MsgSource":"<msgsource><silence>0</silence><membercount>12</membercount><signature>v1_test</signature></msgsource>","PushContent":"Carol : lunch anyone?","NewMsgId":4503599627370499,"MsgSeq":900000003}';

const opts = { msgSourceSignature: 'v1_test' };

const privateEvent: ChatEvent = {
  kind: 'text',
  conversation: { type: 'direct' },
  sender: { id: 'wxid_alice001', name: 'Alice' },
  botId: 'wxid_bot0001',
  text: 'hello bot',
  createTime: 1767225600,
  ids: { msgId: 1700000001, newMsgId: 4503599627370497, msgSeq: 900000001 },
};

const room = { type: 'group' as const, roomId: '38120000001@chatroom', memberCount: 12 };

const mentionEvent: ChatEvent = {
  kind: 'text',
  conversation: room,
  sender: { id: 'wxid_bob002', name: 'Bob' },
  botId: 'wxid_bot0001',
  text: "@Abot\u2005what's the weather?",
  mentions: ['wxid_bot0001'],
  createTime: 1767225660,
  ids: { msgId: 1700000002, newMsgId: 4503599627370498, msgSeq: 900000002 },
};

const plainGroupEvent: ChatEvent = {
  kind: 'text',
  conversation: room,
  sender: { id: 'wxid_carol03', name: 'Carol' },
  botId: 'wxid_bot0001',
  text: 'lunch anyone?',
  createTime: 1767225720,
  ids: { msgId: 1700000003, newMsgId: 4503599627370499, msgSeq: 900000003 },
};

const bytes = (e: ChatEvent): string => serializeAddMsg(buildAddMsg(e, opts)).toString('utf8');

describe('AddMsg builder', () => {
  it('reproduces the private-text example byte for byte', () => {
    expect(bytes(privateEvent)).toBe(PRIVATE);
  });

  it('reproduces the group @-mention example byte for byte (U+2005 written as \\u2005)', () => {
    expect(bytes(mentionEvent)).toBe(GROUP_MENTION);
  });

  it('reproduces the group example without a mention byte for byte', () => {
    expect(bytes(plainGroupEvent)).toBe(GROUP_PLAIN);
  });

  it('the @-mention filter drops unaddressed group text only when asked to', () => {
    expect(passesMentionFilter(plainGroupEvent, false)).toBe(true);
    expect(passesMentionFilter(plainGroupEvent, true)).toBe(false);
    expect(passesMentionFilter(mentionEvent, true)).toBe(true);
    expect(passesMentionFilter({ ...plainGroupEvent, mentionsAll: true }, true)).toBe(true);
    expect(passesMentionFilter(privateEvent, true)).toBe(true);
    const tip = { ...plainGroupEvent, kind: 'system' as const };
    expect(passesMentionFilter(tip, true)).toBe(true);
  });

  it('@all goes into atuserlist as notify@all', () => {
    const rec = buildAddMsg({ ...plainGroupEvent, mentionsAll: true }, opts);
    expect(rec.MsgSource).toContain('<atuserlist><![CDATA[,notify@all]]></atuserlist>');
    expect(rec.PushContent).toBe('Carol在群聊中@了你');
  });

  it('system notices are MsgType 10000 without a push text', () => {
    const rec = buildAddMsg(
      { ...privateEvent, kind: 'system', text: '您与 Alice（ID:3）已成功建立好友关系。' },
      opts,
    );
    expect(rec.MsgType).toBe(10000);
    expect(rec.PushContent).toBe('');
    expect(rec.Content.string).toBe('您与 Alice（ID:3）已成功建立好友关系。');
  });

  it('MsgSource stays well-formed whatever the signature text', () => {
    const rec = buildAddMsg(privateEvent, { msgSourceSignature: '<a&"b">' });
    expect(rec.MsgSource).toBe('<msgsource><signature>&#60;a&#38;&#34;b&#34;&#62;</signature></msgsource>');
  });

  it('refuses a NewMsgId JSON cannot carry exactly', () => {
    const rec = buildAddMsg({ ...privateEvent, ids: { ...privateEvent.ids, newMsgId: 2 ** 53 } }, opts);
    expect(() => serializeAddMsg(rec)).toThrow(RangeError);
  });
});

describe('record formats (BRIDGE_RECORD_FORMAT)', () => {
  const record = buildAddMsg(privateEvent, opts);

  it('bare: the record itself', () => {
    expect(serializeRecord(record, { format: 'bare' }).toString('utf8')).toBe(PRIVATE);
  });

  it("gewechat: the callback envelope around the record's unchanged bytes, signed as sent", () => {
    const body = serializeRecord(record, { format: 'gewechat' });
    const text = body.toString('utf8');
    // The gewechat envelope (docs/bridge.md, Record format), with the example record byte for byte as Data.
    expect(text).toBe(`{"TypeName":"AddMsg","Appid":"wxid_bot0001","Wxid":"wxid_bot0001","Data":${PRIVATE}}`);
    const parsed = JSON.parse(text) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(['TypeName', 'Appid', 'Wxid', 'Data']);
    expect(JSON.stringify(parsed.Data)).toBe(PRIVATE);
    // The signature is over the envelope bytes (an independent HMAC), not over the inner record.
    const expected = `sha256=${createHmac('sha256', 'dummy-webhook-secret-for-tests').update(text).digest('hex')}`;
    expect(plainSignature('dummy-webhook-secret-for-tests', body)).toBe(expected);
    expect(expected).not.toBe(
      'sha256=bf75fadde54a312889c6eca235769d97760a3520c1349f504ac4d21d8796c59f', // the bare record's
    );
  });

  it('gewechat: a configured Appid, JSON-escaped', () => {
    const text = serializeRecord(record, { format: 'gewechat', appid: 'wx_app"1' }).toString('utf8');
    expect(JSON.parse(text)).toMatchObject({ TypeName: 'AddMsg', Appid: 'wx_app"1', Wxid: 'wxid_bot0001' });
  });
});
