#!/usr/bin/env node
// openwechat-mcp: the MCP server's entry point. stdio by default (the client starts this process and
// speaks on stdin/stdout; logs go to stderr); Streamable HTTP with --http.

import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { Agent } from './agent.ts';
import { startHttp } from './http.ts';
import { OptionsError, parseOptions } from './options.ts';
import { createSession } from './server.ts';

async function main(): Promise<void> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof OptionsError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = (line: string): void => {
    process.stderr.write(`openwechat-mcp: ${line}\n`);
  };
  const agent = new Agent(opts, log);
  await agent.start();
  log(
    agent.identity
      ? `identity from ${agent.identity.source}: ${agent.identity.baseUrl}`
      : 'no identity: register tool offered',
  );

  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await agent.stop().catch(() => {});
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  if (opts.http) {
    const h = await startHttp(agent, log);
    // The one line a supervisor (or a test) reads to find the port.
    log(`listening on ${h.url}`);
    return;
  }
  const session = createSession(agent, log);
  const transport = new StdioServerTransport();
  // The client closing stdin ends the session and the process.
  transport.onclose = () => void stop(0);
  process.stdin.on('end', () => void stop(0));
  await session.connect(transport);
}

main().catch((err: Error) => {
  process.stderr.write(`openwechat-mcp: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
