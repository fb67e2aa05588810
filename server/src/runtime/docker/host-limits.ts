/**
 * Kernel settings that cap how many proxies one host can run, long before CPU or memory do
 * (docs/benchmarks-proxies.md). Read when the Docker runtime is chosen, so an operator learns
 * the ceiling from the server's log at start instead of from "neighbor table overflow" in dmesg
 * and failing proxies at a few hundred users. The server never changes them itself: they are
 * host-wide; scripts/deploy/deploy-multi-container.sh sets RECOMMENDED_SYSCTLS.
 */
import { readFileSync } from 'node:fs';

/**
 * What the deploy script writes to /etc/sysctl.d (kept equal by test/deploy/compose-config.test.ts).
 * The neighbour thresholds cover the 4,096 users of the default subnet range twice over.
 */
export const RECOMMENDED_SYSCTLS = {
  'net.ipv4.neigh.default.gc_thresh1': 8192,
  'net.ipv4.neigh.default.gc_thresh2': 16384,
  'net.ipv4.neigh.default.gc_thresh3': 32768,
  'kernel.pid_max': 4194304,
} as const;

/**
 * Neighbour (ARP) entries per proxy: the host's entry for the proxy's address and the proxy's
 * entry for its gateway. Linux keeps one ARP table for all network namespaces, and gc_thresh3
 * is a hard ceiling on its size: past it, new entries fail and so do new connections.
 */
export const ARP_ENTRIES_PER_PROXY = 2;
/** Threads per proxy, measured: Node about 11, its containerd shim about 12 (docs/benchmarks-proxies.md). */
export const THREADS_PER_PROXY = 25;

export interface HostLimit {
  setting: string;
  value: number;
  /** About how many proxies the setting allows on this host. */
  proxies: number;
  why: string;
}

function readNumber(path: string, read: (path: string) => string): number | undefined {
  try {
    const n = Number(read(path).trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Where a sysctl setting lives: kernel.pid_max is /proc/sys/kernel/pid_max. */
export function sysctlPath(setting: string): string {
  return `/proc/sys/${setting.replace(/\./g, '/')}`;
}

/** The settings that bound the number of proxies, with the number each allows; unreadable ones are left out. */
// eslint-disable-next-line security/detect-non-literal-fs-filename -- fixed /proc paths of this module (sysctlPath of known settings)
export function readHostLimits(read: (path: string) => string = (p) => readFileSync(p, 'utf8')): HostLimit[] {
  const limits: HostLimit[] = [];
  const arp = readNumber(sysctlPath('net.ipv4.neigh.default.gc_thresh3'), read);
  if (arp !== undefined) {
    limits.push({
      setting: 'net.ipv4.neigh.default.gc_thresh3',
      value: arp,
      proxies: Math.floor(arp / ARP_ENTRIES_PER_PROXY),
      why: `each proxy needs ${ARP_ENTRIES_PER_PROXY} entries in the kernel's neighbour table; past the limit connections to proxies fail ("neighbor table overflow")`,
    });
  }
  const pids = readNumber(sysctlPath('kernel.pid_max'), read);
  if (pids !== undefined) {
    limits.push({
      setting: 'kernel.pid_max',
      value: pids,
      proxies: Math.max(0, Math.floor((pids - threadsInUse(read)) / THREADS_PER_PROXY)),
      why: `each proxy takes about ${THREADS_PER_PROXY} threads (its Node process and its containerd shim); past the limit containers cannot start`,
    });
  }
  return limits;
}

/** Warnings for the settings that allow fewer proxies than `wanted` (the subnet range's capacity). */
export function hostLimitWarnings(limits: readonly HostLimit[], wanted: number): string[] {
  return limits
    .filter((l) => l.proxies < wanted)
    .map((l) => {
      const recommended = RECOMMENDED_SYSCTLS[l.setting as keyof typeof RECOMMENDED_SYSCTLS];
      return (
        `this host runs at most about ${l.proxies} proxies: ${l.setting} is ${l.value} and ${l.why}. ` +
        `Raise it (sysctl -w ${l.setting}=${recommended}; scripts/deploy/deploy-multi-container.sh sets it)`
      );
    });
}

/** Threads on the host now (for the pid limit), or 0 when it cannot be read. */
// eslint-disable-next-line security/detect-non-literal-fs-filename -- fixed /proc paths of this module
export function threadsInUse(read: (path: string) => string = (p) => readFileSync(p, 'utf8')): number {
  // /proc/loadavg's fourth field is "running/total" scheduling entities: total counts threads.
  const total = readNumber('/proc/loadavg', (p) => read(p).split(' ')[3]?.split('/')[1] ?? '');
  return total ?? 0;
}
