// Idempotent sends (docs/protocol.md): `Idempotency-Key` on POST /send. A repeat by the same sender within
// 24 h gets the original answer (`Idempotent-Replayed: true`) and delivers nothing; the same key with
// another body is a conflict; keys are per sender; keys are at most 255 characters; after the window
// the key sends again. The clock is injected.

import { beforeAll, describe, expect, it } from 'vitest';
import { suiteRelay } from '../helpers/fixtures.ts';
import { befriend, Clock, register, req, type Reply, type User } from '../relay/client.ts';
import { drainInbox, peekAll } from './util.ts';

const clock = new Clock();
const relay = suiteRelay({ now: clock.now });
let base: string;
let n = 0;

beforeAll(async () => {
  base = relay.url;
});

/** A sender and a recipient who are friends, with both inboxes emptied. */
async function pair(): Promise<{ alice: User; bob: User }> {
  n += 1;
  const alice = await register(base, `idem${n}_alice`);
  const bob = await register(base, `idem${n}_bob`);
  await befriend(base, alice, bob);
  await drainInbox(base, alice);
  await drainInbox(base, bob);
  return { alice, bob };
}

function sendWithKey(
  from: User,
  toId: number,
  content: string,
  key: string,
  opts: { jsonMode?: boolean } = {},
): Promise<Reply> {
  return req(base, 'POST', '/send', {
    token: from.token,
    json: { to_id: toId, content },
    headers: { 'Idempotency-Key': key },
    jsonMode: opts.jsonMode,
  });
}

const replayed = (r: Reply): string | null => r.headers.get('idempotent-replayed');

