// demo_ui.html in Debian's headless Chromium, served by the real serve_ui over loopback, with seeded data
// files in a temp folder. Assertions are on the DOM; a screenshot of each view goes to test-artifacts/ui/.

import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { UiServer } from '../../packages/skill/src/ui/serve_ui.ts';
import {
  ARTIFACTS,
  browserSuite,
  INBOX_PUSHED,
  ready,
  seedDataDir,
  WAIT,
  type Opened,
  type SeedOptions,
} from './fixtures.ts';

const suite = browserSuite();

interface Served {
  ui: UiServer;
  dataDir: string;
}

/** A fresh data folder (seeded unless `seed` is null: then it does not even exist) and a server on it. */
async function serve(seed: SeedOptions | null = {}): Promise<Served> {
  return suite.serve('demo-ui-', seed ? (dataDir) => seedDataDir(dataDir, seed) : undefined);
}

async function openPage(url: string, opts: { locale?: string; refresh?: number } = {}): Promise<Opened> {
  return suite.open(url, {
    context: { locale: opts.locale ?? 'en-US', colorScheme: 'light' },
    refresh: opts.refresh ?? 1,
  });
}

/** Waits until the page has completed `n` more polls of the data files (from its current count). */
async function waitForPolls(page: Page, n: number): Promise<void> {
  const now = Number((await page.getAttribute('html', 'data-updates')) ?? 0);
  await page.waitForFunction(
    (target) => Number(document.documentElement.dataset.updates ?? 0) >= target,
    now + n,
    WAIT,
  );
}

async function shot(page: Page, name: string, fullPage = false): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage });
}

/** The conversation list as [title, unread count] pairs, top to bottom. */
function convList(page: Page): Promise<Array<[string, number]>> {
  return page
    .locator('#conv-list .conv-item')
    .evaluateAll((els) =>
      els.map((e) => [
        e.querySelector('.conv-title')?.textContent ?? '',
        Number((e as HTMLElement).dataset.unread),
      ]),
    ) as Promise<Array<[string, number]>>;
}

function messageTexts(page: Page): Promise<string[]> {
  return page.locator('#messages .msg .msg-content').allTextContents();
}

function openConv(page: Page, title: string, nth = 0) {
  return page
    .locator('#conv-list .conv-item')
    .filter({ has: page.locator('.conv-title', { hasText: new RegExp(`^${title}$`) }) })
    .nth(nth)
    .click();
}

const BOB_TEXTS = ['hello alice', 'hi bob', 'line one\nline two', 'back\\slash C:\\temp'];

