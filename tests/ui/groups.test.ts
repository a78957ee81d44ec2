// Group chats in the demo UI (issue 11): serve_ui serves groups.json, and in headless Chromium a group
// conversation with a mention renders beside the private ones — member count from groups.json, an
// "@ you" marker on the mentioned message only (every layout), groups without messages listed too.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { UiServer } from '../../packages/skill/src/ui/serve_ui.ts';
import { ARTIFACTS, browserSuite, get, seedDataDir, type Opened } from './fixtures.ts';

const GROUPS = {
  updated_at: '2026-03-10T12:20:00Z',
  groups: [
    { id: 7, name: 'team', description: 'daily standup', owner_id: 2, role: 'member', member_count: 3 },
    { id: 9, name: 'ops', description: null, owner_id: 1, role: 'owner', member_count: 1 },
  ],
};

/** After the seeded lines (the newest of which is 2026-03-10T12:00:00Z): two more team messages. */
const EXTRA = [
  '[2026-03-10T12:10:00Z] group=#g7(team) from=#3(carol) type=chat id=40 mentioned=yes content=@alice please review',
  '[2026-03-10T12:11:00Z] group=#g7(team) from=#2(bob) type=chat id=41 file=files/0123abcd_plan.txt content=plan attached',
];

const suite = browserSuite();
let ui: UiServer;
let dataDir: string;

beforeAll(async () => {
  ({ ui, dataDir } = await suite.serve('demo-ui-groups-', (dir) =>
    seedDataDir(dir, { extraLines: EXTRA, groups: GROUPS }),
  ));
});

const open = (locale = 'en-US'): Promise<Opened> => suite.open(ui.url, { context: { locale } });

function convList(page: Page): Promise<Array<[string, string, number]>> {
  return page
    .locator('#conv-list .conv-item')
    .evaluateAll((els) =>
      els.map((e) => [
        e.querySelector('.conv-title')?.textContent ?? '',
        (e as HTMLElement).dataset.kind ?? '',
        Number((e as HTMLElement).dataset.unread),
      ]),
    ) as Promise<Array<[string, string, number]>>;
}

function openConv(page: Page, title: string): Promise<void> {
  return page
    .locator('#conv-list .conv-item')
    .filter({ has: page.locator('.conv-title', { hasText: new RegExp(`^${title}$`) }) })
    .click();
}

describe('groups.json', () => {
  it('is whitelisted: served as JSON, byte for byte', async () => {
    const res = await get(ui.port, '/data/groups.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toBe(await readFile(join(dataDir, 'groups.json'), 'utf8'));
  });
});

describe('group conversations in the page', () => {
  it('list groups beside private conversations, with member counts and an unread mention', async () => {
    const { page, errors } = await open();
    expect(await convList(page)).toEqual([
      ['team', 'group', 4],
      ['bob', 'user', 3],
      ['dave', 'user', 1],
      ['carol', 'user', 1],
      ['System', 'system', 0],
      // Known from groups.json only: no message yet.
      ['ops', 'group', 0],
    ]);
    const team = page.locator('.conv-item[data-kind="group"]').first();
    expect(await team.locator('.tag').textContent()).toBe('Group');
    expect(await team.locator('.conv-members').textContent()).toBe('3 members');
    expect(await team.locator('.conv-side .mention').textContent()).toBe('@');
    expect(await team.locator('.conv-preview').textContent()).toBe('bob: plan attached');
    const ops = page.locator('.conv-item[data-id="c:g:g9"]');
    expect(await ops.locator('.conv-members').textContent()).toBe('1 member');
    expect(await ops.locator('.conv-preview').textContent()).toBe('1 member');
    await page.screenshot({ path: join(ARTIFACTS, 'groups-list.png') });
    expect(errors).toEqual([]);
  });

  it('mark the mentioned message only, in every layout', async () => {
    const { page, errors } = await open();
    await openConv(page, 'team');
    expect(await page.locator('#conv-header .title').textContent()).toBe('team');
    expect(await page.locator('#conv-header .tag').textContent()).toBe('Group');
    expect(await page.locator('#conv-header .sub.members').textContent()).toBe('3 members');
    expect(await page.locator('#conv-header .conv-sub').textContent()).toContain('daily standup');
    for (const layout of ['bubble', 'card', 'table']) {
      await page.click(`#layout [data-value="${layout}"]`);
      const msgs = await page
        .locator('#messages .msg')
        .evaluateAll((els) =>
          els.map((e) => [
            e.querySelector('.msg-content')?.textContent ?? '',
            (e as HTMLElement).dataset.mentioned,
            e.querySelector('.mention')?.textContent ?? null,
          ]),
        );
      expect(msgs, layout).toEqual([
        ['standup in 5', 'false', null],
        ['ok', 'false', null],
        ['on my way', 'false', null],
        ['@alice please review', 'true', '@ you'],
        ['plan attached', 'false', null],
      ]);
      if (layout === 'bubble') {
        expect(await page.locator('#messages .row.in .bubble-meta strong').allTextContents()).toEqual([
          'bob',
          'carol',
          'carol',
          'bob',
        ]);
        expect(await page.locator('#messages .msg.mentioned .file').count()).toBe(0);
        expect(await page.locator('#messages .msg .file').textContent()).toBe('filefiles/0123abcd_plan.txt');
      }
      await page.screenshot({ path: join(ARTIFACTS, `groups-${layout}.png`) });
    }
    // Opening the group read it: no unread mention marker left in the list.
    expect(await page.locator('.conv-item[data-kind="group"] .conv-side .mention').count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('a group without messages shows its details; the marker is translated', async () => {
    const { page, errors } = await open('zh-CN');
    await openConv(page, 'ops');
    expect(await page.locator('#conv-header .sub.members').textContent()).toBe('1 位成员');
    expect(await page.locator('#conv-header .conv-sub').textContent()).toContain('我是群主');
    expect(await page.locator('#messages .empty-line').textContent()).toBe('这个群里还没有消息。');
    await openConv(page, 'team');
    expect(await page.locator('#messages .msg[data-mentioned="true"] .mention').textContent()).toBe('@我');
    expect(errors).toEqual([]);
  });
});
