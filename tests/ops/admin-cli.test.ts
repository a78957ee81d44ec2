// The admin CLI against a real data folder while the relay serves it: each command's effect is checked
// through the relay's own HTTP answers (a disabled token is refused, a reset token replaces the old one,
// a backup is a working database, prune removes what expired).

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnRelay, stopAllRelays, type RelayProcess } from '../helpers/process.ts';
import { sleep } from '../helpers/sse.ts';
import { befriend, register, req, type User } from '../relay/client.ts';

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
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/relay/src/admin.ts', ...args], {
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
