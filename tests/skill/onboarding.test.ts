// The guide's onboarding, with the built skill and its default data folder (the sibling
// ../openwechat_im_client, no override): nothing works before registration and no server is assumed;
// register → config.json (0600) and profile.json → start SSE at once → the channel log says connected →
// doctor is green → only then the UI, which serves the data files but never config.json. Every command runs the
// way OpenClaw runs SKILL.md's: from the agent's workspace (another folder), as `node <skill>/scripts/…`.

import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, lines, readJson, readText, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

const { ws, relay } = skillSuite('owc-onboard-', { sseMaxPerIp: 10 });
let data: string;
let workspace: string;
/** The CLI run from the agent's workspace, not from the skill folder. */
const run = (args: string[]): ReturnType<typeof cli> => cli(ws.skill, args, { cwd: workspace });

beforeAll(async () => {
  data = join(ws.root, 'openwechat_im_client');
  workspace = join(ws.root, 'agent-workspace');
  await mkdir(workspace);
});
// Registered after the suite's hooks, so it runs before them: the daemon stops before the relay goes.
afterAll(async () => {
  await run(['daemon', 'stop']).catch(() => {});
});

it('before registration: clear refusals, no assumed server, nothing written', async () => {
  const noUrl = await run(['register', '--name', 'alice']);
  expect(noUrl.code).toBe(2);
  expect(noUrl.stderr).toBe(
    'error (usage): --base-url is required: the address of your relay server\n' +
      'hint: No server address is built in. Get the demo relay address or the self-hosting guide from the openwechat-claw project (see SERVER.md).\n',
  );
  const start = await run(['daemon', 'start', '--json']);
  expect(start.code).toBe(3);
  expect(start.json).toMatchObject({ ok: false, error: { code: 'not_configured', exit: 3 } });
  expect((start.json!.error as { hint: string }).hint).toMatch(
    /^Register first: openwechat register --base-url <your relay>/,
  );
  const send = await run(['send', '2', 'hi']);
  expect(send.code).toBe(3);
  const doctor = await run(['doctor', '--json']);
  expect(doctor.code).toBe(1);
  expect(doctor.json).toMatchObject({ ok: false, healthy: false });
  expect(await readdir(data).catch(() => [])).not.toContain('config.json');
  // The skill folder holds no runtime state.
  expect((await readdir(ws.skill)).sort()).toEqual([
    'SERVER.md',
    'SKILL.md',
    'config.json.example',
    'package.json',
    'references',
    'scripts',
  ]);
  expect(await readdir(workspace)).toEqual([]);
});

