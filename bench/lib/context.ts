// What every benchmark section gets: the run's settings, the load generator, a scratch folder, a logger.

import type { LoadGenerator } from './load.ts';

export interface BenchSettings {
  quick: boolean;
  /** Seconds of load per throughput point. */
  pointSec: number;
  /** Seconds of load before a series of points (JIT, caches, SQLite pages). */
  warmupSec: number;
  concurrencies: number[];
  /** Sequential send→SSE probes on an otherwise idle relay. */
  idleSamples: number;
  /** Seconds of background load during the loaded latency probe. */
  loadLatencySec: number;
  /** Background sends/s during the loaded latency probe. */
  backgroundRate: number;
  /** Concurrent resume streams in the streams section. */
  streams: number;
  /** Upper bound on the inbox drain measurement, per mode. */
  drainCapSec: number;
  /** Cross-instance send→SSE probes on PostgreSQL. */
  pgLatencySamples: number;
}

export const FULL: BenchSettings = {
  quick: false,
  pointSec: 8,
  warmupSec: 2,
  concurrencies: [1, 16, 64],
  idleSamples: 500,
  loadLatencySec: 8,
  backgroundRate: 1000,
  streams: 10_000,
  drainCapSec: 5,
  pgLatencySamples: 300,
};

export const QUICK: BenchSettings = {
  quick: true,
  pointSec: 1,
  warmupSec: 0.5,
  concurrencies: [1, 16, 64],
  idleSamples: 40,
  loadLatencySec: 2,
  backgroundRate: 1000,
  streams: 200,
  drainCapSec: 1,
  pgLatencySamples: 30,
};

export interface BenchContext {
  settings: BenchSettings;
  load: LoadGenerator;
  /** Scratch folder for data dirs of this run (removed at the end). */
  tmpDir: string;
  log(msg: string): void;
}

// The content every benchmark send carries; defined with the load generator, which sends it.
export { CONTENT } from './load.ts';
