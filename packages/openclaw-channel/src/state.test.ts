import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyState, loadState, saveState, stateFile } from './state.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('account state file', () => {
  it('saves started together all succeed, in order: the file holds the last snapshot, no temp file left', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'owc-state-'));
    dirs.push(dir);
    const file = stateFile(dir, 'default');
    const state = emptyState();
    const saves: Array<Promise<void>> = [];
    for (let i = 1; i <= 25; i++) {
      state.cursor = i;
      saves.push(saveState(file, state));
    }
    await Promise.all(saves);
    expect((await loadState(file)).cursor).toBe(25);
    expect(await readdir(join(dir, 'plugins', 'openwechat'))).toEqual(['default.json']);
  });
});
