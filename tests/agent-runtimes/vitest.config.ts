// Real agent runtimes (Claude Code, Codex) as clients of the MCP server: run on their own
// (`npm run test:agents`), one file at a time; the pinned runtimes are installed into the cache by the
// global setup (once, then reused), so test timeouts cover only the runs.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/agent-runtimes/**/*.test.ts'],
    globalSetup: ['tests/agent-runtimes/global-setup.ts'],
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
