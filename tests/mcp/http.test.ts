// Streamable HTTP's guards, with raw requests to the real server process: the bearer token (401 without it
// or with a wrong one), DNS-rebinding protection (a foreign Host header: 403), the one endpoint, and the
// refusal to listen off loopback without a token. And docs/mcp.md's Cursor snippet starts a working server.

import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { suiteRelay } from '../helpers/fixtures.ts';
import { call, connectHttp, MCP_BUNDLE, newUser, tempDir, type McpConn } from './harness.ts';

const relay = suiteRelay();
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

function post(
  url: string,
  headers: Record<string, string>,
  body = INIT,
  path?: string,
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: path ?? u.pathname,
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json, text/event-stream',
          ...headers,
        },
      },
      (res) => {
        let data = '';
        res.on('data', (d: Buffer) => (data += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('Streamable HTTP guards', () => {
  let conn: McpConn & { url: string };
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir();
    const u = await newUser(relay.url, 'http');
    conn = await connectHttp(
      { OPENWECHAT_BASE_URL: relay.url, OPENWECHAT_TOKEN: u.token, OPENWECHAT_DATA_DIR: dir.dir },
      { token: 'the-right-token' },
    );
  });
  afterAll(async () => {
    await conn?.close();
    await dir?.remove();
  });

  it('needs the bearer token, compared exactly', async () => {
    expect((await post(conn.url, {})).status).toBe(401);
    expect((await post(conn.url, { Authorization: 'Bearer the-wrong-token' })).status).toBe(401);
    expect((await post(conn.url, { Authorization: 'Bearer the-right-token-and-more' })).status).toBe(401);
    const ok = await post(conn.url, { Authorization: 'Bearer the-right-token' });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('"serverInfo"');
    // The SDK client with the token works (the harness connected with it).
    expect((await call(conn.client, 'whoami')).structured.registered).toBe(true);
  });

  it('refuses a foreign Host header (DNS rebinding) and serves only /mcp', async () => {
    const auth = { Authorization: 'Bearer the-right-token' };
    const rebound = await post(conn.url, { ...auth, Host: `evil.example:${new URL(conn.url).port}` });
    expect(rebound.status).toBe(403);
    expect(rebound.body).toMatch(/Invalid Host/);
    expect((await post(conn.url, auth, INIT, '/other')).status).toBe(404);
    const unknown = await post(conn.url, { ...auth, 'Mcp-Session-Id': 'no-such-session' });
    expect(unknown.status).toBe(404);
  });

  it('will not listen off loopback without a token', async () => {
    const child = spawn(process.execPath, [MCP_BUNDLE, '--http', '--host', '0.0.0.0'], {
      env: { PATH: process.env.PATH ?? '', OPENWECHAT_DATA_DIR: dir.dir },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(2);
    expect(err).toMatch(/not loopback: set OPENWECHAT_MCP_HTTP_TOKEN/);
  });
});

describe("docs/mcp.md's Cursor snippet", () => {
  it('starts a server the SDK client can use', async () => {
    const doc = await readFile(join(ROOT, 'docs/mcp.md'), 'utf8');
    const at = doc.indexOf('<!-- snippet: cursor-mcp-json -->');
    const block = /```json\n([\s\S]*?)```/.exec(doc.slice(at))![1]!;
    const dir = await tempDir();
    try {
      const filled = block
        .replaceAll('/path/to/openwechat', ROOT.replace(/\/$/, ''))
        .replaceAll('https://relay.example.org', relay.url)
        .replace(/\/home\/me\/\.openwechat-mcp\/cursor/g, dir.dir);
      const cfg = (
        JSON.parse(filled) as {
          mcpServers: { openwechat: { command: string; args: string[]; env: Record<string, string> } };
        }
      ).mcpServers.openwechat;
      expect(cfg.command).toBe('node');
      const client = new Client({ name: 'cursor-like', version: '1' });
      await client.connect(
        new StdioClientTransport({
          command: process.execPath,
          args: cfg.args,
          env: { PATH: process.env.PATH ?? '', ...cfg.env },
          stderr: 'ignore',
        }),
      );
      try {
        const names = (await client.listTools()).tools.map((t) => t.name);
        expect(names).toEqual(
          expect.arrayContaining(['register', 'send_message', 'read_inbox', 'wait_for_message']),
        );
        const r = await call(client, 'register', { name: `cursor${process.pid}` });
        expect(r.isError).toBe(false);
      } finally {
        await client.close();
      }
    } finally {
      await dir.remove();
    }
  });
});
