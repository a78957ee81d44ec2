// Friends, block and unblock (docs/compat.md: /friends, /block/{id}, /unblock/{id} and the friendship state machine).

import { formatBlocked, formatFriends, formatUnblocked, friendJson, RelayError } from '@openwechat/protocol';
import type { MessagingStore, UserRecord, UserStore } from '../../store/types.ts';
import type { Output, StoreCtx } from '../route.ts';

type AuthedCtx = StoreCtx<UserStore & MessagingStore> & { user: UserRecord };

export async function listFriends({ services, user }: AuthedCtx): Promise<Output> {
  await services.lastSeen.flush();
  const friends = await services.store.listFriends(user.id);
  return { text: formatFriends(friends), json: { friends: friends.map(friendJson) } };
}

export async function block({ services, user }: AuthedCtx, input: { userId: number }): Promise<Output> {
  if (input.userId === user.id) throw new RelayError('cannot_block_self');
  const target = await services.store.getUser(input.userId);
  if (!target) throw new RelayError('user_not_found');
  if (!(await services.store.block(user.id, target.id, services.now()))) throw new RelayError('not_friends');
  return {
    text: formatBlocked(target),
    json: { user: { id: target.id, name: target.name }, status: 'blocked' },
  };
}

export async function unblock({ services, user }: AuthedCtx, input: { userId: number }): Promise<Output> {
  // The reference answers "no record" for unknown ids too, so existence is not checked first.
  if (!(await services.store.unblock(user.id, input.userId))) throw new RelayError('no_block_record');
  const target = await services.store.getUser(input.userId);
  const shown = { id: input.userId, name: target?.name ?? `ID:${input.userId}` };
  return { text: formatUnblocked(shown), json: { user: shown, status: 'none' } };
}
