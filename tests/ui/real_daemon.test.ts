// The demo UI on a data folder written by the real skill, not by hand: three users of the built skill
// (plain `node scripts/…`) on the real relay (random port, temp SQLite), alice's inbox daemon writing her
// folder while the others talk to her — friend requests, a multi-line chat, a file, a group with a mention,
// her own sends from the CLI. The built demo_ui.html on that folder, in headless Chromium, must show every
// line of conversations.md as the skill's parser (formats.ts) reads it: per conversation, in order, each
// message's text, direction, mention and file.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { parseConversationLine, type ConversationLine } from '../../packages/skill/src/data/formats.ts';
import { startUiServer, type UiServer } from '../../packages/skill/src/ui/serve_ui.ts';
import { cli, lines, readJson, readText, startDaemon, waitUntil } from '../skill/helpers.ts';
import { skillSuite } from '../skill/fixtures.ts';
import { ARTIFACTS, browserSuite } from './fixtures.ts';

/** The relay's frozen clock. */
const T0 = Date.UTC(2026, 2, 9, 2, 0, 0);

const { ws, relay } = skillSuite('owc-ui-real-', { sseMaxPerIp: 50, now: () => T0 });
const suite = browserSuite();
const names = ['alice', 'bob', 'carol'] as const;
type Name = (typeof names)[number];
const dirs: Record<Name, string> = { alice: '', bob: '', carol: '' };
const ids: Record<Name, number> = { alice: 0, bob: 0, carol: 0 };
let ui: UiServer;
let gid = 0;

