import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { InboxMessage, SendResult, Store } from '../store/types.ts';
import { BoundHistogram } from './metrics.ts';
import { storeBoundary } from './store-boundary.ts';

const message = { toId: 2, id: 7 } as InboxMessage;

function boundaryOver(result: Partial<SendResult>) {
  const calls: Array<[InboxMessage[], boolean]> = [];
  const store = {
    send: async () => ({ outcome: 'chat', messageId: 7, preview: null, replayed: false, ...result }),
  };
  const wrapped = storeBoundary(store as unknown as Store, {
    seconds: new BoundHistogram(new Registry(), 'h', 'h', [1], ['op']),
    delivered: (messages, othersWoken) => calls.push([messages, othersWoken]),
  });
  return { wrapped, calls };
}

describe('storeBoundary', () => {
  it('hands a send’s committed messages to `delivered`, saying whether the store woke the other instances', async () => {
    for (const woken of [undefined, true]) {
      const { wrapped, calls } = boundaryOver({ delivered: [message], ...(woken ? { woken } : {}) });
      await wrapped.send({ fromId: 1, toId: 2, content: 'x', attachment: null, now: 0 });
      expect(calls).toEqual([[[message], woken === true]]);
    }
  });

  it('calls nothing for a send that stored nothing (a replay)', async () => {
    const { wrapped, calls } = boundaryOver({ delivered: [], replayed: true });
    await wrapped.send({ fromId: 1, toId: 2, content: 'x', attachment: null, now: 0 });
    expect(calls).toEqual([]);
  });
});
