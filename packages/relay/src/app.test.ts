// The request path's bookkeeping as an operator sees it: one log line per request, bound to the
// request's id (Fastify's per-request logger is made lazily, app.ts), never a token or a body.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRelay, type Relay } from './app.ts';

describe('request log lines', () => {
  const lines: Array<Record<string, unknown>> = [];
  let relay: Relay;
  let url: string;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'owc-app-'));
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    relay = await createRelay(
      { host: '127.0.0.1', port: 0, dataDir, rateLimitEnabled: false, logLevel: 'info' },
      { logger: pino({ level: 'info' }, sink) },
    );
    url = await relay.listen();
  });
  afterAll(async () => {
    await relay?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const requestLines = () => lines.filter((l) => l.msg === 'request');

  it('binds each line to its request id: the client’s own, else a fresh one per request', async () => {
    const reg = await fetch(`${url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'logged' }),
    });
    const token = /^Token：([0-9a-f]{32})$/m.exec(await reg.text())![1]!;
    const send = (headers: Record<string, string> = {}) =>
      fetch(`${url}/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-token': token, ...headers },
        body: JSON.stringify({ to_id: 1, content: 'a secret body' }),
      }).then((r) => r.text());
    await send();
    await send();
    await send({ 'x-request-id': 'trace-42' });
    const sends = requestLines().filter((l) => l.route === '/send');
    expect(sends).toHaveLength(3);
    const ids = sends.map((l) => l.reqId);
    expect(ids[2]).toBe('trace-42');
    expect(ids[0]).toMatch(/^[0-9a-f]{6}-[0-9a-z]+$/);
    expect(new Set(ids).size).toBe(3);
    expect(sends.every((l) => l.status === 200 && typeof l.ms === 'number' && l.userId === 1)).toBe(true);
    const all = JSON.stringify(lines);
    expect(all).not.toContain(token);
    expect(all).not.toContain('a secret body');
  });
});
