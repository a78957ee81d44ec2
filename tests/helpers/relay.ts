// Starts the real relay in this process on a random loopback port with a temporary data folder. The
// store is SQLite, or PostgreSQL when TEST_BACKEND=postgres (a throwaway schema per data folder, so a
// restart on the same folder finds its data). Tests talk to it over real sockets only.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RelayClient } from '@openwechat/client';
import { createRelay, type Relay, type RelayConfig } from '@openwechat/relay';
import { dropSchemas, schemaForDataDir, schemaUrl } from './pg.ts';

export interface TestRelay {
  /** e.g. http://127.0.0.1:41234 (no trailing slash) */
  url: string;
  dataDir: string;
  /** The relay's services, for the few tests that must drive an internal step (e.g. hub.settle()). */
  services: Relay['services'];
  close(): Promise<void>;
}

/** Which store the HTTP suites run on: `sqlite` (default) or `postgres`. */
export const TEST_BACKEND = process.env.TEST_BACKEND === 'postgres' ? 'postgres' : 'sqlite';

export type TestRelayOptions = Partial<RelayConfig> & {
  /** Injected clock (ms since epoch); defaults to Date.now. */
  now?: () => number;
};

export async function startRelay(options: TestRelayOptions = {}): Promise<TestRelay> {
  const { now, ...overrides } = options;
  const dataDir = overrides.dataDir ?? (await mkdtemp(join(tmpdir(), 'owc-relay-')));
  const pgSchema =
    TEST_BACKEND === 'postgres' && !overrides.databaseUrl ? await schemaForDataDir(dataDir) : null;
  const relay = await createRelay(
    {
      host: '127.0.0.1',
      port: 0,
      dataDir,
      rateLimitEnabled: false,
      logLevel: 'silent',
      ...(pgSchema ? { databaseUrl: schemaUrl(pgSchema) } : {}),
      ...overrides,
    },
    { now },
  );
  const url = await relay.listen();
  return {
    url,
    dataDir,
    services: relay.services,
    async close() {
      await relay.close();
      if (!overrides.dataDir) {
        await rm(dataDir, { recursive: true, force: true });
        if (pgSchema) await dropSchemas([pgSchema]);
      }
    },
  };
}

/** A new account on the relay at `url`, with a JSON-mode client holding its token. */
export async function registerJsonUser(
  url: string,
  name: string,
  status?: 'open' | 'friends_only' | 'do_not_disturb',
): Promise<{ id: number; client: RelayClient }> {
  const { user, token } = await new RelayClient({ baseUrl: url, mode: 'json' }).register({
    name,
    ...(status ? { status } : {}),
  });
  return { id: user.id, client: new RelayClient({ baseUrl: url, token, mode: 'json' }) };
}
