// Recording what this user sent with the CLI: one `from=<me> type=<kind>.out.to<id>` (or `.out.g<gid>`) line
// in conversations.md, the contact's relationship as the relay's answer implies, and refreshed views.

import type { SendResult } from '@openwechat/client';
import { appendDurable } from './atomic.ts';
import { noteMessageTime, setRelationship, updateContacts, upsertContact } from './contacts.ts';
import { refreshDerived } from './derived.ts';
import { readConfigRaw } from './config.ts';
import { formatConversationLine, lineKey, utcSecond, type LineInput } from './formats.ts';
import { dataPath } from './paths.ts';
import { recordSentCopies, type SentCopy } from './sent.ts';

export async function recordSent(
  dir: string,
  to: { id: number; name: string },
  content: string,
  result: SendResult,
  attachment: string | null,
  now = Date.now(),
): Promise<string> {
  const { line, time } = await appendSent(
    dir,
    { type: result.outcome === 'request' ? 'friend_request' : 'chat', to: to.id, attachment, content },
    // The relay's id of the message (our relay): its receipts are keyed by it.
    result.messageId !== null ? [{ toId: to.id, messageId: result.messageId }] : null,
    now,
  );
  await updateContacts(
    dir,
    (map) => {
      const c = upsertContact(map, { id: to.id, name: to.name || null }, undefined, time);
      noteMessageTime(c, time);
      if (result.outcome === 'request') {
        if (c.relationship !== 'accepted') setRelationship(c, 'pending_outgoing', time);
      } else setRelationship(c, 'accepted', time);
    },
    now,
  );
  await refreshDerived(dir, { now });
  return line;
}

/** Appends this user's `.out` line to conversations.md and notes the relay's copies of it (for receipts). */
async function appendSent(
  dir: string,
  fields: Omit<LineInput, 'time' | 'from' | 'out'>,
  copies: readonly SentCopy[] | null,
  now: number,
): Promise<{ line: string; time: string }> {
  const time = utcSecond(now);
  const from = await me(dir);
  const line = formatConversationLine({ ...fields, time, from, out: true });
  await appendDurable(dataPath(dir, 'conversations'), `${line}\n`);
  if (copies) await recordSentCopies(dir, lineKey(time, from.id, fields.content), copies);
  return { line, time };
}

/** This user as `from=` names them on the lines they sent (config.json is the source). */
async function me(dir: string): Promise<{ id: number; name: string }> {
  const c = await readConfigRaw(dir).catch(() => null);
  return {
    id: typeof c?.my_id === 'number' ? c.my_id : 0,
    name: typeof c?.my_name === 'string' ? c.my_name : '',
  };
}

/** Records a message this user sent to a group: `from=#<me>(<name>) type=chat.out.g<gid> …`. */
export async function recordGroupSent(
  dir: string,
  group: { id: number; name: string },
  content: string,
  attachment: string | null,
  /** Each member's copy (our relay), for receipts; null when the relay did not say. */
  copies: readonly SentCopy[] | null = null,
  now = Date.now(),
): Promise<string> {
  const { line } = await appendSent(dir, { type: 'chat', group: group.id, attachment, content }, copies, now);
  await refreshDerived(dir, { now });
  return line;
}
