import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allowedOrigins, DEFAULT_ALLOWED_ORIGINS, OriginPolicy } from './origin-check.js';

describe('OriginPolicy with Ollama defaults', () => {
  const policy = new OriginPolicy(allowedOrigins());
  const host = '127.0.0.1:11434';

  const allowed = [
    'http://localhost', 'https://localhost', 'http://localhost:3000', 'https://localhost:8443',
    'http://127.0.0.1', 'http://127.0.0.1:5173', 'http://0.0.0.0:8080', 'https://0.0.0.0',
    'app://obsidian.md', 'file://', 'tauri://localhost', 'vscode-webview://1234abcd', 'vscode-file://vscode-app',
  ];
  const forbidden = [
    'https://cloud.example.com', 'http://evil.com', 'http://localhost.evil.com', 'http://127.0.0.2:3000',
    'http://[::1]:3000', 'chrome-extension://abcdef', 'null', 'HTTP://LOCALHOST', 'ws://localhost:3000',
  ];
  for (const origin of allowed) {
    it(`allows Origin ${origin}`, () => assert.equal(policy.evaluate(origin, host, 'POST').kind, 'allowed'));
  }
  for (const origin of forbidden) {
    it(`forbids Origin ${origin}`, () => assert.equal(policy.evaluate(origin, host, 'POST').kind, 'forbidden'));
  }

  it('treats no Origin, and an Origin equal to http(s)://Host, as not CORS at all', () => {
    assert.equal(policy.evaluate(undefined, host, 'GET').kind, 'not-cors');
    assert.equal(policy.evaluate('', host, 'GET').kind, 'not-cors');
    assert.equal(policy.evaluate('http://cloud.example.com', 'cloud.example.com', 'GET').kind, 'not-cors');
    assert.equal(policy.evaluate('https://cloud.example.com', 'cloud.example.com', 'GET').kind, 'not-cors');
  });

  it('gives a normal request the origin back and Vary: Origin', () => {
    const v = policy.evaluate('http://localhost:3000', host, 'GET');
    assert.deepEqual(v, { kind: 'allowed', preflight: false, headers: { 'Access-Control-Allow-Origin': 'http://localhost:3000', Vary: 'Origin' } });
  });

  it('answers a preflight with methods, headers and max age', () => {
    const v = policy.evaluate('http://localhost:3000', host, 'OPTIONS');
    assert.equal(v.kind, 'allowed');
    assert.ok(v.kind === 'allowed' && v.preflight);
    if (v.kind !== 'allowed') return;
    assert.equal(v.headers['Access-Control-Allow-Origin'], 'http://localhost:3000');
    assert.equal(v.headers['Access-Control-Allow-Methods'], 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS');
    assert.match(String(v.headers['Access-Control-Allow-Headers']), /Authorization,Content-Type,.*X-Stainless-Timeout/);
    assert.equal(v.headers['Access-Control-Max-Age'], '43200');
  });
});

describe('OriginPolicy with OLLAMA_ORIGINS-style extras', () => {
  it('adds exact and wildcard origins to the defaults', () => {
    const policy = new OriginPolicy(allowedOrigins(['https://App.Example.com', 'chrome-extension://*', 'https://*.example.org']));
    assert.equal(policy.isAllowed('https://app.example.com'), true); // configured origins are lower-cased
    assert.equal(policy.isAllowed('chrome-extension://abc'), true);
    assert.equal(policy.isAllowed('https://a.b.example.org'), true);
    assert.equal(policy.isAllowed('https://example.org'), false);
    assert.equal(policy.isAllowed('http://localhost:1'), true);
    assert.equal(DEFAULT_ALLOWED_ORIGINS.length, 17);
  });

  it('allows every origin with "*" and answers Access-Control-Allow-Origin: *', () => {
    const v = new OriginPolicy(allowedOrigins(['*'])).evaluate('https://anything.example', 'x', 'GET');
    assert.deepEqual(v, { kind: 'allowed', preflight: false, headers: { 'Access-Control-Allow-Origin': '*' } });
  });

  it('rejects a pattern with two wildcards, as gin-contrib/cors does', () => {
    assert.throws(() => new OriginPolicy(['https://*.*.example.com']), /only one \*/);
  });
});
