// The demo UI's script: polls the whitelisted data files from serve_ui every N seconds and renders them
// (conversations in three layouts and three splits, contacts, status, the raw files). The skill build
// bundles it for the browser and inlines it into demo_ui.html (build.ts); start() runs it on the page.

import { avatar, byId, emptyState, h, type Kid } from './dom.ts';
import { hasKey, translate, type Key, type Lang } from './i18n.ts';
import {
  buckets,
  channelLines,
  channelStatus,
  contactsOf,
  dayKey,
  groupsOf,
  isNewer,
  isObject,
  seenAfter,
  str,
  toMessages,
  whoAmI,
  type Bucket,
  type Contact,
  type Group,
  type Json,
  type Msg,
  type Seen,
  type Split,
} from './model.ts';

const FILES = [
  'conversations.md',
  'contacts.json',
  'profile.json',
  'stats.json',
  'context_snapshot.json',
  'groups.json',
  'sse_channel.log',
  'inbox_pushed.md',
];
/** Files every refresh needs; inbox_pushed.md is only fetched for the raw viewer. */
const LIVE_FILES = FILES.filter((f) => f !== 'inbox_pushed.md');
const PAGE_SIZE = 300;
const REFRESH_CHOICES = [1, 3, 5, 10, 30, 60, 0];
/** The choices of the two segmented controls (#layout, #split) and their labels. */
const LAYOUT_LABELS = { bubble: 'layoutBubble', card: 'layoutCard', table: 'layoutTable' } as const;
const SPLIT_LABELS: Readonly<Record<Split, Key>> = {
  friend: 'splitFriend',
  session: 'splitSession',
  time: 'splitTime',
};
const LAYOUTS = Object.keys(LAYOUT_LABELS) as Layout[];
const SPLITS = Object.keys(SPLIT_LABELS) as Split[];
const TABS = ['conversations', 'contacts', 'status', 'raw'] as const;

type Layout = keyof typeof LAYOUT_LABELS;
type Tab = (typeof TABS)[number];

interface FileEntry {
  status: 'ok' | 'missing' | 'error';
  text?: string;
  etag?: string | null;
  json?: Json | null;
  /** The file is not valid JSON (half written?): `json` is the last good copy. */
  jsonError?: boolean;
}

interface State {
  lang: Lang;
  layout: Layout;
  split: Split;
  refresh: number;
  tab: Tab;
  rawFile: string;
  selection: Record<Split, string | null>;
  showAll: boolean;
  seen: Record<string, Seen>;
  files: Record<string, FileEntry | undefined>;
  msgs: Msg[];
  online: boolean;
  updatedAt: number | null;
  loaded: boolean;
  updates: number;
}

// ---------- persistence ----------
const LS = 'openwechat.ui.';

function load(key: string): unknown {
  try {
    const v = localStorage.getItem(LS + key);
    return v === null ? undefined : JSON.parse(v);
  } catch {
    return undefined;
  }
}

function save(key: string, value: unknown): void {
  try {
    localStorage.setItem(LS + key, JSON.stringify(value));
  } catch {
    /* private mode or quota: settings just are not remembered */
  }
}

function oneOf<T>(value: unknown, allowed: readonly T[], fallback: T): T {
  return allowed.includes(value as T) ? (value as T) : fallback;
}

function browserLang(): Lang {
  const first = navigator.languages?.[0] ?? navigator.language ?? '';
  return /^zh\b/i.test(first) ? 'zh' : 'en';
}

function loadSeen(): Record<string, Seen> {
  const v = load('seen');
  return isObject(v) ? (v as Record<string, Seen>) : {};
}

let state: State;

// ---------- helpers ----------
function t(key: Key | string, params?: Record<string, string | number>): string {
  return translate(state.lang, key, params);
}

const locale = (): string => (state.lang === 'zh' ? 'zh-CN' : 'en-GB');

function fmt(ts: number, opts: Intl.DateTimeFormatOptions): string {
  if (!Number.isFinite(ts)) return '';
  try {
    return new Intl.DateTimeFormat(locale(), opts).format(new Date(ts));
  } catch {
    return new Date(ts).toISOString();
  }
}
const fmtTime = (ts: number): string => fmt(ts, { hour: '2-digit', minute: '2-digit' });
const fmtDate = (ts: number): string =>
  fmt(ts, { year: 'numeric', month: 'short', day: 'numeric', weekday: 'short' });
