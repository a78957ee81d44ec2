// The inbox daemon's settings and exit codes: what the script entry reads from the environment
// (OPENWECHAT_*) and what scripts can test ($? — listed in SKILL.md).

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notConfigured: 3,
  refused: 4,
  invalidToken: 5,
  network: 6,
  rateLimited: 7,
  daemonConflict: 8,
  dataFolder: 9,
} as const;

export interface DaemonOptions {
  dataDir: string;
  /** Behave as with the reference relay even if ours is detected (text, legacy stream, read-and-clear). */
  forceLegacy?: boolean;
  /** First reconnection delay (doubles per attempt up to the maximum; equal jitter). Default: the relay's `retry:`, else 1 s. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** A connection that stayed up this long starts the next outage from the first delay again (10 s). */
  stableMs?: number;
  /** A stream silent this long is dead (the relay pings every 30 s). */
  idleTimeoutMs?: number;
  /** How often `/messages` is polled while the stream is down. */
  fallbackIntervalMs?: number;
  ackDelayMs?: number;
  derivedDelayMs?: number;
  /** Jitter source (tests pass a seeded PRNG). */
  random?: () => number;
  /** Where progress lines go (the daemon's stdout); the channel log is separate. */
  print?: (line: string) => void;
  /** Also print every channel transition (default: when stdout is a terminal). */
  echo?: boolean;
}

/** mulberry32: a small seeded PRNG for reproducible jitter. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Options from the environment (OPENWECHAT_*), for the script entry. */
export function daemonOptionsFromEnv(env: NodeJS.ProcessEnv): Partial<DaemonOptions> {
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v.trim() === '') return undefined;
    const n = Number(v);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  const seed = num('OPENWECHAT_SEED');
  const opts: Partial<DaemonOptions> = {
    forceLegacy: /^(1|true|yes|on)$/i.test(env.OPENWECHAT_FORCE_LEGACY ?? ''),
    reconnectBaseMs: num('OPENWECHAT_RECONNECT_BASE_MS'),
    reconnectMaxMs: num('OPENWECHAT_RECONNECT_MAX_MS'),
    stableMs: num('OPENWECHAT_STABLE_MS'),
    idleTimeoutMs: num('OPENWECHAT_SSE_IDLE_MS'),
    fallbackIntervalMs: num('OPENWECHAT_FALLBACK_INTERVAL_MS'),
    ackDelayMs: num('OPENWECHAT_ACK_DELAY_MS'),
  };
  if (seed !== undefined) opts.random = seededRandom(seed);
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
}
