/**
 * What the proxies use, all of them at once, for /metrics and `deploy-multi-container.sh
 * --status`: memory and CPU summaries (count, sum, max, p95), the top users by each (by user
 * hash, never the id) and how many proxies are near their limits.
 *
 * CPU is a rate: the CPU time a container used between two samples over the time between
 * them, in cores (0.5 = its whole 0.5-CPU quota). A proxy seen for the first time has no rate
 * until the next sample. Samples are cached for `cacheMs`, so several scrapers (Prometheus,
 * the status command) cost one read of the files.
 */
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import type { ContainerUsage } from '../runtime/docker/cgroup-usage.js';

export interface ProxyContainer {
  userHash: UserHash;
  containerId: string;
}

export interface ResourceLimits {
  memoryBytes: number;
  /** In cores (0.5 = half a CPU). */
  cpus: number;
}

export interface Summary {
  count: number;
  sum: number;
  max: number;
  p95: number;
}

export interface ProxyUse {
  userHash: UserHash;
  memoryBytes: number;
  /** Undefined until the proxy has been sampled twice. */
  cpuCores?: number;
}

export interface ResourceReport {
  sampledAt: number;
  memory: Summary;
  cpu: Summary;
  topMemory: ProxyUse[];
  topCpu: ProxyUse[];
  nearLimit: { memory: number; cpu: number };
  /** Proxies whose cgroup files could not be read (a container that just went, or no cgroup mount). */
  unreadable: number;
  limits: ResourceLimits;
}

/** A proxy counts as near its limit past this share of it. */
export const NEAR_LIMIT_SHARE = 0.9;
export const DEFAULT_TOP = 5;
export const DEFAULT_RESOURCE_CACHE_MS = 2_000;

/** count, sum, max and the 95th percentile (nearest rank) of some values. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { count: 0, sum: 0, max: 0, p95: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(0.95 * sorted.length));
  return { count: sorted.length, sum: sorted.reduce((s, v) => s + v, 0), max: sorted[sorted.length - 1]!, p95: sorted[rank - 1]! };
}

export interface ResourceSamplerOptions {
  containers: () => ProxyContainer[];
  read: (containerId: string) => Promise<ContainerUsage | undefined>;
  /** Told which containers are still there after each sample, to forget the others. */
  retain?: (containerIds: ReadonlySet<string>) => void;
  limits: ResourceLimits;
  top?: number;
  cacheMs?: number;
  now?: () => number;
}

export class ResourceSampler {
  private readonly previous = new Map<string, { at: number; cpuSeconds: number }>();
  private cached: { at: number; report: Promise<ResourceReport> } | undefined;
  private readonly now: () => number;

  constructor(private readonly options: ResourceSamplerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The report, read again when the cached one is older than cacheMs. */
  report(): Promise<ResourceReport> {
    const now = this.now();
    if (this.cached && now - this.cached.at < (this.options.cacheMs ?? DEFAULT_RESOURCE_CACHE_MS)) return this.cached.report;
    const report = this.sample(now);
    this.cached = { at: now, report };
    report.catch(() => {
      if (this.cached?.report === report) this.cached = undefined;
    });
    return report;
  }

  private async sample(now: number): Promise<ResourceReport> {
    const containers = this.options.containers();
    const uses: ProxyUse[] = [];
    let unreadable = 0;
    // In slices, with the event loop let go between them: the reads are synchronous (cgroup-usage.ts).
    for (let i = 0; i < containers.length; i += 32) {
      if (i > 0) await new Promise((resolve) => setImmediate(resolve));
      const slice = containers.slice(i, i + 32);
      const read = await Promise.all(slice.map((c) => this.options.read(c.containerId)));
      for (const [j, usage] of read.entries()) {
        const c = slice[j]!;
        if (!usage) {
          unreadable += 1;
          continue;
        }
        const before = this.previous.get(c.containerId);
        const seconds = before ? (now - before.at) / 1000 : 0;
        const use: ProxyUse = { userHash: c.userHash, memoryBytes: usage.memoryBytes };
        if (before && seconds > 0 && usage.cpuSeconds >= before.cpuSeconds) use.cpuCores = (usage.cpuSeconds - before.cpuSeconds) / seconds;
        this.previous.set(c.containerId, { at: now, cpuSeconds: usage.cpuSeconds });
        uses.push(use);
      }
    }
    const live = new Set(containers.map((c) => c.containerId));
    for (const id of this.previous.keys()) if (!live.has(id)) this.previous.delete(id);
    this.options.retain?.(live);
    const { limits } = this.options;
    const top = this.options.top ?? DEFAULT_TOP;
    const withCpu = uses.filter((u) => u.cpuCores !== undefined);
    return {
      sampledAt: now,
      memory: summarize(uses.map((u) => u.memoryBytes)),
      cpu: summarize(withCpu.map((u) => u.cpuCores!)),
      topMemory: [...uses].sort((a, b) => b.memoryBytes - a.memoryBytes).slice(0, top),
      topCpu: [...withCpu].sort((a, b) => b.cpuCores! - a.cpuCores!).slice(0, top),
      nearLimit: {
        memory: uses.filter((u) => u.memoryBytes >= NEAR_LIMIT_SHARE * limits.memoryBytes).length,
        cpu: withCpu.filter((u) => u.cpuCores! >= NEAR_LIMIT_SHARE * limits.cpus).length,
      },
      unreadable,
      limits,
    };
  }
}
