import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'tests/**/*.test.ts'],
    // Builds the bundles that spawned relay/bridge/skill processes run, once per run.
    globalSetup: ['tests/global-setup.ts'],
    // The real-OpenClaw suites have their own config (tests/openclaw/vitest.config.ts, npm run test:openclaw).
    exclude: ['**/node_modules/**', 'tests/openclaw/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Cross-process tests bind real ports and spawn processes; two cores, so keep the pool small.
    maxWorkers: 2,
  },
});
