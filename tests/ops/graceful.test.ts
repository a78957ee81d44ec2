// Graceful restarts (issue 10): SIGTERM during a send load. The relay stops accepting, tells its streams
// it is closing, finishes in-flight requests and exits 0; restarted on the same data folder it serves
// again. Resume clients reconnect with Last-Event-ID and lose nothing; keyed senders retry until answered.

import { describe, expect, it } from 'vitest';
import { relayProcessSuite } from '../helpers/fixtures.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';
import { openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import { befriend, keyedSend, register, type User } from '../relay/client.ts';

const SENDS = 300;
const suite = relayProcessSuite('owc-graceful-');

/** A resume client: reconnects with Last-Event-ID whenever its stream ends, until stopped. */
function resumeReader(base: string, user: User) {
  const ids: number[] = [];
  const contents: string[] = [];
  const logs: string[] = [];
  let last = 0;
  let stopped = false;
  let current: SseConnection | null = null;
  const loop = (async () => {
    while (!stopped) {
      let conn: SseConnection;
      try {
        conn = await openSse(base, {
          path: '/stream?format=json',
          token: user.token,
          headers: { 'Last-Event-ID': String(last) },
        });
      } catch {
        await sleep(50);
        continue;
      }
      if (conn.status !== 200) {
        conn.close();
        await sleep(50);
        continue;
      }
      current = conn;
      let seen = 0;
      while (!stopped) {
        await conn.waitFor(() => conn.events.length > seen || conn.ended, 60_000).catch(() => {});
        for (; seen < conn.events.length; seen++) {
          const e = conn.events[seen]!;
          if (e.event === 'log') logs.push(e.data);
          if (e.event !== 'message') continue;
          const m = JSON.parse(e.data) as { id: number; content: string };
          ids.push(m.id);
          contents.push(m.content);
          last = Math.max(last, m.id); // "stored" before the cursor moves
        }
        if (conn.ended) break;
      }
      conn.close();
    }
  })();
  return {
    ids,
    contents,
    logs,
    async stop() {
      stopped = true;
      current?.close();
      await loop;
    },
  };
}

async function sendUntilAnswered(base: string, from: User, toId: number, content: string, key: string) {
  for (;;) {
    try {
      const r = await keyedSend(base, from, toId, content, key);
      // 503: the relay is closing and refuses new requests; retry like a network error.
      if (r.status === 503) {
        await sleep(50);
        continue;
      }
      return { status: r.status, body: r.body };
    } catch {
      await sleep(50);
    }
  }
}

describe('SIGTERM during a send load', () => {
  it('exits cleanly, and resume clients lose nothing across the restart', async () => {
    const dataDir = await suite.dataDir();
    let relay: RelayProcess = await spawnRelay({ dataDir });
    const { url: base, port } = relay;
    const sender = await register(base, 'graceful_sender');
    const readers: User[] = [await register(base, 'graceful_r1'), await register(base, 'graceful_r2')];
    for (const r of readers) await befriend(base, sender, r);
    // Readers start after the friendship messages; resume from the newest id so far.
    const streams = readers.map((r) => resumeReader(base, r));

    let answered = 0;
    const exits: { code: number | null; signal: string | null }[] = [];
    const restarter = (async () => {
      while (answered < SENDS / 2) await sleep(2);
      exits.push(await relay.kill('SIGTERM'));
      relay = await spawnRelay({ dataDir, port });
    })();
    for (let i = 0; i < SENDS; i++) {
      const content = `m${i}`;
      for (const [k, r] of readers.entries()) {
        const a = await sendUntilAnswered(base, sender, r.id, content, `g-${k}-${i}`);
        expect({ i, status: a.status }).toEqual({ i, status: 200 });
      }
      answered += 1;
    }
    await restarter;

    // The relay exited on its own with status 0 (not killed), and told the streams why they closed.
    expect(exits).toEqual([{ code: 0, signal: null }]);
    for (const s of streams) {
      await expect
        .poll(() => s.contents.filter((c) => c.startsWith('m')).length, { timeout: 15_000 })
        .toBeGreaterThanOrEqual(SENDS);
      await s.stop();
      expect(s.logs.some((l) => l === 'stream_closing reason=shutdown')).toBe(true);
      // Exactly once after dedup by id, in send order.
      const byId = new Map<number, string>();
      for (const [j, id] of s.ids.entries()) byId.set(id, s.contents[j]!);
      const ordered = [...byId.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c);
      const chats = ordered.filter((c) => c.startsWith('m'));
      expect(chats).toEqual(Array.from({ length: SENDS }, (_, i) => `m${i}`));
    }
  }, 90_000);
});
