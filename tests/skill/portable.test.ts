// The built skill folder is self-contained: copied (alone) to a temp folder far from any node_modules, it
// registers, starts its daemon, sends and receives with nothing but `node`, keeping its data in the sibling
// folder of wherever it was copied to.

import { cp, readdir, readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, readJson, readText, waitIncoming, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

const { ws, relay } = skillSuite('owc-build-', { sseMaxPerIp: 10 });
let far: string;

beforeAll(async () => {
  far = await mkdtemp(join(tmpdir(), 'owc-portable-'));
});
// Registered after the suite's hooks, so it runs before them: the daemons stop before the relay goes.
afterAll(async () => {
  for (const who of ['a', 'b'])
    await cli(join(far, who, 'openwechat-im-client'), ['daemon', 'stop']).catch(() => {});
  await rm(far, { recursive: true, force: true });
});

/** Every import/require specifier in a bundle. */
function specifiers(code: string): string[] {
  const found = new Set<string>();
  for (const re of [
    /^\s*(?:import|export)\s[^;'"]*?from\s*["']([^"']+)["'];?\s*$/gm,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\(\s*["']([^"']+)["']\s*\)/g,
    /^import\s+["']([^"']+)["'];?\s*$/gm,
  ]) {
    for (const m of code.matchAll(re)) found.add(m[1]!);
  }
  return [...found].sort();
}

it('the bundles need only node', async () => {
  const scripts = (await readdir(join(ws.skill, 'scripts'))).sort();
  expect(scripts).toEqual(['demo_ui.html', 'openwechat.js', 'send.js', 'serve_ui.js', 'sse_inbox.js']);
  for (const s of scripts.filter((f) => f.endsWith('.js'))) {
    const code = await readFile(join(ws.skill, 'scripts', s), 'utf8');
    expect(code.startsWith('#!/usr/bin/env node\n'), s).toBe(true);
    const outside = specifiers(code).filter(
      (x) =>
        !x.startsWith('node:') &&
        ![
          'fs',
          'path',
          'url',
          'os',
          'crypto',
          'http',
          'net',
          'util',
          'module',
          'child_process',
          'stream',
          'events',
        ].includes(x),
    );
    expect(outside, s).toEqual([]);
  }
  const pkg = await readJson<{ scripts: Record<string, string>; dependencies?: unknown; type: string }>(
    join(ws.skill, 'package.json'),
  );
  expect(pkg.scripts).toMatchObject({ ui: 'node scripts/serve_ui.js', inbox: 'node scripts/sse_inbox.js' });
  expect(pkg.dependencies).toBeUndefined();
  expect(pkg.type).toBe('module');
  const skill = await readFile(join(ws.skill, 'SKILL.md'), 'utf8');
  expect(skill.split('\n').slice(0, 11)).toEqual([
    '---',
    'name: openwechat-im-client',
    expect.stringMatching(/^description: ".*register.*send messages and files.*Feishu\/Telegram.*"$/),
    'version: 2.0.0',
    'metadata:',
    '  openclaw:',
    '    requires:',
    '      bins:',
    '        - node',
    '---',
    '',
  ]);
  expect(await readText(join(ws.skill, 'SERVER.md'))).toContain('SERVER.md` at the root of that repository');
  expect(await readJson(join(ws.skill, 'config.json.example'))).toEqual({
    base_url: 'https://YOUR_RELAY_SERVER:8000',
    token: 'replace_with_token',
    my_id: 1,
    my_name: 'alice',
    batch_size: 5,
  });
});

it('a copy without node_modules registers, sends and receives', async () => {
  const skills = { a: join(far, 'a', 'openwechat-im-client'), b: join(far, 'b', 'openwechat-im-client') };
  for (const dir of Object.values(skills)) await cp(ws.skill, dir, { recursive: true });
  // The copies stand alone.
  for (let d = far; d !== '/'; d = join(d, '..')) expect(await readdir(d)).not.toContain('node_modules');

  const env = { NODE_PATH: undefined, OPENWECHAT_DATA_DIR: undefined };
  const ra = await cli(skills.a, ['register', '--base-url', relay.url, '--name', 'pa', '--json'], {
    env,
    cwd: far,
  });
  const rb = await cli(skills.b, ['register', '--base-url', relay.url, '--name', 'pb', '--json'], {
    env,
    cwd: far,
  });
  expect([ra.code, rb.code]).toEqual([0, 0]);
  const dataA = join(far, 'a', 'openwechat_im_client');
  const dataB = join(far, 'b', 'openwechat_im_client');
  expect(ra.json!.config).toBe(join(dataA, 'config.json'));

  for (const dir of Object.values(skills)) {
    const start = await cli(dir, ['daemon', 'start'], { env });
    expect(start.code, start.stderr).toBe(0);
  }
  for (const data of [dataA, dataB]) {
    await waitUntil(
      async () => (await readText(join(data, 'sse_channel.log'))).includes(' connected mode=resume'),
      `${data} connected`,
    );
  }
  const send = await cli(skills.a, ['send', String(rb.json!.id), 'from a copy'], { env });
  expect(send.code, send.stderr).toBe(0);
  await waitIncoming(dataB, 1);
  expect((await runSend(skills.b, String(ra.json!.id), 'reply from the other copy', env)).code).toBe(0);
  const got = await waitIncoming(dataA, 2);
  expect(got[0]).toMatch(
    new RegExp(`from=#${String(rb.json!.id)}\\(pb\\) type=chat content=reply from the other copy$`),
  );
  expect(got[1]).toMatch(/from=#0\(system\) type=system content=您与 pb/);
  for (const dir of Object.values(skills)) expect((await cli(dir, ['daemon', 'stop'], { env })).code).toBe(0);
  // Nothing was written into the skill folders.
  for (const dir of Object.values(skills)) {
    expect((await readdir(dir)).sort()).toEqual([
      'SERVER.md',
      'SKILL.md',
      'config.json.example',
      'package.json',
      'references',
      'scripts',
    ]);
  }
});

/** scripts/send.js, the shortcut. */
function runSend(skill: string, to: string, text: string, env: Record<string, string | undefined>) {
  return import('./helpers.ts').then(({ runScript }) => runScript(skill, 'send', [to, text], { env }));
}
