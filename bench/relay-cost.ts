/**
 * What a path's relay costs in CPU per unit of work: per relayed MiB (upload), per 1,000 lines
 * (the streams) and per 1,000 requests (TTFB). The relay is every process a path adds between
 * the client and Ollama: ours are the api-backend, the proxy (its container's processes) and the
 * bridge; the peer's are sshd (with its session processes) and ssh. The client load, the
 * emulator and the rest of the machine are not the relay, so they are left out.
 */
import { fmt } from './stats.js';

/** Roles in a sample's CPU that are not part of any relay. */
const NOT_RELAY = new Set(['client', 'emulator', 'other']);

export interface CostSample<R> {
  result: R;
  cpuMs: Record<string, number>;
  /** Of cpuMs, what each process spent in the kernel. */
  kernelMs?: Record<string, number>;
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
}

/** The relay's CPU ms per unit over all runs of the workload on one path; undefined if it did not run. */
export function costOf<R>(w: CostWorkload<R>, path: string): Cost | undefined {
  const samples = w.byPath[path] ?? [];
  if (!samples.length) return undefined;
  const units = samples.reduce((a, s) => a + w.units(s.result), 0);
  const byRole: Record<string, number> = {};
  const kernelByRole: Record<string, number> = {};
  for (const s of samples) {
    for (const [role, ms] of Object.entries(s.cpuMs)) {
      if (NOT_RELAY.has(role)) continue;
      byRole[role] = (byRole[role] ?? 0) + ms;
      kernelByRole[role] = (kernelByRole[role] ?? 0) + (s.kernelMs?.[role] ?? Number.NaN);
    }
  }
  const all = Object.values(byRole).reduce((a, b) => a + b, 0);
  const kernel = Object.values(kernelByRole).reduce((a, b) => a + b, 0);
  for (const role of Object.keys(byRole)) {
    kernelByRole[role] = (byRole[role] as number) > 0 ? (kernelByRole[role] as number) / (byRole[role] as number) : Number.NaN;
    byRole[role] = (byRole[role] as number) / units;
  }
  return { total: all / units, byRole, kernelByRole, kernelShare: all > 0 ? kernel / all : Number.NaN };
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

/**
 * Table rows: workload, unit, path, CPU ms per unit (by process, with the share of each in the
 * kernel), the relay's kernel share, ratio to the `peer` path.
 */
export function costRows(workloads: readonly WorkloadCost[], paths: readonly { key: string; label: string }[], peer: string): string[][] {
  const rows: string[][] = [];
  for (const w of workloads) {
    const base = w.costs[peer];
    for (const p of paths) {
      const c = w.costs[p.key];
      if (!c || c.total === 0) continue; // direct has no relay
      const parts = Object.entries(c.byRole).map(([role, ms]) => `${role} ${fmt(ms)} (${percent(c.kernelByRole[role])})`).join(', ');
      const vsPeer = base && base.total > 0 ? `${(c.total / base.total).toFixed(2)}×` : '';
      const kernel = percent(c.kernelShare);
      rows.push([w.name, `ms per ${w.unit}`, p.label, fmt(c.total), parts, kernel, vsPeer]);
    }
  }
  return rows;
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
