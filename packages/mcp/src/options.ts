// The server's settings, from the command line and the environment (the environment is what MCP client
// configs pass: `env` in .mcp.json, `[mcp_servers.x.env]` in Codex's config.toml). Everything is checked
// here, once; a bad value stops the server with a message naming the setting.

import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { E2E_POLICIES, normalizeBaseUrl, type E2ePolicy } from '@openwechat/client';

export interface McpOptions {
  /** The relay (OPENWECHAT_BASE_URL); with a token, the identity. A data folder's config.json may give it. */
  baseUrl: string | null;
  token: string | null;
  /**
   * The agent's folder (OPENWECHAT_DATA_DIR, --data-dir): config.json (a skill data folder's, or written by
   * the `register` tool, mode 0600) and mcp-state.json (the inbox cursor). One folder per agent.
   */
  dataDir: string;
  /** Tool names offered (OPENWECHAT_MCP_TOOLS): null = all; the preset `readonly` = the read-only ones. */
  tools: string[] | 'readonly' | null;
  /** Folders whose files `send_file` may send (OPENWECHAT_MCP_FILE_ROOTS, `:`-separated). None: no sending. */
  fileRoots: string[];
  /** Where `download_file` writes (OPENWECHAT_MCP_DOWNLOAD_DIR); default <dataDir>/downloads. */
  downloadDir: string;
  /** At most this many messages per read (OPENWECHAT_MCP_MAX_MESSAGES, default 20). */
  maxMessages: number;
  /** At most this many characters of message text per read (OPENWECHAT_MCP_MAX_CHARS, default 20000). */
  maxChars: number;
  /** Longest wait_for_message (seconds). */
  maxWaitSeconds: number;
  /**
   * Claude Code channel (OPENWECHAT_MCP_CHANNEL_SENDERS): user ids whose messages are pushed into the
   * session as `notifications/claude/channel`; `*` = every sender. Empty: the channel is not declared.
   */
  channelSenders: number[] | '*' | null;
  http: { host: string; port: number; token: string | null; allowedHosts: string[] } | null;
  /**
   * End-to-end encryption (OPENWECHAT_E2E): off (default: nothing changes), preferred or required. Keys live
   * in <dataDir>/e2e/ (0600), never in a tool result.
   */
  e2e: E2ePolicy;
}

export class OptionsError extends Error {}

const READONLY_PRESET = 'readonly';

function int(name: string, raw: string | undefined, def: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new OptionsError(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  }
  return n;
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === '::1' || host === 'localhost' || /^127\./.test(host);
}

