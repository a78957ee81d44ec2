// Scale-out run for real (issue 24): Debian's nginx with the project's proxy configuration
// (deploy/nginx/openwechat.conf.template, the file compose.yaml and SERVER.md use) in front of three relay
// processes (the production bundle) on one PostgreSQL database — a private cluster this test creates with
// initdb/pg_ctl, never the machine's shared server. Under a steady load of sends (each retried with its
// Idempotency-Key until answered 200) and 50 resume consumers (raw SSE, Last-Event-ID, reconnecting by
// themselves), all through the proxy:
//   (a) one relay is SIGKILLed — its streams reconnect through nginx to the others and resume;
//   (b) it is started again on its port — nginx sends it traffic again;
//   (c) PostgreSQL itself is restarted (pg_ctl restart -m immediate) — sends meanwhile are refused with a
//       clear 503 (or nginx's 502), the relays recover without a restart of their own (pool and LISTEN).
// Asserted: every acknowledged send reaches its recipient's consumer (lost = 0), no consumer sees a message
// twice, every relay is healthy and LISTENing again at the end. Recovery times are printed, not asserted.
//
// CI runs it once (in the machine's Node pass; OWC_SKIP_PROXY_FAULTS=1 skips it in the Node 24 pass).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxBinary, startNginx, type NginxProcess } from '../helpers/nginx.ts';
import { pgClusterAvailable, startPgCluster, type PgCluster } from '../helpers/pg-cluster.ts';
import { requirePostgres } from '../helpers/pg.ts';
import { spawnRelay, stopAllRelays, type RelayProcess } from '../helpers/process.ts';
import { openSse, sleep, type SseConnection } from '../helpers/sse.ts';
import { befriend, register, type User } from '../relay/client.ts';
import { pageAll, type MessageJson } from '../delivery/util.ts';

const CONSUMERS = 50;
const SENDERS = 10;
/** Each sender waits this long between two sends: a steady load, not a benchmark. */
const PACE_MS = 50;
/** Sends answered (200) before the first fault, and after each recovery before the next. */
const STEADY_ACKS = 150;
/** Upper bound on the whole load, whatever happens. */
const MAX_SENDS_PER_SENDER = 3000;
const RELAYS = 3;

const skipped = process.env.OWC_SKIP_PROXY_FAULTS === '1';
const usable = nginxBinary() !== null && pgClusterAvailable();
if (!usable && !skipped && requirePostgres()) {
  throw new Error(
    'REQUIRE_POSTGRES=1 but nginx or the PostgreSQL server binaries (initdb, pg_ctl) are missing',
  );
}

interface Outcome {
  start: number;
  end: number;
  ok: boolean;
  /** HTTP status, or 0 for a network error. */
  status: number;
  detail: string;
}

interface Ack {
  to: number;
  content: string;
  id: number;
}

/** One connection of a consumer: when it opened and (if it did) ended. */
interface Session {
  openedAt: number;
  endedAt: number | null;
}

/**
 * A resume consumer: one `GET /stream?format=json` through the proxy with `Last-Event-ID` set to the
 * highest id it has; when the stream ends or is refused it reconnects by itself (jittered backoff, as a
 * client would). Counts every message event, so a message sent twice is seen.
 */
class Consumer {
  readonly got = new Map<number, string>();
  duplicates = 0;
  lastId: number;
  readonly sessions: Session[] = [];
  refusals = 0;
  private conn: SseConnection | null = null;
  private stopped = false;
  private running: Promise<void> | null = null;

  constructor(
    readonly user: User,
    since: number,
    private readonly base: string,
    /** The loopback address this consumer connects from: each consumer is its own client. */
    private readonly address: string,
  ) {
    this.lastId = since;
  }

  get connected(): boolean {
    return this.sessions.at(-1)?.endedAt === null;
  }

