// Every CLI command of the built skill against the real relay: human output, --json, the local files each
// command updates, and an exit code per failure (relay refusals, bad token, unreachable relay, rate limit,
// usage errors, daemon conflicts).

import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/process.ts';
import { startRelay } from '../helpers/relay.ts';
import { cli, lines, readJson, readText, runScript, startDaemon, untimed, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

const { ws, relay } = skillSuite('owc-cli-', { sseMaxPerIp: 10 });
const A = (): string => join(ws.root, 'alice');
const B = (): string => join(ws.root, 'bob');
const C = (): string => join(ws.root, 'carol');
let ids: { alice: number; bob: number; carol: number };

beforeAll(async () => {
  const reg = async (dir: string, name: string, extra: string[] = []): Promise<number> => {
    const r = await cli(ws.skill, ['register', '--base-url', relay.url, '--name', name, ...extra, '--json'], {
      data: dir,
    });
    expect(r.code, r.stderr).toBe(0);
    return r.json!.id as number;
  };
  ids = {
    alice: await reg(A(), 'alice'),
    bob: await reg(B(), 'bob', ['--description', 'the builder']),
    carol: await reg(C(), 'carol', ['--status', 'open']),
  };
});

type Contact = { name: string; relationship: string; last_seen_utc: string };
/** contacts.json in the guide's layout: an object keyed by user id. */
const contacts = async (dir: string): Promise<Array<[number, string, string]>> =>
  Object.entries(await readJson<Record<string, Contact>>(join(dir, 'contacts.json'))).map(([id, c]) => {
    expect(c.last_seen_utc).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    return [Number(id), c.name, c.relationship];
  });

describe('messaging', () => {
  it('send, the one-message rule, inbox (fallback), reply, friends', async () => {
    const first = await cli(ws.skill, ['send', String(ids.bob), 'hello', 'bob'], { data: A() });
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      `friend request sent (they must reply before you can send more) → #${ids.bob}(bob) (message id 1)\n`,
    );
    const second = await cli(ws.skill, ['send', String(ids.bob), 'again', '--json'], { data: A() });
    expect(second.code).toBe(4);
    expect(second.json).toEqual({
      ok: false,
      error: {
        code: 'request_pending',
        message: '好友申请已发出，对方尚未回复。建立好友关系前仅允许发送一条消息。',
        status: 409,
        hint: 'A friend request to this user is waiting for their reply; only one message is allowed before they answer.',
        exit: 4,
      },
    });
    expect(await contacts(A())).toEqual([[ids.bob, 'bob', 'pending_outgoing']]);

    // bob has no daemon: the fallback read stores the request and confirms it.
    const inbox = await cli(ws.skill, ['inbox'], { data: B() });
    expect(inbox.code, inbox.stderr).toBe(0);
    expect(inbox.stdout).toMatch(
      new RegExp(
        `^1 message\\(s\\), 1 new, 0 still waiting:\\n  \\[\\S+Z\\] #${ids.alice} alice \\(friend_request, id 1\\): hello bob\\n`,
      ),
    );
    expect((await lines(join(B(), 'conversations.md'))).map(untimed)).toEqual([
      `[T] from=#${ids.alice}(alice) type=friend_request content=hello bob`,
    ]);
    expect((await lines(join(B(), 'sse_channel.log'))).map((l) => l.replace(/^\S+ /, ''))).toEqual([
      'fallback via=openwechat inbox GET /messages?after=0 fetched=1 new=1 (SSE daemon not running)',
    ]);
    expect(await contacts(B())).toEqual([[ids.alice, 'alice', 'pending_incoming']]);
    const again = await cli(ws.skill, ['inbox', '--json'], { data: B() });
    expect(again.json).toMatchObject({ ok: true, total: 0, fetched: 0, new: 0, messages: [] });

    // stdin content, multi-line
    const reply = await cli(ws.skill, ['send', '--to', String(ids.alice), '--content', '-', '--json'], {
      data: B(),
      input: 'hi alice\nline two\n',
    });
    expect(reply.json).toMatchObject({ ok: true, outcome: 'accepted', to: { id: ids.alice, name: 'alice' } });
    expect(untimed(reply.json!.line as string)).toBe(
      `[T] from=#${ids.bob}(bob) type=chat.out.to${ids.alice} content=hi alice\\nline two`,
    );
    expect(await contacts(B())).toEqual([[ids.alice, 'alice', 'accepted']]);

    const friends = await cli(ws.skill, ['friends'], { data: A() });
    expect(friends.stdout).toBe(`1 friend(s):\n  #${ids.bob} bob [open] — the builder\n`);
    expect(await contacts(A())).toEqual([[ids.bob, 'bob', 'accepted']]);
    const stats = await readJson<Record<string, unknown>>(join(B(), 'stats.json'));
    expect(stats).toMatchObject({
      messages_received: 1,
      messages_sent: 1,
      friends_count: 1,
      pending_incoming_count: 0,
      pending_outgoing_count: 0,
      last_sync_utc: expect.stringMatching(/Z$/),
      by_type: { chat: 0, friend_request: 1, system: 0, group: 0 },
      last_message_id: 1,
    });
  });

  it('send-file and file download', async () => {
    const src = join(ws.root, 'notes v1.txt');
    await writeFile(src, 'some notes\n');
    const sent = await cli(ws.skill, ['send-file', String(ids.bob), src, '--content', 'my notes', '--json'], {
      data: A(),
    });
    expect(sent.json).toMatchObject({ ok: true, outcome: 'chat', file: 'notes v1.txt', size: 11 });
    expect(untimed(sent.json!.line as string)).toBe(
      `[T] from=#${ids.alice}(alice) type=chat.out.to${ids.bob}.attachment:notes_v1.txt content=my notes`,
    );
    const inbox = await cli(ws.skill, ['inbox', '--limit', '10', '--json'], { data: B() });
    const fileMsg = (inbox.json!.messages as Array<{ attachment: { file_id: string } | null }>).find(
      (m) => m.attachment,
    )!;
    const fileId = fileMsg.attachment!.file_id;
    // The fallback read saved it already; an explicit download goes to files/ too (same name, kept once).
    const saved = (await readdir(join(B(), 'files'))).filter((f) => !f.startsWith('.'));
    expect(saved).toEqual([`${fileId.slice(0, 8)}_notes_v1.txt`]);
    expect(await readFile(join(B(), 'files', saved[0]!), 'utf8')).toBe('some notes\n');
    // The sender may fetch a file that is still stored (here: one bob has not collected yet).
    await writeFile(src, 'second version\n');
    const third = await cli(ws.skill, ['send-file', String(ids.bob), src, '--json'], { data: A() });
    expect(third.code).toBe(0);
    const thirdId = await (async () => {
      // alice learns the id from bob's side only; read it from bob's relay inbox without consuming it.
      const { RelayClient } = await import('../../packages/client/src/index.ts');
      const bobToken = (await readJson<{ token: string }>(join(B(), 'config.json'))).token;
      const peek = await new RelayClient({ baseUrl: relay.url, token: bobToken }).readInbox({ after: 0 });
      return peek.messages.at(-1)!.attachment!.fileId!;
    })();
    const dl = await cli(ws.skill, ['file', 'download', `/files/${thirdId}`, '--json'], { data: A() });
    expect(dl.json).toMatchObject({
      ok: true,
      name: 'notes v1.txt',
      size: 15,
      // The upload's type was guessed from its name (not application/octet-stream).
      content_type: expect.stringMatching(/^text\/plain/),
      path: join(A(), 'files', `${thirdId.slice(0, 8)}_notes_v1.txt`),
    });
    const out = join(ws.root, 'copy.txt');
    const dl2 = await cli(ws.skill, ['file', 'download', thirdId, '--out', out], { data: A() });
    expect(dl2.stdout).toBe(`saved notes v1.txt (15 bytes) to ${out}\n`);
    expect(await readFile(out, 'utf8')).toBe('second version\n');
    const missing = await cli(ws.skill, ['file', 'download', '0'.repeat(32)], { data: B() });
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^error \(file_not_found\): 文件不存在或已过期\n/);
    // The send.js shortcut sends files too.
    const viaShortcut = await runScript(
      ws.skill,
      'send',
      [String(ids.bob), '--file', src, '--content', 'again', '--json'],
      {
        data: A(),
      },
    );
    expect(viaShortcut.json).toMatchObject({ ok: true, outcome: 'chat', file: 'notes v1.txt' });
    const notAFile = await cli(ws.skill, ['send-file', String(ids.bob), join(ws.root, 'nope')], {
      data: A(),
    });
    expect(notAFile.code).toBe(2);
  });
});

