// Nothing hangs, nothing leaks (issue 17): multipart field floods, aborted stream opens, stalled bodies,
// early 413s that must arrive as answers rather than resets, streams of several agents on one host
// (issue 16), and the front door `GET /` and /docs (issue 19.6). Every check talks to the real relay over
// real sockets; descriptors are counted in /proc/self/fd (the relay runs in this process).

import { readdir } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@openwechat/relay';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, type SseConnection } from '../helpers/sse.ts';
import { openFds, rawExchange, register, request, until, type Registered } from './limits-helpers.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * Open sockets and upload files of this process (the relay's and the test's own). Other descriptors
 * (SQLite's WAL, pools) open lazily and are not what these tests are about.
 */
function openFdCount(): number {
  const n = openFds();
  return n.sockets + n.uploads;
}

/** A multipart body: `fields` text fields, then a file part. */
function floodBody(fields: number, boundary: string): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < fields; i++)
    parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv${i}\r\n`);
  parts.push(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n` +
      `Content-Type: text/plain\r\n\r\n${'x'.repeat(4096)}\r\n--${boundary}--\r\n`,
  );
  return Buffer.from(parts.join(''));
}

describe('multipart field flood (issue 17.1)', () => {
  let relay: TestRelay;
  let alice: Registered;
  let bob: Registered;
  beforeAll(async () => {
    relay = await startRelay();
    alice = await register(relay.url);
    bob = await register(relay.url);
  });
  afterAll(() => relay?.close());

  it.each([
    ['POST', '/send/file', true],
    ['POST', '/groups/1/send/file', true],
    ['PUT', '/homepage', false],
  ])(
    '%s %s with 25 fields before the file: a prompt clear error, no descriptor or .part left',
    async (method, path, withToken) => {
      const before = openFdCount();
      const boundary = 'xYzBoundary42';
      const body = floodBody(25, boundary);
      const results = await Promise.all(
        Array.from({ length: 30 }, () =>
          rawExchange(
            relay.url,
            `${method} ${path} HTTP/1.1\r\nHost: x\r\n` +
              (withToken ? `X-Token: ${alice.token}\r\n` : '') +
              `Content-Type: multipart/form-data; boundary=${boundary}\r\n` +
              `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
            [body],
            { timeoutMs: 5000 },
          ),
        ),
      );
      for (const r of results) {
        expect(r.error).toBeNull();
        expect(r.text).toMatch(/^HTTP\/1\.1 (200|422)/);
        expect(r.text).toContain('请求格式错误：body: too many fields (at most 20)');
      }
      // Server-side sockets close with the clients'; nothing else stays open.
      await until(() => openFdCount() <= before, 5000, 'descriptors back to the baseline');
      expect(openFdCount()).toBeLessThanOrEqual(before);
      const parts = (await readdir(join(relay.dataDir, 'uploads'))).filter((f) => f.endsWith('.part'));
      expect(parts).toEqual([]);
      // Nothing was sent.
      const inbox = await request(relay.url, 'GET', '/messages', { token: bob.token });
      expect(inbox.text).not.toContain('a.txt');
    },
  );

  it('20 fields and a file are still accepted', async () => {
    const boundary = 'okBoundary';
    const parts = [`--${boundary}\r\nContent-Disposition: form-data; name="to_id"\r\n\r\n${bob.id}\r\n`];
    for (let i = 0; i < 19; i++)
      parts.push(`--${boundary}\r\nContent-Disposition: form-data; name="x${i}"\r\n\r\nv\r\n`);
    parts.push(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n` +
        `Content-Type: text/plain\r\n\r\nhello\r\n--${boundary}--\r\n`,
    );
    const r = await request(relay.url, 'POST', '/send/file', {
      token: alice.token,
      headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
      body: parts.join(''),
    });
    expect(r.text).toMatch(/^发送成功/);
  });
});

describe('request timeout (issue 17.3)', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay({ requestTimeoutSeconds: 0.5, uploadTimeoutSeconds: 1.5 });
  });
  afterAll(() => relay?.close());

  it('100 stalled bodies get 408 and are closed after REQUEST_TIMEOUT_SECONDS; descriptors stay bounded', async () => {
    const before = openFdCount();
    const stalled = Array.from({ length: 100 }, () =>
      rawExchange(
        relay.url,
        'POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"to_id":',
        [],
        { timeoutMs: 8000 },
      ),
    );
    // While they stall, the relay still answers.
    const health = await rawExchange(
      relay.url,
      'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(health.text).toMatch(/^HTTP\/1\.1 200 /);
    const results = await Promise.all(stalled);
    for (const r of results) {
      expect(r.error).toBeNull(); // closed by the server, not by our 8 s give-up
      expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
      expect(r.closedMs).toBeGreaterThanOrEqual(450);
    }
    await until(() => openFdCount() <= before, 5000, 'descriptors back to the baseline');
  });

  it('a dribbled body (one byte at a time) is cut at the timeout too', async () => {
    const { hostname, port } = new URL(relay.url);
    const socket = net.connect(Number(port), hostname);
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('error', () => {});
    const closed = new Promise<number>((resolve) => {
      const t0 = Date.now();
      socket.on('close', () => resolve(Date.now() - t0));
    });
    socket.write(
      'POST /send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n',
    );
    const drip = setInterval(() => !socket.destroyed && socket.write(' '), 50);
    const ms = await closed;
    clearInterval(drip);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeLessThan(5000);
  });

  it('a stalled multipart upload of a known sender gets UPLOAD_TIMEOUT_SECONDS, not the shorter limit', async () => {
    // (An unknown sender's upload is refused when its file part begins: tests/relay/hardening-24.test.ts.)
    const sender = await register(relay.url);
    const r = await rawExchange(
      relay.url,
      `POST /send/file HTTP/1.1\r\nHost: x\r\nX-Token: ${sender.token}\r\n` +
        'Content-Type: multipart/form-data; boundary=b\r\n' +
        'Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nabc',
      [],
      { timeoutMs: 8000 },
    );
    expect(r.error).toBeNull();
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.closedMs).toBeGreaterThanOrEqual(1450);
    const parts = async () =>
      (await readdir(join(relay.dataDir, 'uploads'))).filter((f) => f.endsWith('.part'));
    await until(async () => (await parts()).length === 0, 5000, 'the .part file removed');
  });
});

