// The Store contract on the PostgreSQL backend: a fresh schema per test, dropped at the end.

import { afterAll, describe, it } from 'vitest';
import { openPostgresStore } from '../../packages/relay/src/store/postgres.ts';
import { dropSchemas, PG_URL, pgAvailable, schemaName } from '../helpers/pg.ts';
import { runStoreContract } from './contract.ts';

const available = await pgAvailable();
const schemas: string[] = [];

afterAll(async () => {
  if (available) await dropSchemas(schemas);
});

if (available) {
  runStoreContract('postgres', async () => {
    const schema = schemaName('contract');
    schemas.push(schema);
    const { store, bus } = await openPostgresStore({ url: PG_URL, schema });
    await bus.close();
    return store;
  });
} else {
  describe.skip(`Store contract: postgres (no PostgreSQL at ${PG_URL})`, () => {
    it('needs PostgreSQL', () => undefined);
  });
}
