// Recording what this user sent with the CLI: one `to=` line in conversations.md, the contact's
// relationship as the relay's answer implies, and refreshed views.

import type { Message, SendResult } from '@openwechat/client';
import { appendDurable } from './atomic.ts';
import { noteMessageTime, setRelationship, updateContacts, upsertContact } from './contacts.ts';
import { refreshDerived } from './derived.ts';
import { formatConversationLine, groupKey, utcSecond } from './formats.ts';
import { dataPath } from './paths.ts';

export async function recordSent(
  dir: string,
  to: { id: number; name: string },
  content: string,
  result: SendResult,
  attachment: string | null,
  now = Date.now(),
): Promise<string> {
  const time = utcSecond(now);
  const line = formatConversationLine({
    time,
    direction: 'out',
    peerId: to.id,
    peerName: to.name,
    type: result.outcome === 'request' ? 'friend_request' : 'chat',
    id: null,
    file: null,
    attachment,
    content,
  });
  await appendDurable(dataPath(dir, 'conversations'), `${line}\n`);
  await updateContacts(
    dir,
    (map) => {
      const c = upsertContact(map, { id: to.id, name: to.name || null });
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

export type { Message };

/** Records a message this user sent to a group: `group=#g<gid>(<name>) to=#g<gid>(<name>) type=chat …`. */
export async function recordGroupSent(
  dir: string,
  group: { id: number; name: string },
  content: string,
  attachment: string | null,
  now = Date.now(),
): Promise<string> {
  const key = groupKey(group.id);
  const line = formatConversationLine({
    time: utcSecond(now),
    group: { id: key, name: group.name },
    direction: 'out',
    peerId: 0,
    peerName: group.name,
    type: 'chat',
    id: null,
    file: null,
    attachment,
    content,
  });
  await appendDurable(dataPath(dir, 'conversations'), `${line}\n`);
  await refreshDerived(dir, { now });
  return line;
}
