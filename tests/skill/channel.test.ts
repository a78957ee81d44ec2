// The inbox daemon's channel handling, read from sse_channel.log: SSE refused with 429 (logged and
// explained) → /messages fallback fills in → back to SSE (recovered); a token the relay rejects (401,
// explained, no fallback, slow retries); a relay that dies and comes back on the same port (disconnected →
// reconnecting with growing, jittered delays → connected + recovered, resuming from the last stored id);
// and several outages in a row (issue 16: the backoff starts over after a stable connection, and each
// "recovered after=" measures its own outage only).

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { RelayClient } from '../../packages/client/src/index.ts';
import { spawnRelay, stopAllRelays } from '../helpers/process.ts';
import { startRelay } from '../helpers/relay.ts';
import { openSse } from '../helpers/sse.ts';
import { cli, killAll, lines, readJson, readText, startDaemon, waitIncoming, waitUntil } from './helpers.ts';
import { suiteWorkspace } from './fixtures.ts';

const ws = suiteWorkspace('owc-channel-');
afterEach(async () => {
  await killAll();
  await stopAllRelays();
});

/** The channel log without timestamps. */
async function channel(data: string): Promise<string[]> {
  return (await lines(join(data, 'sse_channel.log'))).map((l) => l.replace(/^\d{4}-\d\d-\d\dT[\d:.]+Z /, ''));
}

async function waitChannel(data: string, re: RegExp, what: string): Promise<string[]> {
  return waitUntil(
    async () => {
      const ls = await channel(data);
      return ls.some((l) => re.test(l)) ? ls : undefined;
    },
    what,
    20_000,
    async () => (await channel(data)).join('\n'),
  );
}

async function pair(
  url: string,
): Promise<{ alice: RelayClient; bob: { id: number; token: string }; aliceId: number }> {
  const anon = new RelayClient({ baseUrl: url });
  const a = await anon.register({ name: `alice-${Math.random().toString(36).slice(2, 7)}` });
  const b = await anon.register({ name: `bob-${Math.random().toString(36).slice(2, 7)}` });
  const alice = new RelayClient({ baseUrl: url, token: a.token });
  await alice.send(b.user.id, 'request');
  await new RelayClient({ baseUrl: url, token: b.token }).send(a.user.id, 'accept');
  return { alice, aliceId: a.user.id, bob: { id: b.user.id, token: b.token } };
}

async function dataFor(bob: { id: number; token: string }, url: string, name: string): Promise<string> {
  const data = join(ws.root, name);
  await mkdir(data, { recursive: true });
  await writeFile(
    join(data, 'config.json'),
    JSON.stringify({
      base_url: url,
      token: bob.token,
      my_id: bob.id,
      my_name: 'bob',
      batch_size: 5,
      data_version: 2,
    }),
    { mode: 0o600 },
  );
  return data;
}

it('429 on the stream: explained, /messages fills in, then back to SSE', async () => {
  const relay = await startRelay({ sseMaxPerIp: 1 });
  try {
    const { alice, bob } = await pair(relay.url);
    const data = await dataFor(bob, relay.url, 'sse-limit');
    const other = await new RelayClient({ baseUrl: relay.url }).register({ name: 'slot-holder' });
    const holder = await openSse(relay.url, { token: other.token });
    expect(holder.status).toBe(200);

    const d = startDaemon(ws.skill, data);
    // What waited in the inbox (the request and the friendship notice), then what arrives meanwhile.
    await waitChannel(data, /^fallback fetched=2 last_id=2$/, 'the fallback to fetch the waiting messages');
    await alice.send(bob.id, 'while SSE is refused');
    await waitChannel(data, /^fallback fetched=1 last_id=3$/, 'the fallback to fetch the new one');
    const log = await channel(data);
    expect(log.slice(0, 4)).toEqual([
      "error 429 sse_limit: the relay limits SSE connections per user and per IP and this one is full; this daemon keeps polling GET /messages and reconnects by itself (do not stop other accounts' daemons: if it lasts, ask the operator to raise SSE_MAX_PER_IP). Retrying after the relay's Retry-After.",
      'reconnecting attempt=1 delay_ms=2000 reason=sse_limit status=429: 该 IP 的 SSE 连接数已达上限（最多 1 条）。',
      'fallback via=GET /messages?after=0 while SSE is down',
      'fallback fetched=2 last_id=2',
    ]);
    expect(log.filter((l) => l.startsWith('connected '))).toEqual([]);
    // Never connected, yet groups.json is kept (the UI's member counts come from it).
    const groupsFile = await waitUntil(
      () => readJson<{ groups: unknown[] }>(join(data, 'groups.json')).catch(() => undefined),
      'groups.json while in fallback',
    );
    expect(groupsFile.groups).toEqual([]);
    expect(
      (await readJson<{ sse: { state: string; mode: string } }>(join(data, 'stats.json'))).sse,
    ).toMatchObject({
      state: 'fallback',
      mode: 'fallback',
    });
    // A fallback that lasts is a problem doctor reports (here with no grace period), pointing at the 429 and
    // at the advice that leaves other accounts alone.
    const doctor = await cli(ws.skill, ['doctor', '--grace', '0', '--json'], { data });
    expect(doctor.code).toBe(1);
    const stream = (doctor.json!.checks as Array<{ name: string; level: string; detail: string }>).find(
      (c) => c.name === 'SSE stream',
    );
    expect(stream).toMatchObject({ level: 'fail' });
    expect(stream!.detail).toMatch(
      /^down for \d+ s; the daemon polls GET \/messages instead \(fallback\); last error: error .*429/,
    );
    expect(stream!.detail).toContain("do not stop other accounts' daemons");
    // With the default grace (60 s) a short outage is not a failure yet.
    const patient = await cli(ws.skill, ['doctor', '--json'], { data });
    expect((patient.json!.checks as Array<{ name: string }>).map((c) => c.name)).not.toContain('SSE stream');

    holder.close();
    const back = await waitChannel(data, /^recovered /, 'the recovery');
    const connected = back.find((l) => l.startsWith('connected '))!;
    expect(connected).toMatch(/^connected mode=resume format=json since=3 relay=openwechat 0\.1\.0 pid=\d+$/);
    expect(back.at(-1)).toMatch(
      /^(recovered after=\d+ms attempts=\d+ back to SSE|server stream_connected .*)$/,
    );
    await alice.send(bob.id, 'over SSE again');
    const incoming = await waitIncoming(data, 4);
    expect(incoming.slice(2).map((l) => l.replace(/^\[\S+\] /, ''))).toEqual([
      expect.stringMatching(/type=chat content=while SSE is refused$/),
      expect.stringMatching(/type=chat content=over SSE again$/),
    ]);
    expect((await d.kill('SIGTERM')).code).toBe(0);
  } finally {
    await relay.close();
  }
});

