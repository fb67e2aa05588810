import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FirewallKeeper, VALID_FOR_INTERVALS } from './firewall-keeper.js';
import { readFirewallCounters, readFirewallStatus, writeFirewallStatus, type FirewallStatus } from './firewall-status.js';
import type { FirewallCounters } from './firewall-counters.js';
import type { FirewallResult } from './isolation-firewall.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ctll-firewall-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('the firewall status file', () => {
  test('confirms the rules only while fresh and ok, and says what is wrong otherwise', (t) => {
    const file = join(tempDir(t), 'status.json');
    const missing = readFirewallStatus(file);
    assert.match(missing.ok ? 'ok' : missing.error, /has not written .*status\.json yet/);
    writeFirewallStatus(file, { ok: true }, 1000, 5_000);
    assert.deepEqual(readFirewallStatus(file, 5_500), { ok: true });
    assert.deepEqual(readFirewallStatus(file, 6_000), { ok: true });
    const stale = readFirewallStatus(file, 6_001);
    assert.equal(stale.ok, false);
    assert.match(stale.ok ? '' : stale.error, /last confirmed the rules 1 s ago .*isolation-firewall service/);
    writeFirewallStatus(file, { ok: false, error: 'iptables is not installed' }, 1000, 5_000);
    assert.deepEqual(readFirewallStatus(file, 5_000), { ok: false, error: "the isolation firewall's keeper could not install the rules: iptables is not installed" });
    writeFileSync(file, '{"ok": tru');
    assert.deepEqual(readFirewallStatus(file), { ok: false, error: `${file} is not the keeper's JSON status` });
    writeFileSync(file, '{"ok": true}');
    assert.match(String((readFirewallStatus(file) as { error?: string }).error), /\(ok, checkedAt, validUntil\)/);
  });
});

describe('the firewall keeper', () => {
  test('checks at start and every interval, publishing each outcome, until stopped', async (t) => {
    const file = join(tempDir(t), 'run', 'status.json');
    const outcomes: FirewallResult[] = [{ ok: true }, { ok: false, error: 'DOCKER-USER was rebuilt and the jump is gone' }, { ok: true }];
    let calls = 0;
    let reads = 0;
    const counters = async (): Promise<FirewallCounters> => ({ readAt: ++reads, refused: { tcp: reads, host: 0, beyond: 0 }, byBridge: { 'ctll-0ac80000': 2 * reads } });
    const keeper = new FirewallKeeper({ statusFile: file, intervalMs: 100, ensure: async () => outcomes[Math.min(calls++, outcomes.length - 1)]!, counters });
    const seen: FirewallStatus[] = [];
    keeper.on('checked', (s) => seen.push(s));
    keeper.start();
    while (seen.length < 3) await once(keeper, 'checked');
    await keeper.stop();
    const after = calls;
    assert.deepEqual(
      seen.slice(0, 3).map((s) => [s.ok, s.error]),
      [
        [true, undefined],
        [false, 'DOCKER-USER was rebuilt and the jump is gone'],
        [true, undefined],
      ],
    );
    for (const s of seen) assert.equal(s.validUntil - s.checkedAt, VALID_FOR_INTERVALS * 100);
    // Counters go with a check that found the rules, never with a failed one.
    assert.deepEqual(seen.slice(0, 3).map((s) => s.counters?.refused.tcp), [1, undefined, 2]);
    // What the api-backend reads is the last check's.
    assert.deepEqual(readFirewallStatus(file, seen.at(-1)!.checkedAt), { ok: seen.at(-1)!.ok } as FirewallResult);
    // Stopped means stopped: no check after stop() resolved.
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(calls, after);
  });

  test('counters that cannot be read leave the status ok, without counters', async (t) => {
    const file = join(tempDir(t), 'status.json');
    const keeper = new FirewallKeeper({ statusFile: file, intervalMs: 1000, ensure: async () => ({ ok: true }), counters: () => Promise.reject(new Error('mangle table missing')) });
    const checked = once(keeper, 'checked');
    keeper.start();
    const [status] = (await checked) as [FirewallStatus];
    await keeper.stop();
    assert.equal(status.ok, true);
    assert.equal(status.counters, undefined);
    assert.equal(readFirewallCounters(file, status.checkedAt), undefined);
  });

  test('published counters are read back, and not once the status is stale', (t) => {
    const file = join(tempDir(t), 'status.json');
    const counters: FirewallCounters = { readAt: 5, refused: { tcp: 3, host: 1, beyond: 0 }, byBridge: { 'ctll-0ac80010': 4 } };
    const status = writeFirewallStatus(file, { ok: true }, 1000, 10_000, counters);
    assert.deepEqual(readFirewallCounters(file, status.checkedAt + 999), counters);
    assert.equal(readFirewallCounters(file, status.checkedAt + 1001), undefined);
  });

  test('a check that throws is published as a failure, not a crash', async (t) => {
    const file = join(tempDir(t), 'status.json');
    const keeper = new FirewallKeeper({ statusFile: file, intervalMs: 1000, ensure: () => Promise.reject(new Error('xtables lock held')) });
    const checked = once(keeper, 'checked');
    keeper.start();
    const [status] = (await checked) as [FirewallStatus];
    await keeper.stop();
    assert.equal(status.ok, false);
    assert.equal(status.error, 'xtables lock held');
    assert.equal(readFirewallStatus(file, status.checkedAt).ok, false);
  });

  test('refuses an interval too short to be meant', () => {
    assert.throws(() => new FirewallKeeper({ statusFile: '/tmp/x', intervalMs: 5 }), /at least 100 \(got 5\)/);
  });
});
