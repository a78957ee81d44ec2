// Streamable HTTP (the option to stdio): one MCP session per client, all sharing the agent. Loopback by
// default; a bearer token (OPENWECHAT_MCP_HTTP_TOKEN) is checked in constant time before anything else;
// DNS rebinding is refused by the SDK's Host check (only this server's own host:port names are allowed).

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Agent, Log } from './agent.ts';
import { createSession } from './server.ts';

export const MCP_PATH = '/mcp';

export interface HttpHandle {
  url: string;
  server: HttpServer;
  close(): Promise<void>;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export async function startHttp(agent: Agent, log: Log): Promise<HttpHandle> {
  const cfg = agent.opts.http!;
  const want = cfg.token ? digest(cfg.token) : null;
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  let allowedHosts: string[] = [];

  const authorized = (req: IncomingMessage): boolean => {
    if (!want) return true;
    const m = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
    // Both sides hashed to one length, then compared in constant time.
    return m !== null && timingSafeEqual(digest(m[1]!), want);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== MCP_PATH) return json(res, 404, { error: 'not found: the MCP endpoint is /mcp' });
    if (!authorized(req)) {
      return json(
        res,
        401,
        { jsonrpc: '2.0', error: { code: -32001, message: 'missing or wrong bearer token' }, id: null },
        { 'WWW-Authenticate': 'Bearer' },
      );
    }
    const sid = req.headers['mcp-session-id'];
    const existing = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (existing) return existing.handleRequest(req, res);
    if (typeof sid === 'string') {
      return json(res, 404, {
        jsonrpc: '2.0',
        error: { code: -32001, message: 'unknown session' },
        id: null,
      });
    }
    if (req.method !== 'POST') {
      return json(res, 400, {
        jsonrpc: '2.0',
        error: { code: -32000, message: 'no session: initialize first' },
        id: null,
      });
    }
    // A new session: the SDK checks that this is an initialize request.
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableDnsRebindingProtection: true,
      allowedHosts,
      onsessioninitialized: (id) => {
        sessions.set(id, transport);
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    const session = createSession(agent, log);
    await session.connect(transport);
    await transport.handleRequest(req, res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      log(`http: ${err.message}`);
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host;
  allowedHosts = [
    ...new Set([
      `${hostPart}:${port}`,
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      ...cfg.allowedHosts,
    ]),
  ];
  const url = `http://${hostPart}:${port}${MCP_PATH}`;
  return {
    url,
    server,
    async close() {
      for (const t of sessions.values()) await t.close().catch(() => {});
      sessions.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
