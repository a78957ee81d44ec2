// sent.idx: the relay ids of what this user sent, and which of them were delivered (docs/skill-data.md).
// conversations.md lines carry no ids and their grammar is the guide's, so — like conversations.idx for what
// was received — the ids live beside the lines, in a sidecar the guide's readers never see:
//
//   s <to_id> <message_id> <line key>    a sent message (one per group member's copy), written with its line
//   d <to_id> <message_id> <delivered>   a receipt said it was delivered (ISO time), written when learned
//
// Append-only; the last `d` for an id wins. Entries for ids the relay gave; the reference relay gives none, so
// lines sent through it have no entry (shown as unknown). Losing a `d` entry costs nothing: the `sent`
// command asks the relay again (GET /sent/…), so `d` entries are appended without fsync.

import { appendFile, readFile } from 'node:fs/promises';
import type { Receipt } from '@openwechat/client';
import { appendDurable } from './atomic.ts';
import { dataPath } from './paths.ts';

export interface SentCopy {
  toId: number;
  messageId: number;
}

export interface SentIndex {
  /** conversations.md line key → the copies that line was sent as (one for a direct message). */
  byKey: Map<string, SentCopy[]>;
  /** `<to_id>:<message_id>` → ISO time of delivery. */
  delivered: Map<string, string>;
}

const ENTRY_RE = /^(s|d) (\d+) (\d+) (\S+)$/;

export const copyKey = (c: SentCopy): string => `${c.toId}:${c.messageId}`;

export async function readSentIndex(dir: string): Promise<SentIndex> {
  const text = await readFile(dataPath(dir, 'sentIds'), 'utf8').catch(() => '');
  const index: SentIndex = { byKey: new Map(), delivered: new Map() };
  for (const line of text.split('\n')) {
    const m = ENTRY_RE.exec(line);
    if (!m) continue; // a torn last line, or a newer skill's entry kind
    const copy = { toId: Number(m[2]), messageId: Number(m[3]) };
    if (m[1] === 's') {
      const list = index.byKey.get(m[4]!) ?? [];
      if (!list.some((c) => copyKey(c) === copyKey(copy))) list.push(copy);
      index.byKey.set(m[4]!, list);
    } else index.delivered.set(copyKey(copy), m[4]!);
  }
  return index;
}

/** Records the relay ids of a sent line (after the line itself: a line without entry is just "unknown"). */
export async function recordSentCopies(dir: string, key: string, copies: readonly SentCopy[]): Promise<void> {
  if (!copies.length) return;
  await appendDurable(
    dataPath(dir, 'sentIds'),
    copies.map((c) => `s ${c.toId} ${c.messageId} ${key}\n`).join(''),
  );
}

/** Records the delivered ones among these receipts (from the daemon's stream or a query). */
export async function recordDelivered(dir: string, receipts: readonly Receipt[]): Promise<number> {
  const lines = receipts
    .filter((r) => r.state === 'delivered' && r.at !== null)
    .map((r) => `d ${r.toId} ${r.messageId} ${new Date(r.at!).toISOString()}\n`);
  if (lines.length) await appendFile(dataPath(dir, 'sentIds'), lines.join(''), { mode: 0o600 });
  return lines.length;
}
