// A 500-member group (MAX_GROUP_MEMBERS, the owner included) over real sockets: one send reaches all 499
// other members' resume streams (`GET /stream?format=json` with `Last-Event-ID`), each copy with that
// member's own id; then ~50 streams drop, three more messages are sent, the dropped streams resume from
// the last id they saw, and every member has all four messages, in order, exactly once.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, type SseConnection } from '../helpers/sse.ts';
import { register, req, send, type User } from '../relay/client.ts';

const MEMBERS = 500;
const DROPPED = 50;

let relay: TestRelay;
let base: string;

beforeAll(async () => {
  relay = await startRelay({ sseMaxPerIp: 2 * MEMBERS });
  base = relay.url;
});

afterAll(async () => {
  await relay.close();
});

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>) {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

async function ok(p: Promise<{ status: number; body: string }>, first: string): Promise<string> {
  const r = await p;
  expect({ status: r.status, first: r.body.split('\n')[0] }, r.body.slice(0, 300)).toEqual({
    status: 200,
    first,
  });
  return r.body;
}

interface Frame {
  id: number;
  type: string;
  content: string;
  group: { id: number; name: string } | null;
  mentioned: boolean;
}

const frames = (c: SseConnection): Frame[] =>
  c.messages().map((e) => {
    const m = JSON.parse(e.data) as Frame;
    expect(String(m.id)).toBe(e.id);
    return m;
  });

describe(`a ${MEMBERS}-member group`, () => {
  it('one send reaches every member’s resume stream; dropped streams resume without loss', async () => {
    const users = await mapLimit(
      Array.from({ length: MEMBERS }, (_, i) => (i === 0 ? 'owner' : `m${i}`)),
      16,
      (name) => register(base, name),
    );
    const owner = users[0]!;
    const members = users.slice(1);
    // The owner befriends everyone (a request, then the reply accepts), a few requests at a time.
    await mapLimit(members, 8, async (m) => {
      await ok(send(base, owner, m.id, 'hi'), '发送成功（好友申请已发出，等待对方回复）');
      await ok(send(base, m, owner.id, 'hello'), '发送成功（好友关系已建立）');
    });
    // Every third member gets one more private message, so the inboxes' ids differ.
    const extra = (i: number) => i % 3 === 0;
    await mapLimit(members, 8, async (m, i) => {
      if (extra(i)) await ok(send(base, owner, m.id, 'extra'), '发送成功');
    });
    const created = await req(base, 'POST', '/groups', {
      token: owner.token,
      json: { name: '大群', member_ids: members.slice(0, 99).map((m) => m.id) },
      jsonMode: true,
    });
    expect(created.status, created.body).toBe(200);
    const gid = (JSON.parse(created.body) as { group: { id: number } }).group.id;
    for (let at = 99; at < members.length; at += 100) {
      const batch = members.slice(at, at + 100);
      const r = await req(base, 'POST', `/groups/${gid}/members`, {
        token: owner.token,
        json: { user_ids: batch.map((m) => m.id) },
      });
      expect(r.body.startsWith(`已添加 ${batch.length} 位成员：`), r.body.slice(0, 200)).toBe(true);
    }
    expect((await req(base, 'GET', `/groups/${gid}`, { token: owner.token })).body).toContain(
      `成员（${MEMBERS} 人）：`,
    );
    // Over the limit: the 501st is refused.
    const late = await register(base, 'late');
    await send(base, owner, late.id, 'hi');
    await send(base, late, owner.id, 'hello');
    expect(
      (
        await req(base, 'POST', `/groups/${gid}/members`, {
          token: owner.token,
          json: { user_ids: [late.id] },
        })
      ).body,
    ).toBe(`错误：群组成员已达上限（最多 ${MEMBERS} 人）`);

    // Each member's inbox: the request (1), the friendship notice (2), maybe the extra chat, the group
    // notice: its last id is 3 or 4. A resume stream from there acknowledges all of it.
    const lastId = (i: number) => (extra(i) ? 4 : 3);
    const open = (m: User, since: number) =>
      openSse(base, {
        token: m.token,
        path: '/stream?format=json',
        headers: { 'Last-Event-ID': String(since) },
        timeoutMs: 20_000,
      });
    const streams = await mapLimit(members, 50, (m, i) => open(m, lastId(i)));

    const contents = ['第一条 @m1', '第二条', '第三条', '第四条'];
    const sendGroup = (content: string) =>
      ok(
        req(base, 'POST', `/groups/${gid}/send`, { token: owner.token, json: { content } }),
        `发送成功（群组 大群，送达 ${MEMBERS - 1} 位成员）`,
      );
    await sendGroup(contents[0]!);
    await Promise.all(streams.map((s) => s.waitForMessages(1, 20_000)));
    streams.forEach((s, i) => {
      const [f] = frames(s);
      expect(f).toMatchObject({
        id: lastId(i) + 1,
        type: 'group',
        content: contents[0],
        group: { id: gid, name: '大群' },
        mentioned: i === 0, // only m1 is @-mentioned
      });
    });
    // Drop every tenth stream (the client goes away), then three more messages.
    const dropped = members
      .map((_, i) => i)
      .filter((i) => i % 10 === 5)
      .slice(0, DROPPED);
    expect(dropped.length).toBe(DROPPED);
    for (const i of dropped) streams[i]!.close();
    await Promise.all(dropped.map((i) => streams[i]!.closed));
    for (const c of contents.slice(1)) await sendGroup(c);
    const live = members.map((_, i) => i).filter((i) => !dropped.includes(i));
    await Promise.all(live.map((i) => streams[i]!.waitForMessages(4, 20_000)));
    // The dropped ones resume from the last id they saw.
    const resumed = await mapLimit(dropped, 25, async (i) => {
      const seen = frames(streams[i]!);
      const s = await open(members[i]!, seen.at(-1)!.id);
      await s.waitForMessages(4 - seen.length, 20_000);
      return s;
    });
    try {
      members.forEach((_, i) => {
        const k = dropped.indexOf(i);
        const got = [...frames(streams[i]!), ...(k >= 0 ? frames(resumed[k]!) : [])];
        expect(
          got.map((f) => [f.id, f.content]),
          `member ${i}`,
        ).toEqual(contents.map((c, n) => [lastId(i) + 1 + n, c]));
      });
      // Nothing more arrives (no duplicates in flight).
      await new Promise((r) => setTimeout(r, 200));
      for (const i of live) expect(streams[i]!.messages().length).toBe(4);
      for (const s of resumed) expect(frames(s).length).toBeLessThanOrEqual(4);
    } finally {
      for (const s of [...streams, ...resumed]) s.close();
    }
  }, 90_000);
});
