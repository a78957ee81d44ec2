// Group chats (issue 11, docs/groups-api.md) through the built skill against the real relay: three users,
// each with an inbox daemon (plain `node scripts/sse_inbox.js`), create a group with the CLI and talk in it.
// Every member's daemon records the group lines (exact layout), mentions mark only the mentioned member,
// a group file lands in every member's files/, membership notices are recorded, groups.json follows the
// relay, and the group commands have human output, --json and exit codes like the rest of the CLI.

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  lines,
  readJson,
  readText,
  startDaemon,
  untimed,
  waitUntil,
  type Daemon,
  type RunResult,
} from './helpers.ts';
import { skillSuite } from './fixtures.ts';

/** The relay's frozen clock: 2026-03-09 02:00:00 UTC = 10:00:00 Beijing. */
const T0 = Date.UTC(2026, 2, 9, 2, 0, 0);
const AT = '[2026-03-09T02:00:00Z]';

const { ws, relay } = skillSuite('owc-groups-', { sseMaxPerIp: 50, now: () => T0 });
const dirs = { alice: '', bob: '', carol: '' };
const ids = { alice: 0, bob: 0, carol: 0 };
type Name = keyof typeof ids;
const daemons: Daemon[] = [];

async function run(who: Name, args: string[], input?: string): Promise<RunResult> {
  return cli(ws.skill, args, { data: dirs[who], ...(input !== undefined ? { input } : {}) });
}

