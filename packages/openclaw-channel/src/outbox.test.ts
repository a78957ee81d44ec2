// The outbox against the real relay over loopback: a "crash" is a new Outbox on the same directory (what
// the next gateway start opens) after the old one stopped at a chosen step. The recipient's inbox on the
// relay is what counts: each send there exactly once. Time is injected where age matters.

import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayClient } from '@openwechat/client';
import { registerJsonUser, startRelay, type TestRelay } from '../../../tests/helpers/relay.ts';
import { RelayDeliveryError, sendToRelay, type RetryPolicy, type SendRequest } from './outbound.ts';
import { describeFlush, Outbox, OUTBOX_MAX_AGE_MS, sendRecorded } from './outbox.ts';

let relay: TestRelay;
let tmp: string;

/** No waits between attempts, at most two: a dead relay fails fast. */
const quick: RetryPolicy = { attempts: 2, baseMs: 1, maxMs: 1, random: () => 0, sleep: async () => {} };

const user = (name: string) => registerJsonUser(relay.url, name);

/** An agent and a friend of it (a stranger may send a single message only). */
async function pair(tag: string) {
  const agent = await user(`agent-${tag}`);
  const bob = await user(`bob-${tag}`);
  await bob.client.send(agent.id, 'hello');
  await agent.client.send(bob.id, 'welcome');
  return { agent, bob };
}

async function received(to: RelayClient, fromId: number, content: string): Promise<number> {
  const page = await to.readInbox({ after: 0, limit: 100 });
  return page.messages.filter((m) => m.fromId === fromId && m.content === content).length;
}

let dirSeq = 0;
async function freshOutbox(now?: () => number): Promise<Outbox> {
  const outbox = new Outbox(join(tmp, `outbox-${++dirSeq}`), now);
  await outbox.open();
  return outbox;
}

/** What the next gateway start sees: a new Outbox on the same directory. */
async function restart(outbox: Outbox, now?: () => number): Promise<Outbox> {
  const next = new Outbox(outbox.dir, now);
  await next.open();
  return next;
}

