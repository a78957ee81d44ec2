// Where the time goes in a V8 CPU profile (node --cpu-prof): self time by package/area, the top functions
// by self time and by inclusive time, optionally only within a time window of the profile (the load).
// Usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [--top N] [--from MS] [--to MS]
// (MS: milliseconds since the profile started, i.e. about since the process started).
// Line numbers of .ts files are those of tsx's transpiled output, so only the file is shown for them.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ROOT } from './lib/procs.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  where: string;
  area: string;
  ms: number;
  /** Share of the busy (non-idle) time. */
  pct: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  busyMs: number;
  areas: Array<{ area: string; ms: number; pct: number }>;
  self: Row[];
  inclusive: Row[];
}

const ROOT_URL = `file://${ROOT}`;

function where(cf: CallFrame): string {
  if (!cf.url) return '';
  let u = cf.url.startsWith(ROOT_URL) ? cf.url.slice(ROOT_URL.length) : cf.url;
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) u = u.slice(nm + 'node_modules/'.length);
  return u.endsWith('.ts') ? u : `${u}:${cf.lineNumber + 1}`;
}

/** A coarse owner for a frame: a package, node core, our relay or protocol code, or a V8 bucket. */
export function areaOf(cf: CallFrame): string {
  const { url, functionName } = cf;
  if (!url) {
    if (functionName.startsWith('(')) return functionName;
    return 'native (V8 builtins, C++ bindings)';
  }
  if (url.startsWith('node:')) return 'node core';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    const pkg = rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
    if (pkg === '@openwechat/relay') return 'relay (packages/relay)';
    if (pkg === '@openwechat/protocol') return 'protocol (packages/protocol)';
    return pkg;
  }
  if (url.includes('/packages/relay/')) return 'relay (packages/relay)';
  if (url.includes('/packages/protocol/')) return 'protocol (packages/protocol)';
  return 'other';
}

export interface SummaryOptions {
  top?: number;
  /** Only samples taken this many ms after the profile started… */
  fromMs?: number;
  /** …and before this many ms. */
  toMs?: number;
}

export function summarizeProfile(p: CpuProfile, opts: SummaryOptions = {}): ProfileSummary {
  const top = opts.top ?? 30;
  const from = (opts.fromMs ?? 0) * 1000;
  const to = (opts.toMs ?? Infinity) * 1000;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // Chrome's attribution: the interval after sample i belongs to sample i.
  let at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (at < from || at > to) continue;
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
  }
  const keyOf = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'}\u0000${where(n.callFrame)}`;

  let totalUs = 0;
  let idleUs = 0;
  const selfByKey = new Map<string, number>();
  const areaUs = new Map<string, number>();
  const frameOf = new Map<string, CallFrame>();
  for (const n of p.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    totalUs += us;
    if (n.callFrame.functionName === '(idle)') idleUs += us;
    const k = keyOf(n);
    frameOf.set(k, n.callFrame);
    selfByKey.set(k, (selfByKey.get(k) ?? 0) + us);
    const area = areaOf(n.callFrame);
    areaUs.set(area, (areaUs.get(area) ?? 0) + us);
  }

  // Inclusive time: each node's subtree, counted once per function even under recursion.
  const inclByKey = new Map<string, number>();
  const onStack = new Map<string, number>();
  const visit = (n: ProfileNode): number => {
    const k = keyOf(n);
    onStack.set(k, (onStack.get(k) ?? 0) + 1);
    let us = selfUs.get(n.id) ?? 0;
    for (const c of n.children ?? []) us += visit(byId.get(c)!);
    const depth = onStack.get(k)! - 1;
    if (depth === 0) {
      onStack.delete(k);
      inclByKey.set(k, (inclByKey.get(k) ?? 0) + us);
    } else onStack.set(k, depth);
    return us;
  };
  const root = p.nodes.find((n) => n.callFrame.functionName === '(root)') ?? p.nodes[0]!;
  visit(root);

  const busyUs = totalUs - idleUs;
  const row = (k: string, us: number): Row => {
    const cf = frameOf.get(k)!;
    return {
      name: cf.functionName || '(anonymous)',
      where: where(cf),
      area: areaOf(cf),
      ms: Math.round(us / 100) / 10,
      pct: Math.round((us / busyUs) * 1000) / 10,
    };
  };
  const skip = new Set(['(root)', '(idle)', '(program)']);
  const sorted = (m: Map<string, number>) =>
    [...m]
      .filter(([k]) => !skip.has(k.split('\u0000')[0]!))
      .sort((x, y) => y[1] - x[1])
      .slice(0, top)
      .map(([k, us]) => row(k, us));

  return {
    totalMs: Math.round(totalUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    areas: [...areaUs]
      .filter(([a, us]) => a !== '(idle)' && us >= 500)
      .sort((x, y) => y[1] - x[1])
      .map(([area, us]) => ({ area, ms: Math.round(us / 1000), pct: Math.round((us / busyUs) * 1000) / 10 })),
    self: sorted(selfByKey),
    inclusive: sorted(inclByKey),
  };
}

function table(rows: Row[]): string {
  return rows
    .map(
      (r) =>
        `${r.pct.toFixed(1).padStart(6)}% ${r.ms.toFixed(1).padStart(9)} ms  ${r.name.slice(0, 40).padEnd(40)} ${r.where}`,
    )
    .join('\n');
}

export function formatProfileSummary(s: ProfileSummary): string {
  return [
    `profile: ${s.totalMs} ms sampled, ${s.busyMs} ms busy (${Math.round((s.busyMs / s.totalMs) * 100)}%), ${s.idleMs} ms idle`,
    '',
    'self time by area (% of busy time):',
    ...s.areas.map((a) => `${a.pct.toFixed(1).padStart(6)}% ${String(a.ms).padStart(7)} ms  ${a.area}`),
    '',
    `top ${s.self.length} functions by self time:`,
    table(s.self),
    '',
    `top ${s.inclusive.length} functions by inclusive time:`,
    table(s.inclusive),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [--top N]');
    process.exit(2);
  }
  const num = (flag: string): number | undefined => {
    const i = process.argv.indexOf(flag);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  console.log(
    formatProfileSummary(
      summarizeProfile(profile, { top: num('--top'), fromMs: num('--from'), toMs: num('--to') }),
    ),
  );
}
