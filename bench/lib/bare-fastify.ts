// The framework yardstick: bare Fastify with the same route as the node:http yardstick (bare-server.ts).
// It parses the same JSON body (Fastify's own JSON parser) and answers the same small JSON object, so
// bare Fastify ÷ bare node:http is what the framework alone costs per request, and relay ÷ bare Fastify
// what the relay adds on top of it. Default options, as an application would start: no logger.
// Usage: node --import tsx bench/lib/bare-fastify.ts <port>

import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 0);
let n = 0;

const app = Fastify();
app.post('/send', async (req, reply) => {
  const body = req.body as { to_id?: unknown; content?: unknown };
  return reply
    .type('application/json; charset=utf-8')
    .send(JSON.stringify({ result: 'ok', n: ++n, to_id: body.to_id, length: String(body.content).length }));
});

app.listen({ host: '127.0.0.1', port }).then(
  () => {
    const addr = app.server.address();
    const p = typeof addr === 'object' && addr ? addr.port : port;
    console.log(`bare fastify server listening on http://127.0.0.1:${p}`);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