/** Runs a command that must succeed with --json; returns its JSON. */
async function ok(who: Name, args: string[]): Promise<Record<string, unknown>> {
  const r = await run(who, [...args, '--json']);
  expect(r.code, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
  expect(r.json).toMatchObject({ ok: true });
  return r.json!;
}

/** Waits until `who`'s conversations.md has a line matching `re` (returns all lines). */
async function waitLine(who: Name, re: RegExp): Promise<string[]> {
  const path = join(dirs[who], 'conversations.md');
  return waitUntil(
    async () => {
      const ls = await lines(path);
      return ls.some((l) => re.test(l)) ? ls : undefined;
    },
    `${re} in ${who}'s conversations.md`,
    20_000,
    async () =>
      `${await readText(path)}\n--- sse_channel.log ---\n${await readText(join(dirs[who], 'sse_channel.log'))}`,
  );
}

interface GroupsFile {
  updated_at: string;
  groups: Array<{
    id: number;
    name: string;
    description: string | null;
    owner_id: number;
    role: string;
    member_count: number;
  }>;
}

const groupsOf = async (who: Name): Promise<GroupsFile | null> =>
  readJson<GroupsFile>(join(dirs[who], 'groups.json')).catch(() => null);

/** Waits until `who`'s groups.json satisfies `check`. */
async function waitGroups(who: Name, check: (g: GroupsFile) => boolean, what: string): Promise<GroupsFile> {
  return waitUntil(
    async () => {
      const g = await groupsOf(who);
      return g && check(g) ? g : undefined;
    },
    `${who}'s groups.json: ${what}`,
    20_000,
    async () => readText(join(dirs[who], 'groups.json')),
  );
}

/** The lines of one group: its flag `.g<gid>` in the type token. */
const groupLines = async (who: Name, gid: number): Promise<string[]> =>
  (await lines(join(dirs[who], 'conversations.md'))).filter((l) =>
    new RegExp(` type=\\S*\\.g${gid}(\\.|\\s)`).test(l),
  );

beforeAll(async () => {
  for (const name of ['alice', 'bob', 'carol'] as const) {
    dirs[name] = join(ws.root, name);
    const r = await cli(ws.skill, ['register', '--base-url', relay.url, '--name', name, '--json'], {
      data: dirs[name],
    });
    expect(r.code, r.stderr).toBe(0);
    ids[name] = r.json!.id as number;
  }
  // alice befriends bob and carol (members must be the owner's friends); bob and carol are strangers.
  for (const friend of ['bob', 'carol'] as const) {
    await ok('alice', ['send', String(ids[friend]), `hi ${friend}`]);
    await run(friend, ['inbox']);
    await ok(friend, ['send', String(ids.alice), 'hi alice']);
  }
  for (const name of ['alice', 'bob', 'carol'] as const) {
    daemons.push(startDaemon(ws.skill, dirs[name]));
    await waitUntil(
      async () => (await readText(join(dirs[name], 'sse_channel.log'))).includes(' connected mode=resume'),
      `${name}'s daemon connected`,
    );
  }
});

describe('a group of three', () => {
  let gid = 0;
  /** The group's flag in the type token. */
  const g = (): string => `.g${gid}`;

  it('create: the owner’s CLI and the members’ daemons record it, groups.json everywhere', async () => {
    const created = await ok('alice', [
      'group',
      'create',
      'team',
      '--members',
      `${ids.bob},${ids.carol}`,
      '--description',
      'the three of us',
    ]);
    const group = created.group as Record<string, unknown>;
    gid = group.id as number;
    expect(group).toEqual({
      id: gid,
      name: 'team',
      description: 'the three of us',
      owner_id: ids.alice,
      owner_name: 'alice',
      member_count: 3,
      created_at: new Date(T0).toISOString(),
      role: 'owner',
    });
    // The CLI refreshed the owner's cache before it returned.
    expect((await groupsOf('alice'))?.groups).toEqual([
      {
        id: gid,
        name: 'team',
        description: 'the three of us',
        owner_id: ids.alice,
        role: 'owner',
        member_count: 3,
      },
    ]);
    // Each member gets the notice; the daemon records it and refreshes groups.json because of it.
    for (const m of ['bob', 'carol'] as const) {
      const ls = await waitLine(m, /加入群组/);
      expect(ls.at(-1)).toBe(
        `${AT} from=#0(system) type=system content=你已被 alice（ID:${ids.alice}）加入群组 team（群ID:${gid}）`,
      );
      const g = await waitGroups(m, (f) => f.groups.length === 1, 'one group');
      expect(g.groups).toEqual([
        {
          id: gid,
          name: 'team',
          description: 'the three of us',
          owner_id: ids.alice,
          role: 'member',
          member_count: 3,
        },
      ]);
      expect(g.updated_at).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/);
    }
    const human = await run('bob', ['group', 'list']);
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(
      `1 group(s):\n  #g${gid}(team) [member] 3 members, owner #${ids.alice}(alice) — the three of us\n`,
    );
    const show = await run('carol', ['group', 'show', `g${gid}`]);
    expect(show.stdout).toBe(
      [
        `#g${gid}(team) [member] 3 members, owner #${ids.alice}(alice) — the three of us`,
        `  created ${new Date(T0).toISOString()}`,
        `  #${ids.alice} alice (owner)`,
        `  #${ids.bob} bob`,
        `  #${ids.carol} carol`,
        '',
      ].join('\n'),
    );
    const shown = await ok('carol', ['group', 'show', `#g${gid}`]);
    expect((shown.members as Array<{ id: number; role: string }>).map((m) => [m.id, m.role])).toEqual([
      [ids.alice, 'owner'],
      [ids.bob, 'member'],
      [ids.carol, 'member'],
    ]);
  });

  it('a message from one member lands in the other two’s conversations.md (exact line)', async () => {
    const sent = await ok('alice', ['group', 'send', String(gid), 'hello team']);
    expect(sent).toMatchObject({ group: { id: gid, name: 'team' }, recipients: 2, replayed: false });
    expect(sent.message).toBe('发送成功（群组 team，送达 2 位成员）');
    expect(untimed(sent.line as string)).toBe(
      `[T] from=#${ids.alice}(alice) type=chat.out${g()} content=hello team`,
    );
    for (const m of ['bob', 'carol'] as const) {
      await waitLine(m, /content=hello team$/);
      expect(await groupLines(m, gid)).toEqual([
        `${AT} from=#${ids.alice}(alice) type=chat${g()} content=hello team`,
      ]);
    }
    // The sender has only its own outgoing line.
    expect((await groupLines('alice', gid)).map(untimed)).toEqual([
      `[T] from=#${ids.alice}(alice) type=chat.out${g()} content=hello team`,
    ]);
    const human = await run('bob', ['group', 'send', `g${gid}`, 'hi', 'all']);
    expect(human.stdout).toBe(`sent to #g${gid}(team): delivered to 2 member(s)\n`);
    await waitLine('carol', /content=hi all$/);
    await waitLine('alice', /content=hi all$/);
  });

  it('a mention marks the mentioned member only (by @name and by --mention)', async () => {
    await ok('bob', ['group', 'send', String(gid), '@carol look at this']);
    await ok('carol', ['group', 'send', String(gid), 'for the owner', '--mention', String(ids.alice)]);
    const carol = await waitLine('carol', /content=@carol look at this$/);
    await waitLine('alice', /content=for the owner$/);
    await waitLine('alice', /content=@carol look at this$/);
    await waitLine('bob', /content=for the owner$/);
    expect(carol.filter((l) => l.includes('@carol'))).toEqual([
      `${AT} from=#${ids.bob}(bob) type=chat${g()}.mention content=@carol look at this`,
    ]);
    expect((await groupLines('alice', gid)).filter((l) => !/\.out\b/.test(l))).toEqual([
      `${AT} from=#${ids.bob}(bob) type=chat${g()} content=hi all`,
      `${AT} from=#${ids.bob}(bob) type=chat${g()} content=@carol look at this`,
      `${AT} from=#${ids.carol}(carol) type=chat${g()}.mention content=for the owner`,
    ]);
    expect((await groupLines('bob', gid)).filter((l) => !/\.out\b/.test(l))).toEqual([
      `${AT} from=#${ids.alice}(alice) type=chat${g()} content=hello team`,
      `${AT} from=#${ids.carol}(carol) type=chat${g()} content=for the owner`,
    ]);
    // The raw block says so too, for the mentioned copy only.
    expect(await readText(join(dirs.carol, 'inbox_pushed.md'))).toContain(
      `类型：群聊消息\n群组：team（群ID:${gid}）\n时间：2026-03-09 10:00:00\n发件人：bob（ID:${ids.bob}）\n内容：@carol look at this\n提到了你：是\n消息ID：6\n`,
    );
    expect(await readText(join(dirs.bob, 'inbox_pushed.md'))).not.toContain('提到了你');
  });

  it('a group file lands in every other member’s files/', async () => {
    const file = join(ws.root, 'plan v2.txt');
    await writeFile(file, 'the plan\n');
    const sent = await ok('alice', ['group', 'send-file', String(gid), file, '--content', 'see the plan']);
    expect(sent).toMatchObject({ file: 'plan v2.txt', size: 9, recipients: 2 });
    expect(untimed(sent.line as string)).toBe(
      `[T] from=#${ids.alice}(alice) type=chat.out${g()}.attachment:plan_v2.txt content=see the plan`,
    );
    // Ids are per recipient inbox: bob's held 5 messages before this one, carol's 6.
    for (const [m, id] of [
      ['bob', 6],
      ['carol', 7],
    ] as const) {
      const ls = await waitLine(m, /content=see the plan$/);
      const saved = (await readdir(join(dirs[m], 'files'))).filter((f) => !f.startsWith('.'));
      expect(saved).toEqual([expect.stringMatching(/^[0-9a-f]{8}_plan_v2\.txt$/)]);
      expect(await readFile(join(dirs[m], 'files', saved[0]!), 'utf8')).toBe('the plan\n');
      expect(ls.at(-1)).toBe(
        `${AT} from=#${ids.alice}(alice) type=chat${g()}.file:files/${saved[0]} content=see the plan`,
      );
      // The relay's id of that message is in conversations.idx (appended right after the line).
      await waitUntil(
        async () =>
          new RegExp(`^${id} [0-9a-f]{16}$`).test(
            (await readText(join(dirs[m], 'conversations.idx'))).trim().split('\n').at(-1) ?? '',
          ) || undefined,
        `${m}'s idx entry ${id}`,
      );
    }
  });

  it('stats count group messages; the snapshot has unread counts per group', async () => {
    const stats = await waitUntil(async () => {
      const s = await readJson<{ by_type: Record<string, number> }>(join(dirs.bob, 'stats.json'));
      return s.by_type.group === 3 ? s : undefined;
    }, 'bob stats');
    // bob: alice's request (kept by `inbox`), the friendship notice, the group notice, three group messages.
    expect(stats).toMatchObject({
      messages_received: 6,
      by_type: { chat: 0, friend_request: 1, system: 2, group: 3 },
      last_message_id: 6,
    });
    // bob answered the group after "hello team"; since then carol's message and alice's file arrived.
    const snap = await waitUntil(async () => {
      const s = await readJson<{ unread_by_contact: Record<string, number> }>(
        join(dirs.bob, 'context_snapshot.json'),
      );
      return s.unread_by_contact[`g${gid}`] === 2 ? s : undefined;
    }, 'bob snapshot');
    expect(snap.unread_by_contact).toEqual({ [`g${gid}`]: 2 });
    // The contacts cache knows carol's name from the group, without calling her a friend.
    const contacts = await readJson<Record<string, { name: string; relationship: string }>>(
      join(dirs.bob, 'contacts.json'),
    );
    expect(contacts[String(ids.carol)]).toMatchObject({ name: 'carol', relationship: 'none' });
  });

  it('leave, remove and dissolve: notices recorded, groups.json follows', async () => {
    // carol leaves: her groups.json drops the group at once; she no longer gets its messages.
    const left = await run('carol', ['group', 'leave', String(gid)]);
    expect([left.code, left.stdout]).toEqual([0, `left #g${gid}(team)\n`]);
    expect((await groupsOf('carol'))?.groups).toEqual([]);
    await ok('alice', ['group', 'send', String(gid), 'after carol left']);
    await waitLine('bob', /content=after carol left$/);
    // The owner's next group event refreshes its cache: two members now.
    await ok('bob', ['group', 'send', String(gid), 'noted']);
    await waitGroups('alice', (g) => g.groups[0]?.member_count === 2, 'two members');

    // alice adds carol again, then removes her: both notices are recorded by carol's daemon.
    const added = await ok('alice', ['group', 'add', String(gid), String(ids.carol)]);
    expect(added.added).toEqual([{ id: ids.carol, name: 'carol' }]);
    await waitGroups('carol', (g) => g.groups.length === 1, 'back in the group');
    const removed = await run('alice', ['group', 'remove', String(gid), String(ids.carol)]);
    expect([removed.code, removed.stdout]).toEqual([0, `removed #${ids.carol}(carol) from #g${gid}\n`]);
    const carol = await waitLine('carol', /移出群组/);
    expect(carol.filter((l) => l.includes('type=system') && l.includes('群ID'))).toEqual([
      `${AT} from=#0(system) type=system content=你已被 alice（ID:${ids.alice}）加入群组 team（群ID:${gid}）`,
      `${AT} from=#0(system) type=system content=你已被 alice（ID:${ids.alice}）加入群组 team（群ID:${gid}）`,
      `${AT} from=#0(system) type=system content=你已被移出群组 team（群ID:${gid}）`,
    ]);
    await waitGroups('carol', (g) => g.groups.length === 0, 'removed');
    expect(await groupLines('carol', gid)).not.toContainEqual(expect.stringContaining('after carol left'));

    // The owner dissolves it: bob (the remaining member) gets the notice; every cache forgets the group.
    const dissolved = await ok('alice', ['group', 'dissolve', String(gid)]);
    expect(dissolved).toMatchObject({ group_id: gid, dissolved: true });
    const bob = await waitLine('bob', /已被群主解散/);
    expect(bob.at(-1)).toMatch(
      new RegExp(
        `^\\[2026-03-09T02:00:00Z\\] from=#0\\(system\\) type=system content=群组 team（群ID:${gid}）已被群主解散$`,
      ),
    );
    await waitGroups('bob', (g) => g.groups.length === 0, 'dissolved');
    expect((await groupsOf('alice'))?.groups).toEqual([]);
    const gone = await run('bob', ['group', 'send', String(gid), 'anyone?', '--json']);
    expect(gone.code).toBe(4);
    expect(gone.json).toMatchObject({ ok: false, error: { code: 'group_not_found', status: 404, exit: 4 } });
  });
});

