// Seeded data folders for the demo UI tests, a raw HTTP client that sends exact bytes (node:http
// would normalise some of the request targets the whitelist tests need to send verbatim), and the browser
// suite: headless Chromium for the file, serve_ui on temp data folders, pages that record their errors.

import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  chromium,
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  type Page,
} from 'playwright-core';
import { afterAll, beforeAll, inject } from 'vitest';
import { startUiServer, type UiServer } from '../../packages/skill/src/ui/serve_ui.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** demo_ui.html as the skill build made it (tests/global-setup.ts builds the skill folder once per run). */
export const HTML_PATH = join(inject('skillBuild'), 'scripts', 'demo_ui.html');
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'ui');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

export const PROFILE = {
  id: 1,
  name: 'alice',
  description: 'test agent',
  status: 'online',
  base_url: 'http://127.0.0.1:8000',
  registered_at: '2026-03-01T08:00:00Z',
  updated_at: '2026-03-10T12:00:00Z',
};

export const CONTACTS = {
  updated_at: '2026-03-10T12:00:00Z',
  contacts: [
    {
      id: 2,
      name: 'bob',
      description: 'likes tea',
      relationship: 'accepted',
      since: '2026-03-02T09:00:00Z',
      last_message_at: '2026-03-10T12:00:00Z',
    },
    {
      id: 3,
      name: 'carol',
      description: 'ops',
      relationship: 'accepted',
      since: '2026-03-03T09:00:00Z',
      last_message_at: '2026-03-09T10:05:00Z',
    },
    {
      id: 4,
      name: 'dave',
      description: '',
      relationship: 'pending_incoming',
      since: null,
      last_message_at: '2026-03-10T08:00:00Z',
    },
    { id: 5, name: 'eve', description: 'spam', relationship: 'blocked', since: null, last_message_at: null },
    {
      id: 6,
      name: 'frank',
      description: '',
      relationship: 'pending_outgoing',
      since: null,
      last_message_at: null,
    },
  ],
};

export const STATS = {
  updated_at: '2026-03-10T12:00:05Z',
  messages_received: 8,
  messages_sent: 2,
  by_type: { chat: 7, friend_request: 1, system: 1 },
  last_message_id: 23,
  sse: { state: 'connected', since: '2026-03-10T07:59:00Z', reconnects: 2, mode: 'sse' },
};

export const SNAPSHOT = {
  updated_at: '2026-03-10T12:00:05Z',
  me: { id: 1, name: 'alice' },
  unread_by_contact: { '2': 3, '3': 1 },
  recent: [
    {
      id: 22,
      time: '2026-03-10T08:00:00Z',
      from_id: 4,
      from_name: 'dave',
      type: 'friend_request',
      content: 'hi',
    },
    { id: 23, time: '2026-03-10T12:00:00Z', from_id: 2, from_name: 'bob', type: 'chat', content: 'back' },
  ],
  contacts: 5,
};

/** groups.json: the group of the seeded conversation lines (`#g7(team)`). */
export const GROUPS = {
  updated_at: '2026-03-10T12:00:05Z',
  groups: [
    { id: 7, name: 'team', description: 'daily standup', owner_id: 2, role: 'member', member_count: 3 },
  ],
};

/** Chronological, as the daemon appends them. */
export const CONVERSATION_LINES = [
  '[2026-03-09T09:00:00Z] from=#0(system) type=system content=Welcome to the relay',
  '[2026-03-09T10:00:00Z] from=#2(bob) type=chat id=17 content=hello alice',
  '[2026-03-09T10:01:00Z] to=#2(bob) type=chat content=hi bob',
  '[2026-03-09T10:02:00Z] from=#2(bob) type=chat id=18 content=line one\\nline two',
  '[2026-03-09T10:05:00Z] from=#3(carol) type=chat id=19 file=files/report.pdf content=see attached',
  '[2026-03-09T11:00:00Z] group=#g7(team) from=#2(bob) type=chat id=20 content=standup in 5',
  '[2026-03-09T11:01:00Z] group=#g7(team) from=#3(carol) type=chat id=21 content=ok',
  '[2026-03-09T11:02:00Z] group=#g7(team) to=#g7(team) type=chat content=on my way',
  "[2026-03-10T08:00:00Z] from=#4(dave) type=friend_request id=22 content=hi, let's be friends",
  '[2026-03-10T12:00:00Z] from=#2(bob) type=chat id=23 content=back\\\\slash C:\\\\temp',
];

export const CHANNEL_LOG = [
  '2026-03-10T07:58:00Z connected stream opened',
  '2026-03-10T07:58:30Z server keepalive',
  '2026-03-10T07:58:40Z disconnected socket closed (ECONNRESET)',
  '2026-03-10T07:58:41Z reconnecting attempt 1 in 1.2s',
  '2026-03-10T07:59:00Z recovered resumed from id 21',
];

export const INBOX_PUSHED = [
  '## 2026-03-10T12:00:00Z id=23',
  '[2026-03-10 12:00:00] from bob (#2): back\\slash',
  '',
].join('\n');

export interface SeedOptions {
  /** Extra conversation lines appended after the standard ones. */
  extraLines?: string[];
  /** Files to leave out. */
  omit?: string[];
  /** groups.json content instead of GROUPS. */
  groups?: unknown;
}