  start(): void {
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    const backoff = () => sleep(Math.min(100 * 2 ** failures++, 1000) * (0.5 + Math.random() / 2));
    while (!this.stopped) {
      let conn: SseConnection;
      try {
        conn = await openSse(this.base, {
          token: this.user.token,
          path: '/stream?format=json',
          headers: { 'Last-Event-ID': String(this.lastId) },
          timeoutMs: 10_000,
          localAddress: this.address,
        });
      } catch {
        this.refusals++;
        await backoff();
        continue;
      }
      if (conn.status !== 200) {
        this.refusals++;
        conn.close();
        await backoff();
        continue;
      }
      failures = 0;
      this.conn = conn;
      const session: Session = { openedAt: Date.now(), endedAt: null };
      this.sessions.push(session);
      let seen = 0;
      while (!this.stopped) {
        await conn.waitFor(() => conn.events.length > seen, 60_000, 'stream activity').catch(() => undefined);
        for (; seen < conn.events.length; seen++) {
          const e = conn.events[seen]!;
          if (e.event !== 'message') continue;
          const m = JSON.parse(e.data) as MessageJson;
          if (this.got.has(m.id)) this.duplicates++;
          else this.got.set(m.id, m.content ?? '');
          this.lastId = Math.max(this.lastId, m.id);
        }
        if (conn.ended) break;
      }
      session.endedAt = Date.now();
      conn.close();
      if (!this.stopped) await backoff();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.conn?.close();
    await this.running;
  }
}

/** Sum of a Prometheus counter/gauge's samples whose labels match. */
function metric(text: string, name: string, labels: RegExp = /.*/): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m && labels.test(m[1] ?? '')) sum += Number(m[2]);
  }
  return sum;
}

