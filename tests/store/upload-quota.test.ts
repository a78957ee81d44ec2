// UPLOAD_QUOTA_MB holds under concurrency (issue 17 item 4): the quota check and the file's insert are
// one step in the store. 20 concurrent 1 MB uploads against a 4 MB quota accept exactly 4 — on
// PostgreSQL through two relay instances sharing one schema (where a check-then-insert let 11–17
// through), and through one instance of the backend under test (SQLite by default).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededBytes } from '../helpers/bytes.ts';
import { createSchema, dropSchemas, pgAvailable, querySchema, schemaUrl } from '../helpers/pg.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { befriend, postFile, register, stats } from '../relay/client.ts';

const MB = 1024 * 1024;
const UPLOADS = 20;
const QUOTA_MB = 4;

const available = await pgAvailable();
const relays: TestRelay[] = [];
const schemas: string[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const r of relays.splice(0)) await r.close();
  if (schemas.length) await dropSchemas(schemas);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Fires every upload at once, round-robin over the instances; returns how many were accepted. */
async function race(
  bases: string[],
): Promise<{ accepted: number; refused: number; bob: number; stored: number }> {
  const [first] = bases;
  const alice = await register(first!, `alice${Date.now() % 100000}`);
  const bob = await register(first!, `bob${Date.now() % 100000}`);
  await befriend(first!, alice, bob);
  const before = (await stats(first!)).messages;
  const replies = await Promise.all(
    Array.from({ length: UPLOADS }, (_, i) =>
      postFile(
        bases[i % bases.length]!,
        alice,
        '/send/file',
        { to_id: String(bob.id), content: `file ${i}` },
        { bytes: seededBytes(MB, i), name: `f${i}.bin` },
      ),
    ),
  );
  const accepted = replies.filter((r) => r.status === 200 && r.body.startsWith('发送成功')).length;
  const refused = replies.filter((r) => r.body.includes('待对方接收的附件总量超过限制')).length;
  // Messages stored by the uploads (one per accepted upload).
  const stored = (await stats(first!)).messages - before;
  return { accepted, refused, bob: bob.id, stored };
}

describe.skipIf(!available)('upload quota on PostgreSQL, two instances on one schema', () => {
  it(`accepts exactly ${QUOTA_MB} of ${UPLOADS} concurrent 1 MB uploads under a ${QUOTA_MB} MB quota`, async () => {
    const schema = await createSchema('quota');
    schemas.push(schema);
    const start = async () => {
      const dataDir = await mkdtemp(join(tmpdir(), 'owc-quota-'));
      dirs.push(dataDir);
      const r = await startRelay({ dataDir, databaseUrl: schemaUrl(schema), uploadQuotaMb: QUOTA_MB });
      relays.push(r);
      return r;
    };
    const [a, b] = await Promise.all([start(), start()]);
    const { accepted, refused, bob, stored } = await race([a.url, b.url]);
    expect({ accepted, refused, stored }).toEqual({
      accepted: QUOTA_MB,
      refused: UPLOADS - QUOTA_MB,
      stored: QUOTA_MB,
    });
    const rows = await querySchema<{ n: string; bytes: string }>(
      schema,
      'SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM files WHERE recipient_id = $1',
      [bob],
    );
    expect(rows[0]).toEqual({ n: String(QUOTA_MB), bytes: String(QUOTA_MB * MB) });
  });
});

describe('upload quota, one instance (the test backend)', () => {
  it(`accepts exactly ${QUOTA_MB} of ${UPLOADS} concurrent 1 MB uploads under a ${QUOTA_MB} MB quota`, async () => {
    const relay = await startRelay({ uploadQuotaMb: QUOTA_MB });
    relays.push(relay);
    const { accepted, refused, stored } = await race([relay.url]);
    expect({ accepted, refused, stored }).toEqual({
      accepted: QUOTA_MB,
      refused: UPLOADS - QUOTA_MB,
      stored: QUOTA_MB,
    });
  });
});
