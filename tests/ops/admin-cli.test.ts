// The admin CLI against a real data folder while the relay serves it: each command's effect is checked
// through the relay's own HTTP answers (a disabled token is refused, a reset token replaces the old one,
// a backup is a working database, prune removes what expired, advance-ids moves the next message id).
// Then a restore, end to end: a client that saw ids beyond the backup still receives the first message
// sent after `restore` — and, as the control, loses it after a plain file copy (no advance-ids).

import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundlePath } from '../../scripts/build.ts';
import { spawnRelay, stopAllRelays, type RelayProcess } from '../helpers/process.ts';
import { openSse, sleep, type SseEvent } from '../helpers/sse.ts';
import { befriend, messageIds, register, req, sendOk, type User } from '../relay/client.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
let dataDir: string;
let relay: RelayProcess;
let alice: User;
let bob: User;

/** Runs `npm run admin -- …` as an operator would (same data folder, plain process). */
function admin(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bundlePath('relay', 'admin'), ...args], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: dataDir, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'owc-admin-'));
  relay = await spawnRelay({ dataDir });
  alice = await register(relay.url, 'admin_alice');
  bob = await register(relay.url, 'admin_bob');
}, 30_000);

afterAll(async () => {
  await stopAllRelays();
  await rm(dataDir, { recursive: true, force: true });
});

