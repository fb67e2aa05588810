import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PROXY_IMAGE, DEFAULT_SUBNET_RANGE } from '@cloudtolocalllm/proxy-spec/container-spec';
import { DEFAULT_LISTEN, DEFAULT_POLICY_LIMITS, DEFAULT_UPSTREAM, loadFilterConfig } from './filter-config.js';

test("the filter's defaults are the proxy spec's (the runtime's), and blank values count as unset", () => {
  const config = loadFilterConfig({ CTLL_PROXY_IMAGE: '', CTLL_SUBNET_RANGE: ' ', LOG_LEVEL: '' });
  assert.deepEqual(config, {
    policy: { image: DEFAULT_PROXY_IMAGE, subnetRange: DEFAULT_SUBNET_RANGE, ...DEFAULT_POLICY_LIMITS },
    listen: DEFAULT_LISTEN,
    upstream: DEFAULT_UPSTREAM,
    logLevel: 'info',
  });
});

test('every problem is reported at once, each with its variable named', () => {
  assert.throws(
    () => loadFilterConfig({ CTLL_STACK_NAME: 'Not A Name', CTLL_FILTER_MAX_PIDS: '-1', CTLL_FILTER_MAX_NANO_CPUS: 'many', LOG_LEVEL: 'loud' }),
    (e: Error) => ['CTLL_STACK_NAME', 'CTLL_FILTER_MAX_PIDS="-1"', 'CTLL_FILTER_MAX_NANO_CPUS="many"', 'LOG_LEVEL="loud"'].every((name) => e.message.includes(name)),
  );
});
