/**
 * The cloud server's guards at its edge (issue 13, findings 6 and 8): failed authentications
 * limited per address with one audit line per address and window, duplicate credentials refused,
 * /metrics closed unless a token is set, a server-wide proxy cap and a per-user start rate, and
 * /ollama/* reaching Ollama's API only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState } from '../tunnel/harness.js';
import { bearer, raw, startCloud, type Cloud } from './cloud-harness.js';

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

describe('failed authentications per address', () => {
  let cloud: Cloud;
  before(async () => {
    cloud = await startCloud({ env: { CTLL_AUTH_FAILURE_LIMIT: '5', CTLL_AUTH_FAILURE_WINDOW_MS: '3600000', CTLL_TRUST_PROXY: '1' } });
  });
  after(() => cloud.close());

  test('past the limit an address gets 429 with Retry-After, and the audit log one line for the window', async () => {
    const from = { 'x-real-ip': '203.0.113.7' };
    for (let i = 0; i < 5; i++) {
      assert.equal((await get(`${cloud.url}/ollama/api/tags`, { ...from, authorization: 'Bearer not.a.jwt' })).status, 401);
    }
    const auditBefore = cloud.audit.entries.filter((e) => e.action === 'auth.failure').length;
    for (let i = 0; i < 1000; i++) {
      const r = await get(`${cloud.url}/${i % 2 ? 'ollama/api/tags' : 'api/proxy/status'}`, { ...from, authorization: 'Bearer not.a.jwt' });
      assert.equal(r.status, 429);
      assert.ok(Number(r.headers['retry-after']) > 0, 'Retry-After says when');
      if (i === 0) assert.match((JSON.parse(r.body) as { error: string }).error, /too many failed authentications/);
    }
    assert.equal(cloud.audit.entries.filter((e) => e.action === 'auth.failure').length, auditBefore, 'no audit line per request');
    // Another address is not affected (nginx sets X-Real-IP; the peer is loopback, so it is believed).
    assert.equal((await get(`${cloud.url}/ollama/api/tags`, { 'x-real-ip': '198.51.100.1', authorization: 'Bearer not.a.jwt' })).status, 401);
    // A good token from the blocked address waits too: its tokens are not even checked.
    const token = await cloud.signIn('carol');
    assert.equal((await get(`${cloud.url}/api/proxy/status`, { ...from, ...bearer(token) })).status, 429);
    assert.equal((await get(`${cloud.url}/api/proxy/status`, { ...bearer(token) })).status, 200);
    cloud.server.api.authFailures.flush(true);
    const lines = cloud.audit.entries.filter((e) => e.action === 'auth.failure' && e.address === '203.0.113.7');
    assert.equal(lines.length, 1, 'one aggregated line for the address and window');
    assert.equal(lines[0]!.count, 5);
    assert.equal(lines[0]!.limited, 1001);
    assert.deepEqual(lines[0]!.reasons, { malformed: 5 });
    assert.equal(lines[0]!.route, 'api,ollama');
  });

  test('the bridge route is limited the same way', async () => {
    const from = { 'x-real-ip': '203.0.113.8' };
    for (let i = 0; i < 5; i++) assert.match(await raw(Number(new URL(cloud.url).port), upgradeRequest('x.y.z', from)), /^HTTP\/1\.1 401/);
    const answer = await raw(Number(new URL(cloud.url).port), upgradeRequest('x.y.z', from));
    assert.match(answer, /^HTTP\/1\.1 429/);
    assert.match(answer, /\r\nRetry-After: \d+\r\n/i);
  });

  test('two Authorization headers: 400, whichever comes first', async () => {
    const token = await cloud.signIn('dave');
    const port = Number(new URL(cloud.url).port);
    for (const [first, second] of [[token, 'garbage'], ['garbage', token], [token, token]]) {
      const answer = await raw(port, `GET /api/proxy/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${first}\r\nAuthorization: Bearer ${second}\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 400/);
      assert.match(answer, /2 Authorization headers; send exactly one/);
    }
    const upgrade = await raw(port, upgradeRequest(token, {}, `Authorization: Bearer ${token}\r\n`));
    assert.match(upgrade, /^HTTP\/1\.1 400/);
  });
});

function upgradeRequest(token: string, headers: Record<string, string>, extra = ''): string {
  return (
    `GET /ws/bridge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n${extra}Connection: Upgrade\r\nUpgrade: websocket\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Protocol: cloudtolocalllm.tunnel.v1\r\n' +
    Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
    '\r\n'
  );
}

describe('X-Real-IP is believed only when told to', () => {
  let cloud: Cloud;
  before(async () => {
    cloud = await startCloud({ env: { CTLL_AUTH_FAILURE_LIMIT: '3' } });
  });
  after(() => cloud.close());

  test('without CTLL_TRUST_PROXY a client cannot dodge the limit by inventing addresses', async () => {
    for (let i = 0; i < 3; i++) await get(`${cloud.url}/api/proxy/status`, { 'x-real-ip': `192.0.2.${i}`, authorization: 'Bearer a.b.c' });
    assert.equal((await get(`${cloud.url}/api/proxy/status`, { 'x-real-ip': '192.0.2.99', authorization: 'Bearer a.b.c' })).status, 429);
  });
});

describe('/metrics in the deployed stack', () => {
  test('CTLL_METRICS_REQUIRE_TOKEN without METRICS_TOKEN: refused, never public', async () => {
    const cloud = await startCloud({ env: { CTLL_METRICS_REQUIRE_TOKEN: '1' } });
    try {
      const r = await get(`${cloud.url}/metrics`);
      assert.equal(r.status, 403);
      assert.match(r.body, /METRICS_TOKEN/);
    } finally {
      await cloud.close();
    }
  });

  test('with METRICS_TOKEN: only with the token', async () => {
    const cloud = await startCloud({ env: { CTLL_METRICS_REQUIRE_TOKEN: '1', METRICS_TOKEN: 'operator-secret-123' } });
    try {
      assert.equal((await get(`${cloud.url}/metrics`)).status, 401);
      assert.equal((await get(`${cloud.url}/metrics`, { authorization: 'Bearer wrong' })).status, 401);
      const ok = await get(`${cloud.url}/metrics`, { authorization: 'Bearer operator-secret-123' });
      assert.equal(ok.status, 200);
      assert.match(ok.body, /^ctll_proxies_max \d+/m);
    } finally {
      await cloud.close();
    }
  });
});

describe('proxy cap and start rate', () => {
  test('CTLL_MAX_PROXIES: the next user gets 503 saying why, and the refusal is counted', async () => {
    const cloud = await startCloud({ env: { CTLL_MAX_PROXIES: '2' } });
    try {
      const tokens = await Promise.all(['u1', 'u2', 'u3'].map((u) => cloud.signIn(u)));
      for (const t of tokens.slice(0, 2)) assert.equal((await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(t) })).status, 201);
      const refused = await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(tokens[2]!) });
      assert.equal(refused.status, 503);
      assert.ok(Number(refused.headers.get('retry-after')) > 0);
      assert.match(((await refused.json()) as { error: string }).error, /maximum of 2 proxies \(CTLL_MAX_PROXIES\)/);
      const metrics = await (await fetch(`${cloud.url}/metrics`)).text();
      assert.match(metrics, /ctll_limit_refusals_total\{limit="proxies"\} 1/);
      assert.match(metrics, /ctll_proxies_max 2/);
      // A bridge of that user hears the same.
      const emulator = new OllamaEmulator();
      await emulator.start();
      const bridge = cloud.bridge(tokens[2]!, emulator.url);
      bridge.start();
      const status = await waitForState(bridge, 'error');
      assert.match(status.reason ?? '', /maximum of 2 proxies/);
      await bridge.stop();
      await emulator.close();
    } finally {
      await cloud.close();
    }
  });

  test('CTLL_PROXY_STARTS_PER_MINUTE: a user starting and stopping too often gets 429', async () => {
    const cloud = await startCloud({ env: { CTLL_PROXY_STARTS_PER_MINUTE: '3' } });
    try {
      const token = await cloud.signIn('churner');
      for (let i = 0; i < 3; i++) {
        assert.equal((await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) })).status, 201);
        assert.equal((await fetch(`${cloud.url}/api/proxy/stop`, { method: 'POST', headers: bearer(token) })).status, 200);
      }
      const refused = await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) });
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      assert.match(((await refused.json()) as { error: string }).error, /started 3 times in the last minute \(limit 3\)/);
      // Another user is not affected.
      assert.equal((await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(await cloud.signIn('calm')) })).status, 201);
    } finally {
      await cloud.close();
    }
  });
});

describe('/ollama/* is the Ollama API only', () => {
  let cloud: Cloud;
  let emulator: OllamaEmulator;
  let token: string;
  before(async () => {
    emulator = new OllamaEmulator();
    await emulator.start();
    cloud = await startCloud();
    token = await cloud.signIn('erin');
    const bridge = cloud.bridge(token, emulator.url);
    bridge.start();
    await waitForState(bridge, 'connected');
  });
  after(async () => {
    await cloud.close();
    await emulator.close();
  });

  test("the proxy's own /health, /metrics and /bridge do not answer through /ollama", async () => {
    for (const path of ['/ollama/health', '/ollama/metrics', '/ollama/bridge', '/ollama/health?x=1']) {
      const r = await get(`${cloud.url}${path}`, bearer(token));
      assert.equal(r.status, 404, path);
      assert.match((JSON.parse(r.body) as { error: string }).error, /not part of the Ollama API/, path);
      assert.doesNotMatch(r.body, /bridgeConnected|ctll_proxy/, `${path} shows nothing of the proxy`);
    }
    assert.equal((await get(`${cloud.url}/ollama/api/version`, bearer(token))).status, 200);
  });
});

describe("the proxy's own refusals keep their headers through the api-backend", () => {
  test('a running proxy without a bridge: 503 with Retry-After and the refusal code', async () => {
    const cloud = await startCloud();
    try {
      const token = await cloud.signIn('bridgeless');
      assert.equal((await fetch(`${cloud.url}/api/proxy/start`, { method: 'POST', headers: bearer(token) })).status, 201);
      const r = await get(`${cloud.url}/ollama/api/tags`, bearer(token));
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '5');
      assert.equal(r.headers['x-cloudtolocalllm-refusal'], 'no-bridge');
      assert.match((JSON.parse(r.body) as { error: string }).error, /not connected/);
    } finally {
      await cloud.close();
    }
  });
});
