// Building the page's elements. Data only ever becomes text (textContent, text nodes): no HTML is parsed
// from the data files, and the server's CSP (Trusted Types) makes any `innerHTML = string` throw anyway.

import { str } from './model.ts';

export type Kid = Node | string | number | null | undefined | false | Kid[];

export interface Props {
  class?: string | null;
  /** The element's text. */
  text?: unknown;
  onclick?: () => void;
  dataset?: Record<string, string>;
  /** Any other attribute (true: present and empty; null/undefined/false: absent). */
  [attribute: string]: unknown;
}

function append(el: HTMLElement, kids: Kid[]): void {
  for (const kid of kids) {
    if (Array.isArray(kid)) append(el, kid);
    else if (kid !== null && kid !== undefined && kid !== false)
      el.append(kid instanceof Node ? kid : String(kid));
  }
}

/** Builds an element. Strings become text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props?: Props | null,
  ...kids: Kid[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = str(v);
      else if (k === 'text') el.textContent = str(v);
      else if (k === 'onclick') el.addEventListener('click', v as () => void);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : str(v));
    }
  }
  append(el, kids);
  return el;
}

/** An element of the page's markup; a missing one is a bug in the page, not in the data. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo_ui.html has no #${id}`);
  return el as T;
}

function initial(name: string): string {
  const s = (name || '?').trim();
  return s ? (Array.from(s)[0] ?? '?').toUpperCase() : '?';
}

const AVATAR_COLORS = [
  '#10b981',
  '#f59e0b',
  '#ef4444',
  '#8b5cf6',
  '#06b6d4',
  '#ec4899',
  '#84cc16',
  '#f97316',
];

function avatarColor(key: string): string {
  let n = 0;
  for (const ch of key) n = (n * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return AVATAR_COLORS[n % AVATAR_COLORS.length]!;
}

export function avatar(key: string, name: string, kind: string, small = false): HTMLSpanElement {
  const el = h('span', { class: `avatar ${kind}${small ? ' small' : ''}`, 'aria-hidden': 'true' });
  el.textContent = kind === 'group' ? '#' : kind === 'system' ? '⚙' : kind === 'day' ? '◷' : initial(name);
  if (kind === 'user') el.style.background = avatarColor(key);
  return el;
}

export function emptyState(icon: string, title: string, body: string): HTMLDivElement {
  return h(
    'div',
    { class: 'empty', 'data-empty': 'true' },
    h('div', { class: 'icon', 'aria-hidden': 'true', text: icon }),
    h('h2', { text: title }),
    h('p', { text: body }),
  );
}
