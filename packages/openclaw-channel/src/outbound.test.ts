// Outbound sends against the real relay over loopback (no OpenClaw needed here; the
// plugin inside the real OpenClaw is tests/openclaw/). Time is injected: retries record their waits.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayClient } from '@openwechat/client';
import { startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import {
  deliveryIdempotencyKey,
  isRetryable,
  RelayDeliveryError,
  sendToRelay,
  type RetryPolicy,
} from './outbound.ts';

let relay: TestRelay;
let tmp: string;

async function user(name: string, status?: 'open' | 'friends_only' | 'do_not_disturb') {
  const { user, token } = await new RelayClient({ baseUrl: relay.url, mode: 'json' }).register({
    name,
    ...(status ? { status } : {}),
  });
  return { id: user.id, client: new RelayClient({ baseUrl: relay.url, token, mode: 'json' }) };
}

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