const fmtDateTime = (ts: number): string =>
  fmt(ts, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

function fmtIso(iso: unknown): string {
  if (!iso) return '—';
  const ts = Date.parse(str(iso));
  return Number.isFinite(ts) ? fmtDateTime(ts) : str(iso);
}

function shortWhen(ts: number): string {
  return dayKey(ts) === dayKey(Date.now()) ? fmtTime(ts) : fmt(ts, { month: 'short', day: 'numeric' });
}

// ---------- derived data ----------
function fileJson(name: string): Json | null {
  const f = state.files[name];
  return f?.status === 'ok' && f.json ? f.json : null;
}

function fileOk(name: string): boolean {
  return state.files[name]?.status === 'ok';
}

const me = (): { id: string; name: string } | null =>
  whoAmI(fileJson('profile.json'), fileJson('context_snapshot.json'));
const contactsList = (): Contact[] => contactsOf(fileJson('contacts.json'));
const groupsList = (): Group[] => groupsOf(fileJson('groups.json'));

function contactById(id: string): Contact | null {
  return contactsList().find((c) => c.id === id) ?? null;
}

/** A group by its key in conversations.md (`g7`). */
function groupByKey(gkey: string): Group | null {
  return groupsList().find((g) => `g${g.id}` === gkey) ?? null;
}

function memberCountText(g: Group | null): string {
  if (!g || g.memberCount === null) return '';
  return g.memberCount === 1 ? t('groupMember1') : t('groupMembers', { n: g.memberCount });
}

function currentChannel(): ReturnType<typeof channelStatus> {
  const log = state.files['sse_channel.log'];
  return channelStatus(log?.status === 'ok' ? (log.text ?? '') : null, fileJson('stats.json'));
}

function convName(key: string, sample: Msg | null): string {
  if (key === 'sys') return t('system');
  if (key.startsWith('g:')) {
    const g = groupByKey(key.slice(2));
    if (g?.name) return g.name;
    return sample?.group?.name || key.slice(2);
  }
  const c = contactById(key.slice(2));
  if (c?.name) return c.name;
  return sample?.peer?.name || `#${key.slice(2)}`;
}

function isUnread(m: Msg): boolean {
  return m.dir === 'in' && isNewer(m, state.seen[m.key]);
}

/** Opening messages marks them read: each conversation's last-seen mark moves forward, never back. */
function markRead(msgs: Msg[]): void {
  let changed = false;
  for (const m of msgs) {
    if (!isUnread(m)) continue;
    state.seen[m.key] = seenAfter(m, state.seen[m.key]);
    changed = true;
  }
  if (changed) save('seen', state.seen);
}

function currentBuckets(): Bucket[] {
  return buckets(state.msgs, state.split, groupsList(), convName, isUnread);
}

// ---------- fetching ----------
async function fetchFile(name: string): Promise<boolean> {
  const prev = state.files[name];
  const headers: Record<string, string> =
    prev?.status === 'ok' && prev.etag ? { 'If-None-Match': prev.etag } : {};
  const res = await fetch(`data/${name}`, { cache: 'no-store', headers });
  if (res.status === 304 && prev?.status === 'ok') return false;
  if (res.status === 404) {
    state.files[name] = { status: 'missing' };
    return prev?.status !== 'missing';
  }
  if (!res.ok) {
    state.files[name] = { status: 'error' };
    return true;
  }
  const text = await res.text();
  if (prev?.status === 'ok' && prev.text === text) {
    prev.etag = res.headers.get('ETag');
    return false;
  }
  const entry: FileEntry = { status: 'ok', text, etag: res.headers.get('ETag') };
  if (name.endsWith('.json')) {
    try {
      const json: unknown = JSON.parse(text);
      entry.json = isObject(json) ? json : null;
    } catch {
      // A half-written file should not blank the page: keep the last good parse.
      entry.json = prev?.json ?? null;
      entry.jsonError = true;
    }
  }
  state.files[name] = entry;
  return true;
}

let inFlight: Promise<void> | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;

function readMessages(): Msg[] {
  const conv = state.files['conversations.md'];
  if (conv?.status !== 'ok') return [];
  const who = me();
  const myId = who && /^\d+$/.test(who.id) ? Number(who.id) : null;
  return toMessages(conv.text ?? '', myId, (id) => contactById(id)?.name ?? '');
}

function refresh(): Promise<void> {
  if (inFlight) return inFlight;
  inFlight = (async () => {
    const names = LIVE_FILES.slice();
    if (state.tab === 'raw' && !names.includes(state.rawFile)) names.push(state.rawFile);
    try {
      const changed = await Promise.all(names.map(fetchFile));
      state.online = true;
      state.updatedAt = Date.now();
      state.updates += 1;
      if (changed.some(Boolean) || !state.loaded) {
        state.loaded = true;
        state.msgs = readMessages();
        renderAll();
      } else {
        renderFooter();
      }
    } catch {
      state.online = false;
      renderBanner();
    } finally {
      inFlight = null;
      // A completed poll, for people and tests alike (<html data-updates="N">).
      document.documentElement.dataset.updates = String(state.updates);
    }
  })();
  return inFlight;
}

function schedule(): void {
  clearTimeout(timer);
  if (state.refresh > 0) {
    timer = setTimeout(() => {
      void refresh().then(schedule);
    }, state.refresh * 1000);
  }
}

// ---------- rendering ----------
function applyI18n(): void {
  document.documentElement.lang = state.lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]'))
    el.textContent = t(el.dataset.i18n ?? '');
  const refreshSelect = byId<HTMLSelectElement>('refresh');
  for (const opt of refreshSelect.options) {
    const n = Number(opt.value);
    opt.textContent = n > 0 ? t('everyN', { n }) : t('paused');
  }
  byId<HTMLSelectElement>('lang').value = state.lang;
  refreshSelect.value = String(state.refresh);
}

