import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from './outbox.ts';

let dir: string;
let outbox: Outbox;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'owc-outbox-'));
  outbox = Outbox.open(dir);
});

afterEach(() => {
  outbox.close();
  rmSync(dir, { recursive: true, force: true });
});

const item = (source: string, conversation: string) => ({
  source,
  eventId: source,
  conversation,
  sender: conversation,
  body: Buffer.from(`{"s":"${source}"}`),
});

describe('outbox', () => {
  it('stores once per source and moves the cursor in the same transaction, never backwards', () => {
    expect(outbox.enqueue(item('r:1', 'a'), 1000, { key: 'c', value: 1 }).inserted).toBe(true);
    expect(outbox.enqueue(item('r:1', 'a'), 1000, { key: 'c', value: 1 }).inserted).toBe(false);
    outbox.enqueue(null, 1000, { key: 'c', value: 5 });
    outbox.enqueue(null, 1000, { key: 'c', value: 3 });
    expect(outbox.getCursor('c')).toBe(5);
    expect(outbox.counts().pending).toBe(1);
  });

  it('only the oldest pending row of a conversation is due; busy conversations are skipped', () => {
    outbox.enqueue(item('a1', 'a'), 1000);
    outbox.enqueue(item('a2', 'a'), 1000);
    outbox.enqueue(item('b1', 'b'), 1000);
    expect(outbox.dueHeads(1000, new Set(), 10).map((r) => r.source)).toEqual(['a1', 'b1']);
    expect(outbox.dueHeads(1000, new Set(['a']), 10).map((r) => r.source)).toEqual(['b1']);
    const a1 = outbox.findBySource('a1')!;
    outbox.markRetry(a1.seq, 5000, '503');
    // a1 waits; a2 must not overtake it.
    expect(outbox.dueHeads(1000, new Set(), 10).map((r) => r.source)).toEqual(['b1']);
    expect(outbox.nextDueAt(new Set(['b']))).toBe(5000);
    outbox.markDead(a1.seq, 6000, '400', 'permanent');
    expect(outbox.dueHeads(6000, new Set(), 10).map((r) => r.source)).toEqual(['a2', 'b1']);
  });

  it('dead letters are listed, replayed to their old position, or deleted', () => {
    outbox.enqueue(item('a1', 'a'), 1000);
    outbox.enqueue(item('a2', 'a'), 1000);
    const a1 = outbox.findBySource('a1')!;
    outbox.markAttempt(a1.seq, 1000);
    outbox.markDead(a1.seq, 2000, '400', 'permanent');
    expect(outbox.list('dead').map((r) => [r.source, r.attempts, r.lastStatus, r.deadReason])).toEqual([
      ['a1', 1, '400', 'permanent'],
    ]);
    expect(outbox.replayDead([a1.seq], 3000)).toBe(1);
    expect(outbox.dueHeads(3000, new Set(), 10).map((r) => [r.source, r.attempts])).toEqual([['a1', 0]]);
    outbox.markDead(a1.seq, 4000, '400', 'permanent');
    expect(outbox.deleteDead('all')).toBe(1);
    expect(outbox.counts()).toMatchObject({ pending: 1, dead: 0 });
  });

  it('survives a reopen', () => {
    outbox.enqueue(item('x', 'a'), 1000, { key: 'c', value: 9 });
    outbox.close();
    outbox = Outbox.open(dir);
    expect(outbox.getCursor('c')).toBe(9);
    expect(outbox.findBySource('x')!.body.toString()).toBe('{"s":"x"}');
  });
});
