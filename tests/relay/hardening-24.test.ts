// Hardening, round two (issue 24, items 1, 2, 4–7; item 3 is cross-instance: tests/scale/resume-hold.test.ts).
// Each describe reproduces one finding against the real relay over real sockets:
//   1. a bad-token upload writes nothing under DATA_DIR/uploads and is answered at once;
//   2. a stream whose client stopped reading holds a bounded queue and is ended; nothing is lost;
//   4. headers are bounded by REQUEST_TIMEOUT_SECONDS (dribbled and silent connections get 408);
//   5. consumers of one user that keep replacing each other are told to back off (429 + Retry-After);
//   6. PUT /homepage never builds its URL from the client's Host;
//   7. with LEGACY_STREAM_GRACE_SECONDS=0 a streamed message is gone before the user's next request.

import { spawn, type ChildProcess } from 'node:child_process';
import { watch } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { openSse, type SseConnection } from '../helpers/sse.ts';
import {
  openFds,
  rawExchange,
  rawRequest,
  register,
  request,
  until,
  type Registered,
} from './limits-helpers.ts';

/** Watches a folder and records every file that appears in it, with the largest size seen. */
function watchFolder(dir: string): { sizes: Map<string, number>; stop(): void } {
  const sizes = new Map<string, number>();
  const w = watch(dir, (_event, name) => {
    if (!name) return;
    if (!sizes.has(name)) sizes.set(name, 0);
    stat(join(dir, name)).then(
      (s) => sizes.set(name, Math.max(sizes.get(name) ?? 0, s.size)),
      () => undefined,
    );
  });
  return { sizes, stop: () => w.close() };
}

describe('item 1: no unauthenticated disk fill on POST /send/file', () => {
  let relay: TestRelay;
  let alice: Registered;
  let bob: Registered;
  beforeAll(async () => {
    // Long limits: an answer within the test's seconds can only be the token check, not a timeout.
    relay = await startRelay({ requestTimeoutSeconds: 60, uploadTimeoutSeconds: 300 });
    alice = await register(relay.url);
    bob = await register(relay.url);
  });
  afterAll(() => relay?.close());

  const FILE_BYTES = 256 * 1024;
  function uploadHead(path: string, token: string | null, bodyLength: number, boundary: string): string {
    return (
      `POST ${path} HTTP/1.1\r\nHost: x\r\n` +
      (token === null ? '' : `X-Token: ${token}\r\n`) +
      `Content-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${bodyLength}\r\n\r\n`
    );
  }
  function uploadBody(toId: number, boundary: string, fileBytes: number): Buffer[] {
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="to_id"\r\n\r\n${toId}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="content"\r\n\r\nhi\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n` +
        `Content-Type: application/octet-stream\r\n\r\n`,
    );
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    const chunks = [head];
    for (let n = 0; n < fileBytes; n += chunk.length)
      chunks.push(chunk.subarray(0, Math.min(chunk.length, fileBytes - n)));
    chunks.push(Buffer.from(`\r\n--${boundary}--\r\n`));
    return chunks;
  }

  it('200 bad-token uploads write nothing under DATA_DIR/uploads and open no upload file', async () => {
    const uploads = join(relay.dataDir, 'uploads');
    const watcher = watchFolder(uploads);
    const boundary = 'b0undary24';
    const body = uploadBody(bob.id, boundary, FILE_BYTES);
    const length = body.reduce((n, c) => n + c.length, 0);
    const baseline = openFds();
    const peak = { sockets: 0, uploads: 0 };
    const sampler = setInterval(() => {
      const now = openFds();
      peak.sockets = Math.max(peak.sockets, now.sockets - baseline.sockets);
      peak.uploads = Math.max(peak.uploads, now.uploads);
    }, 20);
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          rawExchange(
            relay.url,
            uploadHead('/send/file', i % 2 ? 'f'.repeat(32) : null, length, boundary),
            body,
            {
              timeoutMs: 20_000,
              untilAnswer: true,
              stopBodyOnAnswer: true,
            },
          ),
        ),
      );
      await new Promise((r) => setTimeout(r, 200)); // late watch events
      clearInterval(sampler);
      const written = [...watcher.sizes.values()].reduce((a, b) => a + b, 0);
      const slowest = Math.max(...results.map((r) => r.answeredMs ?? Infinity));
      console.log(
        `item 1: ${watcher.sizes.size} upload files created, ${(written / 1e6).toFixed(1)} MB seen, ` +
          `slowest answer ${slowest} ms, at most ${peak.uploads} upload files and ` +
          `${peak.sockets} sockets (both ends) open at once`,
      );
      expect(peak.uploads).toBe(0);
      for (const [i, r] of results.entries()) {
        expect(r.error).toBeNull();
        if (i % 2) expect(r.text).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\n\r\n错误：Token 无效$/);
        else expect(r.text).toMatch(/^HTTP\/1\.1 200 [\s\S]*请求格式错误：header -> X-Token: Field required/);
      }
      expect([...watcher.sizes.keys()]).toEqual([]);
    } finally {
      clearInterval(sampler);
      watcher.stop();
    }
  }, 60_000);

  it('a bad-token upload that stalls mid-file is answered at once, not after a time limit', async () => {
    const boundary = 'stall24';
    const [head] = uploadBody(bob.id, boundary, 0);
    for (const token of ['f'.repeat(32), null]) {
      const r = await rawExchange(
        relay.url,
        uploadHead('/send/file', token, 10_000_000, boundary),
        [head as Buffer, Buffer.from('abc')],
        { timeoutMs: 10_000, untilAnswer: true, stopBodyOnAnswer: true },
      );
      expect(r.error).toBeNull();
      expect(r.text).toMatch(/^HTTP\/1\.1 200 /);
      expect(r.text).not.toMatch(/408/);
    }
    // Group uploads too.
    const r = await rawExchange(
      relay.url,
      uploadHead('/groups/1/send/file', 'f'.repeat(32), 10_000_000, boundary),
      [head as Buffer, Buffer.from('abc')],
      { timeoutMs: 10_000, untilAnswer: true, stopBodyOnAnswer: true },
    );
    expect(r.error).toBeNull();
    expect(r.text).toContain('Token 无效');
  });

  it('a valid upload still goes through, and the reference order of checks holds for small bodies', async () => {
    const boundary = 'ok24';
    const body = Buffer.concat(uploadBody(bob.id, boundary, 1000));
    const ok = await rawExchange(
      relay.url,
      uploadHead('/send/file', alice.token, body.length, boundary),
      [body],
      {
        timeoutMs: 10_000,
        untilAnswer: true,
        stopBodyOnAnswer: true,
      },
    );
    expect(ok.text).toMatch(/\r\n\r\n发送成功/);
    // No content and no file: the content error comes before the token error, as on the reference.
    const empty = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="to_id"\r\n\r\n2\r\n--${boundary}--\r\n`,
    );
    const r = await rawExchange(
      relay.url,
      uploadHead('/send/file', 'f'.repeat(32), empty.length, boundary),
      [empty],
      {
        timeoutMs: 10_000,
        untilAnswer: true,
        stopBodyOnAnswer: true,
      },
    );
    expect(r.text).toMatch(/\r\n\r\n错误：content 或 file 至少需提供一个$/);
    // The valid upload's temporary file goes right after its answer.
    const parts = async () =>
      (await readdir(join(relay.dataDir, 'uploads'))).filter((f) => f.endsWith('.part'));
    await until(async () => (await parts()).length === 0, 5000, 'the .part file removed');
  });
});

