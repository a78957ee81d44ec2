// The backend-agnostic Store contract, one file per area under contract/. Every backend runs it:
//   runStoreContract('sqlite', () => openSqliteStore({ file: freshFile() }));
// `open` must return a new, empty store each time (the suite closes it after each test).

import { afterEach, beforeEach, describe } from 'vitest';
import type { Store } from '../../packages/relay/src/store/types.ts';
import { filesContract } from './contract/files.ts';
import { friendsContract } from './contract/friends.ts';
import { groupsContract } from './contract/groups.ts';
import { inboxContract } from './contract/inbox.ts';
import { keysContract } from './contract/keys.ts';
import { receiptsContract } from './contract/receipts.ts';
import { sendContract } from './contract/send.ts';
import { usersContract } from './contract/users.ts';
import { harness } from './harness.ts';

export function runStoreContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store | undefined;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store?.close();
      store = undefined;
    });
    const h = harness(() => {
      if (!store) throw new Error('no store open (used outside a test)');
      return store;
    });
    usersContract(h);
    sendContract(h);
    inboxContract(h);
    friendsContract(h);
    groupsContract(h);
    filesContract(h);
    receiptsContract(h);
    keysContract(h);
  });
}
