// Outbound sends against the real relay over loopback (no OpenClaw needed here; the
// plugin inside the real OpenClaw is tests/openclaw/). Time is injected: retries record their waits.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, RelayClient } from '@openwechat/client';
import { registerJsonUser, startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import {
  deliveryIdempotencyKey,
  isRetryable,
  queuedPartKey,
  reconcileQueuedDelivery,
  RelayDeliveryError,
  sendToRelay,
  type KeyLookup,
  type RetryPolicy,
} from './outbound.ts';

let relay: TestRelay;
let tmp: string;

const user = (name: string, status?: 'open' | 'friends_only' | 'do_not_disturb') =>
  registerJsonUser(relay.url, name, status);

function recordingPolicy(waits: number[]): RetryPolicy {
  return {
    attempts: 3,
    baseMs: 100,
    maxMs: 1000,
    random: () => 0.5,
    sleep: async (ms) => void waits.push(ms),
  };
}

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 20 });
  tmp = await mkdtemp(join(tmpdir(), 'owc-ocout-'));
});
afterAll(async () => {
  await relay?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('sendToRelay', () => {
  it('a retried delivery with the same key is stored once', async () => {
    const agent = await user('agent-1');
    const bob = await user('bob-1');
    const key = deliveryIdempotencyKey(['openwechat', 'default', 'queue-1', 0, 'text']);
    const first = await sendToRelay(agent.client, {
      target: { kind: 'user', id: bob.id },
      text: 'hi',
      idempotencyKey: key,
    });
    const again = await sendToRelay(agent.client, {
      target: { kind: 'user', id: bob.id },
      text: 'hi',
      idempotencyKey: key,
    });
    expect(again.replayed).toBe(true);
    expect(again.messageId).toBe(first.messageId);
    expect(
      (await bob.client.readInbox({ after: 0 })).messages.filter((m) => m.content === 'hi'),
    ).toHaveLength(1);
  });

  it('a refusal is one clear delivery error, not retried', async () => {
    const agent = await user('agent-2');
    const dnd = await user('dnd-2', 'do_not_disturb');
    const waits: number[] = [];
    const err = await sendToRelay(
      agent.client,
      { target: { kind: 'user', id: dnd.id }, text: 'hello', idempotencyKey: 'k-dnd' },
      recordingPolicy(waits),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayDeliveryError);
    expect((err as RelayDeliveryError).code).toBe('recipient_dnd');
    expect((err as Error).message).toBe(
      `openwechat: sending to ${dnd.id} failed: the recipient is in do-not-disturb mode [recipient_dnd]`,
    );
    expect(waits).toEqual([]);
  });

  it('an unreachable relay is retried with backoff, then reported', async () => {
    const dead = new RelayClient({ baseUrl: 'http://127.0.0.1:9', token: 'x', mode: 'json' });
    const waits: number[] = [];
    const err = await sendToRelay(
      dead,
      { target: { kind: 'group', id: 3 }, text: 'x', idempotencyKey: 'k-net' },
      recordingPolicy(waits),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayDeliveryError);
    expect((err as RelayDeliveryError).retryable).toBe(true);
    expect(waits).toEqual([75, 150]); // equal jitter at random 0.5: step/2 + step/4
    expect(isRetryable(new Error('plain'))).toBe(false);
  });

  it('a file goes to /send/file with its name and bytes', async () => {
    const agent = await user('agent-3');
    const bob = await user('bob-3');
    await sendToRelay(agent.client, {
      target: { kind: 'user', id: bob.id },
      text: 'the file',
      file: { buffer: Buffer.from('payload'), fileName: 'p.txt', contentType: 'text/plain' },
      idempotencyKey: 'k-file',
    });
    const [m] = (await bob.client.readInbox({ after: 0 })).messages;
    expect(m?.attachment?.name).toBe('p.txt');
    const saved = await bob.client.downloadFile(m!.attachment!.fileId!, join(tmp, 'p.txt'));
    expect(saved.size).toBe(7);
  });
});

// The relay's own answer to "did a send with this key land?" (GET /sent?idempotency_key=), recording
// which keys were asked.
function lookupOf(client: RelayClient): { client: RelayClient; lookup: KeyLookup; asked: string[] } {
  const asked: string[] = [];
  return {
    client,
    asked,
    lookup: {
      sentByKey: async (key) => {
        asked.push(key);
        const found = await client.sentByKey(key);
        return found ? { result: { messageId: found.result.messageId } } : null;
      },
    },
  };
}

describe('reconcileQueuedDelivery (after a crash left a queued send unknown)', () => {
  it('a single part that landed is "sent" with the relay\'s message id; one that did not is "not_sent"', async () => {
    const agent = await user('agent-r1');
    const bob = await user('bob-r1');
    const { client, lookup, asked } = lookupOf(agent.client);
    const keyOf = (q: string) => (i: number) => queuedPartKey('default', q, i, 'text');
    const sent = await sendToRelay(client, {
      target: { kind: 'user', id: bob.id },
      text: 'landed',
      idempotencyKey: keyOf('q-landed')(0),
    });
    expect(await reconcileQueuedDelivery(lookup, keyOf('q-landed'), 1)).toEqual({
      status: 'sent',
      messageId: sent.messageId,
    });
    expect(await reconcileQueuedDelivery(lookup, keyOf('q-lost'), 1)).toEqual({ status: 'not_sent' });
    expect(asked).toEqual([keyOf('q-landed')(0), keyOf('q-lost')(0)]);
  });

  it('several parts: always "not_sent", and the replay with the same keys stores only the missing parts', async () => {
    const agent = await user('agent-r2');
    const bob = await user('bob-r2');
    // Friends (a stranger may send one message only): bob asks, the agent's answer accepts.
    await bob.client.send(agent.id, 'hello');
    await agent.client.send(bob.id, 'welcome');
    const { client, lookup } = lookupOf(agent.client);
    const keyOf = (i: number) => queuedPartKey('default', 'q-multi', i, 'text');
    const parts = ['part one', 'part two', 'part three'];
    // The crash came after the first part reached the relay.
    await sendToRelay(client, {
      target: { kind: 'user', id: bob.id },
      text: parts[0]!,
      idempotencyKey: keyOf(0),
    });
    expect(await reconcileQueuedDelivery(lookup, keyOf, 3)).toEqual({ status: 'not_sent' });
    // OpenClaw replays the whole delivery: the relay answers part 0 with its original result.
    const replay = [];
    for (const [i, text] of parts.entries()) {
      replay.push(
        await sendToRelay(client, { target: { kind: 'user', id: bob.id }, text, idempotencyKey: keyOf(i) }),
      );
    }
    expect(replay.map((r) => r.replayed)).toEqual([true, false, false]);
    const got = (await bob.client.readInbox({ after: 0 })).messages
      .filter((m) => m.fromId === agent.id && m.content.startsWith('part'))
      .map((m) => m.content);
    expect(got).toEqual(parts);
  });

  it('a relay that cannot be asked leaves it unresolved: retryable unless the relay refused the account', async () => {
    const failing = (err: unknown): KeyLookup => ({
      sentByKey: async () => {
        throw err;
      },
    });
    const keyOf = (i: number) => `k-${i}`;
    expect(
      await reconcileQueuedDelivery(
        failing(new ClientError('network', 'network_error', 'connection refused')),
        keyOf,
        1,
      ),
    ).toMatchObject({ status: 'unresolved', retryable: true });
    expect(
      await reconcileQueuedDelivery(
        failing(new ClientError('relay', 'invalid_token', 'invalid token', { status: 401 })),
        keyOf,
        1,
      ),
    ).toMatchObject({ status: 'unresolved', retryable: false });
  });

  it('keys: live send and recovery derive the same key; an absent account id is the default account', () => {
    expect(queuedPartKey(undefined, 'q', 0, 'text')).toBe(queuedPartKey('default', 'q', 0, 'text'));
    expect(queuedPartKey('default', 'q', 1, 'text')).not.toBe(queuedPartKey('default', 'q', 0, 'text'));
    expect(queuedPartKey('default', 'q', 0, 'media')).not.toBe(queuedPartKey('default', 'q', 0, 'text'));
  });
});
