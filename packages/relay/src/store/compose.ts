// Each backend implements the Store area by area (users, messaging, files, groups, keys, ops: one class
// per area, each small enough to read); the relay holds one Store object, a plain object assembled here
// from the areas' methods. The types keep it whole without a list of names: each class implements its
// area's interface (a method left out fails to compile there) and the assembled object must be a Store
// (an area left out fails here). An area's methods are its class's prototype methods; its helpers are
// ES-private (#) methods or fields, so none of them joins the Store. The store boundary
// (services/store-boundary.ts) wraps the assembled object's methods (wrapMethods).

import type { FileStore, GroupStore, KeyStore, MessagingStore, OpsStore, Store, UserStore } from './types.ts';

type AnyFn = (...args: never[]) => unknown;
export type StoreMethod = { [K in keyof Store]-?: Store[K] extends AnyFn ? K : never }[keyof Store];

/** The public methods of an area (its class's prototype chain), bound to it. */
function bound<T extends object>(area: T): T {
  const out: Record<string, AnyFn> = {};
  for (let p: object = Object.getPrototypeOf(area); p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (name !== 'constructor') out[name] ??= (area as Record<string, AnyFn>)[name]!.bind(area);
    }
  }
  return out as T;
}

/** One Store from its areas. */
export function composeStore(
  base: Pick<Store, 'kind' | 'close'>,
  areas: {
    users: UserStore;
    messaging: MessagingStore;
    files: FileStore;
    groups: GroupStore;
    keys: KeyStore;
    ops: OpsStore;
  },
): Store {
  return {
    kind: base.kind,
    close: () => base.close(),
    ...bound(areas.users),
    ...bound(areas.messaging),
    ...bound(areas.files),
    ...bound(areas.groups),
    ...bound(areas.keys),
    ...bound(areas.ops),
  };
}

/** An assembled Store with each method but close replaced by `wrap(name, method)`. */
export function wrapMethods(store: Store, wrap: <F extends AnyFn>(name: StoreMethod, fn: F) => F): Store {
  const out: Record<string, unknown> = { ...store };
  for (const [name, fn] of Object.entries(store)) {
    if (typeof fn === 'function' && name !== 'close') out[name] = wrap(name as StoreMethod, fn as AnyFn);
  }
  return out as unknown as Store;
}
