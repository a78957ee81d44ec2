// Two relay processes on one PostgreSQL schema (issue 5, docs/scaling.md): a message sent through instance A
// reaches a stream held by instance B promptly (LISTEN/NOTIFY; the 2 s catch-up covers a lost
// notification), and losing an instance loses nothing: A is SIGKILLed in the middle of a 2,000-message
// load, its senders fail over to B retrying with the same Idempotency-Key until answered, its stream
// client reconnects to B and resumes — and every recipient ends up with every message exactly once (after
// dedup by id), in per-sender order.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSchema, dropSchemas, pgAvailable, querySchema, schemaUrl } from '../helpers/pg.ts';
import { spawnRelay, stopAllRelays, type RelayProcess } from '../helpers/process.ts';
import { openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import { befriend, keyedSend, register, type User } from '../relay/client.ts';
import { mulberry32, pageAll, randInt, type MessageJson } from '../delivery/util.ts';

const available = await pgAvailable();

const SENDERS = 4;
/** Recipients 0–2 stream from B the whole time; recipient 3 streams from A until A dies. */
const RECIPIENTS = 4;
const TOTAL = 2000;
const PER_SENDER = TOTAL / SENDERS;

const dirs: string[] = [];
const schemas: string[] = [];

async function startPair(tag: string): Promise<{ a: RelayProcess; b: RelayProcess; schema: string }> {
  const schema = await createSchema(tag);
  schemas.push(schema);
  const env = { DATABASE_URL: schemaUrl(schema) };
  const start = async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'owc-two-'));
    dirs.push(dataDir);
    return spawnRelay({ dataDir, env });
  };
  const [a, b] = await Promise.all([start(), start()]);
  return { a, b, schema };
}

afterAll(async () => {
  await stopAllRelays();
  if (schemas.length) await dropSchemas(schemas);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/**
 * A resume client (`?format=json`, `Last-Event-ID`): records every message event by id; when its stream
 * ends or cannot be opened it reconnects, to the next base in `bases`, from the highest id it has.
 */
class ResumeClient {
  readonly got = new Map<number, MessageJson>();
  /** Ids in the order they were received, duplicates included. */
  readonly received: number[] = [];
  lastId: number;
  reconnects = 0;
  conn: SseConnection | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(
    readonly user: User,
    private readonly bases: () => string[],
    since: number,
  ) {
    this.lastId = since;
  }

  start(): Promise<void> {
    this.running = this.loop();
    return this.waitOpen();
  }

  private opened: Promise<void> | null = null;
  private waitOpen(): Promise<void> {
    return (this.opened ??= new Promise((resolve) => (this.wake = resolve)));
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const bases = this.bases();
      const base = bases[attempt % bases.length]!;
      let conn: SseConnection;
      try {
        conn = await openSse(base, {
          token: this.user.token,
          path: '/stream?format=json',
          headers: { 'Last-Event-ID': String(this.lastId) },
          timeoutMs: 3000,
        });
      } catch {
        attempt++;
        await sleep(100);
        continue;
      }
      if (conn.status !== 200) throw new Error(`stream refused: ${conn.status} ${conn.body}`);
      this.conn = conn;
      this.wake?.();
      let seen = 0;
      while (!this.stopped) {
        await conn
          .waitFor(() => conn.events.length > seen || conn.ended, 60_000, 'stream activity')
          .catch(() => undefined);
        for (; seen < conn.events.length; seen++) {
          const e = conn.events[seen]!;
          if (e.event !== 'message') continue;
          const m = JSON.parse(e.data) as MessageJson;
          if (e.id !== String(m.id)) throw new Error(`event id ${e.id} carries message ${m.id}`);
          this.received.push(m.id);
          if (!this.got.has(m.id)) this.got.set(m.id, m);
          this.lastId = Math.max(this.lastId, m.id);
        }
        for (const w of [...this.waiters]) w();
        if (conn.ended) break;
      }
      conn.close();
      if (this.stopped) break;
      this.reconnects++;
      attempt++;
      await sleep(50);
    }
  }

  private readonly waiters = new Set<() => void>();

  /** Resolves once `n` distinct messages have arrived (checked as each one is recorded). */
  waitFor(n: number, timeoutMs: number): Promise<void> {
    if (this.got.size >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.got.size < n) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.user.name}: ${this.got.size} of ${n} messages after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conn?.close();
    await this.running;
  }
}

interface Answer {
  status: number;
  body: string;
  replayed: boolean;
  via: string;
}