describe('people', () => {
  it('users/discover merge, user, status', async () => {
    const found = await cli(ws.skill, ['users', '--keyword', 'carol'], { data: A() });
    expect(found.stdout).toBe(`1 of 1 open user(s):\n  #${ids.carol} carol [open]\n`);
    const alias = await cli(ws.skill, ['discover', 'carol', '--json'], { data: A() });
    expect(alias.json).toMatchObject({
      ok: true,
      total: 1,
      users: [{ id: ids.carol, name: 'carol', status: 'open' }],
    });
    expect(await contacts(A())).toEqual([
      [ids.bob, 'bob', 'accepted'],
      [ids.carol, 'carol', 'none'],
    ]);
    const user = await cli(ws.skill, ['user', String(ids.bob), '--json'], { data: A() });
    expect(user.json).toMatchObject({
      ok: true,
      user: { id: ids.bob, name: 'bob', description: 'the builder', status: 'open' },
    });
    const none = await cli(ws.skill, ['user', '9999'], { data: A() });
    expect([none.code, none.stderr]).toEqual([
      4,
      'error (user_not_found): 用户不存在\nhint: No user has this id. Find people with: openwechat users [--keyword …].\n',
    ]);
    expect((await cli(ws.skill, ['status'], { data: C() })).stdout).toBe('your status: open\n');
    expect((await cli(ws.skill, ['status', 'friends_only'], { data: C() })).stdout).toBe(
      'status set to friends_only\n',
    );
    expect(await readJson(join(C(), 'profile.json'))).toMatchObject({
      my_id: ids.carol,
      my_name: 'carol',
      status: 'friends_only',
      updated_at_utc: expect.stringMatching(/^\S+Z$/),
    });
    expect((await cli(ws.skill, ['users', '--keyword', 'carol'], { data: A() })).stdout).toBe(
      'no open users found\n',
    );
    expect((await cli(ws.skill, ['status', 'invisible'], { data: C() })).code).toBe(2);
    await cli(ws.skill, ['status', 'open'], { data: C() });
  });

  it('block and unblock', async () => {
    const notFriend = await cli(ws.skill, ['block', String(ids.carol)], { data: A() });
    expect([notFriend.code, notFriend.stderr.split('\n')[0]]).toEqual([
      4,
      'error (not_friends): 只能拉黑已建立好友关系的用户',
    ]);
    expect((await cli(ws.skill, ['block', String(ids.bob)], { data: A() })).stdout).toBe(
      `blocked #${ids.bob}(bob)\n`,
    );
    expect((await contacts(A()))[0]).toEqual([ids.bob, 'bob', 'blocked']);
    const blocked = await cli(ws.skill, ['send', String(ids.alice), 'x', '--json'], { data: B() });
    expect(blocked.json).toMatchObject({ ok: false, error: { code: 'blocked_by_recipient', exit: 4 } });
    expect((await cli(ws.skill, ['unblock', String(ids.bob)], { data: A() })).stdout).toBe(
      `unblocked #${ids.bob}(bob)\n`,
    );
    expect((await contacts(A()))[0]).toEqual([ids.bob, 'bob', 'none']);
    // Strangers again: becoming friends once more.
    await cli(ws.skill, ['send', String(ids.bob), 'friends again?'], { data: A() });
    await cli(ws.skill, ['inbox'], { data: B() });
    await cli(ws.skill, ['send', String(ids.alice), 'yes'], { data: B() });
  });

  it('homepage upload and view', async () => {
    const page = join(ws.root, 'home.html');
    const html =
      '<!DOCTYPE html><html><head><title>alice</title></head><body><h1>我的主页</h1></body></html>';
    await writeFile(page, html);
    const up = await cli(ws.skill, ['homepage', 'upload', page], { data: A() });
    expect(up.stdout).toBe(
      `homepage uploaded (${Buffer.byteLength(html)} bytes): ${relay.url}/homepage/${ids.alice}\n`,
    );
    const view = await cli(ws.skill, ['homepage', 'view', String(ids.alice)], { data: B() });
    expect(view.stdout).toBe(`${html}\n`);
    const out = join(ws.root, 'seen.html');
    const saved = await cli(ws.skill, ['homepage', 'view', String(ids.alice), '--out', out, '--json'], {
      data: B(),
    });
    expect(saved.json).toMatchObject({ ok: true, url: `${relay.url}/homepage/${ids.alice}`, saved: out });
    expect(await readFile(out, 'utf8')).toBe(html);
    await writeFile(page, '{"html": "<p>x</p>"}');
    const bad = await cli(ws.skill, ['homepage', 'upload', page, '--json'], { data: A() });
    expect(bad.json).toMatchObject({ ok: false, error: { code: 'homepage_is_json', status: 400, exit: 4 } });
    expect((await cli(ws.skill, ['homepage', 'delete'], { data: A() })).code).toBe(2);
  });

  it('health, with or without an account', async () => {
    const before = await cli(ws.skill, ['health', '--base-url', relay.url], {
      data: join(ws.root, 'nobody-yet'),
    });
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(
      new RegExp(
        `^${relay.url}: openwechat relay 0\\.1\\.0\\n  features: json, resume, idempotency, files, groups, receipts, e2e\\n  users \\d+, friendships \\d+, messages \\d+\\n$`,
      ),
    );
    const mine = await cli(ws.skill, ['health', '--json'], { data: A() });
    expect(mine.json).toMatchObject({
      ok: true,
      base_url: relay.url,
      relay: { kind: 'openwechat', resume: true },
      stats: { users: expect.any(Number) },
    });
    const legacy = await cli(ws.skill, ['health', '--legacy', '--json'], { data: A() });
    expect(legacy.json).toMatchObject({ ok: true, relay: { kind: 'reference', features: [] } });
  });

  it('contacts and whoami never show the token', async () => {
    const token = (await readJson<{ token: string }>(join(A(), 'config.json'))).token;
    const who = await cli(ws.skill, ['whoami', '--json'], { data: A() });
    expect(who.json).toMatchObject({
      ok: true,
      id: ids.alice,
      name: 'alice',
      base_url: relay.url,
      data_dir: A(),
    });
    expect(who.stdout).not.toContain(token);
    // alice has no daemon: she learns that bob accepted again from the friend list.
    await cli(ws.skill, ['friends'], { data: A() });
    const list = await cli(ws.skill, ['contacts'], { data: A() });
    expect(list.stdout.split('\n')[0]).toMatch(
      new RegExp(`^  #${ids.bob} bob \\[accepted\\] last message \\S+Z$`),
    );
    expect(list.stdout).not.toContain(token);
  });
});