function renderControls(): void {
  for (const b of document.querySelectorAll<HTMLElement>('#layout button'))
    b.setAttribute('aria-pressed', String(b.dataset.value === state.layout));
  for (const b of document.querySelectorAll<HTMLElement>('#split button'))
    b.setAttribute('aria-pressed', String(b.dataset.value === state.split));
  for (const b of document.querySelectorAll<HTMLElement>('#tabs button'))
    b.setAttribute('aria-selected', String(b.dataset.tab === state.tab));
  for (const id of TABS) byId(`tab-${id}`).hidden = id !== state.tab;
}

function renderHeader(): void {
  const who = me();
  const p = fileJson('profile.json');
  const meEl = byId('me');
  meEl.replaceChildren();
  if (who) {
    meEl.append(
      avatar(`u:${who.id}`, who.name, 'user', true),
      h('strong', { text: who.name || t('unknown') }),
      h('span', { text: `#${who.id}` }),
    );
    if (p?.status) meEl.append(h('span', { class: 'tag', text: str(p.status) }));
  }
  const st = currentChannel();
  const pill = byId('sse');
  pill.dataset.state = st ? st.state : 'unknown';
  byId('sse-text').textContent = ` ${t(`st_${st ? st.state : 'unknown'}`)}`;
  byId('sse-since').textContent =
    st && Number.isFinite(st.ts) ? ` · ${t('since', { t: fmtDateTime(st.ts) })}` : '';
  pill.title = st ? [st.time, st.state, st.details].filter(Boolean).join(' ') : '';
}

function renderBanner(): void {
  const b = byId('banner');
  const notes: string[] = [];
  if (location.protocol === 'file:') notes.push(t('fileProtocol'));
  else if (!state.online) notes.push(t('offline'));
  for (const name of FILES) if (state.files[name]?.jsonError) notes.push(t('badJson', { f: name }));
  b.hidden = notes.length === 0;
  b.textContent = notes.join(' ');
}

function renderFooter(): void {
  byId('updated').textContent =
    state.updatedAt !== null
      ? t('updatedAt', { t: fmt(state.updatedAt, { hour: '2-digit', minute: '2-digit', second: '2-digit' }) })
      : '';
  byId('data-note').textContent = state.refresh > 0 ? t('everyN', { n: state.refresh }) : t('paused');
  renderBanner();
}

function totalUnread(): number {
  return state.msgs.filter(isUnread).length;
}

function peerLabel(m: Msg): string {
  if (m.dir === 'sys') return t('system');
  if (m.dir === 'out') return t('you');
  return (m.peer && (m.peer.name || `#${m.peer.id}`)) || t('unknown');
}

function targetLabel(m: Msg): string {
  if (m.group) return m.group.name || `#${m.group.id}`;
  if (m.dir === 'out') return (m.peer && (m.peer.name || `#${m.peer.id}`)) || t('unknown');
  if (m.dir === 'sys') return '';
  return t('you');
}

function typeTag(m: Msg): HTMLElement | null {
  return m.type === 'chat' ? null : h('span', { class: `tag t-${m.type}`, text: t(`type_${m.type}`) });
}

function fileLine(m: Msg): HTMLElement | null {
  return m.file
    ? h('div', { class: 'file' }, h('span', { class: 'file-label', text: t('file') }), m.file)
    : null;
}

function msgAttrs(m: Msg, cls: string): { class: string; dataset: Record<string, string> } {
  return {
    class: `${cls} msg ${m.dir}${m.mentioned ? ' mentioned' : ''}`,
    dataset: {
      dir: m.dir,
      key: m.key,
      id: m.id === null ? '' : String(m.id),
      unread: String(isUnread(m)),
      mentioned: String(m.mentioned),
    },
  };
}

/** The "@ you" marker of a group message that mentioned me. */
function mentionTag(m: Msg): HTMLElement | null {
  return m.mentioned
    ? h('span', { class: 'mention', title: t('mentionedTitle'), text: t('mentioned') })
    : null;
}

