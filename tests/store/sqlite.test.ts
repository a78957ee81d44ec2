// The Store contract on the SQLite backend: a fresh database file per test.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openSqliteStore } from '../../packages/relay/src/store/sqlite.ts';
import { runStoreContract } from './contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'relay-sqlite-contract-'));
let seq = 0;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

runStoreContract('sqlite', () => openSqliteStore({ file: join(dir, `store-${++seq}.db`) }));
