// Builds the skill folder `openwechat-im-client/` (default packages/skill/dist/openwechat-im-client):
// SKILL.md, SERVER.md, config.json.example, references/api.md (the relay API; SKILL.md links it), package.json, and scripts/ with one self-contained ESM bundle per
// entry (no npm dependencies at run time: the folder runs with plain `node`), plus scripts/demo_ui.html: the page
// src/ui/app/page.html with src/ui/app/main.ts bundled for the browser inlined into its one <script>.
//
//   npm run build:skill [-- --out <dir>]
//
// Only the skill folder itself is replaced; its sibling data folder (../openwechat_im_client) is never touched.

import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { DATA_DIR_NAME, SKILL_DIR_NAME } from './data/paths.ts';
import { SKILL_VERSION } from './version.ts';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface BuildResult {
  dir: string;
  scripts: string[];
  files: string[];
}

async function existsFile(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch {
    return false;
  }
}

/** The skill's own package.json: `npm run ui` / `npm run inbox` with nothing to install. */
function skillPackageJson(hasUi: boolean): string {
  const scripts: Record<string, string> = {
    inbox: 'node scripts/sse_inbox.js',
    send: 'node scripts/send.js',
    openwechat: 'node scripts/openwechat.js',
    doctor: 'node scripts/openwechat.js doctor',
  };
  if (hasUi) scripts.ui = 'node scripts/serve_ui.js';
  else scripts.ui = 'node scripts/openwechat.js ui';
  return `${JSON.stringify(
    {
      name: SKILL_DIR_NAME,
      version: SKILL_VERSION,
      private: true,
      description: 'OpenClaw skill: openwechat-claw IM client (bundled scripts, no dependencies)',
      type: 'module',
      engines: { node: '>=20' },
      scripts,
    },
    null,
    2,
  )}\n`;
}

const APP_DIR = join(PACKAGE_ROOT, 'src', 'ui', 'app');

/**
 * demo_ui.html as the skill ships it: one self-contained file (serve_ui serves it alone and allows its inline
 * script and style by hash). The script is main.ts and what it imports — the same conversations.md parser
 * as the CLI (data/lines.ts) — bundled for the browser; an import of a node: module fails the build.
 */
export async function buildDemoPage(): Promise<string> {
  const result = await build({
    stdin: {
      contents: "import { start } from './main.ts';\nstart();\n",
      resolveDir: APP_DIR,
      sourcefile: 'demo_ui.ts',
      loader: 'ts',
    },
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    target: ['es2022', 'chrome100', 'firefox100', 'safari15'],
    // Readable, so a user can still read and customise the page (the guide invites it).
    minify: false,
    legalComments: 'none',
    logLevel: 'warning',
    charset: 'utf8',
  });
  const js = result.outputFiles[0]!.text;
  // esbuild writes `<\/script` inside strings; anything else would end the inline script early.
  if (/<\/script/i.test(js)) throw new Error('the demo UI bundle contains "</script": it cannot be inlined');
  const page = await readFile(join(APP_DIR, 'page.html'), 'utf8');
  const slots = page.split('<script></script>');
  // One script only: serve_ui's CSP hashes every `<script>…</script>` it finds in the text.
  if (slots.length !== 2 || page.match(/<script/gi)?.length !== 1) {
    throw new Error('page.html must contain exactly one <script>, empty: <script></script>');
  }
  return `${slots[0]}<script>\n${js}</script>${slots[1]}`;
}

export async function buildSkill(opts: { outDir?: string } = {}): Promise<BuildResult> {
  const dir = resolve(opts.outDir ?? join(PACKAGE_ROOT, 'dist', SKILL_DIR_NAME));
  // Never the data folder, and never a folder that contains it.
  const dataDir = resolve(dir, '..', DATA_DIR_NAME);
  if (basename(dir) === DATA_DIR_NAME || dataDir.startsWith(`${dir}/`) || dir === resolve('/')) {
    throw new Error(`refusing to build into ${dir}`);
  }
  // Upgrade policy: the old skill folder is replaced as a whole (no stale scripts left behind).
  await rm(dir, { recursive: true, force: true });
  const scriptsDir = join(dir, 'scripts');
  await mkdir(scriptsDir, { recursive: true });

  const entries: Record<string, string> = {
    openwechat: join(PACKAGE_ROOT, 'src', 'bin', 'openwechat.ts'),
    sse_inbox: join(PACKAGE_ROOT, 'src', 'bin', 'sse_inbox.ts'),
    send: join(PACKAGE_ROOT, 'src', 'bin', 'send.ts'),
  };
  const uiEntry = join(PACKAGE_ROOT, 'src', 'ui', 'serve_ui.ts');
  const hasUi = await existsFile(uiEntry);
  if (hasUi) entries.serve_ui = uiEntry;

  await build({
    entryPoints: entries,
    outdir: scriptsDir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    outExtension: { '.js': '.js' },
    define: { __OWC_BUNDLED__: 'true' },
    banner: {
      js: [
        '#!/usr/bin/env node',
        `// openwechat-im-client ${SKILL_VERSION} — bundled from the openwechat repository (packages/skill); do not edit.`,
        "import { createRequire as __owcCreateRequire } from 'node:module';",
        'const require = __owcCreateRequire(import.meta.url);',
      ].join('\n'),
    },
    legalComments: 'none',
    logLevel: 'warning',
    charset: 'utf8',
  });
  const scripts = Object.keys(entries).map((name) => join(scriptsDir, `${name}.js`));
  for (const s of scripts) await chmod(s, 0o755);

  const files: string[] = [];
  if (hasUi) {
    await writeFile(join(scriptsDir, 'demo_ui.html'), await buildDemoPage());
    files.push(join(scriptsDir, 'demo_ui.html'));
  }
  await mkdir(join(dir, 'references'), { recursive: true });
  for (const name of ['SKILL.md', 'SERVER.md', 'config.json.example', 'references/api.md']) {
    const text = (await readFile(join(PACKAGE_ROOT, 'skill', name), 'utf8')).replaceAll(
      '{{VERSION}}',
      SKILL_VERSION,
    );
    await writeFile(join(dir, name), text);
    files.push(join(dir, name));
  }
  await writeFile(join(dir, 'package.json'), skillPackageJson(hasUi));
  files.push(join(dir, 'package.json'));
  return { dir, scripts, files };
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
  const result = await buildSkill({ outDir: values.out });
  process.stdout.write(
    `built ${result.dir}\n${[...result.scripts, ...result.files].map((f) => `  ${f}`).join('\n')}\n`,
  );
}
