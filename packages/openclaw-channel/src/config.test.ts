import { describe, expect, it } from 'vitest';
import { listAccountIds, pluginSettings, resolveAccount } from './config.ts';

describe('account resolution', () => {
  it('the section is the default account, with policy defaults applied', () => {
    const cfg = { channels: { openwechat: { baseUrl: 'https://relay.example.org', token: 'tok' } } };
    expect(listAccountIds(cfg)).toEqual(['default']);
    const a = resolveAccount(cfg);
    expect(a).toMatchObject({
      accountId: 'default',
      configured: true,
      enabled: true,
      dmPolicy: 'open',
      friendRequests: 'reply',
      groupPolicy: 'open',
      requireMention: true,
      status: null,
      tokenEnv: 'OPENWECHAT_TOKEN',
    });
  });

  it('named accounts inherit policy but never the address or the token', () => {
    const cfg = {
      channels: {
        openwechat: {
          baseUrl: 'https://a.example.org',
          token: 'tok-a',
          dmPolicy: 'allowlist',
          allowFrom: [12, 'openwechat:13'],
          status: 'dnd',
          accounts: { second: { requireMention: false } },
        },
      },
    };
    expect(listAccountIds(cfg)).toEqual(['default', 'second']);
    const second = resolveAccount(cfg, 'second');
    expect(second).toMatchObject({
      baseUrl: null,
      tokenInput: null,
      tokenEnv: null,
      configured: false,
      dmPolicy: 'allowlist',
      allowFrom: ['12', '13'],
      status: 'do_not_disturb',
      requireMention: false,
    });
  });

  it('allowFrom follows OpenClaw: "*" for open when left out, kept as written otherwise', () => {
    const base = { baseUrl: 'https://r.example.org', token: 't' };
    expect(resolveAccount({ channels: { openwechat: base } }).allowFrom).toEqual(['*']);
    expect(resolveAccount({ channels: { openwechat: base } }).groupAllowFrom).toEqual(['*']);
    // open with concrete entries admits only those (no "*" added behind the operator's back)
    const narrowed = resolveAccount({
      channels: { openwechat: { ...base, dmPolicy: 'open', allowFrom: [7] } },
    });
    expect(narrowed.allowFrom).toEqual(['7']);
    const listed = resolveAccount({ channels: { openwechat: { ...base, dmPolicy: 'allowlist' } } });
    expect(listed.allowFrom).toEqual([]);
  });

  it('botLoopProtection: the account overrides the channel key by key; absent when neither sets it', () => {
    const cfg = {
      channels: {
        openwechat: {
          baseUrl: 'https://a.example.org',
          token: 't',
          botLoopProtection: { maxEventsPerWindow: 8, cooldownSeconds: 30 },
          accounts: {
            b: { baseUrl: 'https://a.example.org', token: 'u', botLoopProtection: { cooldownSeconds: 5 } },
          },
        },
      },
    };
    expect(resolveAccount(cfg).botLoopProtection).toEqual({ maxEventsPerWindow: 8, cooldownSeconds: 30 });
    expect(resolveAccount(cfg, 'b').botLoopProtection).toEqual({ maxEventsPerWindow: 8, cooldownSeconds: 5 });
    expect(resolveAccount({ channels: { openwechat: { baseUrl: 'https://x.org' } } }).botLoopProtection).toBe(
      undefined,
    );
  });

  it('an account without a base URL is not configured', () => {
    expect(resolveAccount({ channels: { openwechat: { token: 'x' } } }).configured).toBe(false);
    expect(listAccountIds({ channels: {} })).toEqual([]);
  });

  it('plugin settings: the summary is on unless turned off; the size is bounded', () => {
    expect(pluginSettings(undefined)).toEqual({ contextSummary: true, summaryMaxChars: 800 });
    expect(pluginSettings({ contextSummary: false, summaryMaxChars: 99999 })).toEqual({
      contextSummary: false,
      summaryMaxChars: 800,
    });
  });

  it('e2e is off by default, inherited by accounts, overridable per account, and checked', () => {
    const base = { baseUrl: 'https://a.example.org', token: 't' };
    expect(resolveAccount({ channels: { openwechat: base } }).e2e).toBe('off');
    const cfg = {
      channels: {
        openwechat: { ...base, e2e: 'required', accounts: { second: {}, third: { e2e: 'preferred' } } },
      },
    };
    expect(resolveAccount(cfg, 'default').e2e).toBe('required');
    expect(resolveAccount(cfg, 'second').e2e).toBe('required');
    expect(resolveAccount(cfg, 'third').e2e).toBe('preferred');
    expect(() => resolveAccount({ channels: { openwechat: { ...base, e2e: 'always' } } })).toThrow(
      'openwechat account "default": e2e must be one of off, preferred, required (got "always")',
    );
  });
});