describe('daemon, doctor, retention', () => {
  it('daemon start/status/stop, one instance, inbox refuses while it runs', async () => {
    const start = await cli(ws.skill, ['daemon', 'start', '--json'], { data: C() });
    expect(start.json).toMatchObject({ ok: true, started: true });
    const pid = (start.json!.daemon as { pid: number }).pid;
    await waitUntil(
      async () => (await readText(join(C(), 'sse_channel.log'))).includes(' connected '),
      'connected',
    );
    const second = startDaemon(ws.skill, C());
    expect((await second.exited).code).toBe(8);
    expect(second.output()).toBe(
      `another sse_inbox is already running for ${C()} (see: openwechat daemon status)\n`,
    );
    const inbox = await cli(ws.skill, ['inbox', '--json'], { data: C() });
    expect(inbox.json).toMatchObject({ ok: false, error: { code: 'daemon_running', exit: 8 } });
    const status = await cli(ws.skill, ['daemon', 'status'], { data: C() });
    expect(status.stdout).toMatch(
      new RegExp(`^running: pid ${pid}, connected \\(mode resume\\) since \\S+, last id 0\\n$`),
    );
    expect((await cli(ws.skill, ['daemon', 'stop'], { data: C() })).stdout).toBe(
      `sse_inbox (pid ${pid}) stopped\n`,
    );
    expect((await cli(ws.skill, ['daemon', 'stop'], { data: C() })).stdout).toBe('not running\n');
    expect((await cli(ws.skill, ['daemon', 'status'], { data: C() })).code).toBe(8);
    expect((await cli(ws.skill, ['daemon', 'jump'], { data: C() })).code).toBe(2);
  });

  it('the data folder protects itself: .gitignore, 0700, 0600 — whoever loosened it', async () => {
    await chmod(join(C(), 'config.json'), 0o644);
    await chmod(join(C(), 'conversations.md'), 0o644).catch(() =>
      writeFile(join(C(), 'conversations.md'), '', { mode: 0o644 }),
    );
    await chmod(C(), 0o755);
    const sick = await cli(ws.skill, ['doctor'], { data: C() });
    expect(sick.code).toBe(1);
    // Every command tightens the folder before it runs; doctor then finds it private.
    expect(sick.stdout).toContain('ok    config.json permissions: 600\n');
    expect(sick.stdout).toContain('fail  SSE daemon: not running — start it: openwechat daemon start\n');
    expect((await stat(C())).mode & 0o777).toBe(0o700);
    for (const name of await readdir(C())) {
      const st = await stat(join(C(), name));
      expect(st.mode & 0o077, name).toBe(0);
    }
    expect(await readText(join(C(), '.gitignore'))).toMatch(/^\*$/m);
  });

  it('retention reports old data and deletes it only with --delete', async () => {
    const dir = join(ws.root, 'retention');
    await mkdir(join(dir, 'files'), { recursive: true });
    const old = '2020-01-01T00:00:00Z';
    const recent = new Date().toISOString().slice(0, 19) + 'Z';
    const conv = [
      `[${old}] from=#2(bob) type=chat id=1 content=old one`,
      `[${recent}] from=#2(bob) type=chat id=2 content=new one`,
      'a note that is not a message',
    ];
    await writeFile(join(dir, 'conversations.md'), `${conv.join('\n')}\n`);
    await writeFile(
      join(dir, 'inbox_pushed.md'),
      `## ${old} id=1\nold block\n\n## ${recent} id=2\nnew block\n\n`,
    );
    await writeFile(
      join(dir, 'sse_channel.log'),
      `2020-01-01T00:00:00.000Z connected x\n${new Date().toISOString()} connected y\n`,
    );
    await writeFile(join(dir, 'files', 'old.bin'), 'x');
    const { utimes } = await import('node:fs/promises');
    await utimes(join(dir, 'files', 'old.bin'), new Date('2020-01-01'), new Date('2020-01-01'));
    await writeFile(join(dir, 'files', 'new.bin'), 'y');

    const report = await cli(ws.skill, ['retention'], { data: dir });
    expect(report.code).toBe(0);
    expect(report.stdout.split('\n').slice(1)).toEqual([
      '  conversations.md: 1 of 3 lines',
      '  inbox_pushed.md:  1 of 2 entries',
      '  sse_channel.log:  1 of 2 lines',
      '  files/:           1 of 2 files (1 bytes)',
      'Nothing was deleted. Ask the user first; to delete, run: openwechat retention --delete',
      '',
    ]);
    expect(await readText(join(dir, 'conversations.md'))).toBe(`${conv.join('\n')}\n`);
    // Counters written by an older version (or before a clean-up) are never lowered.
    await writeFile(join(dir, 'stats.json'), JSON.stringify({ messages_received: 42, messages_sent: 5 }));
    const del = await cli(ws.skill, ['retention', '--delete', '--json'], { data: dir });
    expect(del.json).toMatchObject({
      ok: true,
      deleted: true,
      conversations: { old: 1, total: 3 },
      files: { names: ['old.bin'] },
    });
    expect(await readText(join(dir, 'conversations.md'))).toBe(`${conv.slice(1).join('\n')}\n`);
    expect(await readText(join(dir, 'inbox_pushed.md'))).toBe(`## ${recent} id=2\nnew block\n\n`);
    expect(await readdir(join(dir, 'files'))).toEqual(['new.bin']);
    expect(await readJson(join(dir, 'stats.json'))).toMatchObject({
      messages_received: 42,
      messages_sent: 5,
      baseline: { messages_received: 41, messages_sent: 5 },
    });
    expect((await cli(ws.skill, ['retention', '--days', 'x'], { data: dir })).code).toBe(2);
  });
});

