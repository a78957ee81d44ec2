// Two users become friends and chat through their inbox daemons (the built skill, run with plain node),
// including a file that must land in the recipient's files/. Three relays:
// - ours, auto-detected: resume streams (JSON), acks, stored files;
// - ours with --legacy forced: text parsing, legacy streams, read-and-clear /messages;
// - a reference stand-in (reference-proxy.ts): no ids, no JSON, no files — detected from /health.

import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, lines, readJson, readText, startDaemon, untimed, waitIncoming, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

/** The relay's frozen clock: 2026-03-09 02:00:00 UTC = 10:00:00 Beijing. */
const T0 = Date.UTC(2026, 2, 9, 2, 0, 0);
const AT = '[2026-03-09T02:00:00Z]';

const { ws, relay, proxy } = skillSuite(
  'owc-chat-',
  { sseMaxPerIp: 50, now: () => T0 },
  { proxy: true, killAfterEach: true },
);

type Variant = 'resume' | 'legacy-flag' | 'reference';

describe.each<Variant>(['resume', 'legacy-flag', 'reference'])(
  'two users chat through their daemons (%s)',
  (variant) => {
    it('become friends, chat both ways, and a file arrives', async () => {
      const url = variant === 'reference' ? proxy.url : relay.url;
      const env = variant === 'legacy-flag' ? { OPENWECHAT_FORCE_LEGACY: '1' } : {};
      const A = join(ws.root, `${variant}-alice`);
      const B = join(ws.root, `${variant}-bob`);
      const aliceName = `alice-${variant}`;
      const bobName = `bob-${variant}`;

      const ra = await cli(ws.skill, ['register', '--base-url', url, '--name', aliceName, '--json'], {
        data: A,
        env,
      });
      const rb = await cli(ws.skill, ['register', '--base-url', url, '--name', bobName, '--json'], {
        data: B,
        env,
      });
      expect([ra.code, rb.code]).toEqual([0, 0]);
      const aId = ra.json!.id as number;
      const bId = rb.json!.id as number;

      const da = startDaemon(ws.skill, A, { env });
      const db = startDaemon(ws.skill, B, { env });
      const mode =
        variant === 'resume'
          ? 'resume format=json since=0 relay=openwechat 0.1.0'
          : 'legacy format=text relay=reference';
      for (const dir of [A, B]) {
        await waitUntil(
          async () => (await readText(join(dir, 'sse_channel.log'))).includes(' connected '),
          `${dir} connected`,
        );
        const first = (await lines(join(dir, 'sse_channel.log')))[0]!;
        expect(first).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2}T[\\d:.]+Z connected mode=${mode} pid=\\d+$`));
      }

      const send = async (data: string, args: string[]): Promise<Record<string, unknown>> => {
        const r = await cli(ws.skill, [...args, '--json'], { data, env });
        expect(r.code, r.stdout + r.stderr).toBe(0);
        return r.json!;
      };

      expect((await send(A, ['send', String(bId), 'hello bob'])).outcome).toBe('request');
      await waitIncoming(B, 1);
      expect((await send(B, ['send', String(aId), 'hi alice\nsecond line'])).outcome).toBe('accepted');
      await waitIncoming(A, 2);
      await waitIncoming(B, 2);
      for (const m of ['m1', 'm2', 'm3'])
        expect((await send(A, ['send', String(bId), m])).outcome).toBe('chat');
      await waitIncoming(B, 5);
      await send(B, ['send', String(aId), 'r1 \\ back\\slash']);
      const file = join(ws.root, `${variant}-report.txt`);
      await writeFile(file, `report for ${variant}\n`);
      await send(A, ['send-file', String(bId), file, '--content', 'see file']);

      const bobIn = await waitIncoming(B, 6);
      const aliceIn = await waitIncoming(A, 3);
      const ids = variant !== 'reference';
      const notice = (name: string, uid: number, _n: number): string =>
        `${AT} from=#0(system) type=system content=您与 ${name}（ID:${uid}）已成功建立好友关系。（2026-03-09 10:00:00 北京时间）`;
      const bobFiles = variant === 'reference' ? [] : await readdir(join(B, 'files'));
      // The saved name starts with the first 8 hex digits of the relay's file id.
      const hex = bobFiles[0]?.slice(0, 8) ?? '';
      const fileField = ids
        ? `.file:files/${hex}_${variant}-report.txt`
        : `.attachment:${variant}-report.txt`;
      expect(bobIn).toEqual([
        `${AT} from=#${aId}(${aliceName}) type=friend_request content=hello bob`,
        notice(aliceName, aId, 2),
        `${AT} from=#${aId}(${aliceName}) type=chat content=m1`,
        `${AT} from=#${aId}(${aliceName}) type=chat content=m2`,
        `${AT} from=#${aId}(${aliceName}) type=chat content=m3`,
        `${AT} from=#${aId}(${aliceName}) type=chat${fileField} content=see file`,
      ]);
      expect(aliceIn).toEqual([
        `${AT} from=#${bId}(${bobName}) type=chat content=hi alice\\nsecond line`,
        notice(bobName, bId, 2),
        `${AT} from=#${bId}(${bobName}) type=chat content=r1 \\\\ back\\\\slash`,
      ]);
      // Message ids are beside the lines (conversations.idx, appended right after them), where the relay has them.
      const idsOf = async (): Promise<number[]> => {
        const idx = (await readText(join(B, 'conversations.idx'))).trim();
        return idx === '' ? [] : idx.split('\n').map((l) => Number(l.split(' ')[0]));
      };
      if (ids)
        await waitUntil(async () => ((await idsOf()).length === 6 ? true : undefined), 'six idx entries');
      expect(await idsOf()).toEqual(ids ? [1, 2, 3, 4, 5, 6] : []);
      // What each sent, with the local clock: `from=` is the sender, the recipient in the type token.
      const sent = async (dir: string): Promise<string[]> =>
        (await lines(join(dir, 'conversations.md'))).filter((l) => / type=\S*\.out\b/.test(l)).map(untimed);
      expect(await sent(A)).toEqual([
        `[T] from=#${aId}(${aliceName}) type=friend_request.out.to${bId} content=hello bob`,
        `[T] from=#${aId}(${aliceName}) type=chat.out.to${bId} content=m1`,
        `[T] from=#${aId}(${aliceName}) type=chat.out.to${bId} content=m2`,
        `[T] from=#${aId}(${aliceName}) type=chat.out.to${bId} content=m3`,
        `[T] from=#${aId}(${aliceName}) type=chat.out.to${bId}.attachment:${variant}-report.txt content=see file`,
      ]);
      expect(await sent(B)).toEqual([
        `[T] from=#${bId}(${bobName}) type=chat.out.to${aId} content=hi alice\\nsecond line`,
        `[T] from=#${bId}(${bobName}) type=chat.out.to${aId} content=r1 \\\\ back\\\\slash`,
      ]);

      // The file itself (not on the reference: it only passes the name).
      if (variant === 'reference') expect(await readdir(B)).not.toContain('files');
      else {
        expect(bobFiles).toEqual([`${hex}_${variant}-report.txt`]);
        expect(await readText(join(B, 'inbox_pushed.md'))).toMatch(
          new RegExp(`\n附件：${variant}-report\\.txt\n附件下载：/files/${hex}[0-9a-f]{24}\n消息ID：6\n`),
        );
        expect(await readFile(join(B, 'files', bobFiles[0]!), 'utf8')).toBe(`report for ${variant}\n`);
      }

      // Raw entries: one per message, ids where the relay has them.
      const pushed = await readText(join(B, 'inbox_pushed.md'));
      expect(pushed.match(/^## .*$/gm)).toEqual(
        [1, 2, 3, 4, 5, 6].map((n) => `## 2026-03-09T02:00:00Z id=${ids ? n : 'none'}`),
      );
      expect(pushed).toContain('类型：好友申请\n时间：2026-03-09 10:00:00\n');
      expect(pushed).not.toContain('stream_connected');

      // Contacts and stats as the daemons and the CLI left them.
      await waitUntil(
        async () =>
          (await readJson<{ messages_received: number }>(join(B, 'stats.json'))).messages_received === 6
            ? true
            : undefined,
        'bob stats',
      );
      const contacts = await readJson<Record<string, Record<string, unknown>>>(join(B, 'contacts.json'));
      expect(contacts).toEqual({
        [String(aId)]: expect.objectContaining({
          name: aliceName,
          relationship: 'accepted',
          last_seen_utc: expect.stringMatching(/Z$/),
          since: expect.any(String),
        }),
      });
      const stats = await readJson<Record<string, unknown>>(join(B, 'stats.json'));
      expect(stats).toEqual({
        updated_at: expect.any(String),
        messages_received: 6,
        messages_sent: 2,
        friends_count: 1,
        pending_incoming_count: 0,
        pending_outgoing_count: 0,
        last_sync_utc: expect.stringMatching(/Z$/),
        baseline: { messages_received: 0, messages_sent: 0 },
        by_type: { chat: 4, friend_request: 1, system: 1, group: 0 },
        last_message_id: ids ? 6 : null,
        sse: {
          state: 'connected',
          since: expect.any(String),
          reconnects: 0,
          mode: variant === 'resume' ? 'resume' : 'legacy',
        },
      });
      const snapshot = await waitUntil(async () => {
        const snap = await readJson<{ recent: unknown[] }>(join(B, 'context_snapshot.json'));
        return snap.recent.length === 6 ? (snap as Record<string, unknown>) : undefined;
      }, 'bob snapshot');
      expect(snapshot).toMatchObject({
        updated_at_utc: expect.stringMatching(/Z$/),
        friends_count: 1,
        latest_peers: [`#${aId} ${aliceName}`],
        me: { id: bId, name: bobName },
        // bob's last message came after m1..m3 and before the file.
        unread_by_contact: { [String(aId)]: 1 },
        contacts: 1,
      });
      expect((snapshot.recent as unknown[]).length).toBe(6);

      // A clean stop says so in the channel log.
      expect((await db.kill('SIGTERM')).code).toBe(0);
      expect((await da.kill('SIGTERM')).code).toBe(0);
      expect((await lines(join(B, 'sse_channel.log'))).at(-1)).toMatch(
        / disconnected reason=daemon_stopped$/,
      );
      expect((await readJson<{ sse: { state: string } }>(join(B, 'stats.json'))).sse.state).toBe(
        'disconnected',
      );
    });
  },
);
