// Runs once per `vitest run`, before any test file: builds the bundles the tests' child processes run (the
// relay, its admin CLI and the bridge, as `npm start` runs them; and one skill folder that each skill test
// copies), and, when the run must cover PostgreSQL (REQUIRE_POSTGRES=1, set by .ci/run), fails at once if
// the test database does not answer instead of letting its suites skip.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildSkill } from '../packages/skill/src/build.ts';
import { buildBundles, ROOT } from '../scripts/build.ts';
import { PG_URL, pgAvailable, requirePostgres } from './helpers/pg.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A freshly built skill folder (openwechat-im-client); tests copy it, never write into it. */
    skillBuild: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (requirePostgres() && !(await pgAvailable())) {
    throw new Error(
      `REQUIRE_POSTGRES=1 but PostgreSQL does not answer at ${new URL(PG_URL).host} ` +
        '(start it, or set TEST_DATABASE_URL)',
    );
  }
  await buildBundles();
  // Inside the checkout (ignored), not the shared temp folder, which other runs may sweep.
  const cache = join(ROOT, 'node_modules', '.cache', 'openwechat-tests');
  await mkdir(cache, { recursive: true });
  const root = await mkdtemp(join(cache, 'skill-'));
  const { dir } = await buildSkill({ outDir: join(root, 'openwechat-im-client') });
  project.provide('skillBuild', dir);
  return () => rm(root, { recursive: true, force: true });
}
