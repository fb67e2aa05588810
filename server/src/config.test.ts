import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_AUDIENCE, loadConfig } from './config.js';

/** The problems loadConfig reports for `env` (and `argv`); fails the test if it accepts them. */
function problems(env: NodeJS.ProcessEnv, argv: string[] = []): string[] {
  try {
    loadConfig(env, argv);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail(`accepted ${JSON.stringify(env)} ${argv.join(' ')}`);
}

test('embedded defaults: loopback, auto runtime, the original intervals', () => {
  const c = loadConfig({}, []);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.runtime, 'auto');
  assert.deepEqual(c.auth, { kind: 'embedded', audience: DEFAULT_AUDIENCE, issuerPort: 0 });
  assert.equal(c.healthIntervalMs, 30_000);
  assert.equal(c.idleTimeoutMs, 600_000);
  assert.equal(c.sweepIntervalMs, 60_000);
  assert.equal(c.firewall, 'enforce');
  assert.equal(c.subnetPrefix, 28);
  assert.equal(c.logLevel, 'info');
  assert.equal(c.keepProxiesOnExit, false);
  assert.equal(c.proxyImage, 'cloudtolocalllm/streaming-proxy:local');
});

test('Auth0 from the environment, flags over environment', () => {
  const c = loadConfig({ AUTH0_DOMAIN: 'tenant.eu.auth0.com', AUTH0_AUDIENCE: 'https://api.example.com', AUTH0_DESKTOP_CLIENT_ID: 'abc123', PORT: '9000' }, ['--port', '9100', '--runtime', 'docker']);
  assert.equal(c.desktopClientId, 'abc123');
  assert.equal(c.auth.kind, 'auth0');
  assert.equal(c.auth.kind === 'auth0' && c.auth.issuer, 'https://tenant.eu.auth0.com/');
  assert.equal(c.port, 9100);
  assert.equal(c.runtime, 'docker');
});

test('every problem is reported at once, naming the variable', () => {
  const found = problems(
    {
      AUTH0_DOMAIN: 'tenant.auth0.com',
      PORT: 'eighty',
      CTLL_IDLE_TIMEOUT_MS: '-5',
      CORS_ORIGINS: 'ftp://x',
      CTLL_SUBNET_RANGE: '10.0.0.0',
      LOG_LEVEL: 'verbose',
      CTLL_KEEP_PROXIES_ON_EXIT: 'maybe',
      CTLL_FIREWALL: 'sometimes',
    },
    ['--runtime', 'kubernetes'],
  );
  const names = ['AUTH0_AUDIENCE', 'PORT', 'CTLL_IDLE_TIMEOUT_MS', 'CORS_ORIGINS', 'CTLL_SUBNET_RANGE', 'CTLL_RUNTIME', 'LOG_LEVEL', 'CTLL_KEEP_PROXIES_ON_EXIT', 'CTLL_FIREWALL'];
  for (const name of names) assert.ok(found.some((p) => p.includes(name)), `a problem names ${name}: ${found.join(' | ')}`);
  assert.equal(found.length, names.length + 1, `one problem each, plus AUTH0_DESKTOP_CLIENT_ID: ${found.join(' | ')}`);
  assert.ok(found.some((p) => p.includes('AUTH0_DESKTOP_CLIENT_ID')));
});

test('booleans take 1/0, true/false, yes/no, on/off in any case, and refuse anything else by name', () => {
  for (const on of ['1', 'true', 'TRUE', 'yes', 'Yes', 'on', ' ON ']) assert.equal(loadConfig({ CTLL_KEEP_PROXIES_ON_EXIT: on }, []).keepProxiesOnExit, true, on);
  for (const off of ['0', 'false', 'False', 'no', 'NO', 'off', '']) assert.equal(loadConfig({ CTLL_KEEP_PROXIES_ON_EXIT: off }, []).keepProxiesOnExit, false, off);
  assert.equal(loadConfig({ CTLL_KEEP_PROXIES_ON_EXIT: 'off' }, ['--keep-proxies']).keepProxiesOnExit, true, 'the flag wins');
  for (const bad of ['2', 'enabled', 'y', 'tru']) {
    assert.deepEqual(problems({ CTLL_KEEP_PROXIES_ON_EXIT: bad }), [
      `CTLL_KEEP_PROXIES_ON_EXIT="${bad}" must be one of 1, true, yes, on, 0, false, no, off (any case)`,
    ]);
  }
});

