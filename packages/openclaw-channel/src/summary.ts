// The "pluggable context" of the skill guide, for OpenClaw: a short, bounded account summary that the
// before_prompt_build hook prepends to the channel's own turns, so the agent knows who has written,
// what is unanswered and which friend requests wait, without a tool call.

import { summaryLine as e2eSummaryLine } from './e2e.ts';
import type { AccountState } from './state.ts';

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m}m`;
  const h = Math.round(m / 60);
  return h < 36 ? `${h}h` : `${Math.round(h / 24)}d`;
}

function ago(ms: number): string {
  return `${span(ms)} ago`;
}

export function renderSummary(
  accountLabel: string,
  state: AccountState,
  now: number,
  maxChars: number,
): string | null {
  if (
    !state.peers.length &&
    !state.pendingRequests.length &&
    !state.notices.length &&
    !state.e2e?.refused &&
    !state.e2e?.plaintextSent
  )
    return null;
  const lines = [`[openwechat relay activity, account ${accountLabel}]`];
  const unread = state.peers.filter((p) => p.unread > 0);
  const total = unread.reduce((n, p) => n + p.unread, 0);
  lines.push(`Unanswered: ${total} message(s) from ${unread.length} correspondent(s).`);
  if (state.pendingRequests.length) {
    const who = state.pendingRequests.map((r) => `${r.name} (id ${r.id})`).join(', ');
    lines.push(`Pending friend requests (a reply accepts): ${who}.`);
  }
  for (const p of state.peers.slice(0, 5)) {
    let line = `- ${p.name} (id ${p.id}): ${p.unread} unread`;
    if (p.lastText) line += `, last ${ago(now - p.lastAt)}: "${p.lastText}"`;
    if (p.lastSent) {
      line += `; last sent ${ago(now - p.lastSent.at)} (message ${p.lastSent.id}), ${
        p.lastSent.delivered !== null ? 'delivered' : 'not delivered yet'
      }`;
    }
    if (p.cooldownUntil && p.cooldownUntil > now) {
      line += ` [loop guard: ${p.suppressed ?? 0} message(s) not answered; pause ends in ${span(p.cooldownUntil - now)}]`;
    }
    lines.push(line);
  }
  for (const n of state.notices.slice(0, 3)) lines.push(`- notice ${ago(now - n.at)}: ${n.text}`);
  const e2e = e2eSummaryLine(state);
  if (e2e) lines.push(e2e);
  let text = lines.join('\n');
  if (text.length > maxChars) text = `${text.slice(0, maxChars - 1)}…`;
  return text;
}
