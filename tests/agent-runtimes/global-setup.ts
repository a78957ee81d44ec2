// Before the runtime suites: the MCP server's bundle (what the configs start) and the pinned runtimes
// (installed from the npm registry into ~/.cache/openwechat once; CI keeps that cache).
import { buildBundles } from '../../scripts/build.ts';
import { ensureClaude, ensureCodex } from './runtimes.ts';

export default async function setup(): Promise<void> {
  await buildBundles({ names: ['mcp'] });
  await Promise.all([ensureClaude(), ensureCodex()]);
}
