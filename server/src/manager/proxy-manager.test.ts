import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryAuditLog } from '../audit.js';
import { ServerMetrics } from '../api/server-metrics.js';
import { ProcessRuntime } from '../runtime/process-runtime.js';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { checkProxyHealth } from './proxy-health.js';
import { ProxyManager, type ProxyManagerOptions } from './proxy-manager.js';

function manager(extra: Partial<ProxyManagerOptions> = {}): { m: ProxyManager; audit: MemoryAuditLog; runtime: ProcessRuntime; metrics: ServerMetrics } {
  const runtime = new ProcessRuntime();
  const audit = new MemoryAuditLog();
  const metrics = new ServerMetrics(false);
  return { m: new ProxyManager({ runtime, audit, metrics, ...extra }), audit, runtime, metrics };
}

test('concurrent starts for one user give one proxy', async () => {
  const { m, runtime } = manager();
  try {
    const records = await Promise.all(Array.from({ length: 10 }, () => m.ensure('alice')));
    assert.equal(new Set(records.map((r) => r.instance?.id)).size, 1);
    assert.equal((await runtime.list()).length, 1);
    const health = await checkProxyHealth(records[0]!.instance!.endpoint);
    assert.equal(health.ok, true, 'start resolved only once the proxy was healthy');
    assert.equal(m.view('alice').status, 'running');
    assert.equal(m.view('bob').status, 'stopped');
  } finally {
    await m.close();
  }
});

test('users get separate proxies with separate secrets', async () => {
  const { m } = manager();
  try {
    const [a, b] = await Promise.all([m.ensure('alice'), m.ensure('bob')]);
    assert.notEqual(a.instance?.endpoint, b.instance?.endpoint);
    assert.notEqual(a.secret, b.secret);
    assert.equal(a.userHash, userHash('alice'));
  } finally {
    await m.close();
  }
});

test('a proxy with no bridge and no request for the idle timeout is destroyed, an active one is kept', async () => {
  const { m, runtime, audit } = manager({ idleTimeoutMs: 200 });
  try {
    await m.ensure('idle-user');
    await m.ensure('busy-user');
    m.bridgeOpened(userHash('busy-user'));
    const later = Date.now() + 1_000;
    assert.equal(await m.sweepIdle(later), 1);
    const left = await runtime.list();
    assert.deepEqual(left.map((i) => i.userHash), [userHash('busy-user')]);
    assert.ok(audit.entries.some((e) => e.action === 'proxy.idle' && e.userHash === userHash('idle-user')));
    assert.ok(!JSON.stringify(audit.entries).includes('idle-user'), 'the audit log holds hashes, never user ids');
  } finally {
    await m.close();
  }
});

test('the idle sweep runs on its own timer', async () => {
  const { m, runtime } = manager({ idleTimeoutMs: 100, sweepIntervalMs: 50, healthIntervalMs: 10_000 });
  try {
    await m.ensure('sleepy');
    m.startTimers();
    const deadline = Date.now() + 30_000;
    while ((await runtime.list()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await runtime.list()).length, 0);
    assert.equal(m.view('sleepy').status, 'stopped');
  } finally {
    await m.close();
  }
});

test('a proxy that stops answering health checks is removed after three failures', async () => {
  const { m, runtime, metrics } = manager({ unhealthyAfter: 3 });
  try {
    const r = await m.ensure('flaky');
    // Break the proxy behind the manager's back.
    await runtime.stop(r.userHash);
    await m.checkAll();
    await m.checkAll();
    assert.equal(m.view('flaky').status, 'running', 'two failures are tolerated');
    assert.equal(m.view('flaky').health?.ok, false);
    assert.match(await metrics.registry.metrics(), /^ctll_proxies_unhealthy 1$/m, 'failing, not yet replaced');
    assert.match(await metrics.registry.metrics(), /^ctll_proxy_health_failures_total 2$/m);
    await m.checkAll();
    assert.equal(m.view('flaky').status, 'stopped');
    const text = await metrics.registry.metrics();
    assert.match(text, /ctll_proxy_stops_total\{reason="replaced"\} 1/);
    assert.match(text, /^ctll_proxy_stop_seconds_count\{reason="replaced"\} 1$/m, 'the stop\'s duration is observed under its reason');
    assert.match(text, /^ctll_proxies_unhealthy 0$/m);
    const again = await m.ensure('flaky');
    assert.equal((await checkProxyHealth(again.instance!.endpoint)).ok, true, 'the next start recovers');
  } finally {
    await m.close();
  }
});

test('a proxy that exits on its own is reported and the next start recovers', async () => {
  const { m, runtime, audit } = manager();
  try {
    const r = await m.ensure('crashy');
    runtime.emit('exit', r.userHash, 'the proxy container died (exit code 137)');
    assert.equal(m.view('crashy').status, 'stopped');
    assert.ok(audit.entries.some((e) => e.action === 'proxy.exit' && /137/.test(e.reason ?? '')));
    const again = await m.ensure('crashy');
    assert.equal((await checkProxyHealth(again.instance!.endpoint)).ok, true);
  } finally {
    await m.close();
  }
});

test('stop is idempotent and close stops everything', async () => {
  const { m, runtime } = manager();
  await m.ensure('a');
  await m.ensure('b');
  assert.equal(await m.stop('a'), true);
  assert.equal(await m.stop('a'), false);
  await m.close();
  assert.equal((await runtime.list()).length, 0);
  await assert.rejects(m.ensure('c'), /shutting down/);
});