describe('seeded data', () => {
  let served: Served;
  beforeAll(async () => {
    served = await serve();
  });

  it('lists conversations per friend, newest first, with unread counts and the group beside private ones', async () => {
    const { page, pageErrors } = await openPage(served.ui.url);
    expect(await convList(page)).toEqual([
      ['bob', 3],
      ['dave', 1],
      ['team', 2],
      ['carol', 1],
      ['System', 0],
    ]);
    expect(await page.locator('#unread-total').textContent()).toBe('7');
    expect(await page.title()).toBe('(7) openwechat');
    const team = page.locator('.conv-item[data-kind="group"]');
    expect(await team.count()).toBe(1);
    expect(await team.locator('.tag').textContent()).toBe('Group');
    expect(await team.locator('.conv-preview').textContent()).toBe('You: on my way');
    expect(await page.locator('.conv-item[data-kind="user"]').count()).toBe(3);
    expect(await page.getByText('Select a conversation').isVisible()).toBe(true);
    await shot(page, 'conversations');
    expect(pageErrors).toEqual([]);
  });

  it('bubble layout: one conversation in order, in/out sides, opening it marks it read (remembered)', async () => {
    const { page, consoleErrors, pageErrors } = await openPage(served.ui.url);
    await openConv(page, 'bob');
    expect(await messageTexts(page)).toEqual(BOB_TEXTS);
    const dirs = await page
      .locator('#messages .msg')
      .evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.dir));
    expect(dirs).toEqual(['in', 'out', 'in', 'in']);
    expect(await page.locator('#messages .row.out .bubble').count()).toBe(1);
    expect(await page.locator('#messages .day-sep').allTextContents()).toEqual([
      expect.stringMatching(/9 Mar 2026/),
      expect.stringMatching(/10 Mar 2026/),
    ]);
    expect(await page.locator('#conv-header .title').textContent()).toBe('bob');
    expect(await page.locator('#conv-header .tag').textContent()).toBe('friend');
    expect(await convList(page)).toEqual([
      ['bob', 0],
      ['dave', 1],
      ['team', 2],
      ['carol', 1],
      ['System', 0],
    ]);
    expect(await page.locator('#unread-total').textContent()).toBe('4');
    await shot(page, 'bubble');

    await page.reload();
    await ready(page);
    expect((await convList(page)).map(([, n]) => n)).toEqual([0, 1, 2, 1, 0]);
    expect(pageErrors).toEqual([]);
    expect(consoleErrors).toEqual([]); // no CSP violation, no failed load
  });

  it('card layout (remembered across reloads)', async () => {
    const { page } = await openPage(served.ui.url);
    await page.click('#layout [data-value="card"]');
    await openConv(page, 'bob');
    const cards = page.locator('#messages article.card.msg');
    expect(await cards.count()).toBe(4);
    expect(await messageTexts(page)).toEqual(BOB_TEXTS);
    expect(await cards.locator('header .who').allTextContents()).toEqual([
      'bob → You',
      'You → bob',
      'bob → You',
      'bob → You',
    ]);
    expect(await cards.first().locator('footer').textContent()).toBe('id 17');
    await shot(page, 'card');
    await page.reload();
    await ready(page);
    expect(await page.getAttribute('#layout [data-value="card"]', 'aria-pressed')).toBe('true');
  });

  it('table layout', async () => {
    const { page } = await openPage(served.ui.url);
    await page.click('#layout [data-value="table"]');
    await openConv(page, 'bob');
    expect(await page.locator('#messages table thead th').allTextContents()).toEqual([
      'Time',
      'From',
      'To',
      'Type',
      'Content',
    ]);
    const rows = await page
      .locator('#messages tbody tr.msg')
      .evaluateAll((trs) =>
        trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)),
      );
    expect(rows.map((r) => r.slice(1))).toEqual([
      ['bob', 'You', 'chat', 'hello alice'],
      ['You', 'bob', 'chat', 'hi bob'],
      ['bob', 'You', 'chat', 'line one\nline two'],
      ['bob', 'You', 'chat', 'back\\slash C:\\temp'],
    ]);
    expect(rows[0]?.[0]).toMatch(/9 Mar 2026, 10:00/);
    await shot(page, 'table');
  });

  it('a group conversation shows each sender', async () => {
    const { page } = await openPage(served.ui.url);
    await openConv(page, 'team');
    expect(await messageTexts(page)).toEqual(['standup in 5', 'ok', 'on my way']);
    expect(await page.locator('#messages .row.in .bubble-meta strong').allTextContents()).toEqual([
      'bob',
      'carol',
    ]);
    expect(await page.locator('#messages .msg.out').count()).toBe(1);
    expect(await page.locator('#conv-header .tag').textContent()).toBe('Group');
    await shot(page, 'group');
  });

  it('files, friend requests and system messages', async () => {
    const { page } = await openPage(served.ui.url);
    await openConv(page, 'carol');
    expect(await page.locator('#messages .file').textContent()).toBe('filefiles/report.pdf');
    await openConv(page, 'dave');
    expect(await page.locator('#messages .msg .tag').textContent()).toBe('friend request');
    expect(await page.locator('#conv-header .tag').textContent()).toBe('request received');
    await openConv(page, 'System');
    expect(await page.locator('#messages .msg.sys .msg-content').allTextContents()).toEqual([
      'Welcome to the relay',
    ]);
  });

  it('split by session: a gap of more than 30 minutes starts a new session', async () => {
    const { page } = await openPage(served.ui.url);
    await page.click('#split [data-value="session"]');
    expect((await convList(page)).map(([t]) => t)).toEqual(['bob', 'dave', 'team', 'carol', 'bob', 'System']);
    expect(await page.locator('#conv-list .conv-preview').first().textContent()).toBe('12:00 · 1 message');
    await openConv(page, 'bob', 1);
    expect(await messageTexts(page)).toEqual(BOB_TEXTS.slice(0, 3));
    await openConv(page, 'bob', 0);
    expect(await messageTexts(page)).toEqual(BOB_TEXTS.slice(3));
    await shot(page, 'session');
  });

  it('split by time: one entry per day, across conversations', async () => {
    const { page } = await openPage(served.ui.url);
    await page.click('#split [data-value="time"]');
    const days = await convList(page);
    expect(days.map(([t]) => t)).toEqual([
      expect.stringMatching(/10 Mar 2026/),
      expect.stringMatching(/9 Mar 2026/),
    ]);
    expect(days.map(([, n]) => n)).toEqual([2, 5]);
    await page.locator('#conv-list .conv-item').nth(0).click();
    expect(await messageTexts(page)).toEqual(["hi, let's be friends", 'back\\slash C:\\temp']);
    await page.locator('#conv-list .conv-item').nth(1).click();
    expect(await messageTexts(page)).toEqual([
      'Welcome to the relay',
      'hello alice',
      'hi bob',
      'line one\nline two',
      'see attached',
      'standup in 5',
      'ok',
      'on my way',
    ]);
    // in the day view each incoming bubble names its sender
    expect(await page.locator('#messages .row.in .bubble-meta strong').allTextContents()).toEqual([
      'bob',
      'bob',
      'carol',
      'bob',
      'carol',
    ]);
    await shot(page, 'time');
  });

  it('contacts with their relationship; a row opens the conversation', async () => {
    const { page } = await openPage(served.ui.url);
    await page.click('#tabs [data-tab="contacts"]');
    expect(await page.locator('.contacts-summary').textContent()).toBe(
      '5 contacts · 2 friends · 2 pending · 1 blocked',
    );
    const rows = await page
      .locator('table.contacts tbody tr')
      .evaluateAll((trs) =>
        trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)),
      );
    expect(rows.map((r) => [r[0], r[1], r[3]])).toEqual([
      ['#2', 'Bbob', 'friend'],
      ['#4', 'Ddave', 'request received'],
      ['#3', 'Ccarol', 'friend'],
      ['#5', 'Eeve', 'blocked'],
      ['#6', 'Ffrank', 'request sent'],
    ]);
    await shot(page, 'contacts');
    await page.click('table.contacts tbody tr[data-id="2"]');
    expect(await page.isVisible('#tab-conversations')).toBe(true);
    expect(await messageTexts(page)).toEqual(BOB_TEXTS);
  });

  it('stats, SSE channel status (from the last state line of sse_channel.log) and the channel log', async () => {
    const { page } = await openPage(served.ui.url);
    expect(await page.getAttribute('#sse', 'data-state')).toBe('recovered');
    expect(await page.locator('#sse-text').textContent()).toBe(' recovered');
    expect(await page.locator('#sse-since').textContent()).toMatch(/since 10 Mar 2026, 07:59/);
    await page.click('#tabs [data-tab="status"]');
    // received, sent, chat, friend requests, system, group messages, groups (groups.json), friends, last id
    expect(await page.locator('#stats-counters .stat .v').allTextContents()).toEqual([
      '8',
      '2',
      '7',
      '1',
      '1',
      '—',
      '1',
      '—',
      '23',
    ]);
    expect(await page.locator('#stats-channel .stat .v').allTextContents()).toEqual([
      'recovered',
      '10 Mar 2026, 07:59',
      '2',
      'sse',
      '10 Mar 2026, 12:00',
    ]);
    const log = await page
      .locator('#channel-log tbody tr')
      .evaluateAll((trs) => trs.map((tr) => tr.querySelectorAll('td')[1]?.textContent));
    expect(log).toEqual(['recovered', 'reconnecting', 'disconnected', 'server', 'connected']);
    await page.setViewportSize({ width: 1280, height: 1500 }); // the status page scrolls inside itself
    await shot(page, 'status');
  });

  it('raw file viewer shows each whitelisted file verbatim (and never config.json)', async () => {
    const { page } = await openPage(served.ui.url);
    await page.click('#tabs [data-tab="raw"]');
    expect(await page.locator('#raw-files button').allTextContents()).toEqual([
      'conversations.md',
      'contacts.json',
      'profile.json',
      'stats.json',
      'context_snapshot.json',
      'groups.json',
      'sse_channel.log',
      'inbox_pushed.md',
    ]);
    for (const name of ['inbox_pushed.md', 'contacts.json', 'conversations.md']) {
      await page.click(`#raw-files button[data-file="${name}"]`);
      const expected = await readFile(join(served.dataDir, name), 'utf8');
      await page.waitForFunction(
        (text) => document.getElementById('raw')?.textContent === text,
        expected,
        WAIT,
      );
    }
    expect(INBOX_PUSHED).toContain('## 2026-03-10T12:00:00Z id=23');
    await shot(page, 'raw');
  });

  it('switches language (browser default, switchable, remembered)', async () => {
    const tabs = () => page.locator('#tabs [role="tab"] > span:first-child').allTextContents();
    const { page } = await openPage(served.ui.url);
    expect(await tabs()).toEqual(['Conversations', 'Contacts', 'Status', 'Raw files']);
    await page.selectOption('#lang', 'zh');
    expect(await tabs()).toEqual(['会话', '联系人', '状态', '原始文件']);
    expect(await page.locator('#layout button').allTextContents()).toEqual(['气泡', '卡片', '表格']);
    expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');
    expect(await page.locator('#sse-text').textContent()).toBe(' 已恢复');
    await page.reload();
    await ready(page);
    expect(await tabs()).toEqual(['会话', '联系人', '状态', '原始文件']);
    await openConv(page, 'bob');
    expect(await page.locator('#conv-header .tag').textContent()).toBe('好友');
    await shot(page, 'zh');

    const zh = await openPage(served.ui.url, { locale: 'zh-CN' });
    expect(await zh.page.locator('#tabs [data-tab="contacts"] span').textContent()).toBe('联系人');
    expect(await zh.page.locator('#conv-list .conv-item').last().locator('.conv-title').textContent()).toBe(
      '系统',
    );
    await zh.page.selectOption('#lang', 'en');
    expect(await zh.page.locator('#tabs [data-tab="contacts"] span').textContent()).toBe('Contacts');
  });

  it('remembers the refresh interval', async () => {
    const { page } = await openPage(served.ui.url);
    expect(await page.inputValue('#refresh')).toBe('1');
    await page.selectOption('#refresh', '10');
    expect(await page.locator('#data-note').textContent()).toBe('every 10 s');
    await page.reload();
    await page.waitForSelector('#conv-list .conv-item');
    expect(await page.inputValue('#refresh')).toBe('10');
    expect(await page.evaluate(() => localStorage.getItem('openwechat.ui.refresh'))).toBe('10');
  });

  it('"Refresh now" fetches at once, also while automatic refresh is paused', async () => {
    const own = await serve();
    const { page } = await openPage(own.ui.url, { refresh: 0 });
    expect(await page.inputValue('#refresh')).toBe('0');
    expect(await page.locator('#data-note').textContent()).toBe('paused');
    await openConv(page, 'carol');
    await appendFile(
      join(own.dataDir, 'conversations.md'),
      '[2026-03-10T13:00:00Z] from=#3(carol) type=chat id=40 content=fetched on demand\n',
    );
    await page.click('#refresh-now');
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('#messages .msg-content')).at(-1)?.textContent ===
        'fetched on demand',
      null,
      WAIT,
    );
  });

  it('says so when the UI server is gone', async () => {
    const own = await serve();
    const { page } = await openPage(own.ui.url);
    expect(await page.isHidden('#banner')).toBe(true);
    await own.ui.close();
    await page.waitForSelector('#banner:not([hidden])', WAIT);
    expect(await page.locator('#banner').textContent()).toMatch(/Cannot reach the UI server/);
    expect(await page.locator('#conv-list .conv-item').count()).toBe(5); // the last data stays on screen
  });

  it('runs under the CSP: Trusted Types forbid innerHTML with a string', async () => {
    const { page, consoleErrors } = await openPage(served.ui.url);
    const result = await page.evaluate(() => {
      try {
        document.body.innerHTML = '<b>x</b>';
        return 'assigned';
      } catch (e) {
        return (e as Error).name;
      }
    });
    expect(result).toBe('TypeError');
    expect(consoleErrors.filter((e) => !/trusted/i.test(e))).toEqual([]);
  });
});

