import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_WEBHOOK_URL,
  ipMatcher,
  loadBridgeSettings,
  loadConfig,
  loadDataDir,
  readableByOthers,
} from './config.ts';

const REQUIRED = {
  RELAY_BASE_URL: 'http://127.0.0.1:8000/',
  RELAY_TOKEN: '0123456789abcdef0123456789abcdef',
  WECHAT_ABOT_WEBHOOK_SECRET: 'a-webhook-secret',
  WECHAT_ABOT_BOT_TOKEN: 'a-bot-token',
};

/** The seed checklist's names for the OpenClaw side (seeds/003: OPENCLAW_WEBHOOK_SECRET, IM_BOT_TOKEN). */
const CHECKLIST = {
  RELAY_BASE_URL: 'http://127.0.0.1:8000',
  RELAY_TOKEN: '0123456789abcdef0123456789abcdef',
  OPENCLAW_WEBHOOK_URL: 'http://127.0.0.1:18789/wechat_abot/webhook',
  OPENCLAW_WEBHOOK_SECRET: 'checklist-secret',
  IM_BOT_TOKEN: 'checklist-bot-token',
};

describe('bridge config', () => {
  it('defaults', () => {
    const c = loadConfig(REQUIRED);
    expect(c.relayBaseUrl).toBe('http://127.0.0.1:8000');
    expect(c.webhookUrl).toBe(DEFAULT_WEBHOOK_URL);
    expect([c.host, c.port, c.signing, c.webhookTimeoutMs]).toEqual(['127.0.0.1', 8088, 'plain', 5000]);
    expect(c.inboundToken).toBe('a-bot-token');
    expect(c.inboundAllowedIps).toEqual(['127.0.0.1', '::1']);
    expect([c.recordFormat, c.gewechatAppid]).toEqual(['bare', '']);
  });

  it('names the missing or bad setting', () => {
    const { RELAY_TOKEN: _omit, ...noToken } = REQUIRED;
    expect(() => loadConfig(noToken)).toThrow(new ConfigError('RELAY_TOKEN: required'));
    expect(() => loadConfig({ ...REQUIRED, BRIDGE_PORT: 'x' })).toThrow(
      new ConfigError('BRIDGE_PORT (environment): must be an integer'),
    );
    expect(() => loadConfig({ ...REQUIRED, WECHAT_ABOT_SIGNING: 'strong' })).toThrow(/plain, standard/);
    expect(() => loadConfig({ ...REQUIRED, OPENCLAW_WEBHOOK_URL: 'ftp://x' })).toThrow(/http\(s\) URL/);
    expect(() => loadConfig({ ...REQUIRED, WECHAT_ABOT_BOT_TOKEN: 'change_me' })).toThrow(/placeholder/);
    expect(() => loadConfig({ ...REQUIRED, BRIDGE_ALLOWED_IPS: '10.0.0.0/33' })).toThrow(
      new ConfigError('BRIDGE_ALLOWED_IPS (environment): "10.0.0.0/33" is not an IP address or CIDR'),
    );
    expect(() => loadConfig({ ...REQUIRED, BRIDGE_RECORD_FORMAT: 'padpro' })).toThrow(
      new ConfigError('BRIDGE_RECORD_FORMAT (environment): must be one of bare, gewechat'),
    );
    expect(() =>
      loadConfig({ ...REQUIRED, BRIDGE_RETRY_BASE_MS: '5000', BRIDGE_RETRY_MAX_DELAY_MS: '100' }),
    ).toThrow(/BRIDGE_RETRY_MAX_DELAY_MS/);
  });

  it("the checklist's names are aliases: enough on their own, ours win when both are set", () => {
    const c = loadConfig(CHECKLIST);
    expect([c.webhookSecret, c.botToken, c.inboundToken]).toEqual([
      'checklist-secret',
      'checklist-bot-token',
      'checklist-bot-token',
    ]);
    const both = loadBridgeSettings({
      env: { ...CHECKLIST, WECHAT_ABOT_WEBHOOK_SECRET: 'ours-secret', WECHAT_ABOT_BOT_TOKEN: 'ours-token' },
    });
    expect([both.config.webhookSecret, both.config.botToken]).toEqual(['ours-secret', 'ours-token']);
    // The shadowed alias is named, its value never shown.
    expect(both.warnings).toEqual([
      'OPENCLAW_WEBHOOK_SECRET (environment) is ignored: WECHAT_ABOT_WEBHOOK_SECRET is set too and wins',
      'IM_BOT_TOKEN (environment) is ignored: WECHAT_ABOT_BOT_TOKEN is set too and wins',
    ]);
    expect(both.warnings.join()).not.toMatch(/checklist-secret|checklist-bot-token/);
    // An error names the name that was set; a missing one names both.
    expect(() => loadConfig({ ...CHECKLIST, IM_BOT_TOKEN: 'change_me' })).toThrow(
      new ConfigError('IM_BOT_TOKEN (environment): is still the placeholder "change_me"; set a real value'),
    );
    const { IM_BOT_TOKEN: _omit, ...noToken } = CHECKLIST;
    expect(() => loadConfig(noToken)).toThrow(
      new ConfigError('WECHAT_ABOT_BOT_TOKEN (or IM_BOT_TOKEN): required'),
    );
  });

  it('warns about unknown variables with its own prefixes (typos), not about the rest of the environment', () => {
    const { warnings } = loadBridgeSettings({
      env: { ...REQUIRED, BRIDGE_PROT: '9000', WECHAT_ABOT_SIGNNG: 'standard', PATH: '/bin', HOME: '/root' },
    });
    expect(warnings).toEqual([
      'environment: unknown setting BRIDGE_PROT (did you mean BRIDGE_PORT?); ignored',
      'environment: unknown setting WECHAT_ABOT_SIGNNG (did you mean WECHAT_ABOT_SIGNING?); ignored',
    ]);
  });

  it('flag > environment > env file > default; an unknown key in the env file stops the start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'owc-bridge-config-'));
    try {
      const file = join(dir, 'bridge.env');
      writeFileSync(
        file,
        `${Object.entries(REQUIRED)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n')}\nBRIDGE_PORT=9001\nBRIDGE_DATA_DIR=${dir}/data\n`,
      );
      expect(loadBridgeSettings({ envFile: file, env: {} }).config.port).toBe(9001);
      expect(loadBridgeSettings({ envFile: file, env: { BRIDGE_PORT: '9002' } }).config.port).toBe(9002);
      expect(
        loadBridgeSettings({ envFile: file, env: { BRIDGE_PORT: '9002' }, flags: { BRIDGE_PORT: '9003' } })
          .config.port,
      ).toBe(9003);
      expect(loadDataDir({ envFile: file, env: {} })).toBe(`${dir}/data`);
      expect(() =>
        loadBridgeSettings({ envFile: file, env: { BRIDGE_PORT: '' }, flags: { BRIDGE_PORT: 'x' } }),
      ).toThrow(new ConfigError('BRIDGE_PORT (flag): must be an integer'));
      writeFileSync(file, 'BRIDGE_PORT=80x\n');
      expect(() => loadBridgeSettings({ envFile: file, env: REQUIRED })).toThrow(
        new ConfigError(`BRIDGE_PORT (env file ${file}): must be an integer`),
      );
      writeFileSync(file, 'BRIDGE_PROT=8089\n');
      expect(() => loadBridgeSettings({ envFile: file, env: REQUIRED })).toThrow(
        new ConfigError(`env file ${file}: unknown setting BRIDGE_PROT (did you mean BRIDGE_PORT?)`),
      );
      expect(() => loadBridgeSettings({ envFile: join(dir, 'missing.env'), env: REQUIRED })).toThrow(
        /env file .*missing\.env/,
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('notices an env file readable by group or others', () => {
    const dir = mkdtempSync(join(tmpdir(), 'owc-bridge-config-'));
    try {
      const file = join(dir, 'bridge.env');
      writeFileSync(file, '');
      chmodSync(file, 0o644);
      expect(readableByOthers(file)).toBe(true);
      chmodSync(file, 0o640);
      expect(readableByOthers(file)).toBe(true);
      chmodSync(file, 0o600);
      expect(readableByOthers(file)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true });
    }
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
