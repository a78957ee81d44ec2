// Group fan-out: a 500-member group (MAX_GROUP_MEMBERS), each send stored once per other member (499
// rows, per-recipient ids, docs/groups-api.md#storage). Measures the send latency one at a time (p50/p99,
// the time the sender waits for `发送成功`, i.e. until all 499 rows are committed) and rows stored per
// second, sequential and with 4 members sending at once, on SQLite and on PostgreSQL (a fresh schema,
// dropped at the end). Nobody is streaming: this is the store's cost, the wake-ups are measured elsewhere;
// every inbox is acknowledged before each phase, as streaming clients would.

import { join } from 'node:path';
import pg from 'pg';
import type { BenchContext } from '../lib/context.ts';
import { mapLimit, namePrefix, RelayClient, type User } from '../lib/client.ts';
import { cpuMeter, type CpuUse } from '../lib/cpu.ts';
import { startRelay, type ServerProcess } from '../lib/procs.ts';
import { round, summarize, type Summary } from '../lib/stats.ts';
import { PG_BASE, schemaUrl } from './postgres.ts';

export const GROUP_MEMBERS = 500;
const CONCURRENT_SENDERS = 4;

interface GroupFanout {
  members: number;
  /** Rows per send: every member but the sender. */
  rowsPerSend: number;
  sequential: { sends: number; latencyMs: Summary; sendsPerSec: number; rowsPerSec: number; cpu?: CpuUse };
  concurrent: { senders: number; sends: number; latencyMs: Summary; sendsPerSec: number; rowsPerSec: number };
  /** Time to set the group up (registrations, friendships, members), s. */
  setupSec: number;
}

export type GroupFanoutResult = GroupFanout | { skipped: string } | { error: string };

export interface GroupsResult {
  sqlite: GroupFanoutResult;
  postgres: GroupFanoutResult;
}

async function post(client: RelayClient, path: string, token: string, body: unknown): Promise<unknown> {
  const a = await client.request('POST', path, { token, body, json: true });
  if (a.status !== 200) throw new Error(`POST ${path}: HTTP ${a.status} ${a.text.slice(0, 200)}`);
  return JSON.parse(a.text) as unknown;
}

/** Registers the owner and 499 friends, creates the group and adds them in batches; returns the group id. */
async function prepareGroup(client: RelayClient): Promise<{ gid: number; owner: User; members: User[] }> {
  const prefix = namePrefix();
  const users = await mapLimit(
    Array.from({ length: GROUP_MEMBERS }, (_, i) => i),
    16,
    (i) => client.register(`${prefix}g${i}`),
  );
  const owner = users[0]!;
  const members = users.slice(1);
  await mapLimit(members, 8, async (m) => {
    await client.send(owner, m.id, 'hi');
    await client.send(m, owner.id, 'hello');
  });
  await client.drainInbox(owner);
  const created = (await post(client, '/groups', owner.token, { name: 'bench group' })) as {
    group: { id: number };
  };
  const gid = created.group.id;
  for (let at = 0; at < members.length; at += 100) {
    await post(client, `/groups/${gid}/members`, owner.token, {
      user_ids: members.slice(at, at + 100).map((m) => m.id),
    });
  }
  return { gid, owner, members };
}

/** POST /messages/ack for every member: what their streams would do. */
async function ackAll(client: RelayClient, members: readonly User[]): Promise<void> {
  await mapLimit(members, 16, async (m) => {
    await post(client, '/messages/ack', m.token, { up_to: 2 ** 31 });
  });
}

async function groupSend(client: RelayClient, gid: number, from: User, n: number): Promise<number> {
  const t = performance.now();
  const j = (await post(client, `/groups/${gid}/send`, from.token, { content: `bench ${n}` })) as {
    recipients: number;
  };
  if (j.recipients !== GROUP_MEMBERS - 1) throw new Error(`group send reached ${j.recipients} members`);
  return performance.now() - t;
}