describe('item 4: headers are bounded by REQUEST_TIMEOUT_SECONDS', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay({ requestTimeoutSeconds: 0.5 });
  });
  afterAll(() => relay?.close());

  it('a connection that sends nothing gets 408 and is closed', async () => {
    const r = await rawExchange(relay.url, '', [], { timeoutMs: 15_000 });
    console.log(`item 4: silent connection closed after ${r.closedMs} ms`);
    expect(r.error).toBeNull();
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.closedMs).toBeGreaterThanOrEqual(450);
    expect(r.closedMs).toBeLessThan(5000);
  });

  it('dribbled headers (a line every 100 ms, never finished) get 408 and are closed', async () => {
    const { hostname, port } = new URL(relay.url);
    const socket = net.connect(Number(port), hostname);
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('error', () => {});
    const t0 = Date.now();
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - t0)));
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
    let n = 0;
    const drip = setInterval(() => !socket.destroyed && socket.write(`X-Drip-${n++}: a\r\n`), 100);
    const giveUp = setTimeout(() => socket.destroy(), 15_000);
    const ms = await closed;
    clearInterval(drip);
    clearTimeout(giveUp);
    console.log(`item 4: dribbled headers closed after ${ms} ms`);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeLessThan(5000);
  });

  it('a request whose headers arrive in time is answered as usual', async () => {
    const r = await request(relay.url, 'GET', '/health');
    expect(r.status).toBe(200);
  });
});

