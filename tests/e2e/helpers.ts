// Helpers for the end-to-end encryption suites (docs/e2e.md): a relay child process on either backend
// with its whole trace-level log kept, E2E accounts (RelayClient + E2eSession with a key folder each),
// and the grep over everything the relay stored.

import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { E2eSession, RelayClient, type E2ePolicy, type Message } from '@openwechat/client';
import { createSchema, dropSchemas, PG_URL, schemaUrl } from '../helpers/pg.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';
import { TEST_BACKEND } from '../helpers/relay.ts';

export interface E2eRelay {
  url: string;
  dataDir: string;
  proc: RelayProcess;
  schema: string | null;
  /** Every byte the relay logged (trace level), stdout and stderr. */
  log(): string;
  /** The stored state as bytes: every file under the data folder (SQLite: the .db, -wal, -shm), or a pg_dump. */
  storedBytes(): Promise<Buffer>;
  close(): Promise<void>;
}

const execFileP = promisify(execFile);

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

async function pgDump(schema: string): Promise<Buffer> {
  const url = new URL(PG_URL);
  const args = [
    '-h',
    url.hostname,
    '-p',
    url.port || '5432',
    '-U',
    url.username || 'postgres',
    '-n',
    schema,
    url.pathname.slice(1),
  ];
  // On PATH (postgresql-client), else the server package's own copy, newest version first.
  const versions = (await readdir('/usr/lib/postgresql').catch(() => [] as string[])).sort(
    (x, y) => Number(y) - Number(x),
  );
  let last: unknown;
  for (const bin of ['pg_dump', ...versions.map((v) => `/usr/lib/postgresql/${v}/bin/pg_dump`)]) {
    try {
      const { stdout } = await execFileP(bin, args, { maxBuffer: 256 * 1024 * 1024, encoding: 'buffer' });
      return stdout;
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`pg_dump failed: ${(last as Error).message}`);
}

export async function startE2eRelay(): Promise<E2eRelay> {
  const dataDir = await mkdtemp(join(tmpdir(), 'owc-e2e-relay-'));
  const schema = TEST_BACKEND === 'postgres' ? await createSchema('e2e') : null;
  const proc = await spawnRelay({
    dataDir,
    keepChars: 64 * 1024 * 1024,
    env: { LOG_LEVEL: 'trace', ...(schema ? { DATABASE_URL: schemaUrl(schema) } : {}) },
  });
  return {
    url: proc.url,
    dataDir,
    proc,
    schema,
    log: () => proc.output().stdout + proc.output().stderr,
    async storedBytes() {
      const parts: Buffer[] = [];
      for (const f of await filesUnder(dataDir)) {
        if ((await stat(f)).isFile()) parts.push(await readFile(f));
      }
      if (schema) parts.push(await pgDump(schema));
      return Buffer.concat(parts);
    },
    async close() {
      await proc.kill('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
      if (schema) await dropSchemas([schema]);
    },
  };
}

export interface Account {
  id: number;
  name: string;
  token: string;
  client: RelayClient;
  keyDir: string;
  session: E2eSession | null;
}

let seq = 0;

/** Registers an account; with a policy it gets an E2eSession (keys generated and published). */
export async function account(
  relay: { url: string },
  policy: E2ePolicy | null,
  opts: { now?: () => number } = {},
): Promise<Account> {
  const name = `e2e${process.pid % 1000}_${++seq}_${Math.random().toString(36).slice(2, 6)}`;
  const reg = new RelayClient({ baseUrl: relay.url });
  const { user, token } = await reg.register({ name });
  const client = new RelayClient({ baseUrl: relay.url, token });
  const keyDir = await mkdtemp(join(tmpdir(), 'owc-e2e-keys-'));
  const session = policy
    ? new E2eSession({ client, userId: user.id, store: keyDir, policy, now: opts.now })
    : null;
  await session?.init();
  return { id: user.id, name, token, client, keyDir, session };
}

/** A new E2eSession for the same account with a new key folder: what a lost device's replacement does. */
export async function newDevice(a: Account, policy: E2ePolicy = 'preferred'): Promise<Account> {
  const keyDir = await mkdtemp(join(tmpdir(), 'owc-e2e-keys-'));
  const session = new E2eSession({ client: a.client, userId: a.id, store: keyDir, policy });
  await session.init();
  return { ...a, keyDir, session };
}

/** Everything stored for `a` now (non-destructive read: the messages stay until acknowledged). */
export async function inbox(a: Account): Promise<Message[]> {
  return (await a.client.readInbox({ after: 0, limit: 500 })).messages;
}

/** The newest message `a` has from `fromId` (throws when there is none). */
export async function lastFrom(a: Account, fromId: number): Promise<Message> {
  const m = (await inbox(a)).filter((x) => x.fromId === fromId).at(-1);
  if (!m) throw new Error(`no message from ${fromId} for ${a.id}`);
  return m;
}

export async function removeDirs(accounts: readonly Account[]): Promise<void> {
  for (const a of accounts) await rm(a.keyDir, { recursive: true, force: true });
}