describe('live data', () => {
  it('a line appended to conversations.md appears without a reload', async () => {
    const served = await serve();
    const { page, navigations, pageErrors } = await openPage(served.ui.url);
    await openConv(page, 'bob');
    await page.evaluate(() => ((window as unknown as { marker: string }).marker = 'same page'));
    const file = join(served.dataDir, 'conversations.md');
    await appendFile(file, '[2026-03-10T12:05:00Z] from=#2(bob) type=chat id=30 content=live update works\n');
    await page.waitForFunction(
      () =>
        Array.from(document.querySelectorAll('#messages .msg-content')).at(-1)?.textContent ===
        'live update works',
      null,
      WAIT,
    );
    expect(await messageTexts(page)).toEqual([...BOB_TEXTS, 'live update works']);
    // bob is open, so his new message is read at once; carol's and a stranger's count as unread
    await appendFile(
      file,
      '[2026-03-10T12:06:00Z] from=#3(carol) type=chat id=31 content=ping\n' +
        '[2026-03-10T12:07:00Z] from=#42(zoe) type=friend_request id=32 content=hi there\n',
    );
    await page.waitForSelector('#conv-list .conv-item[data-id="c:u:42"]', WAIT);
    expect(await convList(page)).toEqual([
      ['zoe', 1],
      ['carol', 2],
      ['bob', 0],
      ['dave', 1],
      ['team', 2],
      ['System', 0],
    ]);
    expect(await page.evaluate(() => (window as unknown as { marker: string }).marker)).toBe('same page');
    expect(navigations()).toBe(1);
    expect(pageErrors).toEqual([]);
  });

  it('missing files show a friendly empty state, then fill in as the files appear', async () => {
    const served = await serve(null);
    const { page, pageErrors } = await openPage(served.ui.url);
    expect(await page.locator('#conv-empty h2').textContent()).toBe('Nothing here yet');
    expect(await page.isVisible('#conv-empty')).toBe(true);
    expect(await page.isHidden('#conv')).toBe(true);
    expect(await page.locator('#sse-text').textContent()).toBe(' no channel log yet');
    await shot(page, 'empty');
    await page.click('#tabs [data-tab="contacts"]');
    expect(await page.locator('#contacts h2').textContent()).toBe('No contacts yet');
    await page.click('#tabs [data-tab="status"]');
    expect(await page.locator('#status h2').textContent()).toBe('No statistics yet');
    await page.click('#tabs [data-tab="raw"]');
    await page.waitForFunction(
      () => document.getElementById('raw')?.textContent?.includes('not found') ?? false,
      null,
      WAIT,
    );
    expect(await page.locator('#raw').textContent()).toBe(
      'conversations.md not found — it has not been created yet.',
    );

    await page.click('#tabs [data-tab="conversations"]');
    await mkdir(served.dataDir, { recursive: true });
    await writeFile(join(served.dataDir, 'profile.json'), JSON.stringify({ id: 1, name: 'alice' }));
    await page.waitForFunction(
      () => document.querySelector('#conv-empty h2')?.textContent === 'No messages yet',
      null,
      WAIT,
    );
    expect(await page.locator('#me strong').textContent()).toBe('alice');
    await writeFile(
      join(served.dataDir, 'conversations.md'),
      '[2026-03-11T09:00:00Z] from=#2(bob) type=chat id=1 content=first message\n',
    );
    await page.waitForSelector('#conv-list .conv-item', WAIT);
    expect(await convList(page)).toEqual([['bob', 1]]);
    expect(await page.isHidden('#conv-empty')).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('message content is text: markup shows literally and nothing runs', async () => {
    const served = await serve({
      extraLines: [
        '[2026-03-10T12:01:00Z] from=#9(<img src=x onerror=alert(2)>) type=chat id=24 content=<img src=x onerror=alert(1)>',
        '[2026-03-10T12:02:00Z] from=#9(<img src=x onerror=alert(2)>) type=chat id=25 content=<script>alert(3)</script><b>bold</b>',
        '[2026-03-10T12:03:00Z] to=#9(<img src=x onerror=alert(2)>) type=chat file=files/<svg onload=alert(5)>.png content=<svg onload="window.pwned=1;alert(6)">',
      ],
    });
    await appendFile(
      join(served.dataDir, 'sse_channel.log'),
      '2026-03-10T12:04:00Z error <img src=x onerror=alert(4)>\n',
    );
    const { page, dialogs, pageErrors } = await openPage(served.ui.url);
    const attacker = page.locator('#conv-list .conv-item[data-id="c:u:9"]');
    expect(await attacker.locator('.conv-title').textContent()).toBe('<img src=x onerror=alert(2)>');
    await attacker.click();
    for (const layout of ['bubble', 'card', 'table']) {
      await page.click(`#layout [data-value="${layout}"]`);
      expect(await messageTexts(page)).toEqual([
        '<img src=x onerror=alert(1)>',
        '<script>alert(3)</script><b>bold</b>',
        '<svg onload="window.pwned=1;alert(6)">',
      ]);
      expect(await page.getByText('<img src=x onerror=alert(1)>', { exact: true }).isVisible()).toBe(true);
      if (layout === 'bubble') await shot(page, 'xss');
    }
    await page.click('#tabs [data-tab="status"]');
    expect(await page.getByText('<img src=x onerror=alert(4)>', { exact: true }).isVisible()).toBe(true);
    await page.click('#tabs [data-tab="raw"]');
    await page.waitForFunction(
      () => document.getElementById('raw')?.textContent?.includes('alert(3)') ?? false,
    );
    await waitForPolls(page, 2); // a few more refresh cycles re-render everything
    const counts = await page.evaluate(() => ({
      img: document.querySelectorAll('img').length,
      svg: document.querySelectorAll('svg').length,
      b: document.querySelectorAll('b').length,
      script: document.querySelectorAll('script').length,
      pwned: (window as unknown as { pwned?: unknown }).pwned ?? null,
    }));
    expect(counts).toEqual({ img: 0, svg: 0, b: 0, script: 1, pwned: null });
    expect(dialogs).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
