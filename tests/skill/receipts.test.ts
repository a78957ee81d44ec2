// Delivery state in the skill (issue 22.3): `openwechat sent` lists what this user sent with `delivered` /
// `accepted`, fed by the daemon's receipt events (recorded in the sidecar sent.idx) and by the relay's
// receipt query. The built skill, real daemons and the real relay; conversations.md keeps the guide's lines.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, readText, startDaemon, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

const { ws, relay } = skillSuite('owc-receipts-', { sseMaxPerIp: 50 }, { killAfterEach: true });

interface SentRow {
  time: string;
  to: { id: number; name: string | null } | null;
  group: number | null;
  content: string;
  state: 'delivered' | 'accepted' | 'partial' | 'unknown';
  copies: Array<{ to_id: number; message_id: number; delivered_at: string | null }>;
}

async function sentRows(dir: string, args: string[] = []): Promise<{ rows: SentRow[]; queried: number }> {
  const r = await cli(ws.skill, ['sent', '--json', ...args], { data: dir });
  expect(r.code, r.stderr).toBe(0);
  return { rows: r.json!.sent as SentRow[], queried: r.json!.queried as number };
}

const rowOf = (rows: SentRow[], content: string): SentRow => {
  const row = rows.find((r) => r.content === content);
  if (!row) throw new Error(`no sent row "${content}" in ${JSON.stringify(rows)}`);
  return row;
};

describe('openwechat sent: delivery state of what this user sent', () => {
  it('from the daemon’s receipt events, and from the relay when the daemon was not running', async () => {
    const A = join(ws.root, 'alice');
    const B = join(ws.root, 'bob');
    const reg = async (dir: string, name: string) => {
      const r = await cli(ws.skill, ['register', '--base-url', relay.url, '--name', name, '--json'], {
        data: dir,
      });
      expect(r.code, r.stderr).toBe(0);
      return r.json!.id as number;
    };
    const aId = await reg(A, 'alice-rcpt');
    const bId = await reg(B, 'bob-rcpt');
    const send = async (dir: string, to: number, text: string) => {
      const r = await cli(ws.skill, ['send', String(to), text, '--json'], { data: dir });
      expect(r.code, r.stderr).toBe(0);
      return r.json!.message_id as number;
    };
    await send(A, bId, 'hi bob');
    await send(B, aId, 'hi alice');

    const da = startDaemon(ws.skill, A);
    await waitUntil(
      async () => (await readText(join(A, 'sse_channel.log'))).includes(' connected '),
      'A connected',
    );
    const first = await send(A, bId, 'are you there');

    // Bob's client has not taken it: accepted, whether known locally or asked.
    expect(rowOf((await sentRows(A, ['--offline'])).rows, 'are you there')).toMatchObject({
      to: { id: bId, name: 'bob-rcpt' },
      state: 'accepted',
      copies: [{ to_id: bId, message_id: first, delivered_at: null }],
    });
    const asked = await sentRows(A);
    expect(asked.queried).toBeGreaterThanOrEqual(2);
    expect(rowOf(asked.rows, 'are you there').state).toBe('accepted');

    // Bob's daemon stores and acknowledges: alice's daemon gets the receipts and records them.
    const db = startDaemon(ws.skill, B);
    await waitUntil(
      async () => (await readText(join(A, 'sent.idx'))).includes(`d ${bId} ${first} `),
      'the receipt in alice’s sent.idx',
    );
    const offline = await sentRows(A, ['--offline']);
    expect(offline.queried).toBe(0);
    for (const text of ['hi bob', 'are you there']) {
      const row = rowOf(offline.rows, text);
      expect(row.state, text).toBe('delivered');
      expect(row.copies[0]!.delivered_at).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    }
    const text = await cli(ws.skill, ['sent', '--offline', '--to', String(bId)], { data: A });
    expect(text.stdout).toMatch(new RegExp(`→ #${bId}\\(bob-rcpt\\) delivered \\S+Z \\| are you there`));

    // With alice's daemon down, the receipt event is missed: the query finds it and records it.
    await da.kill('SIGTERM');
    const second = await send(A, bId, 'while you were away');
    await waitUntil(
      async () => (await readText(join(B, 'conversations.md'))).includes('content=while you were away'),
      'bob stored it',
    );
    await waitUntil(async () => {
      // Bob's daemon acknowledges after it stored (ack delay 100 ms): the relay then says delivered.
      const rows = (await sentRows(A)).rows;
      return rowOf(rows, 'while you were away').state === 'delivered';
    }, 'delivered by query');
    expect(await readText(join(A, 'sent.idx'))).toContain(`d ${bId} ${second} `);
    expect(rowOf((await sentRows(A, ['--offline'])).rows, 'while you were away').state).toBe('delivered');

    // conversations.md keeps the guide's grammar: nothing about delivery on the lines.
    const lines = (await readText(join(A, 'conversations.md'))).trim().split('\n');
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^\\[[\\dT:-]+Z\\] from=#${aId}\\(alice-rcpt\\) type=chat\\.out\\.to${bId} content=while you were away$`,
      ),
    );
    await db.kill('SIGTERM');
  });

  it('a group send: one receipt per member copy (k/n delivered)', async () => {
    const O = join(ws.root, 'owner');
    const M = [join(ws.root, 'm1'), join(ws.root, 'm2')];
    const reg = async (dir: string, name: string) => {
      const r = await cli(ws.skill, ['register', '--base-url', relay.url, '--name', name, '--json'], {
        data: dir,
      });
      expect(r.code, r.stderr).toBe(0);
      return r.json!.id as number;
    };
    const oId = await reg(O, 'owner-rcpt');
    const mIds = [await reg(M[0]!, 'm1-rcpt'), await reg(M[1]!, 'm2-rcpt')];
    for (const [i, dir] of M.entries()) {
      expect((await cli(ws.skill, ['send', String(mIds[i]), 'hi'], { data: O })).code).toBe(0);
      expect((await cli(ws.skill, ['send', String(oId), 'hello'], { data: dir })).code).toBe(0);
    }
    const created = await cli(
      ws.skill,
      ['group', 'create', 'team', '--members', `${mIds[0]},${mIds[1]}`, '--json'],
      { data: O },
    );
    expect(created.code, created.stderr).toBe(0);
    const gid = (created.json!.group as { id: number }).id;
    const sent = await cli(ws.skill, ['group', 'send', String(gid), 'to the team', '--json'], { data: O });
    expect(sent.code, sent.stderr).toBe(0);

    let row = rowOf((await sentRows(O)).rows, 'to the team');
    expect(row.group).toBe(gid);
    expect(row.copies.map((c) => c.to_id).sort()).toEqual([...mIds].sort());
    expect(row.state).toBe('accepted');

    // Only m1's daemon runs: one of two copies delivered.
    const d1 = startDaemon(ws.skill, M[0]!);
    await waitUntil(async () => {
      row = rowOf((await sentRows(O)).rows, 'to the team');
      return row.state === 'partial';
    }, 'one copy delivered');
    expect(row.copies.find((c) => c.to_id === mIds[0])!.delivered_at).not.toBeNull();
    expect(row.copies.find((c) => c.to_id === mIds[1])!.delivered_at).toBeNull();
    const shown = await cli(ws.skill, ['sent', '--offline'], { data: O });
    expect(shown.stdout).toContain(`→ #g${gid} 1/2 delivered | to the team`);
    await d1.kill('SIGTERM');
  });
});
