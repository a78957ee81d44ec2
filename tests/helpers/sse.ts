// A small SSE client for black-box tests. It uses node:http directly (not fetch/EventSource) so a test can
// destroy the socket at any instant, see the raw bytes, and inspect the status and headers of refusals.
// Frames are parsed with eventsource-parser; the raw text is kept too, to check framing line by line.

import http from 'node:http';
import { createParser } from 'eventsource-parser';

export interface SseEvent {
  /** The `event:` field, or 'message' when absent (as a browser would report it). */
  event: string;
  id: string | undefined;
  data: string;
}

export interface SseOpenOptions {
  /** Path and query, default `/stream`. */
  path?: string;
  /** X-Token header; omitted when undefined. */
  token?: string;
  /** Extra request headers (X-Request-ID, Last-Event-ID, X-Forwarded-For, …). */
  headers?: Record<string, string>;
  /** How long to wait for the response head, default 5000 ms. */
  timeoutMs?: number;
  /** Connect from this local address (e.g. another loopback address: a distinct client behind a proxy). */
  localAddress?: string;
}

export interface SseConnection {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The whole body for a non-200 answer (the refusal text); '' while streaming. */
  body: string;
  events: SseEvent[];
  /** Comment lines without the leading ':' (a heartbeat `: ping` is recorded as ' ping'). */
  comments: string[];
  /** Values of `retry:` fields. */
  retries: number[];
  /** Every character received so far, as decoded UTF-8 text. */
  raw: string;
  /** True once the server ended the stream or the socket closed. */
  ended: boolean;
  /** Number of `: ping` heartbeats so far. */
  pings(): number;
  /** Events whose `event:` is `message`. */
  messages(): SseEvent[];
  /** Resolves when at least `n` events (optionally filtered) have arrived; rejects after the timeout. */
  waitForEvents(
    n: number,
    opts?: { timeoutMs?: number; filter?: (e: SseEvent) => boolean },
  ): Promise<SseEvent[]>;
  /** Resolves when at least `n` `event: message` events have arrived. */
  waitForMessages(n: number, timeoutMs?: number): Promise<SseEvent[]>;
  /** Resolves when at least `n` heartbeats have arrived. */
  waitForPings(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves when the condition holds, checked on every chunk received; rejects after the timeout. */
  waitFor(cond: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Destroys the socket (an abrupt client disconnect). */
  close(): void;
  /** Resolves when the socket is closed. */
  closed: Promise<void>;
}

export function openSse(baseUrl: string, opts: SseOpenOptions = {}): Promise<SseConnection> {
  const url = new URL(opts.path ?? '/stream', baseUrl);
  const headers: Record<string, string> = { Accept: 'text/event-stream', ...opts.headers };
  if (opts.token !== undefined) headers['X-Token'] = opts.token;

  return new Promise<SseConnection>((resolve, reject) => {
    const req = http.request(url, { method: 'GET', headers, agent: false, localAddress: opts.localAddress });
    const headTimer = setTimeout(() => {
      req.destroy(
        new Error(`SSE: no response head from ${url.pathname} within ${opts.timeoutMs ?? 5000} ms`),
      );
    }, opts.timeoutMs ?? 5000);
    req.on('error', (err) => {
      clearTimeout(headTimer);
      reject(err);
    });
    req.on('response', (res) => {
      clearTimeout(headTimer);
      res.setEncoding('utf8');
      const waiters = new Set<() => void>();
      const notify = (): void => {
        for (const w of [...waiters]) w();
      };
      let closedResolve!: () => void;
      const closed = new Promise<void>((r) => (closedResolve = r));

      const conn: SseConnection = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: '',
        events: [],
        comments: [],
        retries: [],
        raw: '',
        ended: false,
        pings: () => conn.comments.filter((c) => c.trim() === 'ping').length,
        messages: () => conn.events.filter((e) => e.event === 'message'),
        waitFor(cond, timeoutMs = 5000, what = 'condition') {
          if (cond()) return Promise.resolve();
          return new Promise<void>((res2, rej) => {
            const check = (): void => {
              if (cond()) {
                done();
                res2();
              } else if (conn.ended) {
                done();
                rej(new Error(`SSE: stream ended while waiting for ${what}; raw so far:\n${conn.raw}`));
              }
            };
            const timer = setTimeout(() => {
              done();
              rej(
                new Error(
                  `SSE: timed out after ${timeoutMs} ms waiting for ${what}; raw so far:\n${conn.raw}`,
                ),
              );
            }, timeoutMs);
            const done = (): void => {
              clearTimeout(timer);
              waiters.delete(check);
            };
            waiters.add(check);
          });
        },
        async waitForEvents(n, o = {}) {
          const pick = (): SseEvent[] => (o.filter ? conn.events.filter(o.filter) : conn.events);
          await conn.waitFor(() => pick().length >= n, o.timeoutMs ?? 5000, `${n} event(s)`);
          return pick();
        },
        async waitForMessages(n, timeoutMs = 5000) {
          return conn.waitForEvents(n, { timeoutMs, filter: (e) => e.event === 'message' });
        },
        async waitForPings(n, timeoutMs = 5000) {
          await conn.waitFor(() => conn.pings() >= n, timeoutMs, `${n} ping(s)`);
        },
        close() {
          res.destroy();
          req.destroy();
        },
        closed,
      };

      const parser = createParser({
        onEvent: (e) => conn.events.push({ event: e.event ?? 'message', id: e.id, data: e.data }),
        onComment: (c) => conn.comments.push(c),
        onRetry: (ms) => conn.retries.push(ms),
      });

      const finish = (): void => {
        if (conn.ended) return;
        conn.ended = true;
        notify();
        closedResolve();
      };

      if (conn.status !== 200) {
        res.on('data', (chunk: string) => (conn.body += chunk));
        res.on('end', () => {
          finish();
          resolve(conn);
        });
        res.on('error', () => {
          finish();
          resolve(conn);
        });
        return;
      }
      res.on('data', (chunk: string) => {
        conn.raw += chunk;
        parser.feed(chunk);
        notify();
      });
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
      resolve(conn);
    });
    req.end();
  });
}

/**
 * Every line of an SSE stream must be a field we expect or a comment or blank. Returns the offending
 * lines (empty when the framing is clean). Lines are split the way the SSE spec does: on CRLF, CR or LF.
 */
export function badSseLines(raw: string): string[] {
  const lines = raw.split(/\r\n|\r|\n/);
  // The last element is an incomplete line (or '' after a final newline); it is not judged.
  lines.pop();
  return lines.filter((l) => !(l === '' || l.startsWith(':') || /^(event|id|data|retry): /.test(l)));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
