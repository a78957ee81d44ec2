// The signature test vector of docs/bridge.md (Signature modes), reproduced byte for byte by the bridge's
// record builder and signer, and checked with independent implementations (@octokit/webhooks-methods,
// standardwebhooks) in both modes.

import { sign as signSha256, verify as verifySha256 } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildAddMsg, serializeAddMsg, signatureHeaders, type ChatEvent } from '@openwechat/bridge';

const SECRET = 'dummy-webhook-secret-for-tests';
const BODY =
  '{"MsgId":1700000001,"FromUserName":{"string":"wxid_alice001"},"ToUserName":{"string":"wxid_bot0001"},"MsgType":1,"Content":{"string":"hello bot"},"Status":3,"ImgStatus":1,"ImgBuf":{"iLen":0},"CreateTime":1767225600,"MsgSource":"<msgsource><signature>v1_test</signature></msgsource>","PushContent":"Alice : hello bot","NewMsgId":4503599627370497,"MsgSeq":900000001}';
const PLAIN = 'sha256=bf75fadde54a312889c6eca235769d97760a3520c1349f504ac4d21d8796c59f';
const STRONG = 'v1,daxMVx1BoMJ7pSzsqkR33Za0Rh+cPXn2K19E1QkpMXI=';

const event: ChatEvent = {
  kind: 'text',
  conversation: { type: 'direct' },
  sender: { id: 'wxid_alice001', name: 'Alice' },
  botId: 'wxid_bot0001',
  text: 'hello bot',
  createTime: 1767225600,
  ids: { msgId: 1700000001, newMsgId: 4503599627370497, msgSeq: 900000001 },
};

afterEach(() => {
  vi.useRealTimers();
});

describe('docs/bridge.md signature test vector', () => {
  const body = serializeAddMsg(buildAddMsg(event, { msgSourceSignature: 'v1_test' }));

  it('the builder produces the example body byte for byte (364 bytes)', () => {
    expect(body.toString('utf8')).toBe(BODY);
    expect(body.length).toBe(364);
  });

  it('plain mode: the header equals the vector and verifies with @octokit/webhooks-methods', async () => {
    const h = signatureHeaders('plain', SECRET, body, '4503599627370497', 1767225600_000);
    expect(h).toEqual({ 'x-wechat-abot-signature': PLAIN });
    expect(await signSha256(SECRET, BODY)).toBe(PLAIN);
    expect(await verifySha256(SECRET, BODY, PLAIN)).toBe(true);
    expect(await verifySha256('another-secret', BODY, PLAIN)).toBe(false);
  });

  it('standard mode: the headers equal the vector and verify with standardwebhooks', () => {
    const h = signatureHeaders('standard', SECRET, body, '4503599627370497', 1767225600_000);
    expect(h).toEqual({
      'x-wechat-abot-signature': PLAIN,
      'webhook-id': '4503599627370497',
      'webhook-timestamp': '1767225600',
      'webhook-signature': STRONG,
    });
    const wh = new Webhook(SECRET, { format: 'raw' });
    expect(wh.sign('4503599627370497', new Date(1767225600_000), BODY)).toBe(STRONG);
    // The receiver's clock at the vector's time (its 5-minute tolerance is then satisfied).
    vi.useFakeTimers({ now: 1767225600_000 + 30_000 });
    expect(wh.verify(BODY, h)).toEqual(JSON.parse(BODY));
    expect(() => wh.verify(`${BODY} `, h)).toThrow();
  });
});