/** A table header cell; the free-text column takes the spare width. */
function th(key: Key): HTMLTableCellElement {
  return h('th', {
    text: t(key),
    class: ['thContent', 'thDetails', 'thDescription'].includes(key) ? 'fill' : null,
  });
}

function renderBubbles(list: Msg[], showPeer: boolean): HTMLElement {
  const wrap = h('div', { class: 'bubbles' });
  const who = me();
  let day: string | null = null;
  for (const m of list) {
    const d: string | null = Number.isFinite(m.ts) ? dayKey(m.ts) : day;
    if (d !== day) {
      day = d;
      wrap.append(h('div', { class: 'day-sep', text: fmtDate(m.ts) }));
    }
    const when = h('time', { datetime: m.time, title: m.time, text: fmtTime(m.ts) });
    if (m.dir === 'sys') {
      wrap.append(
        h(
          'div',
          msgAttrs(m, 'notice'),
          h('div', { class: 'bubble-meta' }, typeTag(m), when),
          h('div', { class: 'msg-content', text: m.content }),
          fileLine(m),
        ),
      );
      continue;
    }
    const name = peerLabel(m);
    const meta: Kid[] = [];
    if (m.dir === 'in' && (m.group || showPeer)) meta.push(h('strong', { text: name }));
    if (m.dir === 'out' && showPeer) meta.push(h('span', { text: `→ ${targetLabel(m)}` }));
    if (m.dir === 'in' && m.group && showPeer) meta.push(h('span', { text: `· ${targetLabel(m)}` }));
    meta.push(typeTag(m), mentionTag(m), when);
    const av =
      m.dir === 'out'
        ? avatar(`u:${who?.id || 'me'}`, who?.name || t('you'), 'user', true)
        : avatar(`u:${m.peer ? m.peer.id : '?'}`, name, 'user', true);
    wrap.append(
      h(
        'div',
        msgAttrs(m, 'row'),
        av,
        h(
          'div',
          { class: 'bubble-wrap' },
          h('div', { class: 'bubble-meta' }, meta),
          h('div', { class: 'bubble' }, h('div', { class: 'msg-content', text: m.content }), fileLine(m)),
        ),
      ),
    );
  }
  return wrap;
}

function renderCards(list: Msg[]): HTMLElement {
  const wrap = h('div', { class: 'cards' });
  for (const m of list) {
    const who = m.dir === 'sys' ? t('system') : `${peerLabel(m)} → ${targetLabel(m)}`;
    wrap.append(
      h(
        'article',
        msgAttrs(m, 'card'),
        h(
          'header',
          null,
          h('span', { class: 'who', text: who }),
          typeTag(m),
          mentionTag(m),
          h('time', { datetime: m.time, title: m.time, text: fmtDateTime(m.ts) }),
        ),
        h('div', { class: 'msg-content', text: m.content }),
        m.id !== null || m.file
          ? h('footer', null, m.id !== null ? h('span', { text: `id ${m.id}` }) : null, fileLine(m))
          : null,
      ),
    );
  }
  return wrap;
}

function renderTable(list: Msg[]): HTMLElement {
  const body = h('tbody');
  for (const m of list) {
    body.append(
      h(
        'tr',
        msgAttrs(m, 'trow'),
        h('td', { class: 'nowrap', title: m.time, text: fmtDateTime(m.ts) }),
        h('td', { class: 'nowrap', text: peerLabel(m) }),
        h('td', { class: 'nowrap', text: targetLabel(m) }),
        h('td', { class: 'nowrap' }, h('span', { class: `tag t-${m.type}`, text: t(`type_${m.type}`) })),
        h('td', null, mentionTag(m), h('div', { class: 'msg-content', text: m.content }), fileLine(m)),
      ),
    );
  }
  return h(
    'table',
    { class: 'msgs' },
    h('thead', null, h('tr', null, (['thTime', 'thFrom', 'thTo', 'thType', 'thContent'] as const).map(th))),
    body,
  );
}

function countText(n: number): string {
  return n === 1 ? t('member1') : t('members', { n });
}

function bucketTitle(b: Bucket): string {
  if (b.kind === 'day') return b.last && Number.isFinite(b.last.ts) ? fmtDate(b.last.ts) : '—';
  return b.name;
}

