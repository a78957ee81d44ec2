// Real agent runtimes (Claude Code, Codex) as clients of the MCP server: run on their own
// (`npm run test:agents`); the pinned runtimes are installed into the cache by the global setup (once,
// then reused), so test timeouts cover only the runs. The two files run side by side: the OpenClaw CLI
// mostly waits, and the conversation's processes are light (the model is a fake).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/agent-runtimes/**/*.test.ts'],
    // A test that ran no expect() fails (README, Test).
    expect: { requireAssertions: true },
    globalSetup: ['tests/agent-runtimes/global-setup.ts'],
    maxWorkers: 2,
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