test('LOG_LEVEL is one of debug, info, warn, error in any case; anything else is refused, not replaced by info', () => {
  assert.equal(loadConfig({ LOG_LEVEL: 'DEBUG' }, []).logLevel, 'debug');
  assert.equal(loadConfig({ LOG_LEVEL: ' warn ' }, []).logLevel, 'warn');
  assert.deepEqual(problems({ LOG_LEVEL: 'verbose' }), ['LOG_LEVEL="verbose" must be one of debug, info, warn, error']);
});

test('CTLL_FIREWALL is checked whatever the runtime', () => {
  assert.equal(loadConfig({ CTLL_FIREWALL: ' OFF ' }, ['--runtime', 'process']).firewall, 'off');
  for (const runtime of ['process', 'docker', 'auto']) {
    assert.deepEqual(problems({ CTLL_FIREWALL: 'bogus' }, ['--runtime', runtime]), ['CTLL_FIREWALL="bogus" must be one of enforce, warn, off'], runtime);
  }
});

test('the subnet size, image, host and metrics token are checked with the variable named', () => {
  assert.equal(loadConfig({ CTLL_SUBNET_PREFIX: '26' }, []).subnetPrefix, 26);
  assert.match(problems({ CTLL_SUBNET_PREFIX: '31' }).join(), /CTLL_SUBNET_PREFIX/);
  assert.match(problems({ CTLL_SUBNET_PREFIX: '12' }).join(), /invalid subnet size \/12 \(CTLL_SUBNET_PREFIX\): it must be between the range's own \/16 and \/30/);
  assert.match(problems({ CTLL_SUBNET_PREFIX: 'small' }).join(), /^CTLL_SUBNET_PREFIX="small" must be a whole number/);
  assert.equal(loadConfig({ CTLL_PROXY_IMAGE: 'registry.example:5000/team/proxy:1.2@sha256:' + 'a'.repeat(64) }, []).proxyImage.startsWith('registry.example:5000/'), true);
  assert.match(problems({ CTLL_PROXY_IMAGE: 'Proxy Image' }).join(), /^CTLL_PROXY_IMAGE="Proxy Image" must be an image reference/);
  assert.match(problems({ CTLL_PROXY_IMAGE: 'UPPER/case' }).join(), /^CTLL_PROXY_IMAGE=/);
  assert.equal(loadConfig({}, ['--host', '::1']).host, '::1');
  assert.match(problems({ HOST: 'not a host' }).join(), /^HOST \(--host\)="not a host" must be an IP address or a host name/);
  assert.match(problems({ METRICS_TOKEN: 'short' }).join(), /^METRICS_TOKEN="short" must be at least 16 characters/);
  // From a file (a Docker secret); its content is never repeated in a message.
  const secretDir = mkdtempSync(join(tmpdir(), 'ctll-config-'));
  try {
    writeFileSync(join(secretDir, 'token'), 'f'.repeat(64) + '\n');
    writeFileSync(join(secretDir, 'short'), 'tiny-secret');
    assert.equal(loadConfig({ METRICS_TOKEN_FILE: join(secretDir, 'token') }, []).metricsToken, 'f'.repeat(64));
    const short = problems({ METRICS_TOKEN_FILE: join(secretDir, 'short') }).join();
    assert.match(short, /METRICS_TOKEN_FILE=.*short must hold at least 16 characters/);
    assert.doesNotMatch(short, /tiny-secret/);
    assert.match(problems({ METRICS_TOKEN_FILE: join(secretDir, 'absent') }).join(), /METRICS_TOKEN_FILE=.*absent cannot be read \(ENOENT\)/);
    assert.match(problems({ METRICS_TOKEN_FILE: join(secretDir, 'token'), METRICS_TOKEN: 'g'.repeat(20) }).join(), /not both/);
  } finally {
    rmSync(secretDir, { recursive: true, force: true });
  }
});

test('blank values count as unset (Compose passes unset variables as empty strings)', () => {
  const blank = Object.fromEntries(['PORT', 'CTLL_ISSUER_PORT', 'CTLL_SUBNET_PREFIX', 'CTLL_PROXY_IMAGE', 'METRICS_TOKEN', 'LOG_LEVEL', 'CTLL_FIREWALL', 'CTLL_KEEP_PROXIES_ON_EXIT', 'CORS_ORIGINS'].map((n) => [n, ' ']));
  assert.deepEqual(loadConfig(blank, []), loadConfig({}, []));
});

test('unknown flags are refused', () => {
  assert.deepEqual(problems({}, ['--prot', '1']).length, 1);
  assert.match(problems({}, ['--prot', '1'])[0]!, /--prot/);
});

describe('cluster settings (docs/scaling.md)', () => {
  const TLS = { CTLL_CLUSTER_TLS_CA: '/run/secrets/ca', CTLL_CLUSTER_TLS_CERT: '/run/secrets/cert', CTLL_CLUSTER_TLS_KEY: '/run/secrets/key' };
  test('none set: a single node, no cluster at all', () => {
    assert.equal(loadConfig({}, []).cluster, undefined);
  });

  test('a static list: this node named among them, listening on its own address', () => {
    const c = loadConfig({ ...TLS, CTLL_CLUSTER_MEMBERS: '10.0.0.2:8443, 10.0.0.3:8443', CTLL_NODE_ADDRESS: '10.0.0.3:8443' }, []).cluster;
    assert.deepEqual(c?.source, { kind: 'static', members: ['10.0.0.2:8443', '10.0.0.3:8443'] });
    assert.deepEqual(c?.listen, { host: '10.0.0.3', port: 8443 });
  });

  test('a Swarm service: resolved from DNS, listening on every interface at the cluster port', () => {
    const c = loadConfig({ ...TLS, CTLL_CLUSTER_SERVICE: 'ctll_api-backend', CTLL_CLUSTER_PORT: '9443' }, []).cluster;
    assert.deepEqual(c?.source, { kind: 'dns', service: 'ctll_api-backend', port: 9443, intervalMs: 5000 });
    assert.deepEqual(c?.listen, { host: '0.0.0.0', port: 9443 });
    assert.equal(c?.self, undefined);
  });

  test('what a cluster lacks is named: TLS files, this node, both sources, a node outside the list', () => {
    assert.match(problems({ CTLL_CLUSTER_SERVICE: 'api' }).join('\n'), /a cluster needs CTLL_CLUSTER_TLS_CA, CTLL_CLUSTER_TLS_CERT and CTLL_CLUSTER_TLS_KEY/);
    // Without CTLL_NODE_ADDRESS a list's node finds itself by its addresses, on CTLL_CLUSTER_PORT.
    const listed = loadConfig({ ...TLS, CTLL_CLUSTER_MEMBERS: '10.0.0.2:8443,10.0.0.3:8443' }, []).cluster;
    assert.deepEqual([listed?.self, listed?.listen], [undefined, { host: '0.0.0.0', port: 8443 }]);
    assert.match(problems({ ...TLS, CTLL_CLUSTER_MEMBERS: '10.0.0.2:8443,10.0.0.3:9443' }).join('\n'), /entry 10\.0\.0\.3:9443 does not use the port of CTLL_CLUSTER_PORT \(8443\)/);
    assert.match(problems({ ...TLS, CTLL_CLUSTER_MEMBERS: '10.0.0.2:8443', CTLL_NODE_ADDRESS: '10.0.0.9:8443' }).join('\n'), /CTLL_NODE_ADDRESS=10.0.0.9:8443 is not one of CTLL_CLUSTER_MEMBERS/);
    assert.match(problems({ ...TLS, CTLL_CLUSTER_MEMBERS: '10.0.0.2:8443', CTLL_CLUSTER_SERVICE: 'api', CTLL_NODE_ADDRESS: '10.0.0.2:8443' }).join('\n'), /not both/);
    assert.match(problems({ ...TLS, CTLL_CLUSTER_SERVICE: 'api', CTLL_NODE_ADDRESS: '10.0.0.2:9000' }).join('\n'), /must use the port of CTLL_CLUSTER_PORT \(8443\)/);
    assert.match(problems({ CTLL_CLUSTER_TLS_CA: '/ca' }).join('\n'), /apply to a cluster/);
    assert.match(problems({ ...TLS, CTLL_CLUSTER_SERVICE: 'api', CTLL_CLUSTER_DNS_SERVERS: 'dns.local:53' }).join('\n'), /CTLL_CLUSTER_DNS_SERVERS entry "dns.local:53" must be an IP address/);
    assert.deepEqual(loadConfig({ ...TLS, CTLL_CLUSTER_SERVICE: 'api', CTLL_CLUSTER_DNS_SERVERS: '127.0.0.11, 10.0.0.1:5353' }, []).cluster?.source, {
      kind: 'dns',
      service: 'api',
      port: 8443,
      intervalMs: 5000,
      servers: ['127.0.0.11', '10.0.0.1:5353'],
    });
  });

  test('peer probes: 1 s, 1 s, 3 misses unless told; nonsense refused, naming the variable', () => {
    const base = { ...TLS, CTLL_CLUSTER_SERVICE: 'api' };
    assert.deepEqual(loadConfig(base, []).cluster?.liveness, { intervalMs: 1000, timeoutMs: 1000, failures: 3 });
    assert.deepEqual(loadConfig({ ...base, CTLL_CLUSTER_PROBE_INTERVAL_MS: '2000', CTLL_CLUSTER_PROBE_TIMEOUT_MS: '500', CTLL_CLUSTER_PROBE_FAILURES: '5' }, []).cluster?.liveness, { intervalMs: 2000, timeoutMs: 500, failures: 5 });
    assert.match(problems({ ...base, CTLL_CLUSTER_PROBE_FAILURES: '0' }).join('\n'), /CTLL_CLUSTER_PROBE_FAILURES="0" must be a whole number from 1 to 100/);
    assert.match(problems({ ...base, CTLL_CLUSTER_PROBE_INTERVAL_MS: '10' }).join('\n'), /CTLL_CLUSTER_PROBE_INTERVAL_MS="10" must be a whole number from 100/);
    assert.match(problems({ ...base, CTLL_CLUSTER_PROBE_TIMEOUT_MS: '1.5' }).join('\n'), /CTLL_CLUSTER_PROBE_TIMEOUT_MS="1.5" must be a whole number/);
    assert.match(problems({ ...base, CTLL_CLUSTER_PROBE_TIMEOUT_MS: '3000' }).join('\n'), /CTLL_CLUSTER_PROBE_TIMEOUT_MS=3000 must not exceed CTLL_CLUSTER_PROBE_INTERVAL_MS=1000/);
  });

  test('edge routing: off unless CTLL_EDGE_PORT is set (0 picks a free port), nonsense refused', () => {
    assert.equal(loadConfig({}, []).edgePort, undefined);
    assert.equal(loadConfig({ CTLL_EDGE_PORT: '8081' }, []).edgePort, 8081);
    assert.equal(loadConfig({ CTLL_EDGE_PORT: '0' }, []).edgePort, 0);
    assert.match(problems({ CTLL_EDGE_PORT: '70000' }).join('\n'), /CTLL_EDGE_PORT="70000" must be a whole number from 0 to 65535/);
  });

  test('spares: two proxies started ahead unless told, 0 for none, nonsense refused', () => {
    assert.equal(loadConfig({}, []).proxySpares, 2);
    assert.equal(loadConfig({ CTLL_PROXY_SPARES: '0' }, []).proxySpares, 0);
    assert.match(problems({ CTLL_PROXY_SPARES: '-1' }).join('\n'), /CTLL_PROXY_SPARES="-1" must be a whole number from 0 to 100/);
    assert.match(problems({ CTLL_PROXY_SPARES: 'many' }).join('\n'), /CTLL_PROXY_SPARES="many" must be a whole number/);
  });

  test('the wait for the engine and the firewall at start: none unless told, in seconds, nonsense refused', () => {
    assert.equal(loadConfig({}, []).readyWaitMs, 0);
    assert.equal(loadConfig({ CTLL_READY_WAIT_SECONDS: '60' }, []).readyWaitMs, 60_000);
    assert.match(problems({ CTLL_READY_WAIT_SECONDS: '-1' }).join('\n'), /CTLL_READY_WAIT_SECONDS="-1" must be a whole number from 0 to 3600/);
    assert.match(problems({ CTLL_READY_WAIT_SECONDS: '1m' }).join('\n'), /CTLL_READY_WAIT_SECONDS="1m" must be a whole number/);
  });
});
