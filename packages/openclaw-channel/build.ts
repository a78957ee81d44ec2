// Builds the installable plugin: one ES module per entry under dist/, with our workspace packages
// (client, protocol) and their dependencies bundled in, so the packed tarball needs nothing but the
// host. `openclaw/*` stays external: the installer links the host's own copy (peer dependency).

import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
await rm(join(root, 'dist'), { recursive: true, force: true });
await build({
  entryPoints: { index: join(root, 'src/index.ts'), 'setup-entry': join(root, 'src/setup-entry.ts') },
  outdir: join(root, 'dist'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  external: ['openclaw', 'openclaw/*'],
  chunkNames: 'chunks/[name]-[hash]',
  legalComments: 'none',
  logLevel: 'warning',
});