/** Writes every data file (and a config.json that must never be served) into `dir`. */
export async function seedDataDir(dir: string, options: SeedOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files: Record<string, string> = {
    'profile.json': JSON.stringify(PROFILE, null, 2),
    'contacts.json': JSON.stringify(CONTACTS, null, 2),
    'stats.json': JSON.stringify(STATS, null, 2),
    'context_snapshot.json': JSON.stringify(SNAPSHOT, null, 2),
    'groups.json': JSON.stringify(options.groups ?? GROUPS, null, 2),
    'conversations.md': [...CONVERSATION_LINES, ...(options.extraLines ?? [])].join('\n') + '\n',
    'sse_channel.log': CHANNEL_LOG.join('\n') + '\n',
    'inbox_pushed.md': INBOX_PUSHED,
    'config.json': JSON.stringify({ base_url: 'http://127.0.0.1:8000', token: 'SECRET-TOKEN-abc123' }),
  };
  for (const [name, text] of Object.entries(files)) {
    if (!options.omit?.includes(name)) await writeFile(join(dir, name), text);
  }
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  raw: string;
}

/**
 * Sends `request` byte for byte on a fresh TCP connection (append `Connection: close`) and parses the
 * reply. Header names are lower-cased.
 */
export function rawRequest(port: number, request: string, host = '127.0.0.1'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
    socket.on('connect', () => socket.write(request));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const split = raw.indexOf('\r\n\r\n');
      const head = split === -1 ? raw : raw.slice(0, split);
      const body = split === -1 ? '' : raw.slice(split + 4);
      const [statusLine = '', ...lines] = head.split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status, headers, body, raw });
    });
  });
}

/** `GET <target>` with the right Host unless one is given (null = no Host header at all). */
export function get(
  port: number,
  target: string,
  opts: { method?: string; host?: string | null; headers?: string[]; version?: string } = {},
): Promise<RawResponse> {
  const lines = [`${opts.method ?? 'GET'} ${target} ${opts.version ?? 'HTTP/1.1'}`];
  const host = opts.host === undefined ? `127.0.0.1:${port}` : opts.host;
  if (host !== null) lines.push(`Host: ${host}`);
  lines.push(...(opts.headers ?? []), 'Connection: close', '', '');
  return rawRequest(port, lines.join('\r\n'));
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** How long a test waits for the page (a poll of the data files, an element). */
export const WAIT = { timeout: 15_000 };

export interface Opened {
  page: Page;
  ctx: BrowserContext;
  dialogs: string[];
  /** uncaught exceptions in the page */
  pageErrors: string[];
  /** console errors (CSP violations, failed loads, …) */
  consoleErrors: string[];
  /** both of the above, in the order they happened */
  errors: string[];
  /** main-frame navigations so far (1 after the first load) */
  navigations: () => number;
}

export interface OpenOptions {
  /** Over the defaults: 1280×800, UTC, en-US. */
  context?: BrowserContextOptions;
  /** The page's poll interval in seconds, unless the page already chose one (null: the page's default). */
  refresh?: number | null;
}

export interface BrowserSuite {
  browser: Browser;
  /** Run after the file's tests, newest first (their errors ignored). */
  cleanups: Array<() => Promise<unknown>>;
  /** A fresh temp data folder (`prepare` fills it; without it the folder does not exist) and serve_ui on it. */
  serve(
    prefix: string,
    prepare?: (dataDir: string) => Promise<void>,
  ): Promise<{ ui: UiServer; dataDir: string }>;
  /** A new browser context on `url`, recording dialogs and errors; resolves after the first poll. */
  open(url: string, options?: OpenOptions): Promise<Opened>;
}

/** Waits for the first completed poll of the data files after a (re)load. */
export async function ready(page: Page): Promise<void> {
  await page.waitForFunction(() => Number(document.documentElement.dataset.updates ?? 0) >= 1, null, WAIT);
}

/** Registers the file's hooks: Chromium launched before the tests, everything closed after them. */
export function browserSuite(): BrowserSuite {
  let browser: Browser | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)`,
      );
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
    await browser?.close();
  });
  const suite: BrowserSuite = {
    get browser(): Browser {
      if (!browser) throw new Error('the browser is not launched yet (its beforeAll has not run or failed)');
      return browser;
    },
    cleanups,
    async serve(prefix, prepare) {
      const { dir, cleanup } = await tempDir(prefix);
      cleanups.push(cleanup);
      const dataDir = join(dir, 'openwechat_im_client');
      if (prepare) await prepare(dataDir);
      const ui = await startUiServer({ port: 0, dataDir, htmlPath: HTML_PATH });
      cleanups.push(() => ui.close());
      return { ui, dataDir };
    },
    async open(url, options = {}) {
      const ctx = await suite.browser.newContext({
        viewport: { width: 1280, height: 800 },
        timezoneId: 'UTC',
        locale: 'en-US',
        ...options.context,
      });
      cleanups.push(() => ctx.close());
      const refresh = options.refresh === undefined ? 1 : options.refresh;
      if (refresh !== null) {
        await ctx.addInitScript((seconds: number) => {
          try {
            if (localStorage.getItem('openwechat.ui.refresh') === null) {
              localStorage.setItem('openwechat.ui.refresh', String(seconds));
            }
          } catch {
            /* about:blank */
          }
        }, refresh);
      }
      const page = await ctx.newPage();
      const opened: Opened = {
        page,
        ctx,
        dialogs: [],
        pageErrors: [],
        consoleErrors: [],
        errors: [],
        navigations: () => navigations,
      };
      let navigations = 0;
      page.on('dialog', (d) => {
        opened.dialogs.push(`${d.type()}: ${d.message()}`);
        void d.dismiss().catch(() => {});
      });
      page.on('pageerror', (e) => {
        opened.pageErrors.push(String(e));
        opened.errors.push(String(e));
      });
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        opened.consoleErrors.push(m.text());
        opened.errors.push(m.text());
      });
      page.on('framenavigated', (f) => {
        if (f === page.mainFrame()) navigations += 1;
      });
      await page.goto(url + '/');
      await ready(page);
      return opened;
    },
  };
  return suite;
}
