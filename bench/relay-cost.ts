/**
 * What a path's relay costs in CPU per unit of work: per relayed MiB (upload), per 1,000 lines
 * (the streams) and per 1,000 requests (TTFB). The relay is every process a path adds between
 * the client and Ollama: ours are the api-backend, the proxy (its container's processes) and the
 * bridge; the peer's are sshd (with its session processes) and ssh. The client load, the
 * emulator and the rest of the machine are not the relay, so they are left out. Also how often
 * the relay's processes woke per unit: a count, so it holds on a machine too noisy for the CPU
 * figures to tell a 10 % change, and each wakeup costs CPU of its own.
 */
import { fmt } from './stats.js';

/** Roles in a sample's CPU that are not part of any relay. */
const NOT_RELAY = new Set(['client', 'emulator', 'other']);

export interface CostSample<R> {
  result: R;
  cpuMs: Record<string, number>;
  /** Of cpuMs, what each process spent in the kernel. */
  kernelMs?: Record<string, number>;
  /** How often each process woke during the sample. */
  wakeups?: Record<string, number>;
}

export interface CostWorkload<R> {
  name: string;
  /** e.g. "1,000 lines"; `units` returns how many of those one run did. */
  unit: string;
  units: (r: R) => number;
  byPath: Record<string, readonly CostSample<R>[]>;
}

export interface Cost {
  /** CPU ms per unit, all relay processes. */
  total: number;
  byRole: Record<string, number>;
  /** Each process's share of its CPU spent in the kernel (0-1). */
  kernelByRole: Record<string, number>;
  /** The share of `total` spent in the kernel (0-1): syscalls, and the TCP stack of each hop. */
  kernelShare: number;
  /** Wakeups per unit, all relay processes (NaN where /proc had none). */
  wakeups: number;
  wakeupsByRole: Record<string, number>;
}

/** The relay's CPU ms per unit over all runs of the workload on one path; undefined if it did not run. */
export function costOf<R>(w: CostWorkload<R>, path: string): Cost | undefined {
  const samples = w.byPath[path] ?? [];
  if (!samples.length) return undefined;
  const units = samples.reduce((a, s) => a + w.units(s.result), 0);
  const byRole: Record<string, number> = {};
  const kernelByRole: Record<string, number> = {};
  const wakeupsByRole: Record<string, number> = {};
  for (const s of samples) {
    for (const [role, ms] of Object.entries(s.cpuMs)) {
      if (NOT_RELAY.has(role)) continue;
      byRole[role] = (byRole[role] ?? 0) + ms;
      kernelByRole[role] = (kernelByRole[role] ?? 0) + (s.kernelMs?.[role] ?? Number.NaN);
      wakeupsByRole[role] = (wakeupsByRole[role] ?? 0) + (s.wakeups?.[role] ?? Number.NaN);
    }
  }
  for (const role of Object.keys(wakeupsByRole)) wakeupsByRole[role] = (wakeupsByRole[role] as number) / units;
  const wakeups = Object.values(wakeupsByRole).reduce((a, b) => a + b, 0);
  const all = Object.values(byRole).reduce((a, b) => a + b, 0);
  const kernel = Object.values(kernelByRole).reduce((a, b) => a + b, 0);
  for (const role of Object.keys(byRole)) {
    kernelByRole[role] = (byRole[role] as number) > 0 ? (kernelByRole[role] as number) / (byRole[role] as number) : Number.NaN;
    byRole[role] = (byRole[role] as number) / units;
  }
  return { total: all / units, byRole, kernelByRole, kernelShare: all > 0 ? kernel / all : Number.NaN, wakeups, wakeupsByRole };
}

export interface WorkloadCost {
  name: string;
  unit: string;
  /** By path key; a path without a relay (direct) or without runs has none. */
  costs: Record<string, Cost | undefined>;
}

export function workloadCost<R>(w: CostWorkload<R>, paths: readonly string[]): WorkloadCost {
  return { name: w.name, unit: w.unit, costs: Object.fromEntries(paths.map((p) => [p, costOf(w, p)])) };
}

type PathLabel = { key: string; label: string };

/** One table row per workload and path with a relay (direct has none), made by `row` from the path's cost and the peer's. */
function relayRows(workloads: readonly WorkloadCost[], paths: readonly PathLabel[], peer: string, row: (w: WorkloadCost, label: string, c: Cost, base: Cost | undefined) => string[]): string[][] {
  return workloads.flatMap((w) =>
    paths.flatMap((p) => {
      const c = w.costs[p.key];
      return c && c.total !== 0 ? [row(w, p.label, c, w.costs[peer])] : [];
    }),
  );
}

/**
 * Table rows: workload, unit, path, CPU ms per unit (by process, with the share of each in the
 * kernel), the relay's kernel share, ratio to the `peer` path.
 */
export function costRows(workloads: readonly WorkloadCost[], paths: readonly PathLabel[], peer: string): string[][] {
  return relayRows(workloads, paths, peer, (w, label, c, base) => {
    const parts = Object.entries(c.byRole).map(([role, ms]) => `${role} ${fmt(ms)} (${percent(c.kernelByRole[role])})`).join(', ');
    const vsPeer = base && base.total > 0 ? `${(c.total / base.total).toFixed(2)}×` : '';
    return [w.name, `ms per ${w.unit}`, label, fmt(c.total), parts, percent(c.kernelShare), vsPeer];
  });
}

/** Table rows: workload, unit, path, the relay's wakeups per unit (by process), ratio to the `peer` path. */
export function wakeupRows(workloads: readonly WorkloadCost[], paths: readonly PathLabel[], peer: string): string[][] {
  return relayRows(workloads, paths, peer, (w, label, c, base) => {
    const parts = Object.entries(c.wakeupsByRole).map(([role, n]) => `${role} ${count(n)}`).join(', ');
    const vsPeer = base && base.wakeups > 0 && Number.isFinite(c.wakeups) ? `${(c.wakeups / base.wakeups).toFixed(2)}×` : '';
    return [w.name, `per ${w.unit}`, label, count(c.wakeups), parts, vsPeer];
  });
}

/** A count to three significant figures; '?' where /proc had none. */
function count(n: number): string {
  return Number.isFinite(n) ? fmt(n) : '?';
}

/** A 0-1 share as a whole percentage; '?' where /proc had none. */
function percent(share: number | undefined): string {
  return share !== undefined && Number.isFinite(share) ? `${Math.round(share * 100)}%` : '?';
}

/**
 * Where a path's relay spends a workload's CPU, for a target it missed: its processes from the
 * costliest, each with its share in the kernel, beside the peer's whole relay, e.g.
 * "spent by: proxy 1.04 (23% kernel), bridge 0.70 (14% kernel) ms per request; sshd + ssh 0.50".
 */
export function spentBy(w: WorkloadCost | undefined, path: string, peer: string, peerLabel: string): string {
  const c = w?.costs[path];
  if (!w || !c || c.total === 0) return '';
  const parts = Object.entries(c.byRole)
    .sort((a, b) => b[1] - a[1])
    .map(([role, ms]) => `${role} ${fmt(ms)} (${percent(c.kernelByRole[role])} kernel)`);
  const base = w.costs[peer];
  return `; spent by: ${parts.join(', ')} ms per ${w.unit}${base && base.total > 0 ? `; ${peerLabel} ${fmt(base.total)}` : ''}`;
}
