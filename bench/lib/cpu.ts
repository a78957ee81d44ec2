// CPU use during a measurement, from /proc: per process (user+system time of all its threads) and for
// the whole machine (busy = not idle/iowait). Tells whether a point was limited by the relay's CPU, by
// the machine, or by neither (waiting: locks, fsync, round trips).

import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: clock ticks per second of /proc times (100 on Linux everywhere that matters). */
export const HZ = 100;

/** user + system clock ticks of a process, all its threads (utime + stime of /proc/<pid>/stat). */
export function processTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command: state(0) … utime(11) stime(12).
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

function machineTicks(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** Ticks of every process whose command name is `comm` (e.g. all PostgreSQL backends), by pid. */
function groupTicks(comm: string): Map<number, number> {
  const out = new Map<number, number>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const d of pids) {
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== comm) continue;
      const t = processTicks(Number(d));
      if (t !== null) out.set(Number(d), t);
    } catch {
      /* gone */
    }
  }
  return out;
}

export interface CpuUse {
  /** CPU time of each watched process ÷ wall time, in % of one core (200 = two cores). */
  processPct: Record<string, number | null>;
  /** Busy share of all cores, in % (100 = every core busy). */
  machineBusyPct: number | null;
}

/**
 * Starts measuring; the returned function ends the measurement. `groups` names process groups by command
 * name (e.g. { postgres: 'postgres' }: every PostgreSQL process, including other users' sessions).
 */
export function cpuMeter(pids: Record<string, number>, groups: Record<string, string> = {}): () => CpuUse {
  const t0 = performance.now();
  const p0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, processTicks(pid)]));
  const g0 = Object.fromEntries(Object.entries(groups).map(([k, comm]) => [k, groupTicks(comm)]));
  const m0 = machineTicks();
  return () => {
    const secs = (performance.now() - t0) / 1000;
    const processPct: Record<string, number | null> = {};
    for (const [k, pid] of Object.entries(pids)) {
      const a = p0[k];
      const b = processTicks(pid);
      processPct[k] = a == null || b === null ? null : Math.round(((b - a) / HZ / secs) * 100);
    }
    for (const [k, comm] of Object.entries(groups)) {
      let ticks = 0;
      for (const [pid, t] of groupTicks(comm)) ticks += t - (g0[k]!.get(pid) ?? 0);
      processPct[k] = Math.round((ticks / HZ / secs) * 100);
    }
    const m1 = machineTicks();
    const machineBusyPct =
      m0 && m1 && m1.total > m0.total
        ? Math.round(((m1.busy - m0.busy) / (m1.total - m0.total)) * 100)
        : null;
    return { processPct, machineBusyPct };
  };
}
