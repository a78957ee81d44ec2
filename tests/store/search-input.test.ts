// Odd search keywords over HTTP (issue 17 item 5): `GET /users?keyword=` with U+0000 answered 500 on
// PostgreSQL (its text cannot hold U+0000) while SQLite cut the pattern at the NUL and listed everyone.
// Both now answer "no users" — names and descriptions never hold control characters — and a lone
// surrogate is searched like any other text. Runs on the backend under test (TEST_BACKEND).

import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { register, req, type User } from '../relay/client.ts';

let relay: TestRelay;
let me: User;

beforeAll(async () => {
  relay = await startRelay();
  me = await register(relay.url, 'searcher');
  await register(relay.url, 'bob', { description: 'b' });
});

afterAll(async () => {
  await relay.close();
});

it.each(['%00', 'b%00', '%00b', '%ED%A0%80', '%ED%BF%BF'])(
  'keyword=%s answers no users, not a 5xx',
  async (k) => {
    const text = await req(relay.url, 'GET', `/users?keyword=${k}`, { token: me.token });
    expect({ status: text.status, body: text.body }).toEqual({ status: 200, body: '暂无可交流的用户' });
    const json = await req(relay.url, 'GET', `/users?keyword=${k}`, { token: me.token, jsonMode: true });
    expect({ status: json.status, body: JSON.parse(json.body) as unknown }).toEqual({
      status: 200,
      body: { total: 0, users: [] },
    });
  },
);

it('a plain keyword still finds its user (the filter is not simply off)', async () => {
  const json = await req(relay.url, 'GET', '/users?keyword=bo', { token: me.token, jsonMode: true });
  expect((JSON.parse(json.body) as { users: Array<{ name: string }> }).users.map((u) => u.name)).toEqual([
    'bob',
  ]);
});