describe('admin CLI', () => {
  it('users / user list and find users, as text and JSON', async () => {
    const list = await admin(['users', '--json']);
    expect(list.code).toBe(0);
    const parsed = JSON.parse(list.stdout) as { total: number; users: { id: number; name: string }[] };
    expect(parsed.total).toBe(2);
    expect(parsed.users.map((u) => u.name)).toEqual(['admin_alice', 'admin_bob']);
    const found = await admin(['users', '--query', 'BOB']);
    expect(found.stdout.split('\n')[0]).toBe('共 1 位用户');
    expect(found.stdout).toContain('admin_bob');
    const one = await admin(['user', String(alice.id), '--json']);
    expect(JSON.parse(one.stdout)).toMatchObject({
      user: { id: alice.id, name: 'admin_alice', disabled_at: null },
    });
    const missing = await admin(['user', '99999']);
    expect({ code: missing.code, out: missing.stdout.trim() }).toEqual({ code: 1, out: '用户不存在' });
  });

  it('disable refuses the token at once (403), enable restores it', async () => {
    const off = await admin(['disable', String(bob.id)]);
    expect(off.code).toBe(0);
    const refused = await req(relay.url, 'GET', '/friends', { token: bob.token });
    expect({ status: refused.status, body: refused.body }).toEqual({
      status: 200,
      body: '错误：账号已被停用，请联系中继服务器管理员',
    });
    const json = await req(relay.url, 'GET', '/friends', { token: bob.token, jsonMode: true });
    expect(json.status).toBe(403);
    expect(JSON.parse(json.body)).toMatchObject({ error: { code: 'account_disabled' } });
    // Hidden from discovery while disabled.
    expect((await req(relay.url, 'GET', '/users', { token: alice.token })).body).toBe('暂无可交流的用户');
    expect((await admin(['enable', String(bob.id)])).code).toBe(0);
    expect((await req(relay.url, 'GET', '/friends', { token: bob.token })).body).toBe('暂无好友');
  });

  it('reset-token prints a new token once; the old one stops working', async () => {
    const r = await admin(['reset-token', String(alice.id), '--json']);
    expect(r.code).toBe(0);
    const { id, token } = JSON.parse(r.stdout) as { id: number; token: string };
    expect(id).toBe(alice.id);
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect((await req(relay.url, 'GET', '/friends', { token: alice.token })).body).toBe('错误：Token 无效');
    expect((await req(relay.url, 'GET', '/friends', { token })).body).toBe('暂无好友');
    alice = { ...alice, token };
  });

  it('stats, backup (a working, private copy) and prune', async () => {
    await befriend(relay.url, alice, bob);
    const stats = JSON.parse((await admin(['stats', '--json'])).stdout) as Record<string, number>;
    expect(stats).toEqual({ users: 2, friendships: 1, messages: 4 });

    const file = join(dataDir, 'backup.sqlite');
    const b = await admin(['backup', file]);
    expect(b.code).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const copy = new Database(file, { readonly: true });
    expect((copy.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n).toBe(2);
    copy.close();
    expect((await admin(['backup', file])).code).toBe(2); // never overwrites

    await sleep(1200); // past the 0.9 s retention given to prune below
    const p = await admin(['prune', '--json'], { MESSAGE_RETENTION_DAYS: '0.00001' });
    expect(p.code).toBe(0);
    // alice: bob's request was accepted → her inbox holds the reply and a notice; bob: request + notice.
    expect(JSON.parse(p.stdout)).toMatchObject({ messages: 4 });
    expect((await req(relay.url, 'GET', '/messages', { token: bob.token })).body).toBe('收件箱为空');
  });

  it('advance-ids adds N to every inbox: the next id jumps, stored messages keep theirs', async () => {
    await sendOk(relay.url, alice, bob.id, 'before advance');
    const before = messageIds((await req(relay.url, 'GET', '/messages', { token: bob.token })).body);
    expect(before).toHaveLength(1);
    const r = await admin(['advance-ids', '--by', '1000', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ users: 2, by: 1000 });
    await sendOk(relay.url, alice, bob.id, 'after advance');
    // The relay, running all along, takes the next id from the advanced value.
    expect(messageIds((await req(relay.url, 'GET', '/messages', { token: bob.token })).body)).toEqual([
      before[0]! + 1001,
    ]);
    const text = await admin(['advance-ids']); // default step
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('2 位用户的收件箱，每个 +1000000');
  });

  it('advance-ids refuses a --by that is not an integer from 1 to 2^40 (exit 2, nothing changed)', async () => {
    for (const by of ['0', 'abc', '1.5', '1e6', String(2 ** 40 + 1)]) {
      const r = await admin(['advance-ids', '--by', by]);
      expect({ by, code: r.code }).toEqual({ by, code: 2 });
      expect(r.stderr).toContain('--by must be a positive integer up to 2^40');
    }
    expect((await admin(['advance-ids', '--by', '-5'])).code).toBe(2); // not a value: a parse error
    // 2^40 itself is allowed.
    expect(JSON.parse((await admin(['advance-ids', '--by', String(2 ** 40), '--json'])).stdout)).toEqual({
      users: 2,
      by: 2 ** 40,
    });
  });

  it('restore refuses a missing file, a non-database, a foreign database, a running relay and PostgreSQL', async () => {
    const missing = await admin(['restore', join(dataDir, 'no-such.sqlite')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('backup file not found');

    const text = join(dataDir, 'notes.txt');
    await writeFile(text, 'this is not a database\n'.repeat(100));
    const notDb = await admin(['restore', text]);
    expect(notDb.code).toBe(1);
    expect(notDb.stderr).toContain('is not a usable SQLite database');

    const foreign = join(dataDir, 'foreign.sqlite');
    const f = new Database(foreign);
    f.exec('CREATE TABLE users (id INTEGER PRIMARY KEY)');
    f.close();
    const notOurs = await admin(['restore', foreign]);
    expect(notOurs.code).toBe(1);
    expect(notOurs.stderr).toContain(
      'is not an openwechat relay database (no schema_migrations, messages tables)',
    );

    // A good backup, but the relay is serving the database: refused, and the relay keeps working.
    const running = await admin(['restore', join(dataDir, 'backup.sqlite')]);
    expect(running.code).toBe(1);
    expect(running.stderr).toContain('appears to be running on it; stop it first');
    expect((await req(relay.url, 'GET', '/friends', { token: bob.token })).body).toContain('admin_alice');
    expect(existsSync(join(dataDir, 'relay.sqlite.restoring'))).toBe(false);

    const usage = await admin(['restore']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('restore needs a backup file');

    // PostgreSQL: not this command (nothing is connected to).
    const pg = await admin(['restore', join(dataDir, 'backup.sqlite')], {
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    });
    expect(pg.code).toBe(2);
    expect(pg.stderr).toContain('pg_restore');
    expect(pg.stderr).toContain('npm run admin -- advance-ids');
  });

  it('usage and configuration errors exit 2 with a message', async () => {
    const unknown = await admin(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command: frobnicate');
    const noDb = await admin(['stats'], { DATA_DIR: join(dataDir, 'nowhere') });
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toContain('no relay database');
    const badSetting = await admin(['stats', '--rate-limit-qps', 'lots']);
    expect(badSetting.code).toBe(2);
    expect(badSetting.stderr).toContain('RATE_LIMIT_QPS (flag): must be an integer');
  });
});

describe('restore: message ids never go back (SQLite, relay stopped and restarted)', () => {
  const WARNING = 'client acknowledges message ids this inbox never issued';

  interface Scenario {
    dir: string;
    relay: RelayProcess;
    bob: User;
    /** Ids Bob's client saw before the backup / in all. */
    seenAtBackup: number;
    seenMax: number;
    /** Bob's client resuming after the restore with `Last-Event-ID: seenMax`. */
    resumed: Awaited<ReturnType<typeof openSse>>;
  }

  const ids = (events: SseEvent[]) => events.map((e) => Number(e.id));
  const contents = (events: SseEvent[]) =>
    events.map((e) => (JSON.parse(e.data) as { content: string }).content);
  const dirs: string[] = [];

  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /**
   * Alice and Bob are friends; Bob's resume client sees everything; `admin backup`; three more messages,
   * seen by the client (ids beyond the backup); the relay stops; `restore(dir, backup)`; a new relay on the
   * folder; Alice sends "after restore"; Bob's client resumes with the last id it saw.
   */
  async function scenario(restore: (dir: string, backup: string) => Promise<void>): Promise<Scenario> {
    const dir = await mkdtemp(join(tmpdir(), 'owc-restore-'));
    dirs.push(dir);
    const first = await spawnRelay({ dataDir: dir });
    const a = await register(first.url, 'restore_alice');
    const b = await register(first.url, 'restore_bob');
    await befriend(first.url, a, b); // Bob: the request (1) and the friendship notice (2)
    await sendOk(first.url, a, b.id, 'before backup 1');
    await sendOk(first.url, a, b.id, 'before backup 2');
    const s1 = await openSse(first.url, {
      path: '/stream?format=json',
      token: b.token,
      headers: { 'Last-Event-ID': '0' },
    });
    expect(ids(await s1.waitForMessages(4))).toEqual([1, 2, 3, 4]);
    s1.close();
    const seenAtBackup = 4;

    const backup = join(dir, 'backup.sqlite');
    expect((await admin(['backup', backup], { DATA_DIR: dir })).code).toBe(0);

    for (const n of [1, 2, 3]) await sendOk(first.url, a, b.id, `after backup ${n}`);
    const s2 = await openSse(first.url, {
      path: '/stream?format=json',
      token: b.token,
      headers: { 'Last-Event-ID': String(seenAtBackup) },
    });
    const later = await s2.waitForMessages(3);
    expect(contents(later)).toEqual(['after backup 1', 'after backup 2', 'after backup 3']);
    s2.close();
    const seenMax = Math.max(...ids(later));
    expect(seenMax).toBe(7);

    await first.kill('SIGTERM');
    await restore(dir, backup);
    const relay = await spawnRelay({ dataDir: dir });
    await sendOk(relay.url, a, b.id, 'after restore');
    const resumed = await openSse(relay.url, {
      path: '/stream?format=json',
      token: b.token,
      headers: { 'Last-Event-ID': String(seenMax) },
    });
    expect(resumed.status).toBe(200);
    await resumed.waitForEvents(1, { filter: (e) => e.event === 'log' });
    return { dir, relay, bob: b, seenAtBackup, seenMax, resumed };
  }

  it('`admin restore`: the resuming client receives the new message, with an id above all it saw', async () => {
    let restored: { code: number | null; stdout: string; stderr: string } | undefined;
    const sc = await scenario(async (dir, backup) => {
      restored = await admin(['restore', backup, '--json'], { DATA_DIR: dir });
    });
    try {
      expect(restored!.code).toBe(0);
      const live = join(sc.dir, 'relay.sqlite');
      expect(JSON.parse(restored!.stdout)).toMatchObject({
        restored: join(sc.dir, 'backup.sqlite'),
        database: live,
        replaced: true,
        users: 2,
        by: 1_000_000,
      });
      expect(statSync(live).mode & 0o777).toBe(0o600);
      // The backup is kept as it was (no -wal/-shm left beside it); no temporary file remains.
      expect(existsSync(join(sc.dir, 'backup.sqlite'))).toBe(true);
      for (const f of ['backup.sqlite-wal', 'backup.sqlite-shm', 'relay.sqlite.restoring']) {
        expect({ f, exists: existsSync(join(sc.dir, f)) }).toEqual({ f, exists: false });
      }

      const got = await sc.resumed.waitForMessages(1);
      expect(contents(got)).toEqual(['after restore']);
      expect(ids(got)[0]).toBe(sc.seenAtBackup + 1_000_000 + 1);
      expect(ids(got)[0]).toBeGreaterThan(sc.seenMax);
      await sleep(300);
      expect(sc.resumed.messages()).toHaveLength(1); // nothing else (the restored old ones were acked)
      expect(sc.relay.output().stdout).not.toContain(WARNING);
    } finally {
      sc.resumed.close();
      await sc.relay.kill('SIGTERM');
    }
  }, 90_000);

  it('control: a plain file copy (no advance-ids) loses the new message, and the relay warns', async () => {
    const sc = await scenario(async (dir, backup) => {
      const live = join(dir, 'relay.sqlite');
      await copyFile(backup, live);
      for (const s of ['-wal', '-shm']) await rm(live + s, { force: true });
    });
    try {
      await sleep(500);
      // The new message reused id 5 ≤ 7: the resume acknowledged (deleted) it unseen.
      expect(sc.resumed.messages()).toEqual([]);
      expect((await req(sc.relay.url, 'GET', '/messages', { token: sc.bob.token })).body).toBe('收件箱为空');
      const log = sc.relay.output().stdout;
      expect(log).toContain(WARNING);
      expect(log).toContain('advance-ids');
      expect(log).toContain(`"upTo":${sc.seenMax}`);
      expect(log).not.toContain(sc.bob.token);
    } finally {
      sc.resumed.close();
      await sc.relay.kill('SIGTERM');
    }
  }, 90_000);
});
