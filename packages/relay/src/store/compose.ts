// Each backend implements the Store area by area (users, messaging, files, groups, keys, ops: one class
// per area, each small enough to read); the relay holds one Store object. It is assembled here from each
// area's explicit method list, typed so that an area or a method left out fails to compile (a list
// missing a method names it; the assembled object must then still be a whole Store). The same lists
// are the store boundary's (services/store-boundary.ts): what it times and wakes streams from.

import type { FileStore, GroupStore, KeyStore, MessagingStore, OpsStore, Store, UserStore } from './types.ts';

type MethodName<T> = {
  [K in keyof T]-?: T[K] extends (...args: never[]) => unknown ? K : never;
}[keyof T] &
  string;

/** `names` lists every method of T: one left out is a compile error that names it. */
const methodsOf =
  <T>() =>
  <const L extends readonly MethodName<T>[]>(
    names: L &
      ([Exclude<MethodName<T>, L[number]>] extends [never]
        ? unknown
        : { missing: Exclude<MethodName<T>, L[number]> }),
  ): L =>
    names;

const AREA_METHODS = {
  users: methodsOf<UserStore>()([
    'createUser',
    'countUsers',
    'getUser',
    'findUserByTokenHash',
    'setStatus',
    'touchLastSeen',
    'topActiveUsers',
    'discoverUsers',
    'setHomepage',
    'getHomepage',
    'listUsers',
    'setUserDisabled',
    'setTokenHash',
  ]),
  messaging: methodsOf<MessagingStore>()([
    'getFriendship',
    'listFriends',
    'send',
    'pruneIdempotency',
    'block',
    'unblock',
    'takeInbox',
    'peekInbox',
    'listInbox',
    'ackInbox',
    'deleteMessages',
    'lastMessageId',
    'lastMessageIds',
    'expireMessages',
    'getReceipt',
    'getIdempotentSend',
  ]),
  files: methodsOf<FileStore>()([
    'putFile',
    'getFile',
    'readFile',
    'markFileDownloaded',
    'deleteFile',
    'storedFileBytes',
    'sweepFiles',
    'collectFile',
  ]),
  groups: methodsOf<GroupStore>()([
    'createGroup',
    'listGroups',
    'getGroup',
    'isGroupMember',
    'addGroupMembers',
    'removeGroupMember',
    'leaveGroup',
    'updateGroup',
    'dissolveGroup',
    'sendToGroup',
  ]),
  keys: methodsOf<KeyStore>()(['putKeyBundle', 'getKeyBundle']),
  ops: methodsOf<OpsStore>()(['getStats', 'ping', 'backup', 'advanceMessageIds']),
};

interface StoreAreas {
  users: UserStore;
  messaging: MessagingStore;
  files: FileStore;
  groups: GroupStore;
  keys: KeyStore;
  ops: OpsStore;
}

export type StoreMethod = MethodName<Store>;
type AnyFn = (...args: never[]) => unknown;

/** How the boundary wraps one method (identity by default). */
export type WrapMethod = <F extends AnyFn>(name: StoreMethod, fn: F) => F;

/** The listed methods of `area`, bound to it and wrapped. */
function methods<T extends object, const L extends readonly MethodName<T>[]>(
  area: T,
  names: L,
  wrap: WrapMethod,
): Pick<T, L[number]> {
  const out: Partial<Record<L[number], unknown>> = {};
  for (const name of names) {
    const fn = (area[name] as AnyFn).bind(area) as AnyFn;
    out[name] = wrap(name as StoreMethod, fn);
  }
  return out as Pick<T, L[number]>;
}

/** One Store from its areas (a Store is itself every area: the boundary re-composes it, wrapped). */
export function composeStore(
  base: Pick<Store, 'kind' | 'close'>,
  areas: StoreAreas,
  wrap: WrapMethod = (_name, fn) => fn,
): Store {
  return {
    kind: base.kind,
    close: () => base.close(),
    ...methods(areas.users, AREA_METHODS.users, wrap),
    ...methods(areas.messaging, AREA_METHODS.messaging, wrap),
    ...methods(areas.files, AREA_METHODS.files, wrap),
    ...methods(areas.groups, AREA_METHODS.groups, wrap),
    ...methods(areas.keys, AREA_METHODS.keys, wrap),
    ...methods(areas.ops, AREA_METHODS.ops, wrap),
  };
}
