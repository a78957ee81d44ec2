// The Store contract on the PostgreSQL backend: a fresh schema per test, dropped at the end. Without a
// PostgreSQL here the contract's own tests show as skipped (CI requires one: tests/global-setup.ts).

import { afterAll, describe } from 'vitest';
import { openPostgresStore } from '../../packages/relay/src/store/postgres.ts';
import { dropSchemas, PG_URL, pgAvailable, schemaName } from '../helpers/pg.ts';
import { runStoreContract } from './contract.ts';

const available = await pgAvailable();
const schemas: string[] = [];

afterAll(async () => {
  if (available) await dropSchemas(schemas);
});

describe.skipIf(!available)(`PostgreSQL at ${PG_URL}`, () => {
  runStoreContract('postgres', async () => {
    const schema = schemaName('contract');
    schemas.push(schema);
    const { store, bus } = await openPostgresStore({ url: PG_URL, schema });
    await bus.close();
    return store;
  });
});
