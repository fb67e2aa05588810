import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { UserHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import type { ContainerUsage } from '../runtime/docker/cgroup-usage.js';
import { ResourceSampler, summarize } from './proxy-resources.js';

const MiB = 1024 * 1024;
const user = (n: number): UserHash => String(n).padStart(64, '0') as UserHash;

describe('the proxies\' resource report', () => {
  test('summaries: count, sum, max and the nearest-rank p95', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.deepEqual(summarize(values), { count: 100, sum: 5050, max: 100, p95: 95 });
    assert.deepEqual(summarize([]), { count: 0, sum: 0, max: 0, p95: 0 });
    assert.deepEqual(summarize([7]), { count: 1, sum: 7, max: 7, p95: 7 });
  });

  test('CPU is the rate between two samples; near-limit counts use the limits given; top users by hash', async () => {
    let now = 0;
    const usage = new Map<string, ContainerUsage>([
      ['c1', { memoryBytes: 500 * MiB, cpuSeconds: 10 }],
      ['c2', { memoryBytes: 20 * MiB, cpuSeconds: 0 }],
    ]);
    const sampler = new ResourceSampler({
      containers: () => [
        { userHash: user(1), containerId: 'c1' },
        { userHash: user(2), containerId: 'c2' },
        { userHash: user(3), containerId: 'gone' },
      ],
      read: async (id) => usage.get(id),
      limits: { memoryBytes: 512 * MiB, cpus: 0.5 },
      cacheMs: 1000,
      now: () => now,
    });
    const first = await sampler.report();
    assert.equal(first.cpu.count, 0, 'no rate before a second sample');
    assert.equal(first.memory.count, 2);
    assert.equal(first.unreadable, 1);
    assert.deepEqual(first.nearLimit, { memory: 1, cpu: 0 });
    assert.deepEqual(first.topMemory.map((u) => u.userHash), [user(1), user(2)]);
    now = 500;
    assert.equal(await sampler.report(), first, 'cached within cacheMs');
    now = 2000;
    usage.set('c1', { memoryBytes: 100 * MiB, cpuSeconds: 10.96 });
    usage.set('c2', { memoryBytes: 20 * MiB, cpuSeconds: 0.02 });
    const second = await sampler.report();
    assert.equal(second.cpu.count, 2);
    assert.ok(Math.abs(second.topCpu[0]!.cpuCores! - 0.48) < 1e-9);
    assert.equal(second.topCpu[0]!.userHash, user(1));
    assert.deepEqual(second.nearLimit, { memory: 0, cpu: 1 });
    assert.equal(second.memory.sum, 120 * MiB);
  });
});
