// The OpenClaw suites run on their own (`npm run test:openclaw`): one file at a time, because each
// gateway takes 1–1.5 GB and both cores; every step has its own timeout inside the tests.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/openclaw/**/*.test.ts'],
    // A test that ran no expect() fails (README, Test).
    expect: { requireAssertions: true },
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 300_000,
    hookTimeout: 420_000,
  },
});
