// Issue 16: against the reference relay, messages the daemon fetched with `GET /messages` (its fallback
// while the stream is refused, and its catch-up after a connect) were written to inbox_pushed.md
// re-formatted, with an invented `消息ID：null` line. inbox_pushed.md keeps what the relay sent: the
// reference's raw text block, nothing added. The stream is held refused here (one SSE connection per IP,
// taken), so every message comes by `GET /messages`.

import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { RelayClient } from '../../packages/client/src/index.ts';
import { openSse } from '../helpers/sse.ts';
import { readText, startDaemon, waitIncoming } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

/** The relay's frozen clock: 2026-03-09 02:00:00 UTC = 10:00:00 Beijing. */
const T0 = Date.UTC(2026, 2, 9, 2, 0, 0);

const { ws, relay, proxy } = skillSuite(
  'owc-ref-inbox-',
  { sseMaxPerIp: 1, now: () => T0 },
  { proxy: true, killAfterEach: true },
);

it('messages fetched with GET /messages are kept as the reference sent them (no 消息ID：null)', async () => {
  const anon = new RelayClient({ baseUrl: proxy.url, mode: 'text' });
  const a = await anon.register({ name: 'alice' });
  const b = await anon.register({ name: 'bob' });
  const alice = new RelayClient({ baseUrl: proxy.url, token: a.token, mode: 'text' });
  const bob = new RelayClient({ baseUrl: proxy.url, token: b.token, mode: 'text' });
  // Everything waits in bob's inbox before his daemon runs: it arrives by the catch-up read.
  await alice.send(b.user.id, 'request');
  await bob.send(a.user.id, 'accept');
  await alice.send(b.user.id, 'hello bob');

  const data = join(ws.root, 'bob-data');
  await mkdir(data, { recursive: true });
  await writeFile(
    join(data, 'config.json'),
    JSON.stringify({
      base_url: proxy.url,
      token: b.token,
      my_id: b.user.id,
      my_name: 'bob',
      data_version: 2,
    }),
    { mode: 0o600 },
  );
  const other = await anon.register({ name: 'slot-holder' });
  const holder = await openSse(relay.url, { token: other.token });
  expect(holder.status).toBe(200);
  try {
    const d = startDaemon(ws.skill, data);
    await waitIncoming(data, 3);
    expect((await d.kill('SIGTERM')).code).toBe(0);
  } finally {
    holder.close();
  }
  const log = await readText(join(data, 'sse_channel.log'));
  expect(log).toMatch(/ fallback via=GET \/messages while SSE is down\n/);
  expect(log).not.toMatch(/ connected /);

  const pushed = await readText(join(data, 'inbox_pushed.md'));
  expect(pushed).not.toContain('消息ID');
  const time = '时间：2026-03-09 10:00:00';
  expect(pushed).toBe(
    [
      `类型：好友申请\n${time}\n发件人：alice（ID:${a.user.id}）\n内容：request\n` +
        `操作提示：回复对方（to_id:${a.user.id}）任意消息即可建立好友关系`,
      `类型：系统通知\n${time}\n内容：您与 alice（ID:${a.user.id}）已成功建立好友关系。（2026-03-09 10:00:00 北京时间）`,
      `类型：聊天消息\n${time}\n发件人：alice（ID:${a.user.id}）\n内容：hello bob`,
    ]
      .map((block) => `## 2026-03-09T02:00:00Z id=none\n${block}\n\n`)
      .join(''),
  );
});