function bucketSub(b: Bucket): string {
  const m = b.last;
  if (!m) return memberCountText(groupByKey((b.key ?? '').slice(2)));
  if (state.split === 'session') {
    const a = fmtTime(b.first ? b.first.ts : NaN);
    const z = fmtTime(m.ts);
    return `${a === z ? a : `${a}–${z}`} · ${countText(b.msgs.length)}`;
  }
  if (b.kind === 'day')
    return t('sessionsOf', { n: b.msgs.length, c: new Set(b.msgs.map((x) => x.key)).size });
  const prefix = m.dir === 'out' ? `${t('you')}: ` : b.kind === 'group' && m.peer ? `${m.peer.name}: ` : '';
  return prefix + (m.file && !m.content ? `${t('file')}: ${m.file}` : m.content.replace(/\s+/g, ' '));
}

function renderConvItem(b: Bucket, selId: string | null, pane: HTMLElement): HTMLElement {
  const group = b.kind === 'group' ? groupByKey((b.key ?? '').slice(2)) : null;
  const side = h(
    'span',
    { class: 'conv-side' },
    h('span', { text: b.kind !== 'day' && b.last && Number.isFinite(b.last.ts) ? shortWhen(b.last.ts) : '' }),
    h(
      'span',
      { class: 'side-marks' },
      b.msgs.some((m) => m.mentioned && isUnread(m))
        ? h('span', { class: 'mention', title: t('mentionedTitle'), text: '@' })
        : null,
      b.unread > 0
        ? h('span', {
            class: 'badge',
            'aria-label': `${b.unread} unread`,
            text: b.unread > 99 ? '99+' : b.unread,
          })
        : null,
    ),
  );
  return h(
    'button',
    {
      type: 'button',
      class: 'conv-item',
      'aria-current': String(b.id === selId),
      dataset: { id: b.id, kind: b.kind, unread: String(b.unread) },
      onclick: () => {
        state.selection[state.split] = b.id;
        state.showAll = false;
        renderConversations();
        pane.scrollTop = pane.scrollHeight;
      },
    },
    avatar(b.key ?? b.id, b.name, b.kind),
    h(
      'span',
      { class: 'conv-main' },
      h(
        'span',
        { class: 'conv-name' },
        h('span', { class: 'conv-title', text: bucketTitle(b) }),
        b.kind === 'group' ? h('span', { class: 'tag kind-group', text: t('group') }) : null,
        group ? h('span', { class: 'conv-members', text: memberCountText(group) }) : null,
      ),
      h('span', { class: 'conv-preview', text: bucketSub(b) }),
    ),
    side,
  );
}

function renderConvHeader(sel: Bucket): void {
  const sub: Kid[] = [];
  const key = sel.key ?? '';
  if (sel.kind === 'user') {
    const c = contactById(key.slice(2));
    sub.push(h('span', { class: 'sub', text: `#${key.slice(2)}` }));
    if (c?.relationship)
      sub.push(h('span', { class: `tag r-${c.relationship}`, text: t(`rel_${c.relationship}`) }));
    if (c?.description) sub.push(h('span', { class: 'sub', text: c.description }));
  } else if (sel.kind === 'group') {
    const g = groupByKey(key.slice(2));
    sub.push(h('span', { class: 'tag kind-group', text: t('group') }));
    sub.push(h('span', { class: 'sub', text: `#${key.slice(2)}` }));
    if (g) {
      sub.push(h('span', { class: 'sub members', text: memberCountText(g) }));
      if (g.role === 'owner') sub.push(h('span', { class: 'sub', text: t('groupOwner') }));
      if (g.description) sub.push(h('span', { class: 'sub', text: g.description }));
    }
  }
  if (state.split === 'session') {
    sub.push(
      h('span', { class: 'sub', text: `${fmtDate(sel.first ? sel.first.ts : NaN)} · ${bucketSub(sel)}` }),
    );
  } else sub.push(h('span', { class: 'sub', text: countText(sel.msgs.length) }));
  byId('conv-header').replaceChildren(
    avatar(sel.key ?? sel.id, sel.name, sel.kind),
    h(
      'div',
      null,
      h('div', { class: 'title', text: bucketTitle(sel) }),
      h('div', { class: 'conv-sub' }, sub),
    ),
  );
}

function renderMessages(sel: Bucket, pane: HTMLElement): void {
  const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
  const prevTop = pane.scrollTop;
  pane.dataset.layout = state.layout;
  if (sel.msgs.length === 0) {
    pane.replaceChildren(h('p', { class: 'empty-line', text: t('noGroupMessages') }));
    return;
  }
  let shown = sel.msgs;
  let more: HTMLElement | null = null;
  if (!state.showAll && shown.length > PAGE_SIZE) {
    const hiddenCount = shown.length - PAGE_SIZE;
    shown = shown.slice(-PAGE_SIZE);
    more = h('button', {
      type: 'button',
      class: 'btn more',
      text: t('showEarlier', { n: hiddenCount }),
      onclick: () => {
        state.showAll = true;
        renderConversations();
      },
    });
  }
  const body =
    state.layout === 'card'
      ? renderCards(shown)
      : state.layout === 'table'
        ? renderTable(shown)
        : renderBubbles(shown, state.split === 'time');
  pane.replaceChildren(...(more ? [more, body] : [body]));
  pane.scrollTop = atBottom ? pane.scrollHeight : prevTop;
}