describe('early 413 while the client is still sending (issue 17.6)', () => {
  let relay: TestRelay;
  let alice: Registered;
  beforeAll(async () => {
    relay = await startRelay();
    alice = await register(relay.url);
  });
  afterAll(() => relay?.close());

  it.each([
    ['POST', '/send', 'application/json', 'chunked', /^HTTP\/1\.1 200 [\s\S]*错误：请求体过大/],
    ['POST', '/send', 'application/json', 'length', /^HTTP\/1\.1 200 [\s\S]*错误：请求体过大/],
    ['PUT', '/homepage', 'text/html', 'chunked', /^HTTP\/1\.1 400 [\s\S]*主页大小超过限制/],
  ])(
    '%s %s (%s, %s body): 20 clients sending 12 MB each all read the answer, none is reset',
    async (method, path, type, framing, want) => {
      const size = 12 * 1024 * 1024;
      const data = Buffer.alloc(64 * 1024, 0x61);
      // A chunked body is refused once the limit is crossed, while the client is still sending it.
      const chunk =
        framing === 'chunked' ? Buffer.concat([Buffer.from('10000\r\n'), data, Buffer.from('\r\n')]) : data;
      const chunks = Array.from({ length: size / data.length }, () => chunk);
      if (framing === 'chunked') chunks.push(Buffer.from('0\r\n\r\n'));
      const framingHeader = framing === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`;
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          rawExchange(
            relay.url,
            `${method} ${path} HTTP/1.1\r\nHost: x\r\nX-Token: ${alice.token}\r\nContent-Type: ${type}\r\n` +
              `${framingHeader}\r\n\r\n`,
            chunks,
            { untilAnswer: true, readAfterBody: true },
          ),
        ),
      );
      const resets = results.filter((r) => r.error !== null);
      expect(resets.map((r) => r.error)).toEqual([]);
      for (const r of results) expect(r.text).toMatch(want);
    },
  );
});

describe('aborted stream opens never hold a slot (issue 17.2)', () => {
  let relay: TestRelay;
  let alice: Registered;
  beforeAll(async () => {
    relay = await startRelay({ sseMaxPerIp: 1, sseMaxPerUser: 1 });
    alice = await register(relay.url);
  });
  afterAll(() => relay?.close());

  it('60 opens dropped mid-open (legacy and resume), then a real open succeeds', async () => {
    const { hostname, port } = new URL(relay.url);
    for (let i = 0; i < 60; i++) {
      const path = i % 2 ? '/stream' : '/stream?since=0';
      await new Promise<void>((resolve) => {
        const s = net.connect(Number(port), hostname, () => {
          s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Token: ${alice.token}\r\n\r\n`);
          // Drop the connection while the relay is still opening the stream.
          setImmediate(() => s.destroy());
        });
        s.on('error', () => {});
        s.on('close', () => resolve());
      });
    }
    await until(() => relay.services.hub.openStreams === 0, 5000, 'no stream left in the hub');
    const c = await openSse(relay.url, { token: alice.token });
    try {
      expect(c.status).toBe(200);
      expect(relay.services.hub.openStreams).toBe(1);
    } finally {
      c.close();
    }
  });
});

