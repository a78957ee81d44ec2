// `openwechat sent`: what this user sent (conversations.md's `.out` lines), each with its delivery state —
// `delivered` (the recipient's client took it), `accepted` (waiting in the recipient's inbox), for a group
// `k/n delivered`, or `unknown` (no relay id: sent through the reference relay, or before receipts).
// The state comes from sent.idx (the daemon writes the receipts its stream gets) and, unless --offline,
// from the relay for what is not known delivered yet (GET /sent/…, recorded in sent.idx too).

import { readFile } from 'node:fs/promises';
import { ClientError } from '@openwechat/client';
import { readContacts } from '../data/contacts.ts';
import { lineKey, parseConversationLine, type ConversationLine } from '../data/formats.ts';
import { dataPath } from '../data/paths.ts';
import { copyKey, readSentIndex, recordDelivered, type SentCopy } from '../data/sent.ts';
import { usageError } from '../output.ts';
import { configured, intArg, str, type Command } from './common.ts';

type State = 'delivered' | 'accepted' | 'partial' | 'unknown';

interface SentRow {
  line: ConversationLine;
  copies: SentCopy[];
  /** Delivery time per copy (copyKey), when known. */
  deliveredAt: Map<string, string>;
  /** Copies the relay no longer knows (expired), or that it said are not ours. */
  gone: Set<string>;
}

function stateOf(r: SentRow): State {
  const live = r.copies.filter((c) => !r.gone.has(copyKey(c)));
  if (!r.copies.length || !live.length) return 'unknown';
  const done = live.filter((c) => r.deliveredAt.has(copyKey(c))).length;
  return done === live.length ? 'delivered' : done === 0 ? 'accepted' : 'partial';
}

function mark(r: SentRow): string {
  const state = stateOf(r);
  const done = r.copies.filter((c) => r.deliveredAt.has(copyKey(c))).length;
  if (r.line.group) return state === 'unknown' ? 'unknown' : `${done}/${r.copies.length} delivered`;
  if (state === 'delivered') return `delivered ${r.deliveredAt.get(copyKey(r.copies[0]!))}`;
  return state;
}

export const sent: Command = {
  usage: 'sent [--to <id>] [--limit <n>] [--offline]',
  summary: 'what you sent, newest last, with its delivery state (delivered / accepted) from receipts',
  options: { to: { type: 'string' }, limit: { type: 'string' }, offline: { type: 'boolean' } },
  async run(ctx) {
    const to = ctx.values.to === undefined ? null : intArg(str(ctx.values.to), '--to');
    const limit = ctx.values.limit === undefined ? 20 : intArg(str(ctx.values.limit), '--limit');
    if (limit > 1000) throw usageError('--limit is at most 1000');
    const text = await readFile(dataPath(ctx.dir, 'conversations'), 'utf8').catch(() => '');
    const lines = text
      .split('\n')
      .map(parseConversationLine)
      .filter((l): l is ConversationLine => l !== null && l.direction === 'out')
      .filter((l) => to === null || (l.group === null && l.peerId === to))
      .slice(-limit);
    const index = await readSentIndex(ctx.dir);
    const rows: SentRow[] = lines.map((line) => ({
      line,
      copies: index.byKey.get(lineKey(line.time, line.fromId, line.content)) ?? [],
      deliveredAt: new Map(),
      gone: new Set(),
    }));
    for (const r of rows)
      for (const c of r.copies) {
        const at = index.delivered.get(copyKey(c));
        if (at) r.deliveredAt.set(copyKey(c), at);
      }

    // Ask the relay about what is not known delivered yet (our relay only).
    let asked = 0;
    let queryError: string | null = null;
    const pending = rows.flatMap((r) =>
      r.copies.filter((c) => !r.deliveredAt.has(copyKey(c))).map((c) => ({ r, c })),
    );
    if (!ctx.values.offline && pending.length) {
      const { client } = await configured(ctx);
      if (!ctx.legacy && (await client.capabilities()).receipts) {
        for (const { r, c } of pending) {
          try {
            const receipt = await client.receipt(c.toId, c.messageId);
            asked++;
            if (receipt.state === 'delivered' && receipt.at !== null) {
              await recordDelivered(ctx.dir, [receipt]);
              r.deliveredAt.set(copyKey(c), new Date(receipt.at).toISOString());
            }
          } catch (err) {
            if (err instanceof ClientError && err.code === 'receipt_not_found') r.gone.add(copyKey(c));
            else {
              queryError = (err as Error).message;
              break; // the relay is unreachable: show what is known
            }
          }
        }
      }
    }

    const names = await readContacts(ctx.dir);
    ctx.out.result({
      sent: rows.map((r) => ({
        time: r.line.time,
        to: r.line.group ? null : { id: r.line.peerId, name: names.get(r.line.peerId)?.name ?? null },
        group: r.line.group ? Number(r.line.group.id.slice(1)) : null,
        type: r.line.type,
        content: r.line.content,
        state: stateOf(r),
        copies: r.copies.map((c) => ({
          to_id: c.toId,
          message_id: c.messageId,
          delivered_at: r.deliveredAt.get(copyKey(c)) ?? null,
          ...(r.gone.has(copyKey(c)) ? { expired: true } : {}),
        })),
      })),
      queried: asked,
      ...(queryError ? { query_error: queryError } : {}),
    });
    if (!rows.length) ctx.out.say('nothing sent yet');
    for (const r of rows) {
      const target = r.line.group
        ? `#${r.line.group.id}`
        : `#${r.line.peerId}(${names.get(r.line.peerId)?.name ?? ''})`;
      ctx.out.say(`[${r.line.time}] → ${target} ${mark(r)} | ${r.line.content}`);
    }
    if (queryError) ctx.out.say(`(could not ask the relay: ${queryError}; showing what is known locally)`);
  },
};