it('401: explained, no fallback, retried slowly', async () => {
  const relay = await startRelay({ sseMaxPerIp: 5 });
  try {
    const data = await dataFor({ id: 1, token: 'f'.repeat(32) }, relay.url, 'bad-token');
    const d = startDaemon(ws.skill, data, { env: { OPENWECHAT_RECONNECT_MAX_MS: '60000' } });
    const log = await waitChannel(data, /^reconnecting /, 'the retry');
    expect(log).toEqual([
      `error 401 invalid_token: the relay at ${relay.url} does not accept the token in config.json. Check config.json or register again; the daemon keeps retrying slowly.`,
      'reconnecting attempt=1 delay_ms=60000 reason=invalid_token status=401: Token 无效',
    ]);
    expect((await d.kill('SIGTERM')).code).toBe(0);
    expect((await channel(data)).at(-1)).toBe('disconnected reason=daemon_stopped');
  } finally {
    await relay.close();
  }
});

it(
  'the relay dies and comes back: reconnects with backoff and jitter, resumes, loses nothing',
  { timeout: 60_000 },
  async () => {
    const relayData = await mkdtemp(join(tmpdir(), 'owc-channel-relay-'));
    try {
      let relay = await spawnRelay({ dataDir: relayData, env: { SSE_MAX_PER_IP: '10' } });
      const { alice, bob } = await pair(relay.url);
      const data = await dataFor(bob, relay.url, 'relay-restart');
      const d = startDaemon(ws.skill, data);
      await waitChannel(data, /^connected /, 'connected');
      await alice.send(bob.id, 'before the crash');
      await waitIncoming(data, 3);

      await relay.kill('SIGKILL');
      await waitChannel(data, /^reconnecting attempt=4 /, 'a few reconnection attempts');
      relay = await spawnRelay({ dataDir: relayData, port: relay.port, env: { SSE_MAX_PER_IP: '10' } });
      const log = await waitChannel(data, /^recovered /, 'recovered');
      const sender = new RelayClient({ baseUrl: relay.url, token: alice.token });
      await sender.send(bob.id, 'after the restart');
      await waitIncoming(data, 4);

      const i = log.findIndex((l) => l.startsWith('disconnected '));
      expect(log[i]).toMatch(/^disconnected reason=(stream_ended|network_error|stream_idle)/);
      const attempts = log.filter((l) => l.startsWith('reconnecting '));
      // Equal jitter: attempt n waits between half and all of min(1000, 100·2^(n-1)) ms.
      attempts.forEach((l, k) => {
        const delay = Number(/delay_ms=(\d+)/.exec(l)![1]);
        const cap = Math.min(1000, 100 * 2 ** k);
        expect(l).toMatch(new RegExp(`^reconnecting attempt=${k + 1} delay_ms=\\d+ reason=`));
        expect(delay).toBeGreaterThanOrEqual(cap / 2);
        expect(delay).toBeLessThanOrEqual(cap);
      });
      expect(log.filter((l) => l.startsWith('fallback via='))).toEqual([
        'fallback via=GET /messages?after=3 while SSE is down',
      ]);
      expect(log.filter((l) => l.startsWith('connected ')).map((l) => / since=(\d+)/.exec(l)?.[1])).toEqual([
        '0',
        '3',
      ]);
      expect(log.find((l) => l.startsWith('recovered '))).toMatch(
        new RegExp(`^recovered after=\\d+ms attempts=${attempts.length} back to SSE$`),
      );
      const incoming = await waitIncoming(data, 4);
      expect(incoming.slice(2).map((l) => / content=(.*)$/.exec(l)![1])).toEqual([
        'before the crash',
        'after the restart',
      ]);
      // Each id once, beside its line (the entry follows the line: wait for it).
      const idx = await waitUntil(async () => {
        const got = (await readText(join(data, 'conversations.idx'))).trim().split('\n');
        return got.length >= 4 ? got : undefined;
      }, 'four idx entries');
      expect(idx.map((l) => l.split(' ')[0])).toEqual(['1', '2', '3', '4']);
      expect(
        (await readJson<{ sse: { reconnects: number; state: string } }>(join(data, 'stats.json'))).sse,
      ).toMatchObject({
        state: 'connected',
        reconnects: 1,
      });
      expect((await d.kill('SIGTERM')).code).toBe(0);
    } finally {
      await stopAllRelays();
      await rm(relayData, { recursive: true, force: true });
    }
  },
);