const text = (to: number, body: string, key: string): SendRequest => ({
  target: { kind: 'user', id: to },
  text: body,
  idempotencyKey: key,
});

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 20 });
  tmp = await mkdtemp(join(tmpdir(), 'owc-outbox-'));
});
afterAll(async () => {
  await relay?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('Outbox: a send interrupted by a crash is sent exactly once', () => {
  it('crash after the write, before the send: the next start sends it', async () => {
    const { agent, bob } = await pair('o1');
    const before = await freshOutbox();
    await before.put(text(bob.id, 'reply one', 'k-o1'), 'the reply to 7');
    // (killed here: the HTTP request never went out)
    expect(await received(bob.client, agent.id, 'reply one')).toBe(0);

    const after = await restart(before);
    const sent: string[] = [];
    const report = await after.flush(agent.client, { onSent: (req) => void sent.push(req.idempotencyKey) });
    expect(report).toMatchObject({ sent: 1, refused: [], expired: [], problems: [], kept: 0 });
    expect(describeFlush(report)).toEqual([
      [
        'info',
        `outbox: 1 send(s) left by an interrupted attempt sent again (same keys): the reply to 7 to ${bob.id}`,
      ],
    ]);
    expect(sent).toEqual(['k-o1']);
    expect(await received(bob.client, agent.id, 'reply one')).toBe(1);
    expect((await after.pending()).entries).toEqual([]);
    // A second flush (the next reconnect) sends nothing more.
    expect((await after.flush(agent.client)).sent).toBe(0);
    expect(await received(bob.client, agent.id, 'reply one')).toBe(1);
  });

  it('crash after the relay stored it, before the entry was removed: the resend is answered, not stored', async () => {
    const { agent, bob } = await pair('o2');
    const before = await freshOutbox();
    const req = text(bob.id, 'reply two', 'k-o2');
    await before.put(req);
    const first = await sendToRelay(agent.client, req);
    // (killed here: the answer came, the entry stayed)
    const after = await restart(before);
    const outcomes: Array<{ replayed: boolean; messageId: string }> = [];
    const report = await after.flush(agent.client, {
      onSent: (_req, outcome) => void outcomes.push(outcome),
    });
    expect(report).toMatchObject({ sent: 1, resent: [`a send to ${bob.id} (had landed)`] });
    expect(outcomes).toEqual([{ replayed: true, messageId: first.messageId }]);
    expect(await received(bob.client, agent.id, 'reply two')).toBe(1);
    expect((await after.pending()).entries).toEqual([]);
  });

  it("a file's bytes are kept with the entry and sent again with the same key", async () => {
    const { agent, bob } = await pair('o3');
    const before = await freshOutbox();
    await before.put({
      ...text(bob.id, 'the report', 'k-o3'),
      file: { buffer: Buffer.from('report bytes'), fileName: 'r.txt', contentType: 'text/plain' },
    });
    const after = await restart(before);
    expect((await after.flush(agent.client)).sent).toBe(1);
    const [m] = (await bob.client.readInbox({ after: 0 })).messages.filter((x) => x.content === 'the report');
    expect(m?.attachment?.name).toBe('r.txt');
    const saved = await bob.client.downloadFile(m!.attachment!.fileId!, join(tmp, 'r.txt'));
    expect(await readFile(saved.path, 'utf8')).toBe('report bytes');
    expect(await readdir(after.dir)).toEqual([]);
  });

  it('several left-over sends go out oldest first', async () => {
    const { agent, bob } = await pair('o4');
    let clock = 1_000;
    const before = await freshOutbox(() => clock);
    for (const n of [3, 1, 2]) {
      clock = 1_000 + n;
      await before.put(text(bob.id, `part ${n}`, `k-o4-${n}`));
    }
    await (await restart(before, () => 2_000)).flush(agent.client);
    const got = (await bob.client.readInbox({ after: 0 })).messages
      .filter((m) => m.fromId === agent.id && m.content.startsWith('part'))
      .map((m) => m.content);
    expect(got).toEqual(['part 1', 'part 2', 'part 3']);
  });
});

describe('Outbox: what it refuses to send, and what it keeps', () => {
  it('a corrupt entry is a clear error, set aside with its content; the others are still sent', async () => {
    const { agent, bob } = await pair('c1');
    const outbox = await freshOutbox();
    await outbox.put(text(bob.id, 'still sent', 'k-c1'));
    const bad = join(outbox.dir, 'f'.repeat(32) + '.json');
    await writeFile(bad, '{"v":1,"key":"k-bad","tar');
    const report = await (await restart(outbox)).flush(agent.client);
    expect(report.sent).toBe(1);
    expect(report.problems).toEqual([{ path: bad, error: expect.stringMatching(/JSON/) }]);
    expect(describeFlush(report)).toContainEqual([
      'warn',
      expect.stringContaining(`outbox: ${bad} is unreadable (`),
    ]);
    expect(await readFile(`${bad}.corrupt`, 'utf8')).toBe('{"v":1,"key":"k-bad","tar');
    expect(await received(bob.client, agent.id, 'still sent')).toBe(1);
    // Set aside once: the next flush neither reports nor sends it again.
    expect((await outbox.flush(agent.client)).problems).toEqual([]);
  });

  it('an entry whose file bytes are gone or altered is never sent without them', async () => {
    const { agent, bob } = await pair('c2');
    const outbox = await freshOutbox();
    await outbox.put({
      ...text(bob.id, 'with a file', 'k-c2'),
      file: { buffer: Buffer.from('abc'), fileName: 'a.txt' },
    });
    const bin = (await readdir(outbox.dir)).find((n) => n.endsWith('.bin'))!;
    await writeFile(join(outbox.dir, bin), 'tampered');
    const report = await (await restart(outbox)).flush(agent.client);
    expect(report.sent).toBe(0);
    expect(report.problems).toEqual([
      { path: expect.stringMatching(/\.json$/), error: "the file's bytes do not match their hash" },
    ]);
    expect((await readdir(outbox.dir)).sort()).toEqual([
      `${bin}.corrupt`,
      `${bin.slice(0, -4)}.json.corrupt`,
    ]);
    expect(await received(bob.client, agent.id, 'with a file')).toBe(0);
  });

  it('an entry older than the relay remembers keys is set aside, not sent (it could be stored twice)', async () => {
    const { agent, bob } = await pair('c3');
    let clock = 0;
    const outbox = await freshOutbox(() => clock);
    await outbox.put(text(bob.id, 'too late', 'k-c3'));
    clock = OUTBOX_MAX_AGE_MS + 1;
    const report = await (await restart(outbox, () => clock)).flush(agent.client);
    expect(report).toMatchObject({ sent: 0, expired: [expect.stringMatching(/\.json$/)] });
    expect(await readdir(outbox.dir)).toEqual([expect.stringMatching(/\.json\.expired$/)]);
    expect(await received(bob.client, agent.id, 'too late')).toBe(0);
  });

  it('a relay that cannot be reached keeps everything for the next flush', async () => {
    const { agent, bob } = await pair('c4');
    const outbox = await freshOutbox();
    await outbox.put(text(bob.id, 'later 1', 'k-c4-1'));
    await outbox.put(text(bob.id, 'later 2', 'k-c4-2'));
    const dead = new RelayClient({ baseUrl: 'http://127.0.0.1:9', token: 'x', mode: 'json' });
    const after = await restart(outbox);
    const down = await after.flush(dead, { policy: quick });
    expect(down).toMatchObject({ sent: 0, kept: 2 });
    expect(describeFlush(down)).toEqual([
      ['warn', 'outbox: the relay could not be reached; 2 send(s) wait for the next connect'],
    ]);
    expect((await after.flush(agent.client)).sent).toBe(2);
    expect(await received(bob.client, agent.id, 'later 1')).toBe(1);
    expect(await received(bob.client, agent.id, 'later 2')).toBe(1);
  });

  it('a refusal is final: dropped and reported, like the live send it stands for', async () => {
    const agent = await user('agent-c5');
    const outbox = await freshOutbox();
    await outbox.put(text(999_999, 'nobody', 'k-c5'));
    const report = await (await restart(outbox)).flush(agent.client, { policy: quick });
    expect(report.sent).toBe(0);
    expect(report.refused.map((r) => r.error)).toEqual([expect.stringContaining('[user_not_found]')]);
    expect(await readdir(outbox.dir)).toEqual([]);
  });

  it('the key already used for another body (e.g. re-encrypted) means the send had landed: removed', async () => {
    const { agent, bob } = await pair('c6');
    await sendToRelay(agent.client, text(bob.id, 'first body', 'k-c6'));
    const outbox = await freshOutbox();
    await outbox.put(text(bob.id, 'second body', 'k-c6'));
    const report = await (await restart(outbox)).flush(agent.client);
    expect(report.sent).toBe(1);
    expect(await readdir(outbox.dir)).toEqual([]);
    expect(await received(bob.client, agent.id, 'second body')).toBe(0);
  });

  it('opening clears temp files and file bytes without an entry, never an entry', async () => {
    const outbox = await freshOutbox();
    await outbox.put(text(5, 'kept', 'k-c7'));
    await writeFile(join(outbox.dir, 'x.json.123.1.tmp'), 'half');
    await writeFile(join(outbox.dir, 'a'.repeat(32) + '.bin'), 'orphan bytes');
    const after = await restart(outbox);
    expect(await readdir(after.dir)).toEqual([expect.stringMatching(/^[0-9a-f]{32}\.json$/)]);
    expect((await after.pending()).entries.map((e) => e.request.text)).toEqual(['kept']);
  });
});

describe('sendRecorded (a live send through the outbox)', () => {
  it('recorded before the request, gone once the relay answered', async () => {
    const { agent, bob } = await pair('s1');
    const outbox = await freshOutbox();
    let seenDuringSend: string[] = [];
    const client = new Proxy(agent.client, {
      get(target, prop, receiver) {
        if (prop !== 'send') return Reflect.get(target, prop, receiver) as unknown;
        return async (...args: Parameters<RelayClient['send']>) => {
          seenDuringSend = (await outbox.pending()).entries.map((e) => e.request.idempotencyKey);
          seenDuringSend.push(...(await readdir(outbox.dir)));
          return target.send(...args);
        };
      },
    });
    await sendRecorded(outbox, client, text(bob.id, 'live', 'k-s1'));
    // During the request the entry was on disk but not offered to a flush (the live send owns it).
    expect(seenDuringSend).toEqual([expect.stringMatching(/\.json$/)]);
    expect(await readdir(outbox.dir)).toEqual([]);
    expect(await received(bob.client, agent.id, 'live')).toBe(1);
  });

  it('a failure without an answer keeps the entry (and then a flush may take it); a refusal does not', async () => {
    const { agent, bob } = await pair('s2');
    const outbox = await freshOutbox();
    const dead = new RelayClient({ baseUrl: 'http://127.0.0.1:9', token: 'x', mode: 'json' });
    const failed = await sendRecorded(outbox, dead, text(bob.id, 'unanswered', 'k-s2'), {
      policy: quick,
    }).catch((e: unknown) => e);
    expect((failed as RelayDeliveryError).retryable).toBe(true);
    expect((await outbox.pending()).entries.map((e) => e.request.idempotencyKey)).toEqual(['k-s2']);
    expect((await outbox.flush(agent.client)).sent).toBe(1);
    expect(await received(bob.client, agent.id, 'unanswered')).toBe(1);

    const refused = await sendRecorded(outbox, agent.client, text(999_999, 'x', 'k-s2b')).catch(
      (e: unknown) => e,
    );
    expect((refused as RelayDeliveryError).code).toBe('user_not_found');
    expect(await readdir(outbox.dir)).toEqual([]);
  });

  it('without an outbox (the CLI process) it is a plain send', async () => {
    const { agent, bob } = await pair('s3');
    expect((await sendRecorded(null, agent.client, text(bob.id, 'plain', 'k-s3'))).replayed).toBe(false);
    expect(await received(bob.client, agent.id, 'plain')).toBe(1);
  });
});