describe('item 6: PUT /homepage never builds its URL from the Host header', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay(); // no PUBLIC_BASE_URL
  });
  afterAll(() => relay?.close());

  it('without PUBLIC_BASE_URL the URL is the listening address, whatever Host says', async () => {
    const u = await register(relay.url);
    for (const host of ['evil.example:666', 'evil.example']) {
      const r = await rawRequest(
        relay.url,
        'PUT',
        '/homepage',
        { Host: host, 'X-Token': u.token, 'Content-Type': 'text/html', 'X-Forwarded-Host': 'evil2.example' },
        '<p>x</p>',
      );
      expect(r.status).toBe(200);
      expect(r.text).toBe(`主页已更新\n访问地址：${relay.url}/homepage/${u.id}`);
    }
    const j = await rawRequest(
      relay.url,
      'PUT',
      '/homepage',
      { Host: 'evil.example', 'X-Token': u.token, 'Content-Type': 'text/html', Accept: 'application/json' },
      '<p>x</p>',
    );
    expect(JSON.parse(j.text)).toEqual({ url: `${relay.url}/homepage/${u.id}` });
  });
});

describe('item 7: LEGACY_STREAM_GRACE_SECONDS=0 deletes before the next request is answered', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay({ legacyStreamGraceSeconds: 0 });
  });
  afterAll(() => relay?.close());

  it('a message written to a legacy stream is never also returned by GET /messages', async () => {
    const [a, b] = [await register(relay.url), await register(relay.url)];
    // Friends, so a's messages are chats.
    await request(relay.url, 'POST', '/send', { token: a.token, json: { to_id: b.id, content: 'hi' } });
    await request(relay.url, 'POST', '/send', { token: b.token, json: { to_id: a.id, content: 'hi' } });
    await request(relay.url, 'GET', '/messages', { token: b.token });
    const s = await openSse(relay.url, { token: b.token });
    let readable = 0;
    try {
      for (let i = 0; i < 30; i++) {
        await request(relay.url, 'POST', '/send', {
          token: a.token,
          json: { to_id: b.id, content: `m${i}` },
        });
        await s.waitForMessages(i + 1, 10_000);
        // The user's next request: the streamed message must be gone already.
        const inbox = await request(relay.url, 'GET', '/messages', { token: b.token });
        if (inbox.text.includes(`m${i}`)) readable += 1;
      }
    } finally {
      s.close();
    }
    console.log(`item 7: ${readable} of 30 streamed messages still returned by GET /messages`);
    expect(readable).toBe(0);
  });
});