it(
  'several outages: after a stable connection the next outage starts from the first delay (issue 16)',
  { timeout: 90_000 },
  async () => {
    const relayData = await mkdtemp(join(tmpdir(), 'owc-channel-outages-'));
    const env = { SSE_MAX_PER_IP: '10' };
    try {
      let relay = await spawnRelay({ dataDir: relayData, env });
      const { bob } = await pair(relay.url);
      const data = await dataFor(bob, relay.url, 'outages');
      // Any connection counts as stable here, so every outage must start over at attempt 1.
      const d = startDaemon(ws.skill, data, { env: { OPENWECHAT_STABLE_MS: '0' } });
      await waitChannel(data, /^connected /, 'connected');
      for (const [round, attempts] of [
        [1, 4],
        [2, 3],
        [3, 2],
      ] as const) {
        await relay.kill('SIGKILL');
        const re = new RegExp(`^reconnecting attempt=${attempts} `);
        await waitUntil(
          async () =>
            (await channel(data)).filter((l) => l.startsWith('disconnected ')).length === round
              ? true
              : undefined,
          `disconnect ${round}`,
        );
        await waitUntil(async () => {
          const ls = await channel(data);
          const since = ls.map((l) => l.startsWith('disconnected ')).lastIndexOf(true);
          return ls.slice(since).some((l) => re.test(l)) ? true : undefined;
        }, `${attempts} attempts in outage ${round}`);
        relay = await spawnRelay({ dataDir: relayData, port: relay.port, env });
        await waitUntil(
          async () =>
            (await channel(data)).filter((l) => l.startsWith('recovered ')).length === round
              ? true
              : undefined,
          `recovery ${round}`,
        );
      }
      expect((await d.kill('SIGTERM')).code).toBe(0);

      const timed = (await lines(join(data, 'sse_channel.log'))).map((l) => {
        const m = /^(\S+) (.*)$/.exec(l)!;
        return { at: Date.parse(m[1]!), line: m[2]! };
      });
      const starts = timed.flatMap((t, i) =>
        t.line.startsWith('disconnected reason=') && !t.line.includes('daemon_stopped') ? [i] : [],
      );
      expect(starts).toHaveLength(3);
      for (const [k, start] of starts.entries()) {
        const end = timed.findIndex((t, i) => i > start && t.line.startsWith('recovered '));
        const outage = timed.slice(start, end + 1);
        const tries = outage.filter((t) => t.line.startsWith('reconnecting '));
        // Every outage counts from 1, each step within [step/2, step] of min(1000, 100·2^(n−1)) ms.
        tries.forEach((t, n) => {
          const delay = Number(/delay_ms=(\d+)/.exec(t.line)![1]);
          expect(t.line).toMatch(new RegExp(`^reconnecting attempt=${n + 1} delay_ms=`));
          expect(delay).toBeGreaterThanOrEqual(Math.min(1000, 100 * 2 ** n) / 2);
          expect(delay).toBeLessThanOrEqual(Math.min(1000, 100 * 2 ** n));
        });
        // "recovered" reports this outage alone: its attempts, and a length within its own log lines.
        const rec = /^recovered after=(\d+)ms attempts=(\d+) back to SSE$/.exec(timed[end]!.line)!;
        expect(Number(rec[2])).toBe(tries.length);
        expect(Number(rec[1])).toBeLessThanOrEqual(timed[end]!.at - timed[start]!.at);
        if (k > 0) expect(Number(rec[1])).toBeLessThan(timed[end]!.at - timed[starts[k - 1]!]!.at);
      }
    } finally {
      await stopAllRelays();
      await rm(relayData, { recursive: true, force: true });
    }
  },
);
