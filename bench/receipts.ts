// `npx tsx bench/receipts.ts [--count 200] [--out file.json]`: receipt latency (issue 22) — the time from
// the recipient's acknowledgement (POST /messages/ack sent) to the sender's JSON resume stream receiving
// the `event: receipt` for that message, p50/p99 over `count` messages, one at a time.
//
//   sqlite    one relay process (SQLite): sender streams from it, recipient acknowledges on it
//   postgres  two relay processes on one PostgreSQL schema: the sender streams from A, the recipient
//             acknowledges on B (the receipt crosses instances as a NOTIFY); skipped without PostgreSQL
//
// Relays are spawned as real processes (bench/lib/procs.ts); the probe runs here. Writes JSON to stdout
// and to bench/results/receipts-<time>.json (or --out). Timing is measured, never asserted.

import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createParser } from 'eventsource-parser';
import pg from 'pg';
import { killAll, ROOT, startRelay, type ServerProcess } from './lib/procs.ts';
import { epochMs, summarize, type Summary } from './lib/stats.ts';
import { PG_BASE, schemaUrl } from './sections/postgres.ts';

interface User {
  id: number;
  token: string;
}

async function call(base: string, method: string, path: string, token?: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: {
      accept: 'application/json',
      ...(token ? { 'x-token': token } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function register(base: string, name: string): Promise<User> {
  const r = (await call(base, 'POST', '/register', undefined, { name })) as {
    user: { id: number };
    token: string;
  };
  return { id: r.user.id, token: r.token };
}

/** The sender's JSON resume stream: resolves once open; reports each receipt's message id and arrival. */
function receiptStream(
  base: string,
  token: string,
  onReceipt: (messageId: number, at: number) => void,
): Promise<() => void> {
  return new Promise((resolve, reject) => {
    let chunkAt = 0;
    const req = http.request(new URL('/stream?format=json&since=0', base), {
      headers: { accept: 'text/event-stream', 'x-token': token },
      agent: false,
    });
    const parser = createParser({
      onEvent(e) {
        if (e.event === 'log') resolve(() => req.destroy());
        else if (e.event === 'receipt')
          onReceipt((JSON.parse(e.data) as { message_id: number }).message_id, chunkAt);
      },
    });
    req.on('response', (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        chunkAt = epochMs();
        parser.feed(chunk);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** `count` probes: send (unmeasured), then ack → receipt on the sender's stream (measured). */
async function probe(sendBase: string, ackBase: string, count: number): Promise<Summary & { lost: number }> {
  const tag = Date.now().toString(36);
  const alice = await register(sendBase, `rcpt_a_${tag}`);
  const bob = await register(sendBase, `rcpt_b_${tag}`);
  await call(sendBase, 'POST', '/send', alice.token, { to_id: bob.id, content: 'hi' });
  await call(sendBase, 'POST', '/send', bob.token, { to_id: alice.id, content: 'hello' });
  await call(sendBase, 'GET', '/messages?limit=500', bob.token);
  const waiters = new Map<number, (at: number) => void>();
  const close = await receiptStream(sendBase, alice.token, (id, at) => waiters.get(id)?.(at));
  const latencies: number[] = [];
  let lost = 0;
  try {
    for (let i = 0; i <= count; i++) {
      const sent = (await call(sendBase, 'POST', '/send', alice.token, {
        to_id: bob.id,
        content: `r ${i}`,
      })) as {
        message_id: number;
      };
      const id = sent.message_id;
      const arrived = new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 5000);
        waiters.set(id, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
      });
      const t0 = epochMs();
      await call(ackBase, 'POST', '/messages/ack', bob.token, { up_to: id });
      const at = await arrived;
      waiters.delete(id);
      if (i === 0) continue; // warm-up: connections, first-use paths
      if (at === null) lost++;
      else latencies.push(at - t0);
    }
  } finally {
    close();
  }
  return { ...summarize(latencies), lost };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { count: { type: 'string' }, out: { type: 'string' } } });
  const count = Number(values.count ?? 200);
  const tmp = mkdtempSync(join(os.tmpdir(), 'owc-bench-rcpt-'));
  const results: Record<string, unknown> = {
    kind: 'receipts',
    startedAt: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    count,
  };
  const relays: ServerProcess[] = [];
  try {
    const sqlite = await startRelay({ dataDir: join(tmp, 'sqlite') });
    relays.push(sqlite);
    results.sqlite = await probe(sqlite.url, sqlite.url, count);
    await sqlite.stop();
    console.error(`sqlite: ${JSON.stringify(results.sqlite)}`);

    const admin = new pg.Client({ connectionString: PG_BASE, connectionTimeoutMillis: 3000 });
    let schema: string | null = null;
    try {
      await admin.connect();
      schema = `bench_rcpt_${Date.now().toString(36)}`;
      await admin.query(`CREATE SCHEMA ${schema}`);
      const env = { DATABASE_URL: schemaUrl(schema) };
      const a = await startRelay({ dataDir: join(tmp, 'pg-a'), env });
      relays.push(a);
      const b = await startRelay({ dataDir: join(tmp, 'pg-b'), env });
      relays.push(b);
      results.postgresTwoInstances = await probe(a.url, b.url, count);
      console.error(`postgres (stream on A, ack on B): ${JSON.stringify(results.postgresTwoInstances)}`);
      await Promise.all([a.stop(), b.stop()]);
    } catch (err) {
      results.postgresTwoInstances = { skipped: (err as Error).message };
    } finally {
      if (schema) await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.end().catch(() => undefined);
    }
  } finally {
    await killAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  results.finishedAt = new Date().toISOString();
  const json = JSON.stringify(results, null, 2);
  const out =
    values.out ??
    join(ROOT, 'bench', 'results', `receipts-${results.startedAt as string}.json`.replace(/:/g, '-'));
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, `${json}\n`);
  console.log(json);
}

await main();
