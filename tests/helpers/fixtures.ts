// Suite fixtures: a resource a beforeAll hook starts and an afterAll hook disposes, handed to the test file
// as a stable object at collection time, so a file writes `const relay = suiteRelay()` and keeps using
// `relay.url` in its tests instead of repeating `let relay; beforeAll(...); afterAll(...)`.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { stopAllRelays } from './process.ts';
import { startRelay, type TestRelay, type TestRelayOptions } from './relay.ts';

/**
 * A stand-in for an object made later: property reads and writes go to the object once `set` has given
 * it, and throw (naming `what`) before, so a test that runs without its setup fails loudly instead of
 * reading undefined. Methods are bound to the real object (classes with private fields work).
 */
export function late<T extends object>(what: string): { ref: T; set(value: T): void; isSet(): boolean } {
  let target: T | undefined;
  const real = (): T => {
    if (!target) throw new Error(`${what} is not set up yet (its beforeAll has not run or failed)`);
    return target;
  };
  const ref = new Proxy({} as T, {
    get(_, key) {
      const t = real();
      const v = Reflect.get(t, key, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
    set: (_, key, value) => Reflect.set(real(), key, value),
    has: (_, key) => Reflect.has(real(), key),
    ownKeys: () => Reflect.ownKeys(real()),
    getOwnPropertyDescriptor(_, key) {
      const d = Reflect.getOwnPropertyDescriptor(real(), key);
      return d ? { ...d, configurable: true } : undefined;
    },
  });
  return { ref, set: (value) => void (target = value), isSet: () => target !== undefined };
}

type Hook = (fn: () => Promise<void>) => void;

/** Fixtures that `before` starts and `after` disposes (only when the start succeeded), behind a stable reference. */
function fixturesIn(before: Hook, after: Hook) {
  return <T extends object>(
    what: string,
    start: () => Promise<T>,
    dispose: (value: T) => Promise<unknown>,
  ): T => {
    const slot = late<T>(what);
    let value: T | undefined;
    before(async () => {
      value = await start();
      slot.set(value);
    });
    after(async () => {
      const v = value;
      value = undefined;
      if (v) await dispose(v);
    });
    return slot.ref;
  };
}

/** Started in beforeAll, disposed in afterAll: usable in the suite's tests and in hooks registered later. */
export const suiteFixture = fixturesIn(beforeAll, afterAll);

/** Started in beforeEach, disposed in afterEach: every test gets a fresh object behind the same reference. */
export const perTestFixture = fixturesIn(beforeEach, afterEach);

/** The real relay (in-process, random port, temp store) for the current suite. */
export function suiteRelay(options: TestRelayOptions = {}): TestRelay {
  return suiteFixture(
    'the relay',
    () => startRelay(options),
    (r) => r.close(),
  );
}

/**
 * The set-up of a suite that spawns relay processes (helpers/process.ts): every child is SIGKILLed after
 * each test, and every data folder `dataDir()` made (`<tmp>/<prefix>…`) is removed after the suite.
 */
export function relayProcessSuite(prefix: string): { dataDir(): Promise<string> } {
  const dirs: string[] = [];
  afterEach(() => stopAllRelays());
  afterAll(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  return {
    async dataDir() {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
  };
}
