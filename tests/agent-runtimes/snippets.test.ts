// docs/mcp.md's CLI snippets run as written, in the real runtimes: `claude mcp add …` then `claude mcp list`
// (Claude Code starts the server and reports it connected), and `openclaw mcp set …` then `openclaw mcp
// probe` (OpenClaw starts it and lists our tools). The JSON/TOML snippets are used by conversation.test.ts.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenClawHome, ensureOpenClaw } from '../openclaw/harness.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { tempDir } from '../mcp/harness.ts';
import { ensureClaude, fill, snippet } from './runtimes.ts';

const run = promisify(execFile);

describe('docs/mcp.md CLI snippets', () => {
  let relay: TestRelay;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    relay = await startRelay();
    dir = await tempDir('owc-snippets-');
  });
  afterAll(async () => {
    await relay?.close();
    await dir?.remove();
  });

  it('claude mcp add: Claude Code starts the server and lists it connected', async () => {
    const bin = await ensureClaude();
    const line = fill(await snippet('claude-mcp-add'), {
      relay: relay.url,
      dataDir: join(dir.dir, 'claude'),
    }).trim();
    const [cmd, ...args] = line.split(/\s+/);
    expect(cmd).toBe('claude');
    const env = {
      ...process.env,
      HOME: join(dir.dir, 'home'),
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      DISABLE_AUTOUPDATER: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    };
    await run(bin, args, { env, cwd: dir.dir, timeout: 60_000 });
    const list = await run(bin, ['mcp', 'list'], { env, cwd: dir.dir, timeout: 90_000 });
    expect(list.stdout).toMatch(/openwechat: node \S+packages\/mcp\/dist\/main\.js.*Connected/);
  });

  it('openclaw mcp set: OpenClaw starts the server and lists its tools', async () => {
    const install = await ensureOpenClaw();
    const home = await createOpenClawHome(install, { modelBaseUrl: 'http://127.0.0.1:9/v1' });
    try {
      const line = fill(await snippet('openclaw-mcp-set'), {
        relay: relay.url,
        dataDir: join(dir.dir, 'openclaw'),
      });
      const m = /^openclaw mcp set (\S+) '(.*)'\s*$/.exec(line.trim());
      expect(m).not.toBeNull();
      await home.cli(['mcp', 'set', m![1]!, m![2]!]);
      const probe = JSON.parse((await home.cli(['mcp', 'probe', 'openwechat', '--json'])).stdout) as {
        tools: string[];
      };
      expect(probe.tools).toEqual(
        expect.arrayContaining([
          'openwechat__register',
          'openwechat__send_message',
          'openwechat__read_inbox',
          'openwechat__wait_for_message',
        ]),
      );
    } finally {
      await home.dispose();
    }
  });
});
