// The demo UI on a data folder in the layouts this skill writes today — the guide's (seed 000): profile.json
// with my_id/my_name, contacts.json keyed by id, conversations.md lines in the guide's grammar with the extra
// facts in the type token. In headless Chromium: conversations per friend and per group (member counts from
// groups.json), the sender's own file message carries its file tag, the Status tab counts groups.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, expect, it } from 'vitest';
import type { UiServer } from '../../packages/skill/src/ui/serve_ui.ts';
import { ARTIFACTS, browserSuite, type Opened } from './fixtures.ts';

const FILES: Record<string, unknown> = {
  'profile.json': { my_id: 1, my_name: 'alice', status: 'open', updated_at_utc: '2026-03-10T12:00:00Z' },
  'contacts.json': {
    '2': { name: 'bob', relationship: 'accepted', last_seen_utc: '2026-03-10T12:00:00Z' },
    '3': { name: 'carol', relationship: 'accepted', last_seen_utc: '2026-03-10T11:00:00Z' },
  },
  'groups.json': {
    updated_at: '2026-03-10T12:00:00Z',
    groups: [{ id: 7, name: 'team', description: null, owner_id: 1, role: 'owner', member_count: 3 }],
  },
  'context_snapshot.json': {
    updated_at_utc: '2026-03-10T12:00:05Z',
    messages_received_recent: 4,
    friends_count: 2,
    latest_peers: ['#2 bob', '#3 carol'],
  },
  'stats.json': {
    messages_received: 4,
    messages_sent: 3,
    friends_count: 2,
    pending_incoming_count: 0,
    pending_outgoing_count: 0,
    last_sync_utc: '2026-03-10T12:00:05Z',
    updated_at: '2026-03-10T12:00:05.000Z',
    by_type: { chat: 2, friend_request: 0, system: 0, group: 2 },
    last_message_id: 12,
    sse: null,
  },
};

const LINES = [
  '[2026-03-10T10:00:00Z] from=#2(bob) type=chat content=hello alice',
  '[2026-03-10T10:01:00Z] from=#1(alice) type=chat.out.to2 content=hi bob',
  '[2026-03-10T10:02:00Z] from=#1(alice) type=chat.out.to2.attachment:notes_v2.txt content=(附件)',
  '[2026-03-10T10:03:00Z] from=#2(bob) type=chat.file:files/3f9c0a1b_reply.pdf content=my answer',
  '[2026-03-10T11:00:00Z] from=#3(carol) type=chat.g7.mention content=@alice review please',
  '[2026-03-10T11:01:00Z] from=#1(alice) type=chat.out.g7.attachment:plan.pdf content=the plan',
  '[2026-03-10T11:02:00Z] from=#2(bob) type=chat.g7 content=thanks',
];

const suite = browserSuite();
let ui: UiServer;

beforeAll(async () => {
  ({ ui } = await suite.serve('demo-ui-guide-', async (dataDir) => {
    await mkdir(dataDir);
    for (const [name, value] of Object.entries(FILES))
      await writeFile(join(dataDir, name), JSON.stringify(value, null, 2));
    await writeFile(join(dataDir, 'conversations.md'), `${LINES.join('\n')}\n`);
    await writeFile(join(dataDir, 'inbox_pushed.md'), '');
    await writeFile(join(dataDir, 'sse_channel.log'), '2026-03-10T09:59:00.000Z connected mode=resume\n');
  }));
});

const open = (): Promise<Opened> =>
  suite.open(ui.url, { context: { viewport: { width: 1280, height: 900 } }, refresh: null });

function openConv(page: Page, title: string): Promise<void> {
  return page
    .locator('#conv-list .conv-item')
    .filter({ has: page.locator('.conv-title', { hasText: new RegExp(`^${title}$`) }) })
    .click();
}

it('reads the guide’s layouts: who I am, conversations per friend and group, my own file messages', async () => {
  const { page, errors } = await open();
  expect(await page.locator('#me').textContent()).toContain('alice#1');
  const list = await page
    .locator('#conv-list .conv-item')
    .evaluateAll((els) =>
      els.map((e) => [
        e.querySelector('.conv-title')?.textContent ?? '',
        (e as HTMLElement).dataset.kind ?? '',
      ]),
    );
  expect(list).toEqual([
    ['team', 'group'],
    ['bob', 'user'],
  ]);
  expect(await page.locator('.conv-item[data-kind="group"] .conv-members').textContent()).toBe('3 members');

  await openConv(page, 'bob');
  const bob = await page
    .locator('#messages .msg')
    .evaluateAll((els) =>
      els.map((e) => [
        e.classList.contains('out') ? 'out' : 'in',
        e.querySelector('.msg-content')?.textContent ?? '',
        e.querySelector('.file')?.textContent ?? null,
      ]),
    );
  expect(bob).toEqual([
    ['in', 'hello alice', null],
    ['out', 'hi bob', null],
    // The sender's own file message shows its file tag.
    ['out', '(附件)', 'filenotes_v2.txt'],
    ['in', 'my answer', 'filefiles/3f9c0a1b_reply.pdf'],
  ]);

  await openConv(page, 'team');
  const team = await page
    .locator('#messages .msg')
    .evaluateAll((els) =>
      els.map((e) => [
        e.classList.contains('out') ? 'out' : 'in',
        (e as HTMLElement).dataset.mentioned,
        e.querySelector('.file')?.textContent ?? null,
      ]),
    );
  expect(team).toEqual([
    ['in', 'true', null],
    ['out', 'false', 'fileplan.pdf'],
    ['in', 'false', null],
  ]);
  await page.screenshot({ path: join(ARTIFACTS, 'guide-layout-team.png') });

  // Status: received, sent, chat, requests, system, group messages, groups, friends, last id.
  await page.click('#tabs [data-tab="status"]');
  expect(await page.locator('#stats-counters .stat .v').allTextContents()).toEqual([
    '4',
    '3',
    '2',
    '0',
    '0',
    '2',
    '1',
    '2',
    '12',
  ]);
  expect(errors).toEqual([]);
});