it('register → config.json + profile.json → SSE at once → channel log → doctor → UI', async () => {
  const reg = await run([
    'register',
    '--base-url',
    `${relay.url}/`,
    '--name',
    'alice',
    '--description',
    'a test agent',
  ]);
  expect(reg.code, reg.stderr).toBe(0);
  const config = await readJson<Record<string, unknown>>(join(data, 'config.json'));
  expect(config).toEqual({
    base_url: relay.url,
    token: expect.stringMatching(/^[0-9a-f]{32}$/),
    my_id: 1,
    my_name: 'alice',
    batch_size: 5,
    data_version: 3,
  });
  expect((await stat(join(data, 'config.json'))).mode & 0o777).toBe(0o600);
  // ID, name and token shown once, in that order.
  expect(reg.stdout.split('\n').slice(0, 5)).toEqual([
    `Registered on ${relay.url}`,
    '  ID:    1',
    '  Name:  alice',
    `  Token: ${String(config.token)}`,
    'The token is shown only this once. It is saved in config.json (mode 0600): keep it secret, never commit it.',
  ]);
  // The next command is printed with the skill's absolute path: it works from any folder.
  expect(reg.stdout).toContain(
    `Next: start the inbox daemon now (SSE is the main channel): node ${join(ws.skill, 'scripts', 'openwechat.js')} daemon start`,
  );
  expect(await readJson(join(data, 'profile.json'))).toEqual({
    my_id: 1,
    my_name: 'alice',
    status: 'open',
    updated_at_utc: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    description: 'a test agent',
    registered_at: expect.any(String),
    base_url: relay.url,
  });
  // The folder protects itself: private, and ignored by a git workspace around it.
  expect((await stat(data)).mode & 0o777).toBe(0o700);
  expect((await stat(join(data, 'profile.json'))).mode & 0o777).toBe(0o600);
  expect(await readText(join(data, '.gitignore'))).toMatch(/^\*$/m);
  expect(await readText(join(data, 'profile.json'))).not.toContain(String(config.token));

  // Start SSE immediately; the channel log is the first place to look.
  const start = await run(['daemon', 'start', '--json']);
  expect(start.code, start.stdout + start.stderr).toBe(0);
  const pid = (start.json!.daemon as { pid: number }).pid;
  await waitUntil(
    async () => (await lines(join(data, 'sse_channel.log'))).length >= 2,
    'connected + server lines',
  );
  const log = await lines(join(data, 'sse_channel.log'));
  expect(log[0]).toMatch(
    new RegExp(
      `^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z connected mode=resume format=json since=0 relay=openwechat 0\\.1\\.0 pid=${pid}$`,
    ),
  );
  expect(log[1]).toMatch(/^\S+Z server stream_connected request_id=\S+ user_id=1 ip=127\.0\.0\.1 ts=\S+Z$/);
  const status = await run(['daemon', 'status', '--json']);
  expect(status.json).toMatchObject({
    ok: true,
    running: true,
    daemon: { pid, state: 'connected', mode: 'resume' },
  });
  // A second start is harmless; a second daemon is refused.
  expect((await run(['daemon', 'start'])).stdout).toBe(`already running (pid ${pid})\n`);

  const doctor = await run(['doctor', '--json']);
  expect(doctor.code, doctor.stdout).toBe(0);
  const checks = (doctor.json!.checks as Array<{ name: string; level: string }>).map((c) => [
    c.name,
    c.level,
  ]);
  expect(checks).toEqual([
    ['data folder', 'ok'],
    ['config.json', 'ok'],
    ['config.json permissions', 'ok'],
    ['relay', 'ok'],
    ['token', 'ok'],
    ['SSE daemon', 'ok'],
    ['sse_channel.log', 'ok'],
  ]);

  // Only now the UI (localhost only, whitelisted files), in the background: the exec call returns.
  const ui = await run(['ui', 'start', '--port', '0', '--json']);
  expect(ui.code, ui.stdout + ui.stderr).toBe(0);
  const url = (ui.json!.ui as { url: string }).url;
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  try {
    expect((await run(['ui', 'start'])).stdout).toMatch(/^the demo UI already runs at http:/);
    expect((await run(['ui', 'status', '--json'])).json).toMatchObject({ running: true, ui: { url } });
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const logFile = await fetch(`${url}/data/sse_channel.log`);
    expect(await logFile.text()).toContain(' connected mode=resume');
    // The guide's path serves the same files.
    const guidePath = await fetch(`${url}/openwechat_im_client/profile.json`);
    expect(await guidePath.json()).toMatchObject({ my_id: 1, my_name: 'alice' });
    expect((await fetch(`${url}/data/config.json`)).status).toBe(404);
    expect((await fetch(`${url}/openwechat_im_client/config.json`)).status).toBe(404);
  } finally {
    const stopped = await run(['ui', 'stop']);
    expect(stopped.stdout).toMatch(/^the demo UI \(pid \d+\) stopped\n$/);
  }
  const uiAfter = await run(['ui', 'status']);
  expect(uiAfter.code).toBe(8);
  await expect(fetch(`${url}/`)).rejects.toThrow();

  const stop = await run(['daemon', 'stop']);
  expect(stop.stdout).toBe(`sse_inbox (pid ${pid}) stopped\n`);
  expect((await lines(join(data, 'sse_channel.log'))).at(-1)).toMatch(
    /^\S+Z disconnected reason=daemon_stopped$/,
  );
  const after = await run(['daemon', 'status']);
  expect(after.code).toBe(8);
});

it('registering again needs --force, and keeps the replaced config', async () => {
  const again = await run(['register', '--name', 'alice2']);
  expect(again.code).toBe(2);
  expect(again.stderr).toMatch(/^error \(already_registered\): already registered as #1\(alice\)/);
  const old = await readJson(join(data, 'config.json'));
  const forced = await run(['register', '--name', 'alice2', '--force', '--json']);
  expect(forced.code, forced.stderr).toBe(0);
  expect(await readJson(join(data, 'config.json'))).toMatchObject({
    my_id: 2,
    my_name: 'alice2',
    base_url: relay.url,
  });
  const kept = await readdir(join(data, 'migrations', 'replaced'));
  expect(kept).toHaveLength(1);
  expect(await readJson(join(data, 'migrations', 'replaced', kept[0]!))).toEqual(old);
  expect((await stat(join(data, 'migrations', 'replaced', kept[0]!))).mode & 0o777).toBe(0o600);
});
