// Several agents on one host (issue 16): with the relay's DEFAULT stream limits (no sseMaxPerIp override),
// two skill daemons of two accounts and the bridge's bot stream all hold their SSE streams from the same
// address (127.0.0.1), and each receives over its stream — none falls back to polling on a 429.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { befriend, sendOk } from '../relay/client.ts';
import { buildWorkspace, killAll, lines, startDaemon, waitUntil, type Workspace } from '../skill/helpers.ts';
import { bridgeSuite, until } from './helpers.ts';

const s = bridgeSuite({
  relay: {}, // the relay's defaults: this is what the test is about
  bot: 'onehost_bot',
  users: ['onehost_alice', 'onehost_bob', 'onehost_carol'] as const,
});
let ws: Workspace;

beforeAll(async () => {
  ws = await buildWorkspace('owc-onehost-');
});

afterAll(async () => {
  await killAll();
  await ws?.cleanup();
});

it('two daemons and the bridge stream from one address with the default limits', async () => {
  const [alice, bob, carol] = s.users;
  const base = s.relay.url;
  for (const u of [alice, bob, s.bot]) await befriend(base, carol, u);

  const dataOf = async (u: typeof alice, name: string): Promise<string> => {
    const data = join(ws.root, name);
    await mkdir(data, { recursive: true });
    const config = { base_url: base, token: u.token, my_id: u.id, my_name: u.name, data_version: 3 };
    await writeFile(join(data, 'config.json'), JSON.stringify(config), { mode: 0o600 });
    return data;
  };
  const daemons = [await dataOf(alice, 'alice'), await dataOf(bob, 'bob')];
  for (const data of daemons) startDaemon(ws.skill, data);
  await s.startBridge();

  const channel = async (data: string): Promise<string[]> =>
    (await lines(join(data, 'sse_channel.log')).catch(() => [])).map((l) => l.replace(/^\S+ /, ''));
  for (const data of daemons)
    await waitUntil(
      async () => (await channel(data)).some((l) => l.startsWith('connected mode=resume')),
      `${data}: the daemon's stream`,
    );

  await sendOk(base, carol, alice.id, 'to alice over her stream');
  await sendOk(base, carol, bob.id, 'to bob over his stream');
  await sendOk(base, carol, s.bot.id, 'to the bot over its stream');
  for (const [data, text] of [
    [daemons[0]!, 'to alice over her stream'],
    [daemons[1]!, 'to bob over his stream'],
  ] as const)
    await waitUntil(
      async () => (await lines(join(data, 'conversations.md')).catch(() => [])).some((l) => l.endsWith(text)),
      `${text} in conversations.md`,
    );
  await until(
    () => s.receiver.accepted().some((d) => d.json.Content.string.includes('to the bot over its stream')),
    'the bridge to forward the bot’s message',
  );

  // Nobody was refused a stream or fell back to polling.
  for (const data of daemons) {
    const log = await channel(data);
    expect(
      log.filter((l) => /^(fallback|error 429)/.test(l)),
      log.join('\n'),
    ).toEqual([]);
  }
  expect(s.started[0]!.logs.text).not.toMatch(/sse_limit|"status":429\b/);
});