describe('group commands', () => {
  it('rename, describe, transfer; refusals have codes, hints and exit codes', async () => {
    const created = await ok('alice', ['group', 'create', 'ops', '--members', String(ids.bob)]);
    const gid = (created.group as { id: number }).id;
    expect(created.group).toMatchObject({ name: 'ops', description: null, member_count: 2, role: 'owner' });
    const human = await run('alice', ['group', 'rename', String(gid), 'ops', 'crew']);
    expect([human.code, human.stdout]).toEqual([0, `renamed: #g${gid}(ops crew)\n`]);
    const described = await ok('alice', ['group', 'describe', String(gid), 'on call']);
    expect(described.group).toMatchObject({ name: 'ops crew', description: 'on call' });
    expect((await groupsOf('alice'))?.groups.find((g) => g.id === gid)).toMatchObject({
      name: 'ops crew',
      description: 'on call',
    });
    const cleared = await run('alice', ['group', 'describe', String(gid)]);
    expect(cleared.stdout).toBe(`description of #g${gid}(ops crew) cleared\n`);
    expect((await groupsOf('alice'))?.groups.find((g) => g.id === gid)?.description).toBeNull();

    // Not the owner.
    const notOwner = await run('bob', ['group', 'rename', String(gid), 'mine', '--json']);
    expect(notOwner.code).toBe(4);
    expect(notOwner.json).toEqual({
      ok: false,
      error: {
        code: 'not_group_owner',
        message: '只有群主可以执行此操作',
        status: 403,
        hint: 'Only the group owner can do this.',
        exit: 4,
      },
    });
    // The owner cannot leave; carol is not a member; bob cannot add carol, who is not his friend.
    const ownerLeaves = await run('alice', ['group', 'leave', String(gid)]);
    expect(ownerLeaves.code).toBe(4);
    expect(ownerLeaves.stderr).toMatch(
      /^error \(owner_cannot_leave\): 群主不能退出群组，请先转让群主或解散群组\nhint: /,
    );
    const notMember = await run('alice', ['group', 'remove', String(gid), String(ids.carol), '--json']);
    expect(notMember.json).toMatchObject({ error: { code: 'not_group_member', exit: 4 } });
    const stranger = await run('bob', [
      'group',
      'create',
      'b-team',
      '--members',
      String(ids.carol),
      '--json',
    ]);
    expect(stranger.json).toMatchObject({ error: { code: 'not_friends_of_owner', status: 409, exit: 4 } });
    const already = await run('alice', ['group', 'add', String(gid), String(ids.bob), '--json']);
    expect(already.json).toMatchObject({ error: { code: 'already_member', exit: 4 } });
    const hidden = await run('carol', ['group', 'show', String(gid), '--json']);
    expect(hidden.json).toMatchObject({ error: { code: 'group_not_found', status: 404, exit: 4 } });

    // Transfer: bob owns it now and alice may leave.
    const transferred = await run('alice', ['group', 'transfer', String(gid), String(ids.bob)]);
    expect(transferred.stdout).toBe(`#g${gid}(ops crew) now belongs to #${ids.bob}(bob); you are a member\n`);
    expect((await ok('alice', ['group', 'leave', String(gid)])).left).toBe(true);
    expect((await ok('bob', ['group', 'show', String(gid)])).group).toMatchObject({
      owner_id: ids.bob,
      role: 'owner',
      member_count: 1,
    });

    // Usage errors (2) never reach the relay.
    for (const args of [
      ['group'],
      ['group', 'fly'],
      ['group', 'show', 'x7'],
      ['group', 'send', '7'],
      ['group', 'create'],
      ['group', 'add', '7'],
      ['group', 'send-file', '7', join(ws.root, 'missing.txt')],
    ]) {
      const r = await run('alice', args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error \(usage\): /);
    }
  });

  it('help lists the group commands', async () => {
    const r = await cli(ws.skill, ['help']);
    expect(r.stdout).toContain('group create <name> [--description <text>] [--members <id,id…>]');
    expect(r.stdout).toContain('group send-file <gid> <path>');
  });
});

