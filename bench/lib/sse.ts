// A minimal SSE client on node:http (one socket per stream, keep-alive off) for the benchmark: it
// resolves once the relay's first frame (`event: log`) arrives and reports every `event: message` with
// the time its bytes were received.

import http from 'node:http';
import { createParser } from 'eventsource-parser';

export interface StreamHandle {
  close(): void;
  readonly closed: boolean;
}

export interface OpenStreamOptions {
  baseUrl: string;
  token: string;
  /** Resume stream from this id (Last-Event-ID); legacy stream when absent. */
  lastEventId?: number;
  format?: 'json' | 'text';
  /** Called for each `event: message` with its data and the epoch ms at which its chunk arrived. */
  onMessage(data: string, receivedAt: number): void;
  /** Called once if the stream ends or fails after it was open. */
  onEnd?(err?: Error): void;
  timeoutMs?: number;
  agent?: http.Agent | false;
}

export function openStream(opts: OpenStreamOptions): Promise<StreamHandle> {
  const url = new URL(`/stream${opts.format === 'json' ? '?format=json' : ''}`, opts.baseUrl);
  const headers: Record<string, string> = { accept: 'text/event-stream', 'x-token': opts.token };
  if (opts.lastEventId !== undefined) headers['last-event-id'] = String(opts.lastEventId);
  return new Promise((resolve, reject) => {
    let open = false;
    let closed = false;
    let chunkAt = 0;
    const req = http.request(url, { method: 'GET', headers, agent: opts.agent ?? false });
    const handle: StreamHandle = {
      close() {
        closed = true;
        req.destroy();
      },
      get closed() {
        return closed;
      },
    };
    const timer = setTimeout(
      () => req.destroy(new Error(`stream not open within ${opts.timeoutMs ?? 30_000} ms`)),
      opts.timeoutMs ?? 30_000,
    );
    const parser = createParser({
      onEvent(e) {
        if (e.event === 'log') {
          if (!open) {
            open = true;
            clearTimeout(timer);
            resolve(handle);
          }
        } else if (e.event === 'message' || e.event === undefined) opts.onMessage(e.data, chunkAt);
      },
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      if (!open) reject(err);
      else if (!closed) opts.onEnd?.(err);
      closed = true;
    });
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          clearTimeout(timer);
          reject(new Error(`GET /stream: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        });
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        chunkAt = performance.timeOrigin + performance.now();
        parser.feed(chunk);
      });
      res.on('end', () => {
        if (!closed) opts.onEnd?.();
        closed = true;
      });
    });
    req.end();
  });
}
