// Issue 16: fetch follows redirects and strips only Authorization and cookies on a cross-origin hop, so
// X-Token went wherever a redirect pointed. Real servers on two loopback ports (two origins): every call
// that carries the token refuses a redirect to the other one, and nothing reaches it; a redirect within
// the configured origin is still followed.

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClientError } from '../../../tests/helpers/client-error.ts';
import { ClientError, RelayClient } from './index.ts';

const TOKEN = 'redirect-test-token-3b7f9c1d5e';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

let relay: Server;
let elsewhere: Server;
let relayUrl = '';
let elsewhereUrl = '';
const atRelay: Seen[] = [];
const atElsewhere: Seen[] = [];
let tmp = '';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'owc-redirect-'));
  elsewhere = createServer((req, res) => {
    atElsewhere.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('暂无好友');
  });
  elsewhereUrl = await listen(elsewhere);
  // The "relay": /away/* redirects to the other origin, /here/* to itself without the prefix.
  relay = createServer((req, res) => {
    const url = req.url ?? '/';
    atRelay.push({ method: req.method ?? '', url, headers: req.headers });
    req.resume();
    if (url.startsWith('/away/')) {
      res.writeHead(307, { location: `${elsewhereUrl}${url.slice('/away'.length)}` });
      res.end();
    } else if (url.startsWith('/here/')) {
      res.writeHead(308, { location: url.slice('/here'.length) });
      res.end();
    } else if (url === '/friends') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('暂无好友');
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"detail":"Not Found"}');
    }
  });
  relayUrl = await listen(relay);
});

afterAll(async () => {
  for (const s of [relay, elsewhere]) {
    s?.closeAllConnections();
    await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  }
  await rm(tmp, { recursive: true, force: true });
});

async function refused(p: Promise<unknown>): Promise<ClientError> {
  const err = await expectClientError(p, { kind: 'protocol', code: 'redirect_refused', status: 307 });
  expect(err.message).toContain(elsewhereUrl);
  return err;
}

describe('redirects', () => {
  it('a redirect to another origin is refused by every call that carries the token', async () => {
    const client = new RelayClient({ baseUrl: `${relayUrl}/away`, token: TOKEN, mode: 'text' });
    await refused(client.friends());
    await refused(client.send(2, 'hi'));
    await refused(client.openStream({ since: null }));
    await refused(client.downloadFile('abc123', join(tmp, 'f.bin')));
    await refused(client.openFile('abc123'));
    // The relay saw each request once; the other origin saw nothing, so the token never went there.
    expect(atRelay.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /away/friends',
      'POST /away/send',
      'GET /away/stream',
      'GET /away/files/abc123',
      'GET /away/files/abc123',
    ]);
    expect(atElsewhere).toEqual([]);
  });

  it('a redirect within the configured origin is followed, with the token', async () => {
    atRelay.length = 0;
    const client = new RelayClient({ baseUrl: `${relayUrl}/here`, token: TOKEN, mode: 'text' });
    expect(await client.friends()).toEqual([]);
    expect(atRelay.map((s) => [s.url, s.headers['x-token']])).toEqual([
      ['/here/friends', TOKEN],
      ['/friends', TOKEN],
    ]);
    expect(atElsewhere).toEqual([]);
  });
});