// A reader written from the guide (seed 000) alone, not from our code: its one example line
// `[2026-03-09T10:00:00Z] from=#2(bob) type=chat content=hello`, and its JSON examples. Every file the
// daemons and the CLI wrote above — incoming, outgoing, group, system, with and without attachments — reads.
describe('the files, read as the guide describes them', () => {
  const GUIDE_LINE =
    /^\[(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})Z\] from=#(\d+)\(([^)]*)\) type=(\S+) content=(.*)$/;

  it('every conversations.md line matches the guide’s grammar; the JSON files have the guide’s keys', async () => {
    let total = 0;
    const kinds = new Set<string>();
    for (const name of ['alice', 'bob', 'carol'] as const) {
      const all = await lines(join(dirs[name], 'conversations.md'));
      expect(all.length, name).toBeGreaterThan(3);
      for (const line of all) {
        const m = GUIDE_LINE.exec(line);
        expect(m, `${name}: ${line}`).not.toBeNull();
        kinds.add(m![4]!.replace(/\d+/g, 'N').replace(/:.*$/, ':…'));
        total++;
      }
      const contacts = await readJson<Record<string, Record<string, unknown>>>(
        join(dirs[name], 'contacts.json'),
      );
      for (const [id, c] of Object.entries(contacts)) {
        expect(id).toMatch(/^\d+$/);
        expect(typeof c.name).toBe('string');
        expect(['accepted', 'pending_outgoing', 'pending_incoming', 'blocked', 'none']).toContain(
          c.relationship,
        );
        expect(c.last_seen_utc).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      }
      expect(await readJson(join(dirs[name], 'profile.json'))).toMatchObject({
        my_id: ids[name],
        my_name: name,
        status: expect.any(String),
        updated_at_utc: expect.stringMatching(/Z$/),
      });
      const stats = await readJson<Record<string, unknown>>(join(dirs[name], 'stats.json'));
      for (const key of [
        'messages_received',
        'messages_sent',
        'friends_count',
        'pending_incoming_count',
        'pending_outgoing_count',
      ])
        expect(typeof stats[key], `${name} stats.${key}`).toBe('number');
      expect(stats.last_sync_utc).toMatch(/Z$/);
      const snap = await readJson<Record<string, unknown>>(join(dirs[name], 'context_snapshot.json'));
      expect(snap).toMatchObject({
        updated_at_utc: expect.stringMatching(/Z$/),
        messages_received_recent: expect.any(Number),
        friends_count: expect.any(Number),
      });
      for (const p of snap.latest_peers as string[]) expect(p).toMatch(/^#\d+ \S/);
    }
    expect(total).toBeGreaterThan(20);
    // The kinds of lines this covered.
    expect([...kinds].sort()).toEqual(
      expect.arrayContaining([
        'chat',
        'friend_request',
        'system',
        'chat.out.toN',
        'friend_request.out.toN',
        'chat.gN',
        'chat.gN.mention',
        'chat.gN.file:…',
        'chat.out.gN',
        'chat.out.gN.attachment:…',
      ]),
    );
  });
});
