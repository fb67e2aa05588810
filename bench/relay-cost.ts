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
}

/** The relay's CPU ms per unit over all runs of the workload on one path; undefined if it did not run. */
export function costOf<R>(w: CostWorkload<R>, path: string): Cost | undefined {
  const samples = w.byPath[path] ?? [];
  if (!samples.length) return undefined;
  const units = samples.reduce((a, s) => a + w.units(s.result), 0);
  const byRole: Record<string, number> = {};
  for (const s of samples) {
    for (const [role, ms] of Object.entries(s.cpuMs)) if (!NOT_RELAY.has(role)) byRole[role] = (byRole[role] ?? 0) + ms;
  }
  for (const role of Object.keys(byRole)) byRole[role] = (byRole[role] as number) / units;
  return { total: Object.values(byRole).reduce((a, b) => a + b, 0), byRole };
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

/** Table rows: workload, unit, path, CPU ms per unit (by process), ratio to the `peer` path. */
export function costRows(workloads: readonly WorkloadCost[], paths: readonly { key: string; label: string }[], peer: string): string[][] {
  const rows: string[][] = [];
  for (const w of workloads) {
    const base = w.costs[peer];
    for (const p of paths) {
      const c = w.costs[p.key];
      if (!c || c.total === 0) continue; // direct has no relay
      const parts = Object.entries(c.byRole).map(([role, ms]) => `${role} ${fmt(ms)}`).join(', ');
      const vsPeer = base && base.total > 0 ? `${(c.total / base.total).toFixed(2)}×` : '';
      rows.push([w.name, `ms per ${w.unit}`, p.label, fmt(c.total), parts, vsPeer]);
    }
  }
  return rows;
}
