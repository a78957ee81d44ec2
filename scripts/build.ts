// Bundles what runs in production into plain JavaScript (esbuild), so `npm start`, the Docker image, the
// systemd units and the tests' child processes run `node <bundle>` with no TypeScript loader in between:
//
//   packages/relay/dist/main.js    the relay (`npm start`)
//   packages/relay/dist/admin.js   the admin CLI (`npm run admin`)
//   packages/bridge/dist/main.js   the bridge (`npm run bridge`)
//   packages/mcp/dist/main.js      the MCP server (bin `openwechat-mcp`)
//
//   npm run build [-- --force]
//
// Each bundle sits in its package's dist/ folder (ignored by git) so that paths relative to the module,
// such as the relay's `../package.json`, mean the same as from src/. Our workspace packages are bundled in;
// npm dependencies stay external (native better-sqlite3, pino's worker threads) and load from node_modules.
// A bundle is rebuilt only when one of its inputs is newer than it (esbuild's metafile lists the inputs),
// so `prestart` costs a few stat calls when nothing changed.

import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface Bundle {
  /** The package folder, e.g. packages/relay; output goes to <dir>/dist. */
  dir: string;
  /** Output name (without .js) → entry source relative to `dir`. */
  entries: Record<string, string>;
}

export const BUNDLES: Record<string, Bundle> = {
  relay: { dir: 'packages/relay', entries: { main: 'src/main.ts', admin: 'src/admin.ts' } },
  bridge: { dir: 'packages/bridge', entries: { main: 'src/main.ts' } },
  mcp: { dir: 'packages/mcp', entries: { main: 'src/main.ts' } },
};

/** Absolute path of a bundle's output file, e.g. bundlePath('relay', 'main'). */
export function bundlePath(name: keyof typeof BUNDLES, entry = 'main'): string {
  return join(ROOT, BUNDLES[name]!.dir, 'dist', `${entry}.js`);
}

/** npm packages stay external; our own workspace packages (TypeScript sources) are bundled in. */
const externalDeps: Plugin = {
  name: 'external-deps',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) =>
      args.path.startsWith('@openwechat/') ? undefined : { path: args.path, external: true },
    );
  },
};

const META = 'meta.json';

async function mtime(path: string): Promise<number | null> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return null;
  }
}

/** True when every output exists and is newer than every input recorded by the last build. */
async function upToDate(bundle: Bundle): Promise<boolean> {
  const dist = join(ROOT, bundle.dir, 'dist');
  let meta: Metafile;
  try {
    meta = JSON.parse(await readFile(join(dist, META), 'utf8')) as Metafile;
  } catch {
    return false;
  }
  let oldest = Infinity;
  for (const name of Object.keys(bundle.entries)) {
    const t = await mtime(join(dist, `${name}.js`));
    if (t === null) return false;
    oldest = Math.min(oldest, t);
  }
  const inputs = [...Object.keys(meta.inputs), fileURLToPath(import.meta.url)];
  for (const input of inputs) {
    const t = await mtime(resolve(ROOT, input));
    if (t === null || t > oldest) return false;
  }
  return true;
}

async function buildOne(bundle: Bundle): Promise<void> {
  const dist = join(ROOT, bundle.dir, 'dist');
  await mkdir(dist, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(
      Object.entries(bundle.entries).map(([out, src]) => [out, join(bundle.dir, src)]),
    ),
    outdir: dist,
    bundle: true,
    platform: 'node',
    format: 'esm',
    // Node 20 is past its end of life but CI still runs the suite on it (the machines' default).
    target: 'node20',
    sourcemap: 'linked',
    plugins: [externalDeps],
    metafile: true,
    logLevel: 'warning',
    write: false,
  });
  // Each file is written aside and renamed into place, so a process starting meanwhile (or a second test
  // run building at the same time) reads either the old bundle or the new one, never half of one.
  const files = [
    ...result.outputFiles.map((f) => ({ path: f.path, contents: f.contents as Uint8Array | string })),
    { path: join(dist, META), contents: JSON.stringify(result.metafile) },
  ];
  for (const f of files) {
    const tmp = `${f.path}.${process.pid}.tmp`;
    await writeFile(tmp, f.contents);
    await rename(tmp, f.path);
  }
}

/** Builds the named bundles (default: all) that are missing or stale; returns what was rebuilt. */
export async function buildBundles(
  opts: { names?: string[]; force?: boolean } = {},
): Promise<{ built: string[]; fresh: string[] }> {
  const names = opts.names?.length ? opts.names : Object.keys(BUNDLES);
  const built: string[] = [];
  const fresh: string[] = [];
  for (const name of names) {
    const bundle = BUNDLES[name];
    if (!bundle) throw new Error(`unknown bundle "${name}" (known: ${Object.keys(BUNDLES).join(', ')})`);
    if (!opts.force && (await upToDate(bundle))) {
      fresh.push(name);
      continue;
    }
    await buildOne(bundle);
    built.push(name);
  }
  return { built, fresh };
}

// Run only as the entry point (importing this module has no side effects).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const force = args.includes('--force');
  const started = performance.now();
  buildBundles({ names: args.filter((a) => !a.startsWith('--')), force }).then(
    ({ built }) => {
      if (built.length)
        console.error(`built ${built.join(', ')} in ${Math.round(performance.now() - started)} ms`);
    },
    (err: Error) => {
      console.error(`build failed: ${err.message}`);
      process.exit(1);
    },
  );
}
