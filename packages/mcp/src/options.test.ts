import { describe, expect, it } from 'vitest';
import { OptionsError, parseOptions } from './options.ts';

describe('parseOptions', () => {
  it('defaults: stdio, all tools, no file roots, caps', () => {
    const o = parseOptions([], { OPENWECHAT_BASE_URL: 'https://relay.example.org/' }, '/work');
    expect(o).toMatchObject({
      baseUrl: 'https://relay.example.org',
      token: null,
      tools: null,
      fileRoots: [],
      maxMessages: 20,
      maxChars: 20_000,
      channelSenders: null,
      http: null,
      e2e: 'off',
    });
  });

  it('OPENWECHAT_E2E: a policy, or a clear error for anything else', () => {
    expect(parseOptions([], { OPENWECHAT_E2E: 'required' }, '/work').e2e).toBe('required');
    expect(parseOptions([], { OPENWECHAT_E2E: ' preferred ' }, '/work').e2e).toBe('preferred');
    expect(() => parseOptions([], { OPENWECHAT_E2E: 'on' }, '/work')).toThrow(
      /OPENWECHAT_E2E must be one of off, preferred, required \(got "on"\)/,
    );
  });

  it('reads the presets, lists and HTTP settings', () => {
    const o = parseOptions(
      ['--http', '--port', '8123', '--data-dir', 'agent'],
      {
        OPENWECHAT_MCP_TOOLS: 'readonly',
        OPENWECHAT_MCP_FILE_ROOTS: '/srv/a:/srv/b',
        OPENWECHAT_MCP_CHANNEL_SENDERS: '3, 7',
        OPENWECHAT_MCP_HTTP_TOKEN: 'secret',
      },
      '/work',
    );
    expect(o.tools).toBe('readonly');
    expect(o.fileRoots).toEqual(['/srv/a', '/srv/b']);
    expect(o.channelSenders).toEqual([3, 7]);
    expect(o.dataDir).toBe('/work/agent');
    expect(o.downloadDir).toBe('/work/agent/downloads');
    expect(o.http).toMatchObject({ host: '127.0.0.1', port: 8123, token: 'secret' });
    expect(parseOptions([], { OPENWECHAT_MCP_TOOLS: 'whoami, read_inbox' }).tools).toEqual([
      'whoami',
      'read_inbox',
    ]);
    expect(parseOptions([], { OPENWECHAT_MCP_CHANNEL_SENDERS: '*' }).channelSenders).toBe('*');
  });

  it('refuses bad values, naming the setting', () => {
    const bad: Array<[string[], Record<string, string>, RegExp]> = [
      [[], { OPENWECHAT_BASE_URL: 'ftp://x' }, /OPENWECHAT_BASE_URL/],
      [[], { OPENWECHAT_TOKEN: 't' }, /OPENWECHAT_BASE_URL is not/],
      [[], { OPENWECHAT_MCP_FILE_ROOTS: 'relative/dir' }, /not an absolute path/],
      [[], { OPENWECHAT_MCP_MAX_MESSAGES: '0' }, /OPENWECHAT_MCP_MAX_MESSAGES must be an integer/],
      [[], { OPENWECHAT_MCP_CHANNEL_SENDERS: 'bob' }, /not a user id/],
      [['--http', '--host', '0.0.0.0'], {}, /not loopback/],
      [['--http', '--port', 'x'], {}, /--port/],
    ];
    for (const [argv, env, re] of bad) {
      expect(() => parseOptions(argv, env)).toThrow(OptionsError);
      expect(() => parseOptions(argv, env)).toThrow(re);
    }
    expect(() => parseOptions(['--nope'], {})).toThrow(/nope/);
  });
});
