import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadProxyConfig, ProxyConfigError } from './proxy-config.js';
import { DEFAULT_RESPONSE_HEAD_TIMEOUT_MS } from './relay.js';

const OWNER_AND_TOKEN = { PROXY_OWNER: 'alice', PROXY_TOKEN: 'a-token-of-16-chars' };

test('the proxy reads its environment, the flags win, the defaults are the relay’s', () => {
  const config = loadProxyConfig({ ...OWNER_AND_TOKEN, PROXY_PORT: '9000', PROXY_HOST: '0.0.0.0' }, ['--port', '9001']);
  assert.deepEqual(config, { port: 9001, host: '0.0.0.0', owner: 'alice', token: 'a-token-of-16-chars', responseHeadTimeoutMs: DEFAULT_RESPONSE_HEAD_TIMEOUT_MS, logLevel: 'info', help: false });
});

test('every problem is reported at once, each with its variable named', () => {
  assert.throws(
    () => loadProxyConfig({ PROXY_PORT: '70000', PROXY_RESPONSE_HEAD_TIMEOUT_MS: '5', LOG_LEVEL: 'loud' }, []),
    (e: unknown) =>
      e instanceof ProxyConfigError &&
      e.problems.length === 5 &&
      ['PROXY_OWNER', 'PROXY_TOKEN', 'PROXY_PORT (--port)="70000"', 'PROXY_RESPONSE_HEAD_TIMEOUT_MS="5"', 'LOG_LEVEL="loud"'].every((name) => e.message.includes(name)),
  );
});

test('the concurrent-request limit: none unless PROXY_MAX_CONCURRENT_REQUESTS says, and at least 1', () => {
  assert.equal(loadProxyConfig(OWNER_AND_TOKEN, []).maxConcurrentRequests, undefined);
  assert.equal(loadProxyConfig({ ...OWNER_AND_TOKEN, PROXY_MAX_CONCURRENT_REQUESTS: '64' }, []).maxConcurrentRequests, 64);
  assert.throws(() => loadProxyConfig({ ...OWNER_AND_TOKEN, PROXY_MAX_CONCURRENT_REQUESTS: '0' }, []), /PROXY_MAX_CONCURRENT_REQUESTS="0" must be a whole number from 1/);
});

test('--help needs no settings', () => {
  assert.equal(loadProxyConfig({}, ['--help']).help, true);
});