describe.skipIf(!available)('two relay processes on one PostgreSQL schema', () => {
  let a: RelayProcess;
  let b: RelayProcess;
  let schema: string;

  beforeAll(async () => {
    ({ a, b, schema } = await startPair('two'));
  });

  it('a message sent through A reaches a stream on B promptly; a lost notification is caught up', async () => {
    const sender = await register(a.url, 'lat_sender');
    const recipient = await register(b.url, 'lat_recipient');
    await befriend(a.url, sender, recipient);
    const since = (await pageAll(b.url, recipient)).at(-1)!.id;
    const client = new ResumeClient(recipient, () => [b.url], since);
    await client.start();
    await client.conn!.waitForEvents(1, { filter: (e) => e.event === 'log' });

    const latencies: number[] = [];
    const sendTimes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const arrived = client.waitFor(i + 1, 5000).then(() => performance.now() - t);
      const r = await fetch(`${a.url}/send`, {
        method: 'POST',
        headers: { 'X-Token': sender.token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to_id: recipient.id, content: `ping ${i}` }),
      });
      expect(r.status).toBe(200);
      await r.text();
      sendTimes.push(performance.now() - t);
      latencies.push(await arrived);
    }
    latencies.sort((x, y) => x - y);
    sendTimes.sort((x, y) => x - y);
    const ms = (v: number) => `${v.toFixed(1)} ms`;
    console.log(
      `[two instances] send via A → event on B (20 sequential sends): median ${ms(latencies[10]!)}, ` +
        `p95 ${ms(latencies[18]!)}, max ${ms(latencies[19]!)} (the POST /send alone: median ${ms(sendTimes[10]!)})`,
    );

    // Kill B's LISTEN connection from the server side and send at once: the notification is lost
    // while B reconnects, and the periodic catch-up (2 s) still delivers.
    const killed = await querySchema<{ ok: boolean }>(
      schema,
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
       WHERE query = $1 AND application_name = 'openwechat-relay-listen'`,
      [`LISTEN "owc_wake_${schema}"`],
    );
    expect(killed.length).toBe(2);
    const t = performance.now();
    const r = await fetch(`${a.url}/send`, {
      method: 'POST',
      headers: { 'X-Token': sender.token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ to_id: recipient.id, content: 'after the drop' }),
    });
    expect(r.status).toBe(200);
    await client.waitFor(21, 6000);
    console.log(
      `[two instances] with the LISTEN connections dropped: arrived in ${ms(performance.now() - t)}`,
    );
    expect([...client.got.values()].map((m) => m.content)).toEqual([
      ...Array.from({ length: 20 }, (_, i) => `ping ${i}`),
      'after the drop',
    ]);
    expect(client.received).toEqual([...client.got.keys()]);
    await client.stop();
  });

  it('SIGKILL of A mid-load: senders fail over to B, every message arrives exactly once', async () => {
    const rng = mulberry32(0x5ca1e);
    const recipients: User[] = [];
    const senders: User[] = [];
    for (let j = 0; j < RECIPIENTS; j++) recipients.push(await register(b.url, `two_r${j}`));
    for (let k = 0; k < SENDERS; k++) {
      const s = await register(a.url, `two_s${k}`);
      for (const r of recipients) await befriend(k % 2 ? a.url : b.url, s, r);
      senders.push(s);
    }
    // Each recipient acknowledges what befriending left in its inbox; streams resume from there.
    let aAlive = true;
    const clients: ResumeClient[] = [];
    for (const [j, r] of recipients.entries()) {
      const since = (await pageAll(b.url, r)).at(-1)!.id;
      const onA = j === RECIPIENTS - 1;
      const c = new ResumeClient(r, () => (onA && aAlive ? [a.url, b.url] : [b.url]), since);
      await c.start();
      clients.push(c);
    }
    const baseline = clients.map((c) => c.lastId);

    const killAt = Math.floor(TOTAL * (0.4 + 0.2 * rng()));
    const killDelay = randInt(rng, 0, 10);
    let answered = 0;
    let networkErrors = 0;
    let failovers = 0;
    let killedAnswered = -1;
    /** content → final answer. */
    const answers = new Map<string, Answer>();

    const killer = (async () => {
      while (answered < killAt) await sleep(1);
      await sleep(killDelay);
      killedAnswered = answered;
      const exit = await a.kill('SIGKILL');
      aAlive = false;
      return exit;
    })();

    const post = async (base: string, from: User, toId: number, content: string, key: string) => {
      const r = await keyedSend(base, from, toId, content, key, 10_000);
      return {
        status: r.status,
        body: r.body,
        replayed: r.headers.get('idempotent-replayed') === 'true',
        via: base,
      };
    };

    const senderLoop = async (k: number): Promise<void> => {
      const s = senders[k]!;
      let base = a.url;
      for (let i = 0; i < PER_SENDER; i++) {
        const j = i % RECIPIENTS;
        const content = `s${k}>r${j} #${i}`;
        const key = `two-${k}-${i}`;
        for (;;) {
          try {
            answers.set(content, await post(base, s, recipients[j]!.id, content, key));
            break;
          } catch {
            networkErrors++;
            if (base === a.url) {
              base = b.url;
              failovers++;
            }
            await sleep(20);
          }
        }
        answered++;
      }
    };

    const started = Date.now();
    await Promise.all(senders.map((_, k) => senderLoop(k)));
    const exit = await killer;
    const loadMs = Date.now() - started;

    expect(exit.signal).toBe('SIGKILL');
    expect(killedAnswered).toBeGreaterThan(0);
    expect(killedAnswered).toBeLessThan(TOTAL);
    expect(failovers).toBe(SENDERS);
    expect(answers.size).toBe(TOTAL);
    for (const [content, ans] of answers) {
      expect({ content, status: ans.status }).toEqual({ content, status: 200 });
      expect((JSON.parse(ans.body) as { result: string }).result).toBe('chat');
    }
    const replays = [...answers.values()].filter((x) => x.replayed).length;

    const perRecipient = TOTAL / RECIPIENTS;
    await Promise.all(clients.map((c) => c.waitFor(perRecipient, 20_000)));
    // A moment more: nothing extra may arrive.
    await sleep(300);
    for (const c of clients) await c.stop();

    for (const [j, c] of clients.entries()) {
      const msgs = [...c.got.values()].sort((x, y) => x.id - y.id);
      const contents = msgs.map((m) => m.content);
      const expected = senders.flatMap((_, k) =>
        Array.from({ length: PER_SENDER }, (_, i) => i)
          .filter((i) => i % RECIPIENTS === j)
          .map((i) => `s${k}>r${j} #${i}`),
      );
      // Exactly once: after dedup by id, the same multiset as sent, no extras.
      expect(msgs.length).toBe(perRecipient);
      expect([...contents].sort()).toEqual([...expected].sort());
      expect(new Set(contents).size).toBe(perRecipient);
      expect(msgs.every((m) => m.type === 'chat' && m.id > baseline[j]!)).toBe(true);
      // Per sender, in send order.
      for (const [k, s] of senders.entries()) {
        const mine = msgs.filter((m) => m.from_id === s.id).map((m) => m.content);
        expect(mine).toEqual(expected.filter((x) => x.startsWith(`s${k}>`)));
      }
      // The id each sender was told (first answer or replay) is the id delivered.
      for (const m of msgs) {
        const ans = answers.get(m.content)!;
        expect({
          content: m.content,
          id: (JSON.parse(ans.body) as { message_id: number }).message_id,
        }).toEqual({
          content: m.content,
          id: m.id,
        });
      }
    }
    // The stream on A lost its instance and resumed on B.
    expect(clients[RECIPIENTS - 1]!.reconnects).toBeGreaterThanOrEqual(1);
    const duplicates = clients.reduce((n, c) => n + c.received.length - c.got.size, 0);
    console.log(
      `[two instances] ${TOTAL} messages in ${loadMs} ms; A SIGKILLed after ${killedAnswered} answers; ` +
        `${networkErrors} network errors, ${replays} idempotent replays, ` +
        `${duplicates} duplicate deliveries removed by id, stream reconnects ${clients.map((c) => c.reconnects).join('/')}`,
    );

    // B alone still serves, and the database holds exactly what was delivered.
    const stats = await fetch(`${b.url}/stats`).then((r) => r.json() as Promise<{ messages: number }>);
    // Lifetime count: the latency test's befriending (4) and 21 messages, this test's befriending
    // (4 per pair) and the load, each counted once.
    expect(stats.messages).toBe(4 + 21 + SENDERS * RECIPIENTS * 4 + TOTAL);
    const stop = await b.kill('SIGTERM');
    expect(stop).toEqual({ code: 0, signal: null });
  }, 90_000);
});