export const USAGE = `openwechat-mcp — the openwechat MCP server (stdio by default)

  openwechat-mcp [--data-dir DIR] [--http] [--host H] [--port N]

Identity: OPENWECHAT_BASE_URL + OPENWECHAT_TOKEN, or DIR/config.json (a skill data folder's, or one the
register tool wrote). Settings (environment): OPENWECHAT_DATA_DIR, OPENWECHAT_MCP_TOOLS (names, or
"readonly"), OPENWECHAT_MCP_FILE_ROOTS, OPENWECHAT_MCP_DOWNLOAD_DIR, OPENWECHAT_MCP_MAX_MESSAGES,
OPENWECHAT_MCP_MAX_CHARS, OPENWECHAT_MCP_CHANNEL_SENDERS, OPENWECHAT_E2E (off|preferred|required), OPENWECHAT_MCP_HTTP_TOKEN (Streamable HTTP: bearer
token), OPENWECHAT_MCP_ALLOWED_HOSTS. See docs/mcp.md.`;

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv, cwd = process.cwd()): McpOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      http: { type: 'boolean' },
      host: { type: 'string' },
      port: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) throw new OptionsError(USAGE);

  const rawBase = env.OPENWECHAT_BASE_URL?.trim() || null;
  let baseUrl: string | null = null;
  if (rawBase) {
    try {
      baseUrl = normalizeBaseUrl(rawBase);
    } catch (err) {
      throw new OptionsError(`OPENWECHAT_BASE_URL: ${(err as Error).message}`);
    }
  }
  const token = env.OPENWECHAT_TOKEN?.trim() || null;
  if (token && !baseUrl) throw new OptionsError('OPENWECHAT_TOKEN is set but OPENWECHAT_BASE_URL is not');

  const rawDir = values['data-dir'] ?? env.OPENWECHAT_DATA_DIR ?? join2(homedir(), '.openwechat-mcp');
  const dataDir = resolve(cwd, rawDir);

  const rawTools = env.OPENWECHAT_MCP_TOOLS?.trim();
  const tools =
    !rawTools || rawTools === 'all'
      ? null
      : rawTools === READONLY_PRESET
        ? READONLY_PRESET
        : rawTools
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean);

  const fileRoots = (env.OPENWECHAT_MCP_FILE_ROOTS ?? '')
    .split(':')
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      if (!isAbsolute(p)) throw new OptionsError(`OPENWECHAT_MCP_FILE_ROOTS: ${p} is not an absolute path`);
      return resolve(p);
    });
  const downloadDir = resolve(cwd, env.OPENWECHAT_MCP_DOWNLOAD_DIR || join2(dataDir, 'downloads'));

  const rawSenders = env.OPENWECHAT_MCP_CHANNEL_SENDERS?.trim();
  let channelSenders: McpOptions['channelSenders'] = null;
  if (rawSenders === '*') channelSenders = '*';
  else if (rawSenders) {
    channelSenders = rawSenders.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isSafeInteger(n) || n < 1) {
        throw new OptionsError(`OPENWECHAT_MCP_CHANNEL_SENDERS: ${JSON.stringify(s)} is not a user id`);
      }
      return n;
    });
  }

  let http: McpOptions['http'] = null;
  if (values.http || env.OPENWECHAT_MCP_HTTP === '1') {
    const host = values.host ?? env.OPENWECHAT_MCP_HTTP_HOST ?? '127.0.0.1';
    const port = int('--port', values.port ?? env.OPENWECHAT_MCP_HTTP_PORT, 0, 0, 65535);
    const httpToken = env.OPENWECHAT_MCP_HTTP_TOKEN?.trim() || null;
    // Off the loopback interface anybody who can reach the port could act as this agent.
    if (!isLoopback(host) && !httpToken) {
      throw new OptionsError(`--host ${host} is not loopback: set OPENWECHAT_MCP_HTTP_TOKEN`);
    }
    const allowedHosts = (env.OPENWECHAT_MCP_ALLOWED_HOSTS ?? '')
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    http = { host, port, token: httpToken, allowedHosts };
  }

  const rawE2e = env.OPENWECHAT_E2E?.trim() || 'off';
  if (!(E2E_POLICIES as readonly string[]).includes(rawE2e)) {
    throw new OptionsError(
      `OPENWECHAT_E2E must be one of ${E2E_POLICIES.join(', ')} (got ${JSON.stringify(rawE2e)})`,
    );
  }

  return {
    baseUrl,
    token,
    dataDir,
    tools,
    fileRoots,
    downloadDir,
    maxMessages: int('OPENWECHAT_MCP_MAX_MESSAGES', env.OPENWECHAT_MCP_MAX_MESSAGES, 20, 1, 500),
    maxChars: int('OPENWECHAT_MCP_MAX_CHARS', env.OPENWECHAT_MCP_MAX_CHARS, 20_000, 1000, 1_000_000),
    maxWaitSeconds: int('OPENWECHAT_MCP_MAX_WAIT_SECONDS', env.OPENWECHAT_MCP_MAX_WAIT_SECONDS, 300, 1, 3600),
    channelSenders,
    http,
    e2e: rawE2e as E2ePolicy,
  };
}

function join2(a: string, b: string): string {
  return resolve(a, b);
}