function renderConversations(): void {
  const list = byId('conv-list');
  const pane = byId('messages');
  const header = byId('conv-header');
  const empty = byId('conv-empty');
  const unreadTotal = byId('unread-total');
  const conv = state.files['conversations.md'];
  if (conv?.status !== 'ok' || state.msgs.length === 0) {
    const nothing = FILES.every((f) => !fileOk(f));
    empty.replaceChildren(
      nothing
        ? emptyState('✉', t('noDataTitle'), t('noDataBody'))
        : emptyState('✉', t('noMessagesTitle'), t('noMessagesBody')),
    );
    empty.hidden = false;
    byId('conv').hidden = true;
    unreadTotal.hidden = true;
    document.title = 'openwechat';
    return;
  }
  empty.hidden = true;
  byId('conv').hidden = false;

  const all = currentBuckets();
  const selId = state.selection[state.split];
  const sel = all.find((b) => b.id === selId) ?? null;
  // Looking at a conversation reads it (only while the page is actually visible).
  if (sel && state.tab === 'conversations' && document.visibilityState !== 'hidden') {
    markRead(sel.msgs);
    for (const b of all) b.unread = b.msgs.filter(isUnread).length;
  }

  const listScroll = list.scrollTop;
  list.replaceChildren(...all.map((b) => renderConvItem(b, selId, pane)));
  list.scrollTop = listScroll;

  const total = totalUnread();
  unreadTotal.hidden = total === 0;
  unreadTotal.textContent = total > 99 ? '99+' : String(total);
  document.title = `${total > 0 ? `(${total}) ` : ''}openwechat`;

  header.hidden = !sel;
  if (!sel) {
    header.replaceChildren();
    pane.replaceChildren(
      emptyState(
        '←',
        t('pickConversation'),
        t('pickConversationBody', { n: new Set(state.msgs.map((m) => m.key)).size, u: total }),
      ),
    );
    return;
  }
  renderConvHeader(sel);
  renderMessages(sel, pane);
}

function relationshipLabel(r: string): string {
  return hasKey(`rel_${r}`) ? t(`rel_${r}`) : r;
}

function renderContacts(): void {
  const root = byId('contacts');
  if (!fileOk('contacts.json')) {
    root.replaceChildren(emptyState('☺', t('noContactsTitle'), t('noContactsBody')));
    return;
  }
  const list = contactsList();
  const count = (r: string): number => list.filter((c) => c.relationship === r).length;
  const rows = list
    .slice()
    .sort((a, b) => b.last_message_at.localeCompare(a.last_message_at) || a.name.localeCompare(b.name))
    .map((c) =>
      h(
        'tr',
        {
          class: 'clickable contact',
          dataset: { id: c.id },
          onclick: () => {
            state.tab = 'conversations';
            state.split = 'friend';
            save('split', state.split);
            state.selection.friend = `c:u:${c.id}`;
            renderAll();
          },
        },
        h('td', { class: 'nowrap', text: `#${c.id}` }),
        h(
          'td',
          { class: 'nowrap' },
          h(
            'span',
            { class: 'conv-name' },
            avatar(`u:${c.id}`, c.name, 'user', true),
            h('span', { text: c.name }),
          ),
        ),
        h('td', { text: c.description }),
        h(
          'td',
          { class: 'nowrap' },
          h('span', { class: `tag r-${c.relationship}`, text: relationshipLabel(c.relationship) }),
        ),
        h('td', { class: 'nowrap', text: fmtIso(c.since) }),
        h('td', { class: 'nowrap', text: fmtIso(c.last_message_at) }),
      ),
    );
  root.replaceChildren(
    h(
      'p',
      { class: 'contacts-summary' },
      t('contactsSummary', {
        n: list.length,
        a: count('accepted'),
        p: count('pending_incoming') + count('pending_outgoing'),
        b: count('blocked'),
      }),
    ),
    h(
      'div',
      { class: 'box' },
      h(
        'table',
        { class: 'contacts' },
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            (['thId', 'thName', 'thDescription', 'thRelationship', 'thSince', 'thLastMessage'] as const).map(
              th,
            ),
          ),
        ),
        h('tbody', null, rows),
      ),
    ),
  );
}

/** A value as the status page shows it: absent values as a dash. */
function shown(v: unknown): string {
  return v === undefined || v === null ? '—' : str(v);
}

