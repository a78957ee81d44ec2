// The yardstick: the smallest useful node:http JSON endpoint. It reads the body, parses it as JSON and
// answers a small JSON object — what any JSON API must do at least, with no framework and no storage.
// Usage: node --import tsx bench/lib/bare-server.ts <port>

import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 0);
let n = 0;

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let status = 200;
    let out: string;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        to_id?: unknown;
        content?: unknown;
      };
      out = JSON.stringify({ result: 'ok', n: ++n, to_id: body.to_id, length: String(body.content).length });
    } catch {
      status = 400;
      out = '{"error":"bad json"}';
    }
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(out),
    });
    res.end(out);
  });
});

server.listen(port, '127.0.0.1', () => {
  const addr = server.address();
  const p = typeof addr === 'object' && addr ? addr.port : port;
  console.log(`bare node:http server listening on http://127.0.0.1:${p}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
