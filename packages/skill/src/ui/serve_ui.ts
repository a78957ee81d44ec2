// `npm run ui` / `node scripts/serve_ui.js`: serve demo_ui.html and the whitelisted data files on
// http://127.0.0.1:8765. Settings: flag > environment > default.
//   --port N       / OPENWECHAT_UI_PORT   (default 8765; 0 = any free port)
//   --data-dir DIR / OPENWECHAT_DATA_DIR  (default <skill>/../openwechat_im_client)
// The page is demo_ui.html next to this script, as the skill build made it (src/build.ts inlines the page's
// TypeScript, src/ui/app/); from source (tsx) that is the build output's, packages/skill/dist/…/scripts/
// (`npm run ui` builds it first). Prints `serving http://127.0.0.1:<port>` when ready.
// Bundled with no npm dependencies, so it runs with plain `node`.

import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { acquireInstance } from '../data/lock.ts';
import { DEFAULT_UI_PORT, startUiServer } from './ui_server.ts';

export { DATA_FILES, startUiServer, type UiServer, type UiServerOptions } from './ui_server.ts';

const USAGE = `Usage: node scripts/serve_ui.js [--port N] [--data-dir DIR]
  --port N         port on 127.0.0.1 (env OPENWECHAT_UI_PORT, default ${DEFAULT_UI_PORT}; 0 = any free port)
  --data-dir DIR   data folder (env OPENWECHAT_DATA_DIR, default <skill>/../openwechat_im_client)`;

/** This script's own path: import.meta.url in ESM (tsx or an ESM bundle), argv[1] in a CJS bundle. */
function scriptPath(): string {
  const url = (import.meta as { url?: string }).url;
  if (typeof url === 'string' && url.startsWith('file:')) return fileURLToPath(url);
  return resolve(process.argv[1] ?? 'serve_ui.js');
}

/** True when this module was started as the program (not imported by a test or another script). */
function isEntry(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(scriptPath());
  } catch {
    return /serve_ui\.[cm]?[jt]s$/.test(entry);
  }
}

function parsePort(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(n) || n > 65535) {
    throw new Error(`invalid port "${raw}" (expected 0-65535)`);
  }
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { port: { type: 'string' }, 'data-dir': { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  let port: number;
  try {
    const raw = values.port ?? process.env.OPENWECHAT_UI_PORT;
    port = raw === undefined || raw === '' ? DEFAULT_UI_PORT : parsePort(raw);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  // <skill>/scripts/serve_ui.js → <skill>/../openwechat_im_client
  const here = dirname(realpathSync(scriptPath()));
  const dataDir = resolve(
    values['data-dir'] || process.env.OPENWECHAT_DATA_DIR || join(here, '..', '..', 'openwechat_im_client'),
  );
  // From source (src/ui/serve_ui.ts) the page is the build output's: src/ui has only its sources.
  const htmlPath = scriptPath().endsWith('.ts')
    ? join(here, '..', '..', 'dist', 'openwechat-im-client', 'scripts', 'demo_ui.html')
    : join(here, 'demo_ui.html');

  let ui;
  try {
    ui = await startUiServer({ port, dataDir, htmlPath });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      console.error(
        `port ${port} on 127.0.0.1 is already in use (is the demo UI already running? check: node scripts/openwechat.js ui status). ` +
          'Pick another port with --port <n> or OPENWECHAT_UI_PORT=<n> (0 = any free port).',
      );
    } else {
      console.error(`cannot start the UI server: ${(err as Error).message}`);
    }
    process.exit(1);
  }
  // Registers this server for `openwechat ui status|stop` (a second server on another port still runs).
  const since = new Date().toISOString();
  const instance = await acquireInstance(dataDir, 'serve_ui', () => ({
    pid: process.pid,
    url: ui.url,
    port: ui.port,
    data_dir: dataDir,
    since,
  })).catch(() => null);
  console.log(`serving ${ui.url}`);
  console.log(
    `data folder: ${dataDir}${existsSync(dataDir) ? '' : ' (not created yet: the page shows an empty state)'}`,
  );
  if (!existsSync(htmlPath)) {
    console.error(`demo_ui.html not found at ${htmlPath} (from source, build it first: npm run build:skill)`);
  }

  const stop = () => {
    Promise.all([ui.close(), instance?.release()]).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (isEntry()) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
