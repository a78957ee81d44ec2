import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'tests/**/*.test.ts'],
    // Builds the bundles that spawned relay/bridge/skill processes run, once per run.
    globalSetup: ['tests/global-setup.ts'],
    // The real-OpenClaw suites and the agent runtimes have their own configs (npm run test:openclaw, test:agents).
    exclude: ['**/node_modules/**', 'tests/openclaw/**', 'tests/agent-runtimes/**'],
    // A test that ran no expect() fails: no test can pass while asserting nothing (README, Test).
    expect: { requireAssertions: true },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Cross-process tests bind real ports and spawn processes; two cores, so keep the pool small.
    maxWorkers: 2,
  },
});