function stat(label: string, value: unknown, small = false): HTMLElement {
  return h(
    'div',
    { class: 'stat' },
    h('div', { class: 'k', text: label }),
    h('div', { class: `v${small ? ' small' : ''}`, text: shown(value) }),
  );
}

function kv(pairs: Array<[string, unknown]>): HTMLElement {
  return h(
    'dl',
    { class: 'kv' },
    pairs.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: shown(v) })]),
  );
}

function renderStatus(): void {
  const root = byId('status');
  const s = fileJson('stats.json');
  const p = fileJson('profile.json');
  const snap = fileJson('context_snapshot.json');
  const logFile = state.files['sse_channel.log'];
  const ch = currentChannel();
  if (!s && !p && !snap && !fileOk('sse_channel.log')) {
    root.replaceChildren(emptyState('≡', t('noStatsTitle'), t('noStatsBody')));
    return;
  }
  const parts: HTMLElement[] = [];
  const byType = isObject(s?.by_type) ? s.by_type : {};
  parts.push(
    h('h3', { text: t('counters') }),
    h(
      'div',
      { class: 'grid', id: 'stats-counters' },
      stat(t('received'), s?.messages_received),
      stat(t('sent'), s?.messages_sent),
      stat(t('type_chat'), byType.chat),
      stat(t('type_friend_request'), byType.friend_request),
      stat(t('type_system'), byType.system),
      stat(t('type_group'), byType.group),
      stat(t('groupsCount'), fileOk('groups.json') ? groupsList().length : null),
      stat(t('friendsCount'), s?.friends_count),
      stat(t('lastMessageId'), s?.last_message_id),
    ),
  );
  const sse = isObject(s?.sse) ? s.sse : {};
  parts.push(
    h('h3', { text: t('channel') }),
    h(
      'div',
      { class: 'grid', id: 'stats-channel' },
      stat(t('state'), ch ? t(`st_${ch.state}`) : t('st_unknown'), true),
      stat(t('sinceLabel'), ch && Number.isFinite(ch.ts) ? fmtDateTime(ch.ts) : null, true),
      stat(t('reconnects'), sse.reconnects),
      stat(t('mode'), sse.mode, true),
      stat(t('updated'), s ? fmtIso(s.updated_at) : null, true),
    ),
  );
  if (p) {
    const id = p.my_id !== undefined ? `#${str(p.my_id)}` : p.id !== undefined ? `#${str(p.id)}` : null;
    parts.push(
      h('h3', { text: t('profile') }),
      h(
        'div',
        { class: 'box' },
        kv([
          [t('thName'), p.my_name !== undefined ? p.my_name : p.name],
          [t('thId'), id],
          [t('status'), p.status],
          [t('description'), p.description],
          [t('server'), p.base_url],
          [t('registered'), fmtIso(p.registered_at)],
          [t('updated'), fmtIso(p.updated_at_utc || p.updated_at)],
        ]),
      ),
    );
  }
  if (snap) parts.push(...renderSnapshot(snap));
  parts.push(h('h3', { text: t('channelLog') }));
  if (logFile?.status === 'ok') {
    const lines = channelLines(logFile.text ?? '')
      .slice(-200)
      .reverse();
    parts.push(
      h(
        'div',
        { class: 'box' },
        h(
          'table',
          { id: 'channel-log' },
          h('thead', null, h('tr', null, (['thTime', 'thState', 'thDetails'] as const).map(th))),
          h(
            'tbody',
            null,
            lines.map((l) =>
              h(
                'tr',
                null,
                h('td', { class: 'nowrap', title: l.time, text: fmtIso(l.time) }),
                h('td', {
                  class: `nowrap state-text s-${l.state}`,
                  text: hasKey(`st_${l.state}`) ? t(`st_${l.state}`) : l.state,
                }),
                h('td', null, h('div', { class: 'msg-content', text: l.details })),
              ),
            ),
          ),
        ),
      ),
    );
  } else {
    parts.push(h('p', { class: 'empty-line', text: t('noChannelLog') }));
  }
  root.replaceChildren(...parts);
}

