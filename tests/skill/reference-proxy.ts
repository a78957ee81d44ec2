// A stand-in for the reference relay: a proxy in front of our relay that removes everything the reference
// does not have (spec/relay-reference.md): /health says only {"status":"ok"}; JSON mode, Last-Event-ID,
// ?since=, ?after=, ?format= and Idempotency-Key are dropped from requests; message ids (`id:` fields and
// `消息ID：` lines), `retry:` and download lines (`附件下载：`) are cut from responses; /files/* does not exist.
// What the skill sees is then the reference's text: no ids, legacy streams, read-and-clear inbox.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReferenceProxy {
  url: string;
  close(): Promise<void>;
}

const DROP_HEADERS = ['accept', 'last-event-id', 'idempotency-key', 'host', 'content-length'];
const DROP_QUERY = ['since', 'after', 'format'];

function stripBody(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^(消息ID|附件下载)：/.test(l))
    .join('\n');
}

/** SSE lines to drop: ids, retry, and the data lines carrying ids or download paths. */
function keepSseLine(line: string): boolean {
  return !/^(id|retry):/.test(line) && !/^data: (消息ID|附件下载)：/.test(line);
}

export async function startReferenceProxy(upstream: string): Promise<ReferenceProxy> {
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', upstream);
    if (url.pathname === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    if (url.pathname.startsWith('/files/')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"detail":"Not Found"}');
      return;
    }
    for (const q of DROP_QUERY) url.searchParams.delete(q);
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!DROP_HEADERS.includes(k)) headers[k] = v;
    const upstreamReq = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: `${url.pathname}${url.search}`,
        headers: {
          ...headers,
          ...(req.headers['content-length'] ? { 'content-length': req.headers['content-length'] } : {}),
        },
      },
      (up) => {
        const type = String(up.headers['content-type'] ?? '');
        const outHeaders = { ...up.headers };
        delete outHeaders['content-length'];
        if (type.startsWith('text/event-stream')) {
          res.writeHead(up.statusCode ?? 502, outHeaders);
          res.flushHeaders();
          up.setEncoding('utf8');
          let buffer = '';
          up.on('data', (chunk: string) => {
            buffer += chunk;
            const cut = buffer.lastIndexOf('\n');
            if (cut < 0) return;
            const complete = buffer.slice(0, cut + 1);
            buffer = buffer.slice(cut + 1);
            const kept = complete
              .split('\n')
              .slice(0, -1)
              .filter(keepSseLine)
              .map((l) => `${l}\n`)
              .join('');
            // A `retry:` event alone becomes an empty event: drop the blank line it leaves behind.
            res.write(kept.replace(/^\n+/, ''));
          });
          up.on('end', () => res.end());
          res.on('close', () => up.destroy());
          return;
        }
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          let body = Buffer.concat(chunks);
          if (type.startsWith('text/plain')) body = Buffer.from(stripBody(body.toString('utf8')));
          res.writeHead(up.statusCode ?? 502, { ...outHeaders, 'content-length': String(body.length) });
          res.end(body);
        });
      },
    );
    upstreamReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstreamReq);
    res.on('close', () => upstreamReq.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
