import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostLimitWarnings, readHostLimits, RECOMMENDED_SYSCTLS, threadsInUse } from './host-limits.js';

const host = (files: Record<string, string>) => (path: string): string => {
  const text = files[path];
  if (text === undefined) throw new Error(`ENOENT ${path}`);
  return text;
};

test('a stock kernel allows about 500 proxies (neighbour table) and 1,300 (pids): both are named', () => {
  const read = host({ '/proc/sys/net/ipv4/neigh/default/gc_thresh3': '1024\n', '/proc/sys/kernel/pid_max': '32768\n', '/proc/loadavg': '0.10 0.20 0.30 2/230 999\n' });
  const limits = readHostLimits(read);
  assert.deepEqual(limits.map((l) => [l.setting, l.value, l.proxies]), [
    ['net.ipv4.neigh.default.gc_thresh3', 1024, 512],
    ['kernel.pid_max', 32768, Math.floor((32768 - 230) / 25)],
  ]);
  const warnings = hostLimitWarnings(limits, 4096);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /at most about 512 proxies: net\.ipv4\.neigh\.default\.gc_thresh3 is 1024 .*sysctl -w net\.ipv4\.neigh\.default\.gc_thresh3=32768/);
  assert.match(warnings[1]!, /kernel\.pid_max is 32768 .*sysctl -w kernel\.pid_max=4194304/);
  assert.deepEqual(hostLimitWarnings(limits, 400), [], 'no warning when the host holds every user the range can have');
});

test('the recommended settings hold the default range of 4,096 users; unreadable files are skipped', () => {
  const read = host({
    '/proc/sys/net/ipv4/neigh/default/gc_thresh3': String(RECOMMENDED_SYSCTLS['net.ipv4.neigh.default.gc_thresh3']),
    '/proc/sys/kernel/pid_max': String(RECOMMENDED_SYSCTLS['kernel.pid_max']),
  });
  assert.deepEqual(hostLimitWarnings(readHostLimits(read), 4096), []);
  assert.deepEqual(readHostLimits(host({})), []);
  assert.equal(threadsInUse(host({})), 0);
});
