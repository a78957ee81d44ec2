// Runs the official MCP conformance suite (@modelcontextprotocol/conformance, server scenarios over
// Streamable HTTP) against openwechat-mcp: a real relay on a random port, one registered account, the
// built server with --http, then `conformance server --url …` (extra arguments are passed on, e.g.
// `--scenario ping`). The suite is installed from the npm registry into ~/.cache/openwechat once. It needs
// Node ≥ 22 (fs.globSync): CONFORMANCE_NODE names that node when the one running this script is older.
//
//   npx tsx scripts/mcp-conformance.ts [conformance server options]
//
// Most scenarios expect the suite's fixture server (tools such as `test_simple_text`, the resource
// `test://static-text`, prompts); docs/mcp.md lists which ones apply to this server and their result.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RelayClient } from '@openwechat/client';
import { startRelay } from '../tests/helpers/relay.ts';
import { buildBundles, bundlePath } from './build.ts';

const VERSION = '0.1.16';
const dir = join(
  process.env.OPENWECHAT_CACHE ?? join(homedir(), '.cache/openwechat'),
  `mcp-conformance-${VERSION}`,
);
const cli = join(dir, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');

if (!existsSync(cli)) {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), '{"name":"conformance-cache","private":true}\n');
  await promisify(execFile)(
    'npm',
    ['install', '--no-audit', '--no-fund', '--no-save', `@modelcontextprotocol/conformance@${VERSION}`],
    { cwd: dir, timeout: 300_000 },
  );
}
await buildBundles({ names: ['mcp'] });
const relay = await startRelay();
const data = await mkdtemp(join(tmpdir(), 'owc-conformance-'));
const { token } = await new RelayClient({ baseUrl: relay.url }).register({
  name: `conformance${process.pid}`,
});
const server = spawn(process.execPath, [bundlePath('mcp'), '--http', '--port', '0'], {
  env: { ...process.env, OPENWECHAT_BASE_URL: relay.url, OPENWECHAT_TOKEN: token, OPENWECHAT_DATA_DIR: data },
  stdio: ['ignore', 'ignore', 'pipe'],
});
let err = '';
const url = await new Promise<string>((resolve, reject) => {
  server.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    const m = /listening on (\S+)/.exec(err);
    if (m) resolve(m[1]!);
  });
  server.once('exit', (code) => reject(new Error(`openwechat-mcp exited ${code}: ${err}`)));
});
const suite = spawn(
  process.env.CONFORMANCE_NODE ?? process.execPath,
  [cli, 'server', '--url', url, ...process.argv.slice(2)],
  {
    stdio: 'inherit',
  },
);
const code = await new Promise<number | null>((r) => suite.once('exit', r));
server.kill();
await relay.close();
await rm(data, { recursive: true, force: true });
process.exit(code ?? 1);
