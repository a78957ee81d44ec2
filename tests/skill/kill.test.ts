// No message lost, none doubled: 1,000 messages arrive while bob's inbox daemon (the built sse_inbox.js) is
// SIGKILLed at random moments — a seeded PRNG picks every pause and kill — and restarted each time. At the
// end conversations.md holds every message exactly once, in order, and so does inbox_pushed.md.

import { join } from 'node:path';
import { expect, it } from 'vitest';
import { RelayClient } from '../../packages/client/src/index.ts';
import { seededRandom } from '../../packages/skill/src/daemon.ts';
import { cli, lines, readJson, readText, sleep, startDaemon, waitIncoming, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

const SEED = 20260309;
const TOTAL = 1000;
const T0 = Date.UTC(2026, 2, 9, 2, 0, 0);

const { ws, relay } = skillSuite('owc-kill-', { sseMaxPerIp: 50, now: () => T0 });

const pad = (n: number): string => String(n).padStart(4, '0');

it(
  `keeps all ${TOTAL} messages exactly once, in order, through random SIGKILLs (seed ${SEED})`,
  { timeout: 120_000 },
  async () => {
    const random = seededRandom(SEED);
    const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
    const B = join(ws.root, 'bob-data');

    const alice = await new RelayClient({ baseUrl: relay.url }).register({ name: 'alice' });
    const a = new RelayClient({ baseUrl: relay.url, token: alice.token });
    const rb = await cli(ws.skill, ['register', '--base-url', relay.url, '--name', 'bob', '--json'], {
      data: B,
    });
    expect(rb.code).toBe(0);
    const bobId = rb.json!.id as number;
    const bob = new RelayClient({ baseUrl: relay.url, token: rb.json!.token as string });
    await a.send(bobId, 'hello bob');
    await bob.send(alice.user.id, 'hi alice');
    // bob's inbox now: 1 friend request, 2 friendship notice; the chats will be ids 3…TOTAL+2.

    let sending = true;
    let kills = 0;
    /** conversations.md length at each kill: the kills must land while messages are arriving. */
    const killedAt: number[] = [];
    const sender = (async () => {
      for (let i = 1; i <= TOTAL;) {
        // At least one kill per 100 messages, however fast or slow this machine is.
        await waitUntil(
          () => kills >= Math.floor((i - 1) / 100),
          `kill number ${Math.floor((i - 1) / 100)}`,
          60_000,
        );
        const burst = between(1, 20);
        for (let j = 0; j < burst && i <= TOTAL; j++, i++)
          await a.send(bobId, `m-${pad(i)}\nline two of ${i}`);
        await sleep(between(0, 60));
      }
      sending = false;
    })();

    while (sending) {
      const d = startDaemon(ws.skill, B);
      // Kill it at a random moment after it is up (connected, or storing what the relay replays).
      await Promise.race([
        waitUntil(
          async () => (await readText(join(B, 'sse_channel.log'))).includes(`pid=${d.pid}`),
          'the daemon to connect',
          30_000,
        ),
        d.exited,
      ]);
      await sleep(between(0, 300));
      await d.kill('SIGKILL');
      kills++;
      killedAt.push((await lines(join(B, 'conversations.md'))).length);
    }
    await sender;
    // A last, undisturbed run collects whatever is still waiting.
    const last = startDaemon(ws.skill, B);
    const incoming = await waitIncoming(B, TOTAL + 2, 60_000);
    await waitUntil(
      async () =>
        (await readText(join(B, 'sse_channel.log'))).includes(` connected mode=resume format=json since=`) &&
        (await readText(join(B, 'sse_channel.log'))).includes(`pid=${last.pid}`),
      'the last daemon to connect',
    );
    expect((await last.kill('SIGTERM')).code).toBe(0);
    expect(kills).toBeGreaterThan(5);
    expect(new Set(killedAt.filter((n) => n > 2 && n < TOTAL + 2)).size).toBeGreaterThan(5);

    const expected = [
      `[2026-03-09T02:00:00Z] from=#${alice.user.id}(alice) type=friend_request content=hello bob`,
      `[2026-03-09T02:00:00Z] from=#0(system) type=system content=您与 alice（ID:${alice.user.id}）已成功建立好友关系。（2026-03-09 10:00:00 北京时间）`,
      ...Array.from(
        { length: TOTAL },
        (_, k) =>
          `[2026-03-09T02:00:00Z] from=#${alice.user.id}(alice) type=chat content=m-${pad(k + 1)}\\nline two of ${k + 1}`,
      ),
    ];
    // Exactly these lines: bob's own reply (sent with the client, not the CLI) is not in the file.
    expect(incoming).toEqual(expected);
    expect(await lines(join(B, 'conversations.md'))).toEqual(expected);
    // Each stored message's id once, in order, beside its line.
    expect((await lines(join(B, 'conversations.idx'))).map((l) => Number(l.split(' ')[0]))).toEqual(
      Array.from({ length: TOTAL + 2 }, (_, k) => k + 1),
    );

    const headers = (await readText(join(B, 'inbox_pushed.md'))).match(/^## .*$/gm);
    expect(headers).toEqual(
      Array.from({ length: TOTAL + 2 }, (_, k) => `## 2026-03-09T02:00:00Z id=${k + 1}`),
    );
    expect(await readJson(join(B, 'cursor.json'))).toMatchObject({ last_id: TOTAL + 2 });
    const stats = await readJson<Record<string, unknown>>(join(B, 'stats.json'));
    expect(stats).toMatchObject({
      messages_received: TOTAL + 2,
      messages_sent: 0,
      by_type: { chat: TOTAL, friend_request: 1, system: 1, group: 0 },
      last_message_id: TOTAL + 2,
    });
    // Everything stored was acknowledged: the relay holds nothing more for bob.
    expect((await bob.readInbox({ after: TOTAL + 2 })).total).toBe(0);
  },
);
