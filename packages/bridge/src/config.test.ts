import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_WEBHOOK_URL, ipMatcher, loadConfig } from './config.ts';

const REQUIRED = {
  RELAY_BASE_URL: 'http://127.0.0.1:8000/',
  RELAY_TOKEN: '0123456789abcdef0123456789abcdef',
  WECHAT_ABOT_WEBHOOK_SECRET: 'a-webhook-secret',
  WECHAT_ABOT_BOT_TOKEN: 'a-bot-token',
};

describe('bridge config', () => {
  it('defaults', () => {
    const c = loadConfig(REQUIRED);
    expect(c.relayBaseUrl).toBe('http://127.0.0.1:8000');
    expect(c.webhookUrl).toBe(DEFAULT_WEBHOOK_URL);
    expect([c.host, c.port, c.signing, c.webhookTimeoutMs]).toEqual(['127.0.0.1', 8088, 'plain', 5000]);
    expect(c.inboundToken).toBe('a-bot-token');
    expect(c.inboundAllowedIps).toEqual(['127.0.0.1', '::1']);
  });

  it('names the missing or bad setting', () => {
    const { RELAY_TOKEN: _omit, ...noToken } = REQUIRED;
    expect(() => loadConfig(noToken)).toThrow(/RELAY_TOKEN: required/);
    expect(() => loadConfig({ ...REQUIRED, BRIDGE_PORT: 'x' })).toThrow(/BRIDGE_PORT: must be an integer/);
    expect(() => loadConfig({ ...REQUIRED, WECHAT_ABOT_SIGNING: 'strong' })).toThrow(/plain, standard/);
    expect(() => loadConfig({ ...REQUIRED, OPENCLAW_WEBHOOK_URL: 'ftp://x' })).toThrow(/http\(s\) URL/);
    expect(() => loadConfig({ ...REQUIRED, WECHAT_ABOT_BOT_TOKEN: 'change_me' })).toThrow(/placeholder/);
    expect(() => loadConfig({ ...REQUIRED, BRIDGE_ALLOWED_IPS: '10.0.0.0/33' })).toThrow(ConfigError);
    expect(() =>
      loadConfig({ ...REQUIRED, BRIDGE_RETRY_BASE_MS: '5000', BRIDGE_RETRY_MAX_DELAY_MS: '100' }),
    ).toThrow(/BRIDGE_RETRY_MAX_DELAY_MS/);
  });

  it('IP allowlists match addresses, CIDRs and IPv4-mapped IPv6', () => {
    const m = ipMatcher(['127.0.0.1', '10.1.0.0/16', '::1']);
    expect(m('127.0.0.1')).toBe(true);
    expect(m('::ffff:127.0.0.1')).toBe(true);
    expect(m('10.1.200.3')).toBe(true);
    expect(m('::1')).toBe(true);
    expect(m('10.2.0.1')).toBe(false);
    expect(ipMatcher([])('203.0.113.9')).toBe(true);
  });
});
