/**
 * The operator's figures that are read when Prometheus scrapes rather than counted as things
 * happen: what the proxies use (proxy-resources.ts), what the isolation firewall refused
 * (firewall-counters.ts) and how close the host is to the kernel limits that cap the number of
 * proxies (host-limits.ts). Each is a gauge whose collect() reads its source; a failed read
 * leaves the gauge empty (no series) rather than failing the scrape.
 */
import { readFileSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import type { FirewallCounters } from '../firewall/firewall-counters.js';
import type { ResourceReport, Summary } from '../manager/proxy-resources.js';
import { sysctlPath, threadsInUse } from '../runtime/docker/host-limits.js';

const STATS = ['count', 'sum', 'max', 'p95'] as const;
/** One read serves every gauge of a scrape: the gauges of a registry are collected one after another. */
const SHARED_FOR_MS = 1_000;

function shared<T>(read: () => Promise<T | undefined>): () => Promise<T | undefined> {
  let last: { at: number; value: Promise<T | undefined> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= SHARED_FOR_MS) last = { at: now, value: read().catch(() => undefined) };
    return last.value;
  };
}

function setSummary(g: Gauge<'stat'>, s: Summary): void {
  for (const stat of STATS) g.set({ stat }, s[stat]);
}

/** Per-proxy memory and CPU, from the sampler's cached report. */
export function registerResourceMetrics(registry: Registry, report: () => Promise<ResourceReport>): void {
  // All the gauges of one scrape share one report (the sampler caches it too).
  const current = shared(report);
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (g: Gauge<L>, r: ResourceReport) => void): void => {
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        this.reset();
        const r = await current();
        if (r) fill(this, r);
      },
    });
  };
  gauge('ctll_proxy_memory_bytes', 'Memory of the running proxies (as docker stats counts it): count, sum, max and p95 over proxies', ['stat'], (g, r) => setSummary(g, r.memory));
  gauge('ctll_proxy_cpu_cores', 'CPU of the running proxies in cores over the last sample interval: count, sum, max and p95 over proxies', ['stat'], (g, r) => setSummary(g, r.cpu));
  gauge('ctll_proxy_top_memory_bytes', 'Memory of the proxies that use the most, by user hash', ['user_hash'], (g, r) => {
    for (const u of r.topMemory) g.set({ user_hash: u.userHash }, u.memoryBytes);
  });
  gauge('ctll_proxy_top_cpu_cores', 'CPU of the proxies that use the most, in cores, by user hash', ['user_hash'], (g, r) => {
    for (const u of r.topCpu) g.set({ user_hash: u.userHash }, u.cpuCores ?? 0);
  });
  gauge('ctll_proxies_near_limit', 'Proxies using at least 90% of their memory or CPU limit, by resource', ['resource'], (g, r) => {
    g.set({ resource: 'memory' }, r.nearLimit.memory);
    g.set({ resource: 'cpu' }, r.nearLimit.cpu);
  });
  gauge('ctll_proxy_limit', 'Each proxy\'s limit, by resource (memory in bytes, cpu in cores)', ['resource'], (g, r) => {
    g.set({ resource: 'memory' }, r.limits.memoryBytes);
    g.set({ resource: 'cpu' }, r.limits.cpus);
  });
  gauge('ctll_proxy_resources_unreadable', 'Running proxies whose cgroup files could not be read in the last sample', [], (g, r) => g.set(r.unreadable));
}

/** What the isolation firewall refused, in all and per user (a bridge is turned into its user hash here). */
export function registerFirewallMetrics(registry: Registry, counters: () => Promise<FirewallCounters | undefined>, bridges: () => ReadonlyMap<string, UserHash>): void {
  const current = shared(counters);
  new Gauge({
    name: 'ctll_firewall_refused_packets',
    help: 'Packets from proxies the isolation firewall refused, by rule (tcp: TCP reset, host: other protocols to the host, beyond: other protocols through it); a packet counter (use rate())',
    labelNames: ['rule'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const c = await current();
      if (!c) return;
      for (const rule of ['tcp', 'host', 'beyond'] as const) this.set({ rule }, c.refused[rule]);
    },
  });
  new Gauge({
    name: 'ctll_firewall_refused_packets_by_user',
    help: 'Packets from one user\'s proxy the isolation firewall refused, by user hash (running proxies only; use rate())',
    labelNames: ['user_hash'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const c = await current();
      if (!c) return;
      for (const [bridge, user] of bridges()) {
        const packets = c.byBridge[bridge];
        if (packets !== undefined) this.set({ user_hash: user }, packets);
      }
    },
  });
  new Gauge({
    name: 'ctll_firewall_counters_age_seconds',
    help: 'How old the firewall counters of this scrape are (the keeper reads them every CTLL_FIREWALL_INTERVAL_MS)',
    registers: [registry],
    async collect() {
      this.reset();
      const c = await current();
      if (c) this.set(Math.max(0, (Date.now() - c.readAt) / 1000));
    },
  });
}

// eslint-disable-next-line security/detect-non-literal-fs-filename -- fixed /proc paths of this module
const readProc = (path: string): string => readFileSync(path, 'utf8');

function numberAt(path: string, read: (path: string) => string): number | undefined {
  try {
    const n = Number(read(path).trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Entries in this network namespace's neighbour (ARP) table: /proc/net/arp's lines after its header. */
export function neighbourEntries(read: (path: string) => string = readProc): number | undefined {
  try {
    return Math.max(0, read('/proc/net/arp').trim().split('\n').length - 1);
  } catch {
    return undefined;
  }
}

/** The kernel limits that cap the number of proxies (host-limits.ts), each as used and limit. */
export function registerHostLimitMetrics(registry: Registry, subnets: () => { used: number; capacity: number }, read: (path: string) => string = readProc): void {
  new Gauge({
    name: 'ctll_host_limit',
    help: 'Kernel and address limits that cap the number of proxies, by limit (subnets, neighbours: gc_thresh3, pids: kernel.pid_max)',
    labelNames: ['limit'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.set({ limit: 'subnets' }, subnets().capacity);
      const arp = numberAt(sysctlPath('net.ipv4.neigh.default.gc_thresh3'), read);
      if (arp !== undefined) this.set({ limit: 'neighbours' }, arp);
      const pids = numberAt(sysctlPath('kernel.pid_max'), read);
      if (pids !== undefined) this.set({ limit: 'pids' }, pids);
    },
  });
  new Gauge({
    name: 'ctll_host_limit_used',
    help: 'How much of each limit of ctll_host_limit is in use (subnets handed out, neighbour entries, threads on the host)',
    labelNames: ['limit'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.set({ limit: 'subnets' }, subnets().used);
      const arp = neighbourEntries(read);
      if (arp !== undefined) this.set({ limit: 'neighbours' }, arp);
      const threads = threadsInUse(read);
      if (threads > 0) this.set({ limit: 'pids' }, threads);
    },
  });
}
