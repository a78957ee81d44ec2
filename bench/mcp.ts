// `npm run bench:mcp`: the MCP server's figures through the official SDK client, over stdio and Streamable
// HTTP, against the relay as its own process (the built bundle, like `npm start`):
//
//   - tool-call latency of send_message (to a friend, with a client_id) and read_inbox (one new message);
//   - push latency: a relay user's POST /send → notifications/resources/updated at the subscribed client.
//
//   npm run bench:mcp [-- --n 300]
//
// Each figure is a percentile over n sequential calls (nearest rank); docs/mcp.md records a run.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { RelayClient } from '@openwechat/client';
import { buildBundles } from '../scripts/build.ts';
import { connect, type McpConn, type Transport } from '../tests/mcp/harness.ts';
import { killAll, startRelay } from './lib/procs.ts';
import { summarize, type Summary } from './lib/stats.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '300' } } });
const N = Number(values.n);

async function user(base: string, name: string): Promise<{ id: number; token: string; client: RelayClient }> {
  const { user, token } = await new RelayClient({ baseUrl: base }).register({ name });
  return { id: user.id, token, client: new RelayClient({ baseUrl: base, token }) };
}

async function callTool(client: Client, name: string, args: Record<string, unknown>): Promise<void> {
  const r = await client.callTool({ name, arguments: args });
  if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
}

async function measure(t: Transport, base: string, dataDir: string): Promise<Record<string, Summary>> {
  const tag = `${t}${process.pid}`;
  const agent = await user(base, `agent${tag}`);
  const peer = await user(base, `peer${tag}`);
  await agent.client.send(peer.id, 'hi');
  await peer.client.send(agent.id, 'hi back');
  const conn: McpConn = await connect(t, {
    OPENWECHAT_BASE_URL: base,
    OPENWECHAT_TOKEN: agent.token,
    OPENWECHAT_DATA_DIR: join(dataDir, t),
  });
  try {
    await callTool(conn.client, 'read_inbox', {});
    await conn.client.subscribeResource({ uri: 'openwechat://inbox' });
    const send: number[] = [];
    const read: number[] = [];
    const push: number[] = [];
    for (let i = 0; i < N; i++) {
      let t0 = performance.now();
      await callTool(conn.client, 'send_message', { to_id: peer.id, content: `m${i}`, client_id: `b${i}` });
      send.push(performance.now() - t0);

      const seen = conn.notifications.length;
      t0 = performance.now();
      await peer.client.send(agent.id, `r${i}`);
      for (;;) {
        const n = conn.notifications
          .slice(seen)
          .find((x) => x.n.method === 'notifications/resources/updated');
        if (n) {
          push.push(n.at - t0);
          break;
        }
        await new Promise((r) => setImmediate(r));
      }
      t0 = performance.now();
      await callTool(conn.client, 'read_inbox', {});
      read.push(performance.now() - t0);
      if (i % 50 === 49)
        await peer.client.ack((await peer.client.readInbox({ after: 0, limit: 500 })).messages.at(-1)!.id!);
    }
    return { send_message: summarize(send), read_inbox: summarize(read), push: summarize(push) };
  } finally {
    await conn.close();
  }
}

const dir = mkdtempSync(join(os.tmpdir(), 'owc-bench-mcp-'));
try {
  await buildBundles({ names: ['relay', 'mcp'] });
  const relay = await startRelay({ dataDir: join(dir, 'relay') });
  const out: Record<string, Record<string, Summary>> = {};
  for (const t of ['stdio', 'http'] as const) out[t] = await measure(t, relay.url, dir);
  await relay.stop();
  console.log(`MCP server, ${N} calls each (ms; ${os.cpus().length} cores, node ${process.version})`);
  for (const [t, figures] of Object.entries(out)) {
    for (const [what, s] of Object.entries(figures)) {
      console.log(`${t.padEnd(5)} ${what.padEnd(13)} p50 ${s.p50}  p90 ${s.p90}  p99 ${s.p99}  max ${s.max}`);
    }
  }
} finally {
  await killAll();
  rmSync(dir, { recursive: true, force: true });
}
