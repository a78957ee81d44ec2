// `npm start` with a bad setting: one line naming the setting and where it came from, exit code 2, and
// nothing started (the relay's own entry point as a real process).

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bundlePath } from '../../scripts/build.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The bundle `npm start` runs (built once per test run by tests/global-setup.ts). */
const MAIN = bundlePath('relay');
const dir = mkdtempSync(join(tmpdir(), 'owc-relay-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function start(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [MAIN, '--data-dir', join(dir, 'data'), '--port', '0', ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 20_000 },
      (_err, _stdout, stderr) => resolve({ code: child.exitCode, stderr }),
    );
  });
}

describe('relay configuration errors', () => {
  it('TRUST_PROXY=10.0.0.0/99 stops the start naming the setting (it used to start, then fail unnamed)', async () => {
    const r = await start([], { TRUST_PROXY: '10.0.0.0/99' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'configuration error: TRUST_PROXY (environment): "10.0.0.0/99" is not an IP address or CIDR\n',
    );
  });

  it('an unknown key in the config file stops the start with a suggestion', async () => {
    const file = join(dir, 'relay.json');
    writeFileSync(file, JSON.stringify({ '//': 'comment', RATE_LIMT_QPS: 5 }));
    const r = await start(['--config', file], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `configuration error: config file ${file}: unknown setting RATE_LIMT_QPS (did you mean RATE_LIMIT_QPS?)\n`,
    );
  });
});
