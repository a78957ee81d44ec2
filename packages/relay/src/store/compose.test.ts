// compose.ts takes an area's prototype methods: a helper declared with TypeScript's `private` (still a
// prototype method at run time) would join the Store unseen by the compiler, and the store boundary would
// time it under a metric label of its own. This pins the assembled object's methods: exactly the Store's.

import { describe, expect, it } from 'vitest';
import { openSqliteStore } from './sqlite.ts';

const STORE_METHODS = [
  'ackInbox',
  'addGroupMembers',
  'advanceMessageIds',
  'backup',
  'block',
  'close',
  'collectFile',
  'countUsers',
  'createGroup',
  'createUser',
  'deleteFile',
  'deleteMessages',
  'discoverUsers',
  'dissolveGroup',
  'expireMessages',
  'findUserByTokenHash',
  'getFile',
  'getFriendship',
  'getGroup',
  'getHomepage',
  'getIdempotentSend',
  'getKeyBundle',
  'getReceipt',
  'getStats',
  'getUser',
  'isGroupMember',
  'lastMessageId',
  'lastMessageIds',
  'leaveGroup',
  'listFriends',
  'listGroups',
  'listInbox',
  'listUsers',
  'markFileDownloaded',
  'peekInbox',
  'ping',
  'pruneIdempotency',
  'putFile',
  'putKeyBundle',
  'readFile',
  'removeGroupMember',
  'send',
  'sendToGroup',
  'setHomepage',
  'setStatus',
  'setTokenHash',
  'setUserDisabled',
  'storedFileBytes',
  'sweepFiles',
  'takeInbox',
  'topActiveUsers',
  'touchLastSeen',
  'unblock',
  'updateGroup',
];

describe('composeStore', () => {
  it('assembles exactly the Store methods, each bound to its area', async () => {
    const store = await openSqliteStore({ file: ':memory:' });
    try {
      const methods = Object.keys(store).filter((k) => typeof store[k as keyof typeof store] === 'function');
      expect(methods.sort()).toEqual(STORE_METHODS);
      expect(Object.keys(store).filter((k) => !methods.includes(k))).toEqual(['kind']);
      // Bound: called off the object, a method still reaches its area.
      const { countUsers } = store;
      expect(await countUsers()).toBe(0);
    } finally {
      await store.close();
    }
  });
});
