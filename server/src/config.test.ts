import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEFAULT_AUDIENCE, loadConfig } from './config.js';

test('embedded defaults: loopback, auto runtime, the original intervals', () => {
  const c = loadConfig({}, []);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.runtime, 'auto');
  assert.deepEqual(c.auth, { kind: 'embedded', audience: DEFAULT_AUDIENCE, issuerPort: 0 });
  assert.equal(c.healthIntervalMs, 30_000);
  assert.equal(c.idleTimeoutMs, 600_000);
  assert.equal(c.sweepIntervalMs, 60_000);
});

test('Auth0 from the environment, flags over environment', () => {
  const c = loadConfig({ AUTH0_DOMAIN: 'tenant.eu.auth0.com', AUTH0_AUDIENCE: 'https://api.example.com', AUTH0_DESKTOP_CLIENT_ID: 'abc123', PORT: '9000' }, ['--port', '9100', '--runtime', 'docker']);
  assert.equal(c.desktopClientId, 'abc123');
  assert.equal(c.auth.kind, 'auth0');
  if (c.auth.kind === 'auth0') assert.equal(c.auth.issuer, 'https://tenant.eu.auth0.com/');
  assert.equal(c.port, 9100);
  assert.equal(c.runtime, 'docker');
});

test('every problem is reported at once, naming the variable', () => {
  try {
    loadConfig({ AUTH0_DOMAIN: 'tenant.auth0.com', PORT: 'eighty', CTLL_IDLE_TIMEOUT_MS: '-5', CORS_ORIGINS: 'ftp://x', CTLL_SUBNET_RANGE: '10.0.0.0' }, ['--runtime', 'kubernetes']);
    assert.fail('should have thrown');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const text = e.message;
    for (const name of ['AUTH0_AUDIENCE', 'AUTH0_DESKTOP_CLIENT_ID', 'PORT', 'CTLL_IDLE_TIMEOUT_MS', 'CORS_ORIGINS', 'CTLL_SUBNET_RANGE', 'CTLL_RUNTIME']) {
      assert.match(text, new RegExp(name), `mentions ${name}`);
    }
    assert.ok(e.problems.length >= 6);
  }
});

test('unknown flags are refused', () => {
  assert.throws(() => loadConfig({}, ['--prot', '1']), /--prot/);
});