async function ok(who: Name, args: string[]): Promise<Record<string, unknown>> {
  const r = await cli(ws.skill, [...args, '--json'], { data: dirs[who] });
  expect(r.code, `${who}: ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  return r.json!;
}

const TRICKY = 'two lines\nC:\\temp \\n (not a break) type=x content=y';

beforeAll(async () => {
  for (const name of names) {
    dirs[name] = join(ws.root, name);
    ids[name] = (await ok(name, ['register', '--base-url', relay.url, '--name', name])).id as number;
  }
  // alice asks both to be friends; they accept by writing back.
  for (const friend of ['bob', 'carol'] as const) {
    await ok('alice', ['send', String(ids[friend]), `hi ${friend}`]);
    await ok(friend, ['inbox']);
    await ok(friend, ['send', String(ids.alice), `hello alice, ${friend} here`]);
  }
  const daemon = startDaemon(ws.skill, dirs.alice);
  const conv = join(dirs.alice, 'conversations.md');
  await waitUntil(
    async () => (await readText(join(dirs.alice, 'sse_channel.log'))).includes(' connected '),
    'alice’s daemon connected',
    20_000,
    () => daemon.output(),
  );
  await ok('bob', ['send', String(ids.alice), TRICKY]);
  const file = join(ws.root, 'report v1.txt');
  await writeFile(file, 'the report\n');
  await ok('carol', ['send-file', String(ids.alice), file, '--content', 'see the report']);
  gid = (
    (await ok('alice', ['group', 'create', 'team', '--members', `${ids.bob},${ids.carol}`])).group as {
      id: number;
    }
  ).id;
  await ok('bob', ['group', 'send', String(gid), '@alice please review']);
  await ok('carol', ['group', 'send', String(gid), 'looks good']);
  await ok('alice', ['group', 'send', String(gid), 'on it']);
  await ok('alice', ['send', String(ids.bob), 'thanks bob']);
  await waitUntil(
    async () => {
      const text = await readText(conv);
      return ['content=@alice please review', 'content=looks good', 'content=see the report'].every((s) =>
        text.includes(s),
      );
    },
    'alice’s daemon to record what bob and carol sent',
    20_000,
    async () => `${await readText(conv)}\n${daemon.output()}`,
  );
  ui = await startUiServer({
    port: 0,
    dataDir: dirs.alice,
    htmlPath: join(ws.skill, 'scripts', 'demo_ui.html'),
  });
  suite.cleanups.push(() => ui.close());
});

interface Shown {
  content: string;
  dir: string;
  mentioned: string;
  file: string | null;
}

/** The conversation a line belongs to, as the page keys it (docs/skill-data.md: who a line is with). */
function keyOf(l: ConversationLine): string {
  if (l.group) return `g:${l.group.id}`;
  return l.type === 'system' || l.peerId === 0 ? 'sys' : `u:${l.peerId}`;
}

function shownAs(l: ConversationLine): Shown {
  const sys = l.type === 'system' || (!l.group && l.peerId === 0);
  return {
    content: l.content,
    dir: sys ? 'sys' : l.direction,
    mentioned: String(l.mentioned),
    file: l.file ?? l.attachment,
  };
}

it('shows every line the daemon and the CLI wrote, as formats.ts reads it', async () => {
  const raw = await lines(join(dirs.alice, 'conversations.md'));
  const parsed = raw.map((r) => [r, parseConversationLine(r)] as const);
  // Everything the skill wrote reads with its own parser.
  expect(parsed.filter(([, l]) => l === null).map(([r]) => r)).toEqual([]);
  const expected = new Map<string, Shown[]>();
  for (const [, l] of parsed) {
    const key = keyOf(l!);
    expected.set(key, [...(expected.get(key) ?? []), shownAs(l!)]);
  }
  // The cases this test is about are in the file.
  const all = [...expected.values()].flat();
  expect(all.map((m) => m.content)).toEqual(
    expect.arrayContaining([TRICKY, '@alice please review', 'on it']),
  );
  expect(all.filter((m) => m.mentioned === 'true').map((m) => m.content)).toEqual(['@alice please review']);
  expect(all.some((m) => m.file?.startsWith('files/'))).toBe(true);
  expect(all.some((m) => m.dir === 'out')).toBe(true);
  expect([...expected.keys()].sort()).toEqual([`g:g${gid}`, 'sys', `u:${ids.bob}`, `u:${ids.carol}`].sort());

  const { page, errors } = await suite.open(ui.url, { refresh: null });
  const listed = await page
    .locator('#conv-list .conv-item')
    .evaluateAll((els) =>
      els.map((e) => [(e as HTMLElement).dataset.id, e.querySelector('.conv-title')?.textContent]),
    );
  expect(new Map(listed as Array<[string, string]>)).toEqual(
    new Map([
      [`c:u:${ids.bob}`, 'bob'],
      [`c:u:${ids.carol}`, 'carol'],
      [`c:g:g${gid}`, 'team'],
      ['c:sys', 'System'],
    ]),
  );
  for (const [key, want] of expected) {
    await page.click(`#conv-list .conv-item[data-id="c:${key}"]`);
    await page.waitForSelector(`#messages .msg[data-key="${key}"]`);
    const got = await page.locator('#messages .msg').evaluateAll((els) =>
      els.map((e) => ({
        content: e.querySelector('.msg-content')?.textContent ?? '',
        dir: (e as HTMLElement).dataset.dir ?? '',
        mentioned: (e as HTMLElement).dataset.mentioned ?? '',
        file: e.querySelector('.file')?.textContent?.replace(/^file/, '') ?? null,
      })),
    );
    expect(got, key).toEqual(want);
  }
  await page.click(`#conv-list .conv-item[data-id="c:g:g${gid}"]`);
  await page.screenshot({ path: join(ARTIFACTS, 'real-daemon-group.png') });
  // groups.json and contacts.json came from the skill too: the header names the group's size.
  const groups = await readJson<{ groups: Array<{ id: number; member_count: number }> }>(
    join(dirs.alice, 'groups.json'),
  );
  expect(groups.groups.map((g) => [g.id, g.member_count])).toEqual([[gid, 3]]);
  expect(await page.locator('#conv-header .sub.members').textContent()).toBe('3 members');
  expect(errors).toEqual([]);
});
