// Every JSON answer is checked against the protocol's schema for its endpoint (client.ts parseJson):
// a relay that answers the wrong shape is a ClientError naming the endpoint and the field, not a value
// cast into the wrong type. The well-formed answers are covered by the suites against the real relay;
// a relay that answers wrongly cannot be made from the real one, so this is a loopback server that does.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClientError } from '../../../tests/helpers/client-error.ts';
import { RelayClient } from './index.ts';

const ANSWERS: Record<string, unknown> = {
  '/friends': {
    friends: [
      {
        id: '7',
        name: 'ann',
        description: null,
        status: 'open',
        created_at: '2026-03-09T10:00:00.000Z',
        last_seen_at: null,
        friends_since: '2026-03-09T10:00:00.000Z',
      },
    ],
  },
  '/users/3': {
    user: {
      id: 3,
      name: 'ann',
      description: null,
      status: 'open',
      created_at: 'yesterday',
      last_seen_at: null,
    },
  },
  '/stats': { users: 1, friendships: 0, messages: 0, extra: 'newer relays may add fields' },
};

let server: Server;
let client: RelayClient;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    const answer = ANSWERS[req.url ?? ''];
    res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer ?? { detail: 'Not Found' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  client = new RelayClient({ baseUrl: url, token: 'response-check-token', mode: 'json' });
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('JSON answers are checked against the protocol schemas', () => {
  it('a wrongly typed field is a protocol error naming the endpoint and the field', async () => {
    const err = await expectClientError(client.friends());
    expect([err.kind, err.code]).toEqual(['protocol', 'bad_response']);
    expect(err.message).toMatch(/^GET \/friends: unexpected answer: \/friends\/0\/id: /);
  });

  it('a time that is not ISO-8601 is refused', async () => {
    const err = await expectClientError(client.user(3));
    expect(err.message).toMatch(/^GET \/users\/\{id\}: unexpected answer: \/user\/created_at: /);
  });

  it('extra fields pass (a newer relay)', async () => {
    expect(await client.stats()).toMatchObject({ users: 1, friendships: 0, messages: 0 });
  });
});
