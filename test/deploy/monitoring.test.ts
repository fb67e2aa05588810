/**
 * The monitoring files of server/deploy/monitoring/ checked by Prometheus's own tool (Debian's
 * `prometheus` package): the scrape configuration loads, the rules load, and every alert fires on
 * its case of rules.test.yml. Prometheus scraping a running server: test/cloud/operator-metrics.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const DIR = fileURLToPath(new URL('../../server/deploy/monitoring/', import.meta.url));
const promtool = await run('promtool', ['--version']).then(
  () => undefined,
  () => 'promtool is not installed (apt-get install prometheus)',
);
if (promtool && process.env['CI'] === 'true') test('promtool is installed (CI machines must have it)', () => assert.fail(promtool));

describe('the monitoring files', { skip: promtool ?? false }, () => {
  test('promtool check config: the scrape configuration and its rule file load', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ctll-prom-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // credentials_file must exist for the check: the deployed path is a tmpfs of the container.
    writeFileSync(join(dir, 'token'), 'x'.repeat(64));
    const config = readFileSync(join(DIR, 'prometheus.yml'), 'utf8');
    assert.match(config, /credentials_file: \/run\/ctll-prometheus\/metrics-token/);
    writeFileSync(join(dir, 'prometheus.yml'), config.replace('credentials_file: /run/ctll-prometheus/metrics-token', `credentials_file: ${join(dir, 'token')}`));
    copyFileSync(join(DIR, 'rules.yml'), join(dir, 'rules.yml'));
    const out = await run('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
    assert.match(out.stdout, /SUCCESS: 1 rule files found/);
  });

  test('promtool check rules: every alert the operations guide explains is there', async () => {
    const out = await run('promtool', ['check', 'rules', join(DIR, 'rules.yml')]);
    assert.match(out.stdout, /SUCCESS: 7 rules found/);
    const rules = readFileSync(join(DIR, 'rules.yml'), 'utf8');
    const guide = readFileSync(fileURLToPath(new URL('../../docs/operations.md', import.meta.url)), 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    assert.equal(alerts.length, 7);
    for (const a of alerts) assert.ok(guide.includes(`\`${a}\``), `docs/operations.md explains ${a}`);
  });

  test('promtool test rules: each alert fires on its case (and not before its time)', async () => {
    const tests = readFileSync(join(DIR, 'rules.test.yml'), 'utf8');
    const rules = readFileSync(join(DIR, 'rules.yml'), 'utf8');
    for (const [, a] of rules.matchAll(/- alert: (\w+)/g)) assert.ok(tests.includes(`alertname: ${a}\n`), `rules.test.yml has a case that fires ${a}`);
    const out = await run('promtool', ['test', 'rules', join(DIR, 'rules.test.yml')]);
    assert.match(out.stdout, /SUCCESS/);
  });

  test('the Grafana dashboard is JSON whose panels query series the server exports', () => {
    const dashboard = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    assert.ok(dashboard.panels.length >= 10);
    const metrics = readFileSync(fileURLToPath(new URL('../../server/src/api/server-metrics.ts', import.meta.url)), 'utf8') + readFileSync(fileURLToPath(new URL('../../server/src/api/operator-metrics.ts', import.meta.url)), 'utf8');
    for (const p of dashboard.panels) {
      for (const target of p.targets) {
        for (const [name] of target.expr.matchAll(/ctll_[a-z_]+/g)) {
          const base = name.replace(/_(bucket|sum|count)$/, '');
          assert.ok(metrics.includes(`'${base}'`) || metrics.includes(`'${name}'`), `${name} (panel query ${target.expr}) is a series of ours`);
        }
      }
    }
  });
});
