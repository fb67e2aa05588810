/**
 * bench/relay-cost.ts: the relay's CPU per unit of work, each process's share in the kernel, and
 * what a missed target says about where the time went. The benchmark's own arithmetic, checked
 * on made-up samples (the figures themselves live in docs/benchmarks.md).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { costOf, costRows, spentBy, wakeupRows, workloadCost, type CostWorkload } from '../../bench/relay-cost.js';

const upload: CostWorkload<{ mib: number }> = {
  name: 'upload',
  unit: 'MiB',
  units: (r: { mib: number }) => r.mib,
  byPath: {
    edge: [
      { result: { mib: 10 }, cpuMs: { client: 99, proxy: 20, 'api-backend': 40, emulator: 99 }, kernelMs: { proxy: 5, 'api-backend': 30 } },
      { result: { mib: 10 }, cpuMs: { client: 99, proxy: 20, 'api-backend': 40, other: 99 }, kernelMs: { proxy: 5, 'api-backend': 30 } },
    ],
    ssh: [{ result: { mib: 20 }, cpuMs: { sshd: 30, ssh: 30 }, kernelMs: { sshd: 6, ssh: 6 } }],
  },
};

test('the relay cost leaves the client, the emulator and the machine out, and counts each process per unit', () => {
  const c = costOf(upload, 'edge')!;
  assert.deepEqual(c.byRole, { proxy: 2, 'api-backend': 4 });
  assert.equal(c.total, 6);
});

test("each process's kernel share, and the relay's, weighted by its CPU", () => {
  const c = costOf(upload, 'edge')!;
  assert.deepEqual(c.kernelByRole, { proxy: 0.25, 'api-backend': 0.75 });
  assert.equal(c.kernelShare, (10 + 60) / 120);
  // Samples without kernel figures (another platform) say so, rather than 0 %.
  const none = costOf({ ...upload, byPath: { edge: [{ result: { mib: 1 }, cpuMs: { proxy: 1 } }] } }, 'edge')!;
  assert.ok(Number.isNaN(none.kernelShare));
  assert.equal(costRows([workloadCost({ ...upload, byPath: { edge: [{ result: { mib: 1 }, cpuMs: { proxy: 1 } }] } }, ['edge'])], [{ key: 'edge', label: 'edge' }], 'ssh')[0]![5], '?');
});

test('the table row shows each process with its kernel share, the relay\'s, and the ratio to the peer', () => {
  const rows = costRows([workloadCost(upload, ['edge', 'ssh'])], [{ key: 'edge', label: 'edge' }, { key: 'ssh', label: 'ssh -R' }], 'ssh');
  assert.deepEqual(rows[0], ['upload', 'ms per MiB', 'edge', '6.00', 'proxy 2.00 (25%), api-backend 4.00 (75%)', '58%', '2.00×']);
  assert.deepEqual(rows[1]?.slice(2), ['ssh -R', '3.00', 'sshd 1.50 (20%), ssh 1.50 (20%)', '20%', '1.00×']);
});

test('a missed target names the costliest process first, with its kernel share, beside the peer', () => {
  const w = workloadCost(upload, ['edge', 'ssh']);
  assert.equal(spentBy(w, 'edge', 'ssh', 'sshd + ssh'), '; spent by: api-backend 4.00 (75% kernel), proxy 2.00 (25% kernel) ms per MiB; sshd + ssh 3.00');
  assert.equal(spentBy(w, 'direct', 'ssh', 'sshd + ssh'), '', 'a path without a relay says nothing');
  assert.equal(spentBy(undefined, 'edge', 'ssh', 'sshd + ssh'), '', 'a workload that did not run says nothing');
});

test('wakeups per unit, by process, beside the peer; a platform without them says so', () => {
  const requests: CostWorkload<{ n: number }> = {
    name: 'TTFB',
    unit: '1,000 requests',
    units: (r) => r.n / 1000,
    byPath: {
      edge: [
        { result: { n: 500 }, cpuMs: { client: 9, nginx: 1, proxy: 2 }, wakeups: { client: 999, nginx: 3000, proxy: 1500 } },
        { result: { n: 500 }, cpuMs: { nginx: 1, proxy: 2 }, wakeups: { nginx: 3000, proxy: 1500 } },
      ],
      ssh: [{ result: { n: 1000 }, cpuMs: { sshd: 1, ssh: 1 }, wakeups: { sshd: 2000, ssh: 2000 } }],
      bare: [{ result: { n: 1000 }, cpuMs: { proxy: 1 } }],
    },
  };
  const c = costOf(requests, 'edge')!;
  assert.deepEqual(c.wakeupsByRole, { nginx: 6000, proxy: 3000 }, 'the client is not the relay');
  assert.equal(c.wakeups, 9000);
  const rows = wakeupRows([workloadCost(requests, ['edge', 'ssh', 'bare'])], [{ key: 'edge', label: 'edge' }, { key: 'ssh', label: 'ssh -R' }, { key: 'bare', label: 'bare' }], 'ssh');
  assert.deepEqual(rows[0], ['TTFB', 'per 1,000 requests', 'edge', '9000', 'nginx 6000, proxy 3000', '2.25×']);
  assert.deepEqual(rows[2], ['TTFB', 'per 1,000 requests', 'bare', '?', 'proxy ?', '']);
});
