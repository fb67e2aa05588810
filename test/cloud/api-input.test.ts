/** Bad input on every endpoint of the cloud server: a clear 4xx, never a crash. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { bearer, raw, startCloud, type Cloud } from './cloud-harness.js';

describe('bad input on the cloud server', () => {
  let cloud: Cloud;
  let token: string;
  before(async () => {
    cloud = await startCloud({ env: { CTLL_RATE_PER_SECOND: '1', CTLL_RATE_BURST: '40', CORS_ORIGINS: 'https://app.example.com' } });
    token = await cloud.signIn('carol');
  });
  after(() => cloud.close());

  const call = (method: string, path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${cloud.url}${path}`, { method, ...init, headers: { ...bearer(token), ...(init.headers as Record<string, string>) } });

  test('malformed JSON, non-objects and wrong content types on start are 4xx with the reason', async () => {
    for (const [body, type, status, pattern] of [
      ['{"oops": ', 'application/json', 400, /not valid JSON/],
      ['[1,2]', 'application/json', 400, /JSON object/],
      ['hello', 'text/plain', 415, /send JSON/],
    ] as const) {
      const res = await call('POST', '/api/proxy/start', { body, headers: { 'content-type': type } });
      assert.equal(res.status, status, body);
      assert.match(((await res.json()) as { error: string }).error, pattern);
    }
  });

  test('a huge body on the API is refused with 413', async () => {
    const res = await call('POST', '/api/proxy/start', { body: JSON.stringify({ x: 'a'.repeat(1 << 20) }), headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 413);
    assert.match(((await res.json()) as { error: string }).error, /at most 16384/);
  });

  test('wrong methods get 405 with Allow, unknown paths 404', async () => {
    for (const [method, path, allow] of [
      ['GET', '/api/proxy/start', 'POST'],
      ['DELETE', '/api/proxy/stop', 'POST'],
      ['POST', '/api/proxy/status', 'GET'],
      ['POST', '/health', 'GET, HEAD'],
    ] as const) {
      const res = await call(method, path);
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), allow);
    }
    assert.equal((await call('GET', '/api/proxy/nope')).status, 404);
    assert.equal((await call('GET', '/nothing-here')).status, 404);
  });

  test('huge headers and non-HTTP bytes get JSON errors, and the server keeps serving', async () => {
    const port = Number(new URL(cloud.url).port);
    const big = await raw(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 431/);
    assert.match(big, /larger than the limit/);
    const junk = await raw(port, Buffer.from([0, 1, 2, 3, 255, 254, 10, 13, 10, 13]));
    assert.match(junk, /^HTTP\/1\.1 400/);
    assert.equal((await fetch(`${cloud.url}/health`)).status, 200);
  });

  test('CORS: an allowed origin gets its preflight answered, another is refused', async () => {
    const ok = await fetch(`${cloud.url}/ollama/api/chat`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, x-stainless-os' },
    });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example.com');
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /x-stainless-os/);
    const bad = await fetch(`${cloud.url}/ollama/api/chat`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(bad.status, 403);
    const status = await call('GET', '/api/proxy/status', { headers: { origin: 'https://app.example.com' } });
    assert.equal(status.headers.get('access-control-allow-origin'), 'https://app.example.com');
  });

  test('the request rate limit answers 429 with Retry-After and says the limit', async () => {
    let limited: Response | undefined;
    for (let i = 0; i < 60 && !limited; i++) {
      const res = await call('GET', '/api/proxy/status');
      if (res.status === 429) limited = res;
      else await res.arrayBuffer();
    }
    assert.ok(limited, 'the 41st request in a burst is refused');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.match(((await limited.json()) as { error: string }).error, /1 per second \(bursts of 40\)/);
  });
});
