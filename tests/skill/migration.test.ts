// Nothing in the data folder is ever deleted or overwritten by an upgrade or a script change:
// - a data folder written by the older (Python, guide v1.0.29) skill is migrated in place by the new
//   daemon: every line kept byte for byte, every converted file's original kept in migrations/v1/;
// - rebuilding (upgrading) the skill folder leaves its sibling data folder byte-identical, and the new
//   daemon continues exactly where the old one stopped;
// - a data folder written by a newer skill is refused and left untouched.

import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { expect, it } from 'vitest';
import { RelayClient } from '../../packages/client/src/index.ts';
import { buildSkill } from '../../packages/skill/src/build.ts';
import { cli, lines, readJson, readText, startDaemon, waitIncoming, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

const { ws, relay } = skillSuite('owc-migrate-', { sseMaxPerIp: 10 });

/** Path → sha256 of every file under a folder. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else
        out[relative(dir, p)] = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
    }
  };
  await walk(dir);
  return out;
}

async function users(): Promise<{ alice: RelayClient; aliceId: number; bobToken: string; bobId: number }> {
  const anon = new RelayClient({ baseUrl: relay.url });
  const a = await anon.register({ name: `alice-${Math.random().toString(36).slice(2, 8)}` });
  const b = await anon.register({ name: `bob-${Math.random().toString(36).slice(2, 8)}` });
  const alice = new RelayClient({ baseUrl: relay.url, token: a.token });
  const bob = new RelayClient({ baseUrl: relay.url, token: b.token });
  await alice.send(b.user.id, 'request');
  await bob.send(a.user.id, 'accept');
  await bob.readInbox({ limit: 100 }); // the old skill had read these already (read-and-clear)
  return { alice, aliceId: a.user.id, bobToken: b.token, bobId: b.user.id };
}

it('migrates a data folder of the older (Python) skill in place and keeps everything', async () => {
  const { alice, aliceId, bobToken, bobId } = await users();
  const data = join(ws.root, 'v1-data');
  await mkdir(data, { recursive: true });
  const v1 = {
    'config.json': JSON.stringify(
      { base_url: relay.url, token: bobToken, my_id: bobId, my_name: 'bob', batch_size: 5 },
      null,
      2,
    ),
    'contacts.json': JSON.stringify({
      [String(aliceId)]: { name: 'alice', relationship: 'accepted', last_seen_utc: '2026-03-09T10:00:00Z' },
      '9': { name: 'mallory', relationship: 'blocked', last_seen_utc: '2026-03-01T00:00:00Z', note: 'kept' },
    }),
    'profile.json': JSON.stringify({
      my_id: bobId,
      my_name: 'bob',
      status: 'open',
      updated_at_utc: '2026-03-09T09:00:00Z',
    }),
    'stats.json': JSON.stringify({
      messages_received: 42,
      messages_sent: 7,
      friends_count: 1,
      pending_incoming_count: 0,
      pending_outgoing_count: 0,
      last_sync_utc: '2026-03-09T10:00:00Z',
    }),
    'context_snapshot.json': JSON.stringify({
      updated_at_utc: '2026-03-09T10:00:00Z',
      messages_received_recent: 2,
      friends_count: 1,
      latest_peers: [`#${aliceId} alice`],
    }),
    'conversations.md':
      `[2026-03-09T10:00:00Z] from=#${aliceId}(alice) type=friend_request content=request\n` +
      `[2026-03-09T10:00:05Z] to=#${aliceId}(alice) type=chat content=accept\n` +
      '[2026-03-09T10:00:06Z] from=#0(system) type=system content=friends now\n',
    'inbox_pushed.md': '[2026-03-09T10:00:00Z] event=message\n类型：好友申请\n内容：request\n\n',
    'sse_channel.log':
      '2026-03-09T09:59:59Z connected status=200\n2026-03-09T10:01:00Z disconnected reason=EOF\n',
  };
  for (const [name, text] of Object.entries(v1))
    await writeFile(join(data, name), text, { mode: name === 'config.json' ? 0o600 : 0o644 });
  await mkdir(join(data, 'files'));
  await writeFile(join(data, 'files', 'old-photo.jpg'), 'jpeg bytes');

  const d = startDaemon(ws.skill, data);
  await waitUntil(
    async () => (await readText(join(data, 'sse_channel.log'))).includes(' connected mode=resume'),
    'connected',
  );
  await alice.send(bobId, 'after the upgrade');
  await waitIncoming(data, 3);
  expect((await d.kill('SIGTERM')).code).toBe(0);
  // Only config.json needed changing (data_version); everything else already is the guide's layout.
  expect(d.output()).toContain(
    `data folder migrated from v1 to v3: config.json (originals kept in ${join(data, 'migrations')})`,
  );

  // Append-only files: the old bytes stay exactly, new records follow in the guide's grammar.
  const conv = await readText(join(data, 'conversations.md'));
  expect(conv.startsWith(v1['conversations.md'])).toBe(true);
  expect(conv.slice(v1['conversations.md'].length)).toMatch(
    new RegExp(`^\\[\\S+Z\\] from=#${aliceId}\\(alice-\\w+\\) type=chat content=after the upgrade\\n$`),
  );
  expect((await readText(join(data, 'inbox_pushed.md'))).startsWith(v1['inbox_pushed.md'])).toBe(true);
  expect((await readText(join(data, 'sse_channel.log'))).startsWith(v1['sse_channel.log'])).toBe(true);
  expect(await readFile(join(data, 'files', 'old-photo.jpg'), 'utf8')).toBe('jpeg bytes');

  // The one converted file: its original in migrations/v1, byte for byte, private.
  expect(await readdir(join(data, 'migrations', 'v1'))).toEqual(['config.json']);
  expect(await readText(join(data, 'migrations', 'v1', 'config.json'))).toBe(v1['config.json']);
  expect((await stat(join(data, 'migrations', 'v1', 'config.json'))).mode & 0o777).toBe(0o600);
  expect(await readJson(join(data, 'config.json'))).toEqual({
    ...JSON.parse(v1['config.json']),
    data_version: 3,
  });
  expect((await stat(join(data, 'config.json'))).mode & 0o777).toBe(0o600);

  // contacts.json keeps its layout and every key; alice's entry is refreshed in place.
  const contacts = await readJson<Record<string, Record<string, unknown>>>(join(data, 'contacts.json'));
  expect(Object.keys(contacts)).toEqual([String(aliceId), '9'].sort((x, y) => Number(x) - Number(y)));
  expect(contacts[String(aliceId)]).toMatchObject({
    name: expect.stringMatching(/^alice-/),
    relationship: 'accepted',
    last_seen_utc: expect.stringMatching(/Z$/),
  });
  expect(contacts[String(aliceId)]!.last_seen_utc! > '2026-03-09T10:00:00Z').toBe(true);
  // A contact nobody touched keeps its keys and values (extra keys of ours may be added, none dropped).
  expect(contacts['9']).toMatchObject({
    name: 'mallory',
    relationship: 'blocked',
    last_seen_utc: '2026-03-01T00:00:00Z',
    note: 'kept',
  });
  // profile.json is the guide's layout already: not rewritten.
  expect(await readText(join(data, 'profile.json'))).toBe(v1['profile.json']);
  // Views: every old key kept, counters never lowered (42 received, 7 sent, though the file shows fewer).
  const stats = await readJson<Record<string, unknown>>(join(data, 'stats.json'));
  expect(stats).toMatchObject({
    messages_received: 43,
    messages_sent: 7,
    friends_count: 1,
    pending_incoming_count: 0,
    pending_outgoing_count: 0,
    last_sync_utc: expect.stringMatching(/Z$/),
    by_type: { chat: 1, friend_request: 1, system: 1, group: 0 },
    last_message_id: 3,
  });
  for (const key of Object.keys(JSON.parse(v1['stats.json']) as object)) expect(stats).toHaveProperty(key);
  const snap = await readJson<Record<string, unknown>>(join(data, 'context_snapshot.json'));
  expect(snap).toMatchObject({
    updated_at_utc: expect.stringMatching(/Z$/),
    messages_received_recent: expect.any(Number),
    friends_count: 1,
    latest_peers: [expect.stringMatching(new RegExp(`^#${aliceId} alice-`))],
  });

  // A second start migrates nothing more and keeps the backups as they are.
  const before = await snapshot(join(data, 'migrations'));
  const again = startDaemon(ws.skill, data);
  await waitUntil(
    async () => (await lines(join(data, 'sse_channel.log'))).filter((l) => / connected /.test(l)).length >= 3,
    'reconnected',
  );
  expect((await again.kill('SIGTERM')).code).toBe(0);
  expect(again.output()).not.toContain('migrated');
  expect(await snapshot(join(data, 'migrations'))).toEqual(before);
  expect((await lines(join(data, 'conversations.md'))).length).toBe(4);
  // The folder protects itself from now on.
  expect(await readText(join(data, '.gitignore'))).toMatch(/^\*$/m);
  for (const name of ['contacts.json', 'conversations.md', 'stats.json'])
    expect((await stat(join(data, name))).mode & 0o777, name).toBe(0o600);
  expect((await stat(data)).mode & 0o777).toBe(0o700);
});

it('upgrading the skill folder keeps the data folder byte for byte, and the new daemon continues', async () => {
  const { alice, bobToken, bobId } = await users();
  const root = join(ws.root, 'installed');
  const skill = join(root, 'openwechat-im-client');
  await buildSkill({ outDir: skill });
  const data = join(root, 'openwechat_im_client');
  await mkdir(data, { recursive: true });
  await writeFile(
    join(data, 'config.json'),
    JSON.stringify({
      base_url: relay.url,
      token: bobToken,
      my_id: bobId,
      my_name: 'bob',
      batch_size: 5,
      data_version: 3,
    }),
    { mode: 0o600 },
  );
  const d1 = startDaemon(skill, data, { env: { OPENWECHAT_DATA_DIR: undefined } });
  await waitUntil(
    async () => (await readText(join(data, 'sse_channel.log'))).includes(' connected '),
    'connected',
  );
  await alice.send(bobId, 'before the upgrade');
  await waitIncoming(data, 1);
  expect((await d1.kill('SIGTERM')).code).toBe(0);
  await writeFile(join(skill, 'scripts', 'obsolete_forwarder.py'), '# from an old version');

  const before = await snapshot(data);
  await buildSkill({ outDir: skill });
  expect(await snapshot(data)).toEqual(before);
  expect(await readdir(join(skill, 'scripts'))).not.toContain('obsolete_forwarder.py');

  await alice.send(bobId, 'after the upgrade');
  const d2 = startDaemon(skill, data, { env: { OPENWECHAT_DATA_DIR: undefined } });
  const incoming = await waitIncoming(data, 2);
  expect((await d2.kill('SIGTERM')).code).toBe(0);
  expect(incoming.map((l) => l.replace(/^\[\S+\] /, ''))).toEqual([
    expect.stringMatching(/^from=#\d+\(alice-\w+\) type=chat content=before the upgrade$/),
    expect.stringMatching(/^from=#\d+\(alice-\w+\) type=chat content=after the upgrade$/),
  ]);
  // The new daemon resumed from the old cursor (since=3), it did not start over.
  expect(
    (await lines(join(data, 'sse_channel.log')))
      .filter((l) => / connected /.test(l))
      .map((l) => / since=(\d+)/.exec(l)?.[1]),
  ).toEqual(['0', '3']);
});

it('a data folder written by a newer skill is refused and left untouched', async () => {
  const data = join(ws.root, 'future');
  await mkdir(data, { recursive: true });
  await writeFile(
    join(data, 'config.json'),
    JSON.stringify({
      base_url: relay.url,
      token: 't',
      my_id: 1,
      my_name: 'x',
      batch_size: 5,
      data_version: 4,
    }),
    { mode: 0o600 },
  );
  await writeFile(join(data, 'contacts.json'), '{"format":"from the future"}');
  const before = await snapshot(data);
  const d = startDaemon(ws.skill, data);
  expect((await d.exited).code).toBe(9);
  expect(d.output()).toContain(
    'the data folder was written by a newer skill (data_version 4, this skill knows 3)',
  );
  expect((await cli(ws.skill, ['friends'], { data })).code).toBe(9);
  expect(await snapshot(data)).toEqual(before);
});
