import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FirewallKeeper, VALID_FOR_INTERVALS } from './firewall-keeper.js';
import { readFirewallStatus, writeFirewallStatus, type FirewallStatus } from './firewall-status.js';
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
    const keeper = new FirewallKeeper({ statusFile: file, intervalMs: 100, ensure: async () => outcomes[Math.min(calls++, outcomes.length - 1)]! });
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
    // What the api-backend reads is the last check's.
    assert.deepEqual(readFirewallStatus(file, seen.at(-1)!.checkedAt), { ok: seen.at(-1)!.ok } as FirewallResult);
    // Stopped means stopped: no check after stop() resolved.
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal(calls, after);
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
