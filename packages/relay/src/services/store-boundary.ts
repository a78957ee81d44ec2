// The store as the rest of the relay sees it, wrapped once at open (app.ts): every method times itself
// (owc_store_operation_duration_seconds), and every method that commits messages — a send, a group
// send, a file sent as a message, a friend request or acceptance, a group's notices — hands what it
// committed to `delivered` after the commit. That is the one place a committed message wakes its
// streams; handlers never do. A plain object like the store it wraps (store/compose.ts): no Proxy,
// no property trap per read.

import { wrapMethods, type StoreMethod } from '../store/compose.ts';
import type { InboxMessage, Store } from '../store/types.ts';
import type { BoundHistogram } from './metrics.ts';

type Resolved<K extends StoreMethod> = Awaited<ReturnType<Store[K]>>;

/** The methods whose result carries the messages they committed (`delivered`). */
const DELIVERING = new Set<StoreMethod>([
  'send',
  'sendToGroup',
  'createGroup',
  'addGroupMembers',
  'removeGroupMember',
  'leaveGroup',
  'dissolveGroup',
] satisfies Array<
  { [K in StoreMethod]: Resolved<K> extends { delivered: InboxMessage[] } ? K : never }[StoreMethod]
>);

/** readFile returns a stream, not a promise: there is no single duration to observe. */
const UNTIMED = new Set<StoreMethod>(['readFile']);

export interface BoundaryOptions {
  /** The latency histogram, labelled by method name. */
  seconds: BoundHistogram<'op'>;
  /**
   * Messages a call committed (non-empty, in commit order), right after the commit; `othersWoken` when
   * the store already woke the other instances for them (SendResult.woken).
   */
  delivered: (messages: InboxMessage[], othersWoken: boolean) => void;
}

export function storeBoundary(store: Store, opts: BoundaryOptions): Store {
  return wrapMethods(store, (name, fn) => {
    if (UNTIMED.has(name)) return fn;
    const child = opts.seconds.labels({ op: name });
    const publishes = DELIVERING.has(name);
    const timed = (...args: never[]) => {
      const start = performance.now();
      const end = () => child.observe((performance.now() - start) / 1000);
      const result = fn(...args);
      if (!(result instanceof Promise)) {
        end();
        return result;
      }
      return result.then(
        (r) => {
          end();
          if (publishes) {
            const { delivered, woken } = r as { delivered: InboxMessage[]; woken?: boolean };
            if (delivered.length > 0) opts.delivered(delivered, woken === true);
          }
          return r;
        },
        (err: unknown) => {
          end();
          throw err;
        },
      );
    };
    return timed as typeof fn;
  });
}