describe('several agents on one host (issue 16)', () => {
  let relay: TestRelay;
  const open: SseConnection[] = [];
  beforeAll(async () => {
    relay = await startRelay(); // default SSE limits
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await relay?.close();
  });

  it('two agents and a bridge stream from one address with the default settings', async () => {
    const [a, b, bridge] = [await register(relay.url), await register(relay.url), await register(relay.url)];
    const sa = await openSse(relay.url, { token: a.token, headers: { 'Last-Event-ID': '0' } });
    const sb = await openSse(relay.url, { token: b.token, headers: { 'Last-Event-ID': '0' } });
    const sc = await openSse(relay.url, { token: bridge.token, path: '/stream?since=0&format=json' });
    open.push(sa, sb, sc);
    expect([sa.status, sb.status, sc.status]).toEqual([200, 200, 200]);
    await request(relay.url, 'POST', '/send', {
      token: a.token,
      json: { to_id: bridge.id, content: 'to bridge' },
    });
    const [ev] = await sc.waitForMessages(1);
    expect(JSON.parse(ev?.data ?? '{}')).toMatchObject({ content: 'to bridge', from_id: a.id });
  });

  it('a user reconnecting over its streams replaces the oldest; other users keep theirs', async () => {
    const [u, other] = [await register(relay.url), await register(relay.url)];
    const so = await openSse(relay.url, { token: other.token });
    const s1 = await openSse(relay.url, { token: u.token });
    const s2 = await openSse(relay.url, { token: u.token });
    const s3 = await openSse(relay.url, { token: u.token }); // SSE_MAX_PER_USER=2: s1 goes
    open.push(so, s1, s2, s3);
    expect([s1.status, s2.status, s3.status]).toEqual([200, 200, 200]);
    await s1.closed;
    expect(s1.events.at(-1)).toMatchObject({ event: 'log', data: 'stream_closing reason=replaced' });
    expect(s2.ended || s3.ended || so.ended).toBe(false);
  });

  it('at the address cap a user may still replace its own stream, but not take another user’s slot', async () => {
    const r = await startRelay({ sseMaxPerIp: 2 });
    try {
      const [u, v, w] = [await register(r.url), await register(r.url), await register(r.url)];
      const su = await openSse(r.url, { token: u.token });
      const sv = await openSse(r.url, { token: v.token });
      const sw = await openSse(r.url, { token: w.token });
      expect(sw.status).toBe(429);
      expect(sw.body).toBe('错误：该 IP 的 SSE 连接数已达上限（最多 2 条）。');
      const su2 = await openSse(r.url, { token: u.token });
      expect(su2.status).toBe(200);
      await su.closed;
      expect(sv.ended).toBe(false);
      for (const c of [su2, sv]) c.close();
    } finally {
      await r.close();
    }
  });
});

describe('the front door (issue 19.6)', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay();
  });
  afterAll(() => relay?.close());

  it('GET / points a person to /docs and /health', async () => {
    const r = await request(relay.url, 'GET', '/');
    expect(r.status).toBe(200);
    expect(r.text).toContain('/docs');
    expect(r.text).toContain('/health');
    const j = await request(relay.url, 'GET', '/', { headers: { Accept: 'application/json' } });
    expect(JSON.parse(j.text)).toMatchObject({ docs: '/docs', health: '/health' });
  });

  it('/docs renders in Chromium without a Content-Security-Policy violation', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const console: string[] = [];
      page.on('console', (m) => console.push(`${m.type()}: ${m.text()}`));
      await page.goto(`${relay.url}/docs`, { waitUntil: 'networkidle' });
      await page.waitForSelector('.swagger-ui .info', { timeout: 15_000 });
      expect(await page.textContent('.swagger-ui .info')).toContain('openwechat');
      expect(console.filter((l) => /Content Security Policy|Refused to/i.test(l))).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});

describe('SQLITE_SYNCHRONOUS (issue 17.8)', () => {
  it('accepts NORMAL and FULL, refuses anything else with a line naming the setting', () => {
    expect(loadConfig({ env: {} }).sqliteSynchronous).toBe('NORMAL');
    expect(loadConfig({ env: { SQLITE_SYNCHRONOUS: 'FULL' } }).sqliteSynchronous).toBe('FULL');
    expect(() => loadConfig({ env: { SQLITE_SYNCHRONOUS: 'OFF' } })).toThrow(
      /SQLITE_SYNCHRONOUS \(environment\)/,
    );
  });

  it('a relay on FULL stores and delivers', async () => {
    const relay = await startRelay({ sqliteSynchronous: 'FULL' });
    try {
      const [a, b] = [await register(relay.url), await register(relay.url)];
      const r = await request(relay.url, 'POST', '/send', {
        token: a.token,
        json: { to_id: b.id, content: 'durable' },
      });
      expect(r.text).toMatch(/^发送成功/);
      expect((await request(relay.url, 'GET', '/messages', { token: b.token })).text).toContain(
        '内容：durable',
      );
    } finally {
      await relay.close();
    }
  });
});