describe('item 5: consumers of one user that keep replacing each other back off', () => {
  let relay: TestRelay;
  let clock = 1_800_000_000_000;
  const open: SseConnection[] = [];
  beforeAll(async () => {
    // One stream per user: every further consumer replaces. The injected clock drives the rule.
    relay = await startRelay({ sseMaxPerUser: 1, now: () => clock });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await relay?.close();
  });

  it('a reconnect over a stale stream replaces it; consumers that come straight back get 429 + Retry-After', async () => {
    const u = await register(relay.url);
    const first = await openSse(relay.url, { token: u.token, headers: { 'Last-Event-ID': '0' } });
    open.push(first);
    // The stale-stream case: one reconnect replaces the old stream at once.
    const second = await openSse(relay.url, { token: u.token, headers: { 'Last-Event-ID': '0' } });
    open.push(second);
    expect(second.status).toBe(200);
    await first.closed;
    expect(first.events.at(-1)).toMatchObject({ event: 'log', data: 'stream_closing reason=replaced' });

    // Two consumers of the same user reconnecting as soon as they are replaced, 20 times, at one instant.
    let replacements = 0;
    let refusals = 0;
    for (let i = 0; i < 20; i++) {
      const c = await openSse(relay.url, { token: u.token, headers: { 'Last-Event-ID': '0' } });
      open.push(c);
      if (c.status === 200) replacements += 1;
      else {
        refusals += 1;
        expect(c.status).toBe(429);
        expect(Number(c.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(Number(c.headers['retry-after'])).toBeLessThanOrEqual(10);
        expect(c.body).toMatch(/^错误：/);
      }
    }
    console.log(`item 5: ${replacements} of 20 immediate reconnects replaced a stream, ${refusals} refused`);
    expect(replacements).toBe(0);
    // The stream that holds the slot is untouched by the refused attempts.
    expect(relay.services.hub.openStreams).toBe(1);

    // JSON mode names the reason.
    const j = await openSse(relay.url, { token: u.token, headers: { Accept: 'application/json' } });
    open.push(j);
    expect(j.status).toBe(429);
    expect(JSON.parse(j.body)).toMatchObject({ error: { code: 'sse_replaced_recently' } });

    // After the backoff a reconnect replaces again (once).
    clock += 10_000;
    const later = await openSse(relay.url, { token: u.token, headers: { 'Last-Event-ID': '0' } });
    open.push(later);
    expect(later.status).toBe(200);
    const again = await openSse(relay.url, { token: u.token, headers: { 'Last-Event-ID': '0' } });
    open.push(again);
    expect(again.status).toBe(429);
  });

  it('a client that drops its stream and reconnects at once, again and again, is never refused', async () => {
    const u = await register(relay.url);
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const c = await openSse(relay.url, { token: u.token, headers: { 'Last-Event-ID': '0' } });
      statuses.push(c.status);
      c.close(); // and straight back, before the relay may have noticed
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });

  it('other users are not affected by one user’s churn', async () => {
    const [a, b] = [await register(relay.url), await register(relay.url)];
    const a1 = await openSse(relay.url, { token: a.token });
    const a2 = await openSse(relay.url, { token: a.token });
    const a3 = await openSse(relay.url, { token: a.token });
    const b1 = await openSse(relay.url, { token: b.token });
    const b2 = await openSse(relay.url, { token: b.token });
    open.push(a1, a2, a3, b1, b2);
    expect([a1.status, a2.status, a3.status, b1.status, b2.status]).toEqual([200, 200, 429, 200, 200]);
  });
});

describe('item 2: a stream whose client stopped reading is bounded and ended; nothing is lost', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay({ sseWriteTimeoutSeconds: 1 });
  });
  afterAll(() => relay?.close());

  /**
   * Opens a stream from a child process whose socket has a 4 KB receive buffer, waits for its head, then
   * stops reading: the kernel's buffers fill after a few hundred KB, then the relay's would.
   */
  async function stalledStream(token: string, path: string): Promise<ChildProcess> {
    const { hostname, port } = new URL(relay.url);
    const script = [
      'import socket, sys',
      's = socket.socket()',
      's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)',
      's.connect((sys.argv[1], int(sys.argv[2])))',
      "s.sendall(('GET %s HTTP/1.1\\r\\nHost: x\\r\\nX-Token: %s\\r\\n\\r\\n' % (sys.argv[3], sys.argv[4])).encode())",
      "head = b''",
      "while b'\\r\\n\\r\\n' not in head: head += s.recv(1)",
      "print(head.split(b'\\r\\n')[0].decode(), flush=True)",
      'sys.stdin.read()',
    ].join('\n');
    const child = spawn('python3', ['-c', script, hostname, port, path, token], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const status = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (c: Buffer) => resolve(c.toString().trim()));
      child.once('exit', (code) => reject(new Error(`stream client exited (${code})`)));
    });
    expect(status).toBe('HTTP/1.1 200 OK');
    return child;
  }

  it('1,200 messages of 4 KB to a stalled resume stream and a stalled legacy stream of one user', async () => {
    const [a, b] = [await register(relay.url), await register(relay.url)];
    await request(relay.url, 'POST', '/send', { token: a.token, json: { to_id: b.id, content: 'hi' } });
    await request(relay.url, 'POST', '/send', { token: b.token, json: { to_id: a.id, content: 'hi' } });
    await request(relay.url, 'POST', '/messages/ack', { token: b.token, json: { up_to: 1_000_000 } });
    // Both streams get every message; the kernel takes 2–3 MB per socket before the relay must queue.
    const clients = [
      await stalledStream(b.token, '/stream?since=0&format=json'),
      await stalledStream(b.token, '/stream'),
    ];
    const { hub } = relay.services;
    expect(hub.openStreams).toBe(2);
    let maxQueued = 0;
    const sample = setInterval(() => (maxQueued = Math.max(maxQueued, hub.queuedBytes())), 10);
    const N = 1200;
    const content = '😀'.repeat(990); // 4 bytes a character: the largest message the relay accepts
    try {
      let next = 0;
      const sender = async () => {
        while (next < N) {
          const i = next++;
          const r = await request(relay.url, 'POST', '/send', {
            token: a.token,
            json: { to_id: b.id, content: `${i} ${content}` },
          });
          expect(r.text).toMatch(/^发送成功/);
        }
      };
      await Promise.all(Array.from({ length: 8 }, sender));
      console.log(`item 2: at most ${(maxQueued / 1024).toFixed(0)} KB queued in the relay for 2 streams`);
      // The relay ends the streams it cannot write to (SSE_WRITE_TIMEOUT_SECONDS=1).
      await until(() => hub.openStreams === 0, 10_000, 'the stalled streams to be ended');
    } finally {
      clearInterval(sample);
      for (const c of clients) c.kill();
    }
    // What the relay held stayed bounded (the kernel's buffers hold more, not the relay's heap).
    expect(maxQueued).toBeLessThan(256 * 1024);
    // Every message is still stored: a resume client reconnects from its Last-Event-ID and gets the rest.
    const page = await request(relay.url, 'GET', '/messages?after=0&limit=100', {
      token: b.token,
      headers: { Accept: 'application/json' },
    });
    expect(JSON.parse(page.text).total).toBe(N);
    // ~10 s on a quiet machine; 1,200 sends take longer when the machine is busy.
  }, 120_000);
});
