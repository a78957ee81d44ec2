// A second storage yardstick: the relay's own SQLite store, without HTTP. 64 friend pairs send through
// `store.send()` exactly as POST /send does (token lookup, the friendship decision, the inbox preview,
// group commit), 64 sends in flight at a time, in this process. The relay cannot send faster than this
// on one core: the figure separates what the store costs from what HTTP costs (docs/benchmarks.md).

import { join } from 'node:path';
import { openSqliteStore } from '../../packages/relay/src/store/sqlite.ts';
import type { UserRecord } from '../../packages/relay/src/store/types.ts';
import { CONTENT } from '../lib/context.ts';
import { round } from '../lib/stats.ts';

export interface StoreSendResult {
  /** Completed store.send() calls per second with 64 in flight (plus a token lookup each). */
  sendsPerSec: number;
  /** Mean CPU time per send on the one thread, µs. */
  usPerSend: number;
}

const SENDERS = 64;

export async function measureStoreSends(dir: string, seconds: number): Promise<StoreSendResult> {
  const store = await openSqliteStore({ file: join(dir, 'store-yardstick.sqlite') });
  try {
    const at = Date.now();
    const users: UserRecord[] = [];
    for (let i = 0; i < 2 * SENDERS; i++) {
      users.push(
        await store.createUser({
          name: `s${i}`,
          nameKey: `s${i}`,
          description: null,
          status: 'open',
          tokenHash: `token-${i}`,
          createdAt: at,
        }),
      );
    }
    const send = (from: UserRecord, to: UserRecord, content: string) =>
      store.send(
        { fromId: from.id, toId: to.id, content, attachment: null, now: Date.now(), sender: from },
        {
          previewLimit: 5,
        },
      );
    // Friends first (request, accept), then the senders' inboxes read empty, as in the HTTP benchmark.
    for (let i = 0; i < SENDERS; i++) {
      await send(users[i]!, users[SENDERS + i]!, 'hi');
      await send(users[SENDERS + i]!, users[i]!, 'hello');
      await store.takeInbox(users[i]!.id, { limit: 500, fromId: null });
    }
    let n = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    await Promise.all(
      Array.from({ length: SENDERS }, async (_, i) => {
        while (performance.now() < end) {
          const sender = await store.findUserByTokenHash(`token-${i}`);
          await send(sender!, users[SENDERS + i]!, CONTENT);
          n++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { sendsPerSec: round(n / secs, 0), usPerSend: round((cpu.user + cpu.system) / n, 1) };
  } finally {
    await store.close();
  }
}