describe('failures have exit codes', () => {
  it('usage errors', async () => {
    expect((await cli(ws.skill, [])).code).toBe(2);
    expect((await cli(ws.skill, ['help'])).stdout).toContain('Exit codes: 0 ok');
    const unknown = await cli(ws.skill, ['frobnicate', '--json']);
    expect(unknown.json).toMatchObject({ ok: false, error: { code: 'usage', exit: 2 } });
    expect((await cli(ws.skill, ['send', 'bob', 'hi'], { data: A() })).code).toBe(2);
    expect((await cli(ws.skill, ['send', '2'], { data: A() })).code).toBe(2);
    expect((await cli(ws.skill, ['friends', '--bogus'], { data: A() })).code).toBe(2);
  });

  it('invalid token (5), unreachable relay (6), not registered (3), newer data folder (9)', async () => {
    const dir = join(ws.root, 'broken');
    await mkdir(dir, { recursive: true });
    const write = (c: Record<string, unknown>): Promise<void> =>
      writeFile(join(dir, 'config.json'), JSON.stringify(c), { mode: 0o600 });
    await write({
      base_url: relay.url,
      token: 'f'.repeat(32),
      my_id: 1,
      my_name: 'x',
      batch_size: 5,
      data_version: 2,
    });
    const bad = await cli(ws.skill, ['friends', '--json'], { data: dir });
    expect(bad.json).toMatchObject({ ok: false, error: { code: 'invalid_token', status: 401, exit: 5 } });
    expect(bad.code).toBe(5);

    await write({
      base_url: `http://127.0.0.1:${await freePort()}`,
      token: 'f'.repeat(32),
      my_id: 1,
      my_name: 'x',
      batch_size: 5,
      data_version: 2,
    });
    const down = await cli(ws.skill, ['send', '2', 'hi'], { data: dir });
    expect(down.code).toBe(6);
    expect(down.stderr).toMatch(
      /^error \(network_error\): GET \/health at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\nhint: The relay could not be reached\. /,
    );
    const doctor = await cli(ws.skill, ['doctor', '--json'], { data: dir });
    expect(doctor.code).toBe(1);
    expect(
      (doctor.json!.checks as Array<{ name: string; level: string }>).find((c) => c.name === 'relay')?.level,
    ).toBe('fail');

    await writeFile(join(dir, 'config.json'), '{not json');
    expect((await cli(ws.skill, ['friends'], { data: dir })).code).toBe(9);
    expect((await cli(ws.skill, ['friends'], { data: join(ws.root, 'nobody') })).code).toBe(3);

    await write({ base_url: relay.url, token: 'x', my_id: 1, my_name: 'x', batch_size: 5, data_version: 99 });
    const newer = await cli(ws.skill, ['friends', '--json'], { data: dir });
    expect(newer.json).toMatchObject({ ok: false, error: { code: 'data_too_new', exit: 9 } });
  });

  it('rate limited (7)', async () => {
    // A stopped clock: every request lands in the same rate-limit window, however slowly the processes run.
    const frozen = Date.parse('2026-03-09T10:00:00Z');
    const limited = await startRelay({ rateLimitEnabled: true, rateLimitQps: 1, now: () => frozen });
    try {
      const dir = join(ws.root, 'limited');
      expect(
        (await cli(ws.skill, ['register', '--base-url', limited.url, '--name', 'busy'], { data: dir })).code,
      ).toBe(0);
      await cli(ws.skill, ['friends'], { data: dir });
      const r = await cli(ws.skill, ['friends', '--json'], { data: dir });
      expect(r.json).toMatchObject({ ok: false, error: { code: 'rate_limited', status: 429, exit: 7 } });
    } finally {
      await limited.close();
    }
  });
});