async function metrics(relay: RelayProcess): Promise<string> {
  const r = await fetch(`${relay.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  return r.text();
}

async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

describe.skipIf(!usable || skipped)('three relays behind nginx on one PostgreSQL, under faults', () => {
  let cluster: PgCluster | null = null;
  let proxy: NginxProcess | null = null;
  const relays: RelayProcess[] = [];
  const dirs: string[] = [];
  const consumers: Consumer[] = [];
  let env: Record<string, string>;
  const startTimes: number[] = [];

  beforeAll(async () => {
    cluster = await startPgCluster();
    // TRUST_PROXY is nginx's address, and the per-IP stream cap is the default (20): each consumer
    // connects from its own loopback address, which the relays learn from X-Forwarded-For. Were that chain
    // broken, every stream would count against nginx's one address, and once a relay is killed the
    // survivors (~25 streams each) would refuse the 21st.
    env = { DATABASE_URL: cluster.url, TRUST_PROXY: '127.0.0.1', SSE_MAX_PER_IP: '20' };
    for (let i = 0; i < RELAYS; i++) dirs.push(await mkdtemp(join(tmpdir(), 'owc-proxy-relay-')));
    // One after the other: the first migrates the empty database, the others find nothing to do.
    for (const dataDir of dirs) {
      const t = Date.now();
      relays.push(await spawnRelay({ dataDir, env }));
      startTimes.push(Date.now() - t);
    }
    // max_fails/fail_timeout as SERVER.md gives them for a plain host.
    proxy = await startNginx({
      servers: relays.map((r) => `127.0.0.1:${r.port}`),
      serverParams: 'max_fails=1 fail_timeout=5s',
    });
  }, 90_000);

  afterAll(async () => {
    await Promise.all(consumers.map((c) => c.stop()));
    await proxy?.stop();
    await stopAllRelays();
    await cluster?.destroy();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }, 60_000);

  it('SIGKILL of a relay, its restart, and a PostgreSQL restart lose nothing and duplicate nothing', async () => {
    const base = proxy!.url;
    const sql = new pg.Client({ connectionString: cluster!.url });

    // Users and friendships, through the proxy. Sender k writes to the recipients j with j % SENDERS == k.
    const recipients: User[] = [];
    for (let j = 0; j < CONSUMERS; j++) recipients.push(await register(base, `pf_r${j}`));
    const senders: User[] = [];
    for (let k = 0; k < SENDERS; k++) senders.push(await register(base, `pf_s${k}`));
    const mine = (k: number) => recipients.filter((_, j) => j % SENDERS === k);
    await Promise.all(
      senders.map(async (s, k) => {
        for (const r of mine(k)) await befriend(base, s, r);
      }),
    );
    for (const r of recipients) {
      const since = (await pageAll(base, r)).at(-1)?.id ?? 0;
      consumers.push(new Consumer(r, since, base, `127.0.1.${consumers.length + 1}`));
    }
    for (const c of consumers) c.start();
    await waitUntil(() => consumers.every((c) => c.connected), 30_000, 'every consumer connected');
    const spread = await Promise.all(
      relays.map(async (r) => metric(await metrics(r), 'owc_sse_streams_open')),
    );

    // The load: sequential sends per sender, each retried with the same Idempotency-Key until a 200.
    const outcomes: Outcome[] = [];
    const acks = new Map<string, Ack>();
    const fatal: string[] = [];
    let replays = 0;
    let stopSending = false;
    const sendUntilAnswered = async (s: User, to: User, content: string, key: string): Promise<void> => {
      const deadline = Date.now() + 45_000;
      for (;;) {
        const start = Date.now();
        try {
          const res = await fetch(`${base}/send`, {
            method: 'POST',
            headers: {
              'X-Token': s.token,
              'Content-Type': 'application/json',
              Accept: 'application/json',
              'Idempotency-Key': key,
            },
            body: JSON.stringify({ to_id: to.id, content }),
            signal: AbortSignal.timeout(15_000),
          });
          const body = await res.text();
          outcomes.push({ start, end: Date.now(), ok: res.status === 200, status: res.status, detail: body });
          if (res.status === 200) {
            const id = (JSON.parse(body) as { message_id: number }).message_id;
            acks.set(key, { to: to.id, content, id });
            if (res.headers.get('idempotent-replayed') === 'true') replays++;
            return;
          }
          if (res.status < 500) {
            fatal.push(`${key}: ${res.status} ${body}`);
            return;
          }
        } catch (err) {
          outcomes.push({ start, end: Date.now(), ok: false, status: 0, detail: (err as Error).message });
        }
        if (Date.now() > deadline) {
          fatal.push(`${key}: no 200 within 45 s`);
          return;
        }
        await sleep(100);
      }
    };
    const load = Promise.all(
      senders.map(async (s, k) => {
        const to = mine(k);
        for (let i = 0; i < MAX_SENDS_PER_SENDER && !stopSending && fatal.length === 0; i++) {
          await sendUntilAnswered(s, to[i % to.length]!, `pf s${k} #${i}`, `pf-${k}-${i}`);
          await sleep(PACE_MS);
        }
      }),
    );
    const steady = (from: number) =>
      waitUntil(
        () => acks.size >= from + STEADY_ACKS || fatal.length > 0,
        40_000,
        `${STEADY_ACKS} more sends answered`,
      );

    const report: string[] = [];
    const ms = (v: number) => `${Math.round(v)} ms`;
    /** What the senders saw from t0 until now. */
    const refusedSince = (t0: number) => {
      const failed = outcomes.filter((o) => !o.ok && o.end >= t0);
      const byStatus = new Map<string, number>();
      for (const o of failed) {
        const k = o.status ? String(o.status) : 'network';
        byStatus.set(k, (byStatus.get(k) ?? 0) + 1);
      }
      const first = failed.length ? Math.min(...failed.map((o) => o.end)) : null;
      const last = failed.length ? Math.max(...failed.map((o) => o.end)) : null;
      const recovered = first === null ? null : outcomes.find((o) => o.ok && o.start >= last!);
      return {
        failed,
        text:
          failed.length === 0
            ? 'no send refused'
            : `${failed.length} send attempts refused (${[...byStatus].map(([k, n]) => `${k}×${n}`).join(', ')}) ` +
              `from +${ms(first! - t0)} to +${ms(last! - t0)}; first answered send after them at ` +
              `+${recovered ? ms(recovered.end - t0) : '?'}`,
      };
    };
    /** When every consumer whose stream ended after t0 had a stream again (relative to t0). */
    const reconnectedSince = (t0: number) => {
      let latest = t0;
      let ended = 0;
      for (const c of consumers) {
        const endedAfter = c.sessions.filter((s) => s.endedAt !== null && s.endedAt >= t0);
        if (!endedAfter.length) continue;
        ended++;
        const reopened = c.sessions.at(-1)!;
        latest = Math.max(latest, reopened.openedAt);
      }
      return { ended, afterMs: latest - t0 };
    };

    await steady(0);

    // (a) SIGKILL one relay.
    const victim = 0;
    const onVictim = metric(await metrics(relays[victim]!), 'owc_sse_streams_open');
    // The kill must cut streams, or their reconnect through nginx is not exercised.
    expect(onVictim).toBeGreaterThan(0);
    const ackedBeforeKill = acks.size;
    const tKill = Date.now();
    const killed = await relays[victim]!.kill('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    await waitUntil(
      () =>
        consumers.filter((c) => c.sessions.some((s) => s.endedAt !== null && s.endedAt >= tKill)).length >=
        onVictim,
      20_000,
      `the ${onVictim} streams of the killed relay to end`,
    );
    await waitUntil(() => consumers.every((c) => c.connected), 30_000, 'every consumer reconnected');
    await steady(ackedBeforeKill);
    const kill = reconnectedSince(tKill);
    report.push(
      `(a) SIGKILL relay ${victim} (${onVictim} of ${CONSUMERS} streams on it, spread ${spread.join('/')}): ` +
        `${kill.ended} streams ended, all reconnected through nginx and resumed by +${ms(kill.afterMs)}; ` +
        refusedSince(tKill).text,
    );

    // (b) Start it again on its port; nginx brings it back into rotation by itself (after fail_timeout).
    const tRestart = Date.now();
    relays[victim] = await spawnRelay({ dataDir: dirs[victim]!, port: relays[victim]!.port, env });
    const listeningAfter = Date.now() - tRestart;
    const ackedBeforeRestart = acks.size;
    const servingAfter = await waitUntil(
      async () => metric(await metrics(relays[victim]!), 'owc_http_requests_total', /route="\/send"/) > 0,
      30_000,
      'the restarted relay to serve sends through nginx',
    ).then((d) => d + listeningAfter);
    await steady(ackedBeforeRestart);
    report.push(
      `(b) restart relay ${victim}: listening after ${ms(listeningAfter)} (first starts: ${startTimes.map(ms).join(', ')}), serving sends through nginx after ` +
        `${ms(servingAfter)}; ${refusedSince(tRestart).text}`,
    );

    // (c) Restart PostgreSQL under the load.
    const ackedBeforePg = acks.size;
    const tPg = Date.now();
    await cluster!.restart('immediate');
    const pgBack = Date.now() - tPg;
    await waitUntil(
      () => consumers.every((c) => c.connected),
      30_000,
      'every consumer connected after the restart',
    );
    await steady(Math.max(ackedBeforePg, acks.size));
    const pgRefused = refusedSince(tPg);
    const pgStreams = reconnectedSince(tPg);
    report.push(
      `(c) pg_ctl restart -m immediate (${ms(pgBack)} until it accepted connections): ${pgRefused.text}; ` +
        `${pgStreams.ended} streams ended, all connected again by +${ms(pgStreams.afterMs)}`,
    );
    const pgStatuses = new Set(pgRefused.failed.map((o) => o.status));
    const sample = (status: number) =>
      pgRefused.failed.find((o) => o.status === status)?.detail.slice(0, 160);

    stopSending = true;
    await load;
    expect(fatal).toEqual([]);

    // Every acknowledged send reaches its recipient's consumer, exactly once.
    const byRecipient = new Map<number, Ack[]>();
    for (const a of acks.values()) byRecipient.set(a.to, [...(byRecipient.get(a.to) ?? []), a]);
    const missing = () =>
      consumers.reduce(
        (n, c) => n + (byRecipient.get(c.user.id) ?? []).filter((a) => c.got.get(a.id) !== a.content).length,
        0,
      );
    await waitUntil(() => missing() === 0, 30_000, 'every acknowledged send delivered').catch(
      () => undefined,
    );
    const lost = missing();
    const duplicates = consumers.reduce((n, c) => n + c.duplicates, 0);
    const delivered = consumers.reduce(
      (n, c) => n + [...c.got.values()].filter((content) => content.startsWith('pf s')).length,
      0,
    );

    // The relays reconnected to PostgreSQL by themselves: the same processes, each with a new LISTEN
    // connection (opened after the restart).
    await sql.connect();
    const listening = await waitUntil(
      async () =>
        Number(
          (
            await sql.query<{ n: string }>(
              `SELECT count(*) AS n FROM pg_stat_activity
               WHERE application_name = 'openwechat-relay-listen' AND backend_start > to_timestamp($1 / 1000.0)`,
              [tPg],
            )
          ).rows[0]!.n,
        ) === RELAYS,
      20_000,
      `${RELAYS} LISTEN connections`,
    ).catch((err: Error) => err.message);
    await sql.end();
    const exits = relays.map((r, i) =>
      r.child.exitCode === null && r.child.signalCode === null
        ? null
        : `relay ${i} exited (code ${r.child.exitCode}, signal ${r.child.signalCode}):\n${r.output().stderr.slice(-3000)}`,
    );
    expect(exits).toEqual(relays.map(() => null));
    const ready = await Promise.all(
      relays.map(async (r) => {
        const res = await fetch(`${r.url}/readyz`);
        return `${res.status} ${await res.text()}`;
      }),
    );
    const viaProxy = await fetch(`${base}/readyz`).then((r) => r.status);

    const sends = outcomes.filter((o) => o.ok).length;
    console.log(
      [
        `[proxy faults] nginx ${proxy!.url} → ${RELAYS} relays on a private PostgreSQL; ${CONSUMERS} resume consumers, ` +
          `${SENDERS} senders; ${acks.size} sends acknowledged (${sends} 200 answers, ${replays} idempotent replays), ` +
          `lost ${lost}, duplicates ${duplicates}`,
        ...report,
        `    PostgreSQL restart refusals by status: ${[...pgStatuses].map((s) => `${s}: ${sample(s)}`).join(' | ')}`,
      ].join('\n'),
    );

    expect(lost).toBe(0);
    expect(duplicates).toBe(0);
    expect(delivered).toBe(acks.size);
    // Refusals during the PostgreSQL restart are a clear "try again": the relay's 503, or nginx's 502
    // while it has no relay to offer; never a 500 or a hang (a hang would show as a 0 after 15 s).
    for (const status of pgStatuses) expect([0, 502, 503]).toContain(status);
    expect(pgRefused.failed.filter((o) => o.status === 0 && o.end - o.start > 10_000)).toEqual([]);
    expect(listening, String(listening)).toEqual(expect.any(Number));
    expect(ready.map((r) => r.split(' ')[0])).toEqual(relays.map(() => '200'));
    expect(viaProxy).toBe(200);
  }, 150_000);

  it('with PostgreSQL down each relay answers at once 503 store_unavailable, and serves again when it is back', async () => {
    const base = proxy!.url;
    const a = await register(base, 'pf_down_a');
    const b = await register(base, 'pf_down_b');
    await befriend(base, a, b);
    const pids = relays.map((r) => r.child.pid);
    const send = (r: RelayProcess, content: string, headers: Record<string, string> = {}) =>
      fetch(`${r.url}/send`, {
        method: 'POST',
        headers: { 'X-Token': a.token, 'Content-Type': 'application/json', ...headers },
        body: JSON.stringify({ to_id: b.id, content }),
        // A relay that hangs instead of answering fails here.
        signal: AbortSignal.timeout(10_000),
      });

    let proxyDown = 0;
    await cluster!.stop('fast');
    try {
      for (const [i, r] of relays.entries()) {
        const json = await send(r, `while down ${i}`, { Accept: 'application/json' });
        expect(json.status).toBe(503);
        expect(json.headers.get('retry-after')).toBe('2');
        expect(await json.json()).toEqual({
          error: { code: 'store_unavailable', message: '存储暂时不可用，请稍后重试' },
        });
        const text = await send(r, `while down ${i}`);
        expect(text.status).toBe(503);
        expect(await text.text()).toBe('错误 503：存储暂时不可用，请稍后重试');
        const stream = await openSse(r.url, {
          token: b.token,
          path: '/stream?format=json',
          timeoutMs: 10_000,
        });
        stream.close();
        expect(stream.status).toBe(503);
        const ready = await fetch(`${r.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
        expect(ready.status).toBe(503);
        expect(await ready.json()).toMatchObject({ reason: 'store_unavailable' });
      }
      // Through nginx: a read (which nginx may try on every relay) is refused too, never hangs.
      const viaProxy = await fetch(`${base}/messages?after=0`, {
        headers: { 'X-Token': b.token, Accept: 'application/json' },
        signal: AbortSignal.timeout(10_000),
      });
      await viaProxy.text();
      proxyDown = viaProxy.status;
    } finally {
      await cluster!.start();
    }
    const tStarted = Date.now();
    const proxied = (path: string, init: RequestInit = {}) =>
      fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(10_000) }).then(async (r) => {
        await r.text();
        return r.status;
      });
    const proxyReadBack = await waitUntil(
      async () => (await proxied('/messages?after=0', { headers: { 'X-Token': b.token } })) === 200,
      20_000,
      'a read through nginx to succeed again',
    );
    await waitUntil(
      async () =>
        (await proxied('/send', {
          method: 'POST',
          headers: {
            'X-Token': a.token,
            'Content-Type': 'application/json',
            'Idempotency-Key': 'pf-back-proxy',
          },
          body: JSON.stringify({ to_id: b.id, content: 'back via proxy' }),
        })) === 200,
      20_000,
      'a send through nginx to succeed again',
    );
    const proxySendBack = Date.now() - tStarted;

    // Each relay serves again by itself (same process), as soon as PostgreSQL accepts connections.
    const back: number[] = [];
    for (const [i, r] of relays.entries()) {
      await waitUntil(
        async () =>
          (await send(r, `back ${i}`, { 'Idempotency-Key': `pf-back-${i}` }).then((x) => x.status)) === 200,
        20_000,
        `relay ${i} to accept a send again`,
      );
      back.push(Date.now() - tStarted);
    }
    console.log(
      `[proxy faults] PostgreSQL stopped: a read through nginx got ${proxyDown}; started again: through nginx ` +
        `a read succeeded after ${proxyReadBack} ms, a send after ${proxySendBack} ms; each relay directly ` +
        `accepted a send by ${back.join('/')} ms`,
    );
    expect([502, 503]).toContain(proxyDown);
    expect(relays.map((r) => r.child.pid)).toEqual(pids);
    // What was refused changed nothing; what was accepted is there once.
    const contents = (await pageAll(base, b)).map((m) => m.content);
    expect(contents.filter((c) => c?.startsWith('while down'))).toEqual([]);
    expect(contents.filter((c) => c?.startsWith('back '))).toEqual([
      'back via proxy',
      'back 0',
      'back 1',
      'back 2',
    ]);
  }, 60_000);
});
