import { describe, expect, it } from 'vitest';
import { plainSignature, signatureHeaders, standardKey, standardSignature } from './signature.ts';

// The private-text example of docs/bridge.md (Signature modes), byte for byte (364 bytes, no trailing newline).
const BODY =
  '{"MsgId":1700000001,"FromUserName":{"string":"wxid_alice001"},"ToUserName":{"string":"wxid_bot0001"},"MsgType":1,"Content":{"string":"hello bot"},"Status":3,"ImgStatus":1,"ImgBuf":{"iLen":0},"CreateTime":1767225600,"MsgSource":"<msgsource><signature>v1_test</signature></msgsource>","PushContent":"Alice : hello bot","NewMsgId":4503599627370497,"MsgSeq":900000001}';
const SECRET = 'dummy-webhook-secret-for-tests';

describe('signature test vector (docs/bridge.md)', () => {
  it('the body is the documented 364 bytes', () => {
    expect(Buffer.byteLength(BODY)).toBe(364);
  });

  it('plain mode: X-Wechat-Abot-Signature', () => {
    expect(plainSignature(SECRET, Buffer.from(BODY))).toBe(
      'sha256=bf75fadde54a312889c6eca235769d97760a3520c1349f504ac4d21d8796c59f',
    );
  });

  it('standard mode: webhook-signature over "{id}.{ts}.{body}"', () => {
    expect(standardSignature(SECRET, '4503599627370497', 1767225600, Buffer.from(BODY))).toBe(
      'v1,daxMVx1BoMJ7pSzsqkR33Za0Rh+cPXn2K19E1QkpMXI=',
    );
  });

  it('headers per mode; the timestamp is the attempt time in seconds', () => {
    const plain = signatureHeaders('plain', SECRET, Buffer.from(BODY), '4503599627370497', 1767225600_999);
    expect(plain).toEqual({
      'x-wechat-abot-signature': 'sha256=bf75fadde54a312889c6eca235769d97760a3520c1349f504ac4d21d8796c59f',
    });
    const strong = signatureHeaders(
      'standard',
      SECRET,
      Buffer.from(BODY),
      '4503599627370497',
      1767225600_999,
    );
    expect(strong).toEqual({
      'x-wechat-abot-signature': 'sha256=bf75fadde54a312889c6eca235769d97760a3520c1349f504ac4d21d8796c59f',
      'webhook-id': '4503599627370497',
      'webhook-timestamp': '1767225600',
      'webhook-signature': 'v1,daxMVx1BoMJ7pSzsqkR33Za0Rh+cPXn2K19E1QkpMXI=',
    });
  });

  it('a whsec_ secret is base64-decoded for Standard Webhooks, used as UTF-8 otherwise', () => {
    const raw = Buffer.from('0123456789abcdef0123456789abcdef');
    expect(standardKey(`whsec_${raw.toString('base64')}`)).toEqual(raw);
    expect(standardKey(SECRET)).toEqual(Buffer.from(SECRET, 'utf8'));
  });
});