async function measureOn(ctx: BenchContext, relay: ServerProcess, extraPids: Record<string, string>) {
  const client = new RelayClient(relay.url, 8);
  try {
    const t0 = performance.now();
    const { gid, owner, members } = await prepareGroup(client);
    const setupSec = round((performance.now() - t0) / 1000, 1);
    const sends = ctx.settings.quick ? 20 : 200;
    for (let i = 0; i < 5; i++) await groupSend(client, gid, owner, -i); // warm-up
    await client.drainInbox(owner);
    await ackAll(client, members);

    const meter = cpuMeter({ relay: relay.pid }, extraPids);
    const seq: number[] = [];
    const s0 = performance.now();
    for (let i = 0; i < sends; i++) seq.push(await groupSend(client, gid, owner, i));
    const seqSec = (performance.now() - s0) / 1000;
    const cpu = meter();

    // Streaming clients acknowledge within seconds: empty every inbox again, so this phase starts from
    // the same table size as the first (a table that only grows measures SQLite's page cache instead).
    await ackAll(client, members);
    // The senders' own inboxes fill with each other's messages; their previews read 5 of them.
    const senders = members.slice(0, CONCURRENT_SENDERS);
    const conc: number[] = [];
    const c0 = performance.now();
    await Promise.all(
      senders.map(async (s, k) => {
        for (let i = 0; i < sends / CONCURRENT_SENDERS; i++)
          conc.push(await groupSend(client, gid, s, k * 1e6 + i));
      }),
    );
    const concSec = (performance.now() - c0) / 1000;
    const rows = GROUP_MEMBERS - 1;
    return {
      members: GROUP_MEMBERS,
      rowsPerSend: rows,
      sequential: {
        sends,
        latencyMs: summarize(seq),
        sendsPerSec: round(sends / seqSec, 1),
        rowsPerSec: round((sends * rows) / seqSec, 0),
        cpu,
      },
      concurrent: {
        senders: CONCURRENT_SENDERS,
        sends: conc.length,
        latencyMs: summarize(conc),
        sendsPerSec: round(conc.length / concSec, 1),
        rowsPerSec: round((conc.length * rows) / concSec, 0),
      },
      setupSec,
    } satisfies GroupFanout;
  } finally {
    await client.close();
  }
}

function describe(r: GroupFanout): string {
  const s = r.sequential;
  const c = r.concurrent;
  return (
    `p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms per send (${s.sendsPerSec} sends/s, ${s.rowsPerSec} rows/s); ` +
    `${c.senders} senders at once: p50 ${c.latencyMs.p50} ms, p99 ${c.latencyMs.p99} ms, ${c.rowsPerSec} rows/s`
  );
}

export async function measureGroups(ctx: BenchContext): Promise<GroupsResult> {
  const out: GroupsResult = { sqlite: { skipped: 'not run' }, postgres: { skipped: 'not run' } };
  const env = { MAX_GROUP_MEMBERS: String(GROUP_MEMBERS) };

  const lite = await startRelay({ dataDir: join(ctx.tmpDir, 'groups-sqlite'), env });
  try {
    const r = await measureOn(ctx, lite, {});
    out.sqlite = r;
    ctx.log(`  SQLite, ${GROUP_MEMBERS}-member group: ${describe(r)}`);
  } catch (err) {
    out.sqlite = { error: (err as Error).message };
    throw err;
  } finally {
    await lite.stop();
  }

  const schema = `bench_groups_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: PG_BASE, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (err) {
    out.postgres = { skipped: `PostgreSQL not reachable at ${PG_BASE}: ${(err as Error).message}` };
    return out;
  }
  let relay: ServerProcess | null = null;
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
    relay = await startRelay({
      dataDir: join(ctx.tmpDir, 'groups-pg'),
      env: { ...env, DATABASE_URL: schemaUrl(schema) },
    });
    const r = await measureOn(ctx, relay, { postgres: 'postgres' });
    out.postgres = r;
    ctx.log(`  PostgreSQL, ${GROUP_MEMBERS}-member group: ${describe(r)}`);
  } catch (err) {
    out.postgres = { error: (err as Error).message };
    throw err;
  } finally {
    await relay?.stop();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await admin.end();
  }
  return out;
}
