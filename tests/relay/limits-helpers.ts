// Minimal HTTP helpers for the black-box relay tests (stream, homepage, limits, admin, bad-input,
// responsiveness, hardening). Plain fetch / node:http calls, nothing from the relay's own code.

import { readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

export interface Registered {
  id: number;
  token: string;
  name: string;
}

export interface TextReply {
  status: number;
  headers: Headers;
  text: string;
}

let nameCounter = 0;
/** A name unique within this process (names are unique on the relay). */
export function uniqueName(prefix = 'u'): string {
  nameCounter += 1;
  return `${prefix}${process.pid}_${nameCounter}_${Math.random().toString(36).slice(2, 7)}`;
}

export async function request(
  base: string,
  method: string,
  path: string,
  opts: {
    token?: string;
    json?: unknown;
    body?: BodyInit;
    headers?: Record<string, string>;
    /** Abort (and fail) after this long; default 15 s. */
    timeoutMs?: number;
  } = {},
): Promise<TextReply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers['X-Token'] = opts.token;
  let body = opts.body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(base + path, {
    method,
    headers,
    body,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

export async function register(base: string, name = uniqueName(), extra: Record<string, unknown> = {}) {
  const r = await request(base, 'POST', '/register', { json: { name, ...extra } });
  if (r.status !== 200) throw new Error(`register ${name} failed: ${r.status} ${r.text}`);
  const id = /ID：(\d+)/.exec(r.text)?.[1];
  const token = /Token：([0-9a-f]+)/.exec(r.text)?.[1];
  if (!id || !token) throw new Error(`cannot parse registration reply:\n${r.text}`);
  return { id: Number(id), token, name } satisfies Registered;
}

export async function send(base: string, from: Registered, to: Registered | number, content: string) {
  const toId = typeof to === 'number' ? to : to.id;
  return request(base, 'POST', '/send', { token: from.token, json: { to_id: toId, content } });
}

/** A sends to B (friend request), B replies (accept). Throws unless both succeed. */
export async function makeFriends(base: string, a: Registered, b: Registered): Promise<void> {
  const r1 = await send(base, a, b, `hi from ${a.name}`);
  if (!r1.text.startsWith('发送成功（好友申请已发出')) throw new Error(`friend request failed: ${r1.text}`);
  const r2 = await send(base, b, a, `hi back from ${b.name}`);
  if (!r2.text.startsWith('发送成功（好友关系已建立）')) throw new Error(`accept failed: ${r2.text}`);
}

export async function messages(base: string, who: Registered, query = ''): Promise<TextReply> {
  return request(base, 'GET', `/messages${query}`, { token: who.token });
}

export interface Stats {
  users: number;
  friendships: number;
  messages: number;
}

export async function stats(base: string): Promise<Stats> {
  const r = await request(base, 'GET', '/stats');
  if (r.status !== 200) throw new Error(`/stats: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as Stats;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/** A request over node:http, for headers fetch will not send (Host) and exact byte bodies. */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer | string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; bytes: Buffer }> {
  if (body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-length')) {
    headers = { ...headers, 'Content-Length': String(Buffer.byteLength(body)) };
  }
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { method, headers, agent: false, timeout: 15_000 });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: bytes.toString('utf8'), bytes });
      });
      res.on('error', reject);
    });
    req.end(body);
  });
}

/** Polls `cond` until it holds or the deadline passes (the relay's own timers drive the change). */
export async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface RawExchange {
  /** Everything the server sent. */
  text: string;
  /** The socket error the connection ended in (ECONNRESET …), or `client timeout`. */
  error: string | null;
  /** Milliseconds from connect until the answer's head arrived (null: none). */
  answeredMs: number | null;
  /** Milliseconds from connect until the socket closed. */
  closedMs: number;
}

/**
 * One HTTP exchange on a raw socket: `head` is written, then `body` chunks with backpressure. Resolves when
 * the server closes the connection, the answer is complete (`untilAnswer`, by its content-length), or
 * `timeoutMs` (default 10 s) passes.
 */
export function rawExchange(
  base: string,
  head: string,
  body: Buffer[] = [],
  opts: {
    untilAnswer?: boolean;
    timeoutMs?: number;
    /** Stop writing the body once an answer's head arrived (a client that listens while it sends). */
    stopBodyOnAnswer?: boolean;
    /**
     * Like most HTTP clients (curl, Python's requests), read nothing until the whole body is written: an
     * answer that arrives early waits in the kernel, where a reset would destroy it.
     */
    readAfterBody?: boolean;
  } = {},
): Promise<RawExchange> {
  const { hostname, port } = new URL(base);
  const t0 = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let text = '';
    let error: string | null = null;
    let answeredMs: number | null = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, error, answeredMs, closedMs: Date.now() - t0 });
    };
    const timer = setTimeout(() => {
      error ??= 'client timeout';
      finish();
    }, opts.timeoutMs ?? 10_000);
    socket.on('data', (c: Buffer) => {
      text += c.toString('utf8');
      if (answeredMs === null && text.includes('\r\n\r\n')) answeredMs = Date.now() - t0;
      const m = /\r\ncontent-length: (\d+)\r\n[\s\S]*?\r\n\r\n([\s\S]*)$/i.exec(text);
      if (opts.untilAnswer && m && Buffer.byteLength(m[2] ?? '') >= Number(m[1])) finish();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', finish);
    socket.on('connect', async () => {
      if (opts.readAfterBody) socket.pause();
      socket.write(head);
      for (const chunk of body) {
        if (socket.destroyed || (opts.stopBodyOnAnswer && answeredMs !== null)) return;
        if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
      }
      socket.resume();
    });
  });
}

/** Sockets and upload files (`.part`) this process (the relay and the test) holds open, from /proc/self/fd. */
export function openFds(): { sockets: number; uploads: number } {
  const n = { sockets: 0, uploads: 0 };
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // closed while listing
    }
    if (target.startsWith('socket:')) n.sockets += 1;
    else if (target.endsWith('.part')) n.uploads += 1;
  }
  return n;
}
