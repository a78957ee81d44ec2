// Group fan-out writes many messages that differ only in their recipient (and mention flag): a group
// message's copies, a group's notices. Both backends store such a run with a fixed number of statements
// instead of two per recipient; this splits a list of messages into those runs and makes a run's rows.

import { messageFields, type StoredMessageRow } from './rows.ts';
import type { NewMessage } from './types.ts';

function sameExceptRecipient(a: NewMessage, b: NewMessage): boolean {
  return (
    a.fromId === b.fromId &&
    a.type === b.type &&
    a.content === b.content &&
    a.attachment === b.attachment &&
    a.createdAt === b.createdAt &&
    (a.e2e ?? null) === (b.e2e ?? null) &&
    (a.groupId ?? null) === (b.groupId ?? null)
  );
}

/** Consecutive messages equal but for their recipient, each recipient once per run; order is kept. */
export function fanOutRuns(messages: readonly NewMessage[]): NewMessage[][] {
  const runs: NewMessage[][] = [];
  let run: NewMessage[] = [];
  let seen = new Set<number>();
  for (const m of messages) {
    if (run.length && (!sameExceptRecipient(run[0]!, m) || seen.has(m.toId))) {
      runs.push(run);
      run = [];
      seen = new Set();
    }
    run.push(m);
    seen.add(m.toId);
  }
  if (run.length) runs.push(run);
  return runs;
}

/** A run's rows, given each recipient's new id (`ids`: a recipient without one does not exist). */
export function runRows(run: readonly NewMessage[], ids: ReadonlyMap<number, number>): StoredMessageRow[] {
  const shared = messageFields(run[0]!);
  return run.map((m) => {
    const id = ids.get(m.toId);
    if (id === undefined) throw new Error(`message for unknown user ${m.toId}`);
    // Not `{ ...shared, to_id }`: V8 11 (Node 20) takes a slow path for a spread followed by more properties.
    return Object.assign({}, shared, { to_id: m.toId, id, mentioned: !!m.mentioned });
  });
}
