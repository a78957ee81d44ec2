// The scale-out arithmetic `npm run bench -- --only cpu` prints and docs/scaling.md explains: sends/s
// per relay core and per database core from the measured CPU per send, and the capacity of N instances
// as the smaller of what the relays and what the database's cores carry.

import { describe, expect, it } from 'vitest';
import { DB_CORES, INSTANCES, scaleOut, type CpuRow } from '../../bench/sections/cpu.ts';

const row = (name: string, us: number, db?: number): CpuRow => ({
  name,
  usPerRequest: us,
  ...(db !== undefined ? { dbUsPerRequest: db } : {}),
  totalUsPerRequest: us + (db ?? 0),
  rps: 0,
  ratioToBare: null,
  range: [us + (db ?? 0), us + (db ?? 0)],
  samples: [],
});

describe('bench scale-out arithmetic', () => {
  it('turns µs per send into sends/s per core and caps N instances by the database cores', () => {
    // 160 µs of relay CPU and 125 µs of database CPU per send.
    const s = scaleOut(row('relay, SQLite', 125), row('relay, PostgreSQL', 160, 125));
    expect(s.sqliteSendsPerCore).toBe(8000);
    expect(s.pgSendsPerRelayCore).toBe(6250);
    expect(s.pgSendsPerDbCore).toBe(8000);
    expect(s.table.map((t) => t.instances)).toEqual(INSTANCES);
    const four = s.table.find((t) => t.instances === 4)!;
    expect(four.relaySendsPerSec).toBe(25_000);
    // 25,000 sends/s need 25,000 ÷ 8,000 = 3.125 database cores.
    expect(four.dbCoresNeeded).toBe(3.1);
    expect(Object.keys(four.byDbCores)).toEqual(DB_CORES.map(String));
    expect(four.byDbCores['2']).toBe(16_000); // the database is the limit
    expect(four.byDbCores['4']).toBe(25_000); // the relays are
    for (const t of s.table)
      for (const d of DB_CORES) expect(t.byDbCores[String(d)]).toBe(Math.min(t.relaySendsPerSec, d * 8000));
    expect(s.assumptions.length).toBeGreaterThan(0);
  });

  it('prints no table when PostgreSQL was not measured', () => {
    const s = scaleOut(row('relay, SQLite', 100), undefined);
    expect(s.sqliteSendsPerCore).toBe(10_000);
    expect(s.pgSendsPerRelayCore).toBeNull();
    expect(s.pgSendsPerDbCore).toBeNull();
    expect(s.table).toEqual([]);
  });
});