describe('Idempotency-Key on POST /send', () => {
  it('one key sent 5 times (2 sequential, 3 concurrent) delivers once; every answer is identical', async () => {
    const { alice, bob } = await pair();
    // Something in alice's inbox, so the answer carries a preview that must be replayed too.
    await req(base, 'POST', '/send', { token: bob.token, json: { to_id: alice.id, content: 'ping' } });

    const first = await sendWithKey(alice, bob.id, 'exactly once', 'key-1');
    const second = await sendWithKey(alice, bob.id, 'exactly once', 'key-1');
    const concurrent = await Promise.all(
      [1, 2, 3].map(() => sendWithKey(alice, bob.id, 'exactly once', 'key-1')),
    );
    const all = [first, second, ...concurrent];

    expect(first.status).toBe(200);
    expect(first.body.split('\n')[0]).toBe('发送成功');
    expect(first.body).toContain('内容：ping');
    for (const r of all)
      expect({ status: r.status, body: r.body }).toEqual({ status: 200, body: first.body });
    expect(replayed(first)).toBeNull();
    expect(all.slice(1).map(replayed)).toEqual(['true', 'true', 'true', 'true']);

    const inbox = await drainInbox(base, bob);
    expect(inbox.map((m) => [m.from_id, m.content])).toEqual([[alice.id, 'exactly once']]);
  });

  it('JSON mode: the replay carries the same message_id and body', async () => {
    const { alice, bob } = await pair();
    const a = await sendWithKey(alice, bob.id, 'json once', 'key-json', { jsonMode: true });
    const b = await sendWithKey(alice, bob.id, 'json once', 'key-json', { jsonMode: true });
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(b.body).toBe(a.body);
    expect(replayed(a)).toBeNull();
    expect(replayed(b)).toBe('true');
    const inbox = await drainInbox(base, bob);
    expect(inbox).toHaveLength(1);
    expect((JSON.parse(a.body) as { message_id: number }).message_id).toBe(inbox[0]!.id);
  });

  it('the same key with a different body is a conflict (text and JSON) and delivers nothing', async () => {
    const { alice, bob } = await pair();
    const carol = await register(base, `idem${n}_carol`);
    await befriend(base, alice, carol);
    await drainInbox(base, carol);
    await drainInbox(base, alice);

    const ok = await sendWithKey(alice, bob.id, 'original', 'key-2');
    expect(ok.body.split('\n')[0]).toBe('发送成功');
    await drainInbox(base, bob);

    // Different content, text mode: the soft error of /send.
    const text = await sendWithKey(alice, bob.id, 'changed', 'key-2');
    expect({ status: text.status, body: text.body }).toEqual({
      status: 200,
      body: '错误：同一 Idempotency-Key 已用于不同的请求内容',
    });
    expect(replayed(text)).toBeNull();
    // Different content, JSON mode: 409 idempotency_conflict.
    const json = await sendWithKey(alice, bob.id, 'changed', 'key-2', { jsonMode: true });
    expect(json.status).toBe(409);
    expect(JSON.parse(json.body)).toEqual({
      error: { code: 'idempotency_conflict', message: '同一 Idempotency-Key 已用于不同的请求内容' },
    });
    // Same content, another recipient: also a different request.
    const other = await sendWithKey(alice, carol.id, 'original', 'key-2', { jsonMode: true });
    expect(other.status).toBe(409);
    expect((JSON.parse(other.body) as { error: { code: string } }).error.code).toBe('idempotency_conflict');

    expect((await peekAll(base, bob)).total).toBe(0);
    expect((await peekAll(base, carol)).total).toBe(0);
    // The original is still what the key answers.
    const again = await sendWithKey(alice, bob.id, 'original', 'key-2');
    expect(again.body).toBe(ok.body);
    expect(replayed(again)).toBe('true');
    expect((await peekAll(base, bob)).total).toBe(0);
  });

  it('keys are per sender: another sender using the same key is independent', async () => {
    const { alice, bob } = await pair();
    const dave = await register(base, `idem${n}_dave`);
    await befriend(base, dave, bob);
    await drainInbox(base, bob);

    const a = await sendWithKey(alice, bob.id, 'from alice', 'shared-key');
    const d = await sendWithKey(dave, bob.id, 'from dave', 'shared-key');
    expect(a.body.split('\n')[0]).toBe('发送成功');
    expect(d.body.split('\n')[0]).toBe('发送成功');
    expect(replayed(d)).toBeNull();
    // Same key, same body as alice's, from dave: still independent (a new message).
    const d2 = await sendWithKey(dave, bob.id, 'from alice', 'shared-key-2');
    const a2 = await sendWithKey(alice, bob.id, 'from alice', 'shared-key-2');
    expect(replayed(d2)).toBeNull();
    expect(replayed(a2)).toBeNull();

    const inbox = await drainInbox(base, bob);
    expect(inbox.map((m) => [m.from_id, m.content])).toEqual([
      [alice.id, 'from alice'],
      [dave.id, 'from dave'],
      [dave.id, 'from alice'],
      [alice.id, 'from alice'],
    ]);
  });

  it('a key over 255 characters is refused (text and JSON); 255 is accepted', async () => {
    const { alice, bob } = await pair();
    const long = 'k'.repeat(256);
    const text = await sendWithKey(alice, bob.id, 'too long key', long);
    expect({ status: text.status, body: text.body }).toEqual({
      status: 200,
      body: '错误：Idempotency-Key 最长 255 个字符',
    });
    const json = await sendWithKey(alice, bob.id, 'too long key', long, { jsonMode: true });
    expect(json.status).toBe(400);
    expect(JSON.parse(json.body)).toEqual({
      error: { code: 'invalid_idempotency_key', message: 'Idempotency-Key 最长 255 个字符' },
    });
    expect((await peekAll(base, bob)).total).toBe(0);

    const max = 'k'.repeat(255);
    const ok1 = await sendWithKey(alice, bob.id, 'max key', max);
    const ok2 = await sendWithKey(alice, bob.id, 'max key', max);
    expect(ok1.body.split('\n')[0]).toBe('发送成功');
    expect(ok2.body).toBe(ok1.body);
    expect(replayed(ok2)).toBe('true');
    expect((await drainInbox(base, bob)).map((m) => m.content)).toEqual(['max key']);
  });

  it('within 24 h the key replays; after 24 h + 1 s it sends again', async () => {
    const { alice, bob } = await pair();
    const first = await sendWithKey(alice, bob.id, 'daily', 'key-day', { jsonMode: true });
    expect(first.status).toBe(200);

    clock.advance(24 * 3600 - 1);
    const within = await sendWithKey(alice, bob.id, 'daily', 'key-day', { jsonMode: true });
    expect(within.body).toBe(first.body);
    expect(replayed(within)).toBe('true');
    expect((await peekAll(base, bob)).total).toBe(1);

    clock.advance(2);
    const after = await sendWithKey(alice, bob.id, 'daily', 'key-day', { jsonMode: true });
    expect(after.status).toBe(200);
    expect(replayed(after)).toBeNull();
    const inbox = await drainInbox(base, bob);
    expect(inbox.map((m) => m.content)).toEqual(['daily', 'daily']);
    expect((JSON.parse(first.body) as { message_id: number }).message_id).toBe(inbox[0]!.id);
    expect((JSON.parse(after.body) as { message_id: number }).message_id).toBe(inbox[1]!.id);

    // The new send starts a new window: a repeat now replays the second answer.
    const again = await sendWithKey(alice, bob.id, 'daily', 'key-day', { jsonMode: true });
    expect(again.body).toBe(after.body);
    expect(replayed(again)).toBe('true');
    expect((await peekAll(base, bob)).total).toBe(0);
  });
});
