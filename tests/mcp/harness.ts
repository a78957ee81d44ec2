// The MCP server as its users run it: the built bundle (`node packages/mcp/dist/main.js`, what the bin and
// docs/mcp.md start) as a child process, spoken to by the official SDK Client over stdio or Streamable HTTP.
// Relay users on the other side are plain RelayClients.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Notification } from '@modelcontextprotocol/sdk/types.js';
import { RelayClient } from '@openwechat/client';
import { bundlePath } from '../../scripts/build.ts';

export const MCP_BUNDLE = bundlePath('mcp');

export interface RelayUser {
  id: number;
  name: string;
  token: string;
  client: RelayClient;
}

let seq = 0;
export async function newUser(relayUrl: string, prefix = 'u'): Promise<RelayUser> {
  const name = `${prefix}${process.pid}x${++seq}`;
  const anon = new RelayClient({ baseUrl: relayUrl });
  const { user, token } = await anon.register({ name });
  return { id: user.id, name: user.name, token, client: new RelayClient({ baseUrl: relayUrl, token }) };
}

/** Makes two users friends (a request and its acceptance, as the relay defines friendship). */
export async function befriend(a: RelayUser, b: RelayUser): Promise<void> {
  await a.client.send(b.id, `hello from ${a.name}`);
  await b.client.send(a.id, `hello back from ${b.name}`);
}

export interface McpConn {
  client: Client;
  /** Every notification the server sent, in order, with the time it arrived. */
  notifications: Array<{ n: Notification; at: number }>;
  pid: number;
  stderr(): string;
  /** Ends the session and the server (SIGKILL when `kill`). */
  close(kill?: boolean): Promise<void>;
}

export type Transport = 'stdio' | 'http';

function baseEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^(OPENWECHAT_|VITEST|NODE_OPTIONS$)/.test(k)) env[k] = v;
  }
  return { ...env, ...extra };
}

function watch(client: Client): Array<{ n: Notification; at: number }> {
  const list: Array<{ n: Notification; at: number }> = [];
  client.fallbackNotificationHandler = async (n) => {
    list.push({ n, at: performance.now() });
  };
  return list;
}

/** Polls `cond` until it is truthy or `ms` pass (generous: the machine is shared). */
export async function until<T>(
  cond: () => T | Promise<T>,
  ms = 15_000,
  what = 'condition',
): Promise<Exclude<T, null | undefined | false>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v as Exclude<T, null | undefined | false>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const alive = new Set<ChildProcess | number>();
process.once('exit', () => {
  for (const c of alive) {
    try {
      if (typeof c === 'number') process.kill(c, 'SIGKILL');
      else c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export async function connectStdio(env: Record<string, string>): Promise<McpConn> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [MCP_BUNDLE],
    env: baseEnv(env),
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const client = new Client({ name: 'test', version: '1.0.0' });
  const notifications = watch(client);
  await client.connect(transport);
  const pid = transport.pid!;
  alive.add(pid);
  return {
    client,
    notifications,
    pid,
    stderr: () => err,
    async close(kill = false) {
      if (kill) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await client.close().catch(() => {});
      alive.delete(pid);
    },
  };
}

export async function connectHttp(
  env: Record<string, string>,
  opts: { token?: string } = {},
): Promise<McpConn & { url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [MCP_BUNDLE, '--http', '--port', '0'], {
    env: baseEnv({ ...env, ...(opts.token ? { OPENWECHAT_MCP_HTTP_TOKEN: opts.token } : {}) }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  alive.add(child);
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${err}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${err}`)));
  });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: opts.token ? { headers: { Authorization: `Bearer ${opts.token}` } } : {},
  });
  const client = new Client({ name: 'test', version: '1.0.0' });
  const notifications = watch(client);
  await client.connect(transport);
  return {
    client,
    notifications,
    pid: child.pid!,
    url,
    child,
    stderr: () => err,
    async close(kill = false) {
      await client.close().catch(() => {});
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill(kill ? 'SIGKILL' : 'SIGTERM');
        await gone;
      }
      alive.delete(child);
    },
  };
}

export async function connect(t: Transport, env: Record<string, string>): Promise<McpConn> {
  return t === 'stdio' ? connectStdio(env) : connectHttp(env, { token: 'test-bearer-token' });
}

export async function tempDir(prefix = 'owc-mcp-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface ToolOut {
  text: string;
  structured: Record<string, unknown>;
  isError: boolean;
}

export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<ToolOut> {
  const r = await client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 });
  const content = r.content as Array<{ type: string; text?: string }>;
  return {
    text: content.map((c) => c.text ?? '').join('\n'),
    structured: (r.structuredContent ?? {}) as Record<string, unknown>,
    isError: r.isError === true,
  };
}

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}