function renderSnapshot(snap: Json): HTMLElement[] {
  const unread = isObject(snap.unread_by_contact) ? snap.unread_by_contact : {};
  const unreadText = Object.entries(unread)
    .map(([id, n]) => {
      const name = /^g\d+$/.test(id) ? groupByKey(id)?.name : contactById(id)?.name;
      return `${name ? `${name} ` : ''}#${id}: ${str(n)}`;
    })
    .join(', ');
  const recent = Array.isArray(snap.recent) ? snap.recent.filter(isObject).slice(-10).reverse() : [];
  return [
    h('h3', { text: t('snapshot') }),
    h(
      'div',
      { class: 'box' },
      kv([
        [t('updated'), fmtIso(snap.updated_at)],
        [t('contactsCount'), snap.contacts],
        [t('unreadDaemon'), unreadText || '0'],
      ]),
      recent.length
        ? h(
            'table',
            null,
            h('thead', null, h('tr', null, (['thTime', 'thFrom', 'thType', 'thContent'] as const).map(th))),
            h(
              'tbody',
              null,
              recent.map((r) =>
                h(
                  'tr',
                  null,
                  h('td', { class: 'nowrap', text: fmtIso(r.time) }),
                  h('td', { class: 'nowrap', text: `${str(r.from_name)} #${str(r.from_id)}` }),
                  h('td', { class: 'nowrap', text: t(`type_${str(r.type)}`) }),
                  h('td', null, h('div', { class: 'msg-content', text: str(r.content) })),
                ),
              ),
            ),
          )
        : null,
    ),
  ];
}

function renderRaw(): void {
  byId('raw-files').replaceChildren(
    ...FILES.map((f) =>
      h('button', {
        type: 'button',
        class: 'btn',
        'aria-pressed': String(f === state.rawFile),
        dataset: { file: f },
        text: f,
        onclick: () => {
          state.rawFile = f;
          renderRaw();
          void refresh();
        },
      }),
    ),
  );
  const f = state.files[state.rawFile];
  const pre = byId('raw');
  const meta = byId('raw-meta');
  const top = pre.scrollTop;
  if (!f) {
    meta.textContent = state.rawFile;
    pre.textContent = '';
  } else if (f.status !== 'ok') {
    meta.textContent = state.rawFile;
    pre.textContent = t('rawMissing', { f: state.rawFile });
  } else {
    const text = f.text ?? '';
    meta.textContent = t('rawSize', { f: state.rawFile, n: new TextEncoder().encode(text).length });
    pre.textContent = text || t('rawEmpty');
  }
  pre.scrollTop = top;
}

function renderAll(): void {
  applyI18n();
  renderControls();
  renderHeader();
  renderConversations();
  renderContacts();
  renderStatus();
  renderRaw();
  renderFooter();
}

/** Runs the page: settings from localStorage, the controls wired, the first poll, then one every N seconds. */
export function start(): void {
  state = {
    lang: oneOf(load('lang'), ['en', 'zh'] as const, browserLang()),
    layout: oneOf(load('layout'), LAYOUTS, 'bubble'),
    split: oneOf(load('split'), SPLITS, 'friend'),
    refresh: oneOf(Number(load('refresh') ?? 3), REFRESH_CHOICES, 3),
    tab: 'conversations',
    rawFile: 'conversations.md',
    selection: { friend: null, session: null, time: null },
    showAll: false,
    seen: loadSeen(),
    files: {},
    msgs: [],
    online: true,
    updatedAt: null,
    loaded: false,
    updates: 0,
  };

  // The segmented controls' buttons (labelled by applyI18n through data-i18n).
  for (const [id, labels] of [
    ['layout', LAYOUT_LABELS],
    ['split', SPLIT_LABELS],
  ] as const) {
    byId(id).replaceChildren(
      ...Object.entries(labels).map(([value, i18n]) =>
        h('button', { type: 'button', dataset: { value, i18n } }),
      ),
    );
  }
  byId<HTMLSelectElement>('lang').addEventListener('change', (e) => {
    state.lang = oneOf((e.target as HTMLSelectElement).value, ['en', 'zh'] as const, 'en');
    save('lang', state.lang);
    renderAll();
  });
  byId<HTMLSelectElement>('refresh').addEventListener('change', (e) => {
    state.refresh = oneOf(Number((e.target as HTMLSelectElement).value), REFRESH_CHOICES, 3);
    save('refresh', state.refresh);
    renderFooter();
    schedule();
  });
  byId('refresh-now').addEventListener('click', () => void refresh());
  for (const b of document.querySelectorAll<HTMLElement>('#layout button')) {
    b.addEventListener('click', () => {
      state.layout = oneOf(b.dataset.value, LAYOUTS, state.layout);
      save('layout', state.layout);
      renderControls();
      renderConversations();
    });
  }
  for (const b of document.querySelectorAll<HTMLElement>('#split button')) {
    b.addEventListener('click', () => {
      state.split = oneOf(b.dataset.value, SPLITS, state.split);
      save('split', state.split);
      state.showAll = false;
      renderControls();
      renderConversations();
    });
  }
  for (const b of document.querySelectorAll<HTMLElement>('#tabs button')) {
    b.addEventListener('click', () => {
      state.tab = oneOf(b.dataset.tab, TABS, state.tab);
      renderControls();
      if (state.tab === 'raw') void refresh();
      renderAll();
    });
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') renderConversations();
  });

  applyI18n();
  renderControls();
  renderFooter();
  void refresh().then(schedule);
}
