import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { neighbourEntries, registerFirewallMetrics, registerHostLimitMetrics, registerResourceMetrics } from './operator-metrics.js';
import type { ResourceReport } from '../manager/proxy-resources.js';

const A = 'a'.repeat(64) as UserHash;
const B = 'b'.repeat(64) as UserHash;

describe('the operator metrics read at scrape time', () => {
  test('firewall refusals: by rule, and per user through the bridge of their proxy (users without a counting rule are left out)', async () => {
    const registry = new Registry();
    registerFirewallMetrics(
      registry,
      async () => ({ readAt: Date.now(), refused: { tcp: 9, host: 2, beyond: 1 }, byBridge: { 'ctll-0ac80000': 4, 'ctll-0ac80099': 7 } }),
      () => new Map([['ctll-0ac80000', A], ['ctll-0ac80010', B]]),
    );
    const text = await registry.metrics();
    assert.match(text, /^ctll_firewall_refused_packets\{rule="tcp"\} 9$/m);
    assert.match(text, /^ctll_firewall_refused_packets\{rule="beyond"\} 1$/m);
    assert.match(text, new RegExp(`^ctll_firewall_refused_packets_by_user\\{user_hash="${A}"\\} 4$`, 'm'));
    assert.doesNotMatch(text, new RegExp(B), 'a user whose bridge has no counting rule yet has no series');
    assert.doesNotMatch(text, /ctll-0ac80099/, 'a bridge is never a label');
  });

  test('no counters (firewall off, keeper silent): no series, and the scrape still answers', async () => {
    const registry = new Registry();
    registerFirewallMetrics(registry, () => Promise.reject(new Error('iptables: permission denied')), () => new Map());
    registerResourceMetrics(registry, () => Promise.reject(new Error('no cgroup tree')));
    const text = await registry.metrics();
    assert.doesNotMatch(text, /^ctll_firewall_refused_packets\{/m);
    assert.doesNotMatch(text, /^ctll_proxy_memory_bytes\{/m);
  });

  test('resources: summaries, top users by hash, near-limit counts and the limits', async () => {
    const report: ResourceReport = {
      sampledAt: 0,
      memory: { count: 2, sum: 300, max: 200, p95: 200 },
      cpu: { count: 1, sum: 0.4, max: 0.4, p95: 0.4 },
      topMemory: [{ userHash: A, memoryBytes: 200 }, { userHash: B, memoryBytes: 100 }],
      topCpu: [{ userHash: A, memoryBytes: 200, cpuCores: 0.4 }],
      nearLimit: { memory: 0, cpu: 1 },
      unreadable: 0,
      limits: { memoryBytes: 512, cpus: 0.5 },
    };
    const registry = new Registry();
    let reads = 0;
    registerResourceMetrics(registry, async () => (reads++, report));
    const text = await registry.metrics();
    assert.match(text, /^ctll_proxy_memory_bytes\{stat="p95"\} 200$/m);
    assert.match(text, new RegExp(`^ctll_proxy_top_cpu_cores\\{user_hash="${A}"\\} 0.4$`, 'm'));
    assert.match(text, /^ctll_proxies_near_limit\{resource="cpu"\} 1$/m);
    assert.match(text, /^ctll_proxy_limit\{resource="memory"\} 512$/m);
    assert.equal(reads, 1, 'one report for all the gauges of a scrape');
  });

  test('host limits: subnets, neighbours and pids, used and limit', async () => {
    const files: Record<string, string> = {
      '/proc/sys/net/ipv4/neigh/default/gc_thresh3': '1024\n',
      '/proc/sys/kernel/pid_max': '32768\n',
      '/proc/loadavg': '0.1 0.2 0.3 2/517 999\n',
      '/proc/net/arp': 'IP address HW type Flags HW address Mask Device\n10.0.0.1 0x1 0x2 aa:bb:cc:dd:ee:ff * eth0\n10.0.0.2 0x1 0x2 aa:bb:cc:dd:ee:00 * eth0\n',
    };
    const read = (p: string): string => {
      const f = files[p];
      if (f === undefined) throw new Error(`ENOENT ${p}`);
      return f;
    };
    assert.equal(neighbourEntries(read), 2);
    const registry = new Registry();
    registerHostLimitMetrics(registry, () => ({ used: 3, capacity: 4096 }), read);
    const text = await registry.metrics();
    for (const line of ['ctll_host_limit{limit="subnets"} 4096', 'ctll_host_limit_used{limit="subnets"} 3', 'ctll_host_limit{limit="neighbours"} 1024', 'ctll_host_limit_used{limit="neighbours"} 2', 'ctll_host_limit{limit="pids"} 32768', 'ctll_host_limit_used{limit="pids"} 517']) {
      assert.ok(text.split('\n').includes(line), `${line} in\n${text}`);
    }
  });
});
