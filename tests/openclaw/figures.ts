// Figures the OpenClaw suites measure (timings, crash-test counts): printed at the end of each suite and
// appended to test-artifacts/openclaw-figures.jsonl (git-ignored) for the report. Never asserted on.

import { appendFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const OUT = fileURLToPath(new URL('../../test-artifacts/openclaw-figures.jsonl', import.meta.url));

const recorded: Array<{ name: string; value: number }> = [];

export const figures = {
  record(name: string, value: number): void {
    recorded.push({ name, value: Math.round(value * 100) / 100 });
  },
  flush(): void {
    if (!recorded.length) return;
    console.log(recorded.map((r) => `  ${r.name}: ${r.value}`).join('\n'));
    mkdirSync(fileURLToPath(new URL('.', `file://${OUT}`)), { recursive: true });
    appendFileSync(OUT, `${JSON.stringify({ at: new Date().toISOString(), figures: recorded })}\n`);
    recorded.length = 0;
  },
};
