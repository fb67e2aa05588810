/**
 * Who can reach what: JWT attacks on every route family, and users who try to reach another
 * user's proxy or bridge through paths and header tricks.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, decodeProtectedHeader } from 'jose';
import WebSocket from 'ws';
import { subprotocolFor, TUNNEL_PROTOCOL_VERSION } from '@cloudtolocalllm/bridge/connection/protocol';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { bearer, startCloud, type Cloud } from './cloud-harness.js';

const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('authentication and isolation on the cloud server', () => {
  let cloud: Cloud;
  let emuA: OllamaEmulator;
  let emuB: OllamaEmulator;
  let tokenA: string;
  let tokenB: string;
  before(async () => {
    emuA = new OllamaEmulator();
    emuB = new OllamaEmulator();
    await Promise.all([emuA.start(), emuB.start()]);
    // Dozens of forged tokens from one address in a row: above the per-address failure limit.
    cloud = await startCloud({ env: { CTLL_AUTH_FAILURE_LIMIT: '10000' } });
    [tokenA, tokenB] = await Promise.all([cloud.signIn('alice'), cloud.signIn('bob')]);
    const bridgeA = cloud.bridge(tokenA, emuA.url);
    const bridgeB = cloud.bridge(tokenB, emuB.url);
    bridgeA.start();
    bridgeB.start();
    await Promise.all([waitForState(bridgeA, 'connected'), waitForState(bridgeB, 'connected')]);
    await waitUntil(() => cloud.server.manager.view('alice').bridgeConnected && cloud.server.manager.view('bob').bridgeConnected, 'both bridges are in');
  });
  after(async () => {
    await cloud.close();
    await Promise.all([emuA.close(), emuB.close()]);
  });

  async function forgedTokens(): Promise<Record<string, string>> {
    const issuer = cloud.server.issuer;
    const audience = cloud.server.audience;
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'alice', iss: issuer, aud: audience, iat: now, exp: now + 600 };
    const foreign = await generateKeyPair('RS256');
    const realKid = decodeProtectedHeader(tokenA).kid ?? 'unknown';
    const sign = (payload: object, key = foreign.privateKey, kid = 'foreign-key') =>
      new SignJWT({ ...payload }).setProtectedHeader({ alg: 'RS256', kid }).sign(key);
    const jwks = (await (await fetch(`${issuer}/jwks`).catch(() => fetch(`${issuer}/.well-known/jwks.json`))).json()) as { keys: object[] };
    const publicJwk = JSON.stringify(jwks.keys[0] ?? (await exportJWK(foreign.publicKey)));
    const hmac = new TextEncoder().encode(publicJwk);
    return {
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
      'HS256 with the public key as secret': await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', kid: realKid }).sign(hmac),
      'another issuer\'s key': await sign(claims),
      'a swapped kid': await sign(claims, foreign.privateKey, realKid),
      malformed: 'not.a.jwt',
      garbage: 'x'.repeat(40),
      'a token for another audience, from another key': await sign({ ...claims, aud: 'https://other.example/api' }),
    };
  }

  test('every forged or broken token is refused with 401 and WWW-Authenticate on every route', async () => {
    const forged = await forgedTokens();
    const routes: Array<[string, string]> = [
      ['GET', '/api/proxy/status'],
      ['POST', '/api/proxy/start'],
      ['POST', '/api/proxy/stop'],
      ['GET', '/ollama/api/tags'],
      ['POST', '/ollama/v1/chat/completions'],
    ];
    const seenA = emuA.requests.length;
    for (const [name, token] of Object.entries(forged)) {
      for (const [method, path] of routes) {
        const res = await fetch(`${cloud.url}${path}`, { method, headers: bearer(token) });
        assert.equal(res.status, 401, `${name} on ${method} ${path}`);
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="CloudToLocalLLM", error="invalid_token"/, name);
        const body = (await res.json()) as { error: string | { message: string; type: string } };
        // OpenAI's error shape on /v1 (as Ollama answers there), Ollama's elsewhere.
        const message = path.startsWith('/ollama/v1/') ? (body.error as { message: string }).message : (body.error as string);
        assert.equal(typeof message, 'string', `${name} on ${path}: the shape of that API`);
        assert.ok(message.length > 10, `${name}: the refusal explains itself`);
        if (token.length >= 40) assert.ok(!message.includes(token.slice(10, 40)), 'the refusal does not echo the token');
      }
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`${cloud.url.replace('http', 'ws')}/ws/bridge`, [subprotocolFor(TUNNEL_PROTOCOL_VERSION)], { headers: bearer(token) });
        ws.on('unexpected-response', (_q, r) => resolve(r.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => undefined);
      });
      assert.equal(status, 401, `${name} on the bridge route`);
    }
    assert.equal(emuA.requests.length, seenA, 'nothing reached alice\'s Ollama');
    const metrics = await (await fetch(`${cloud.url}/metrics`)).text();
    for (const reason of ['algorithm', 'signature', 'unknown-key', 'malformed']) {
      assert.match(metrics, new RegExp(`ctll_auth_failures_total\\{reason="${reason}"\\} [1-9]`), `auth failures counted by reason ${reason}`);
      // And by route: the JSON API, Ollama's API and the bridge's WebSocket each counted theirs.
      for (const route of ['api', 'ollama', 'bridge']) {
        assert.match(metrics, new RegExp(`ctll_auth_total\\{route="${route}",outcome="${reason}"\\} [1-9]`), `auth outcome ${reason} counted on route ${route}`);
      }
    }
    // One audit line for the address and window, naming every route family that was refused.
    cloud.server.api.authFailures.flush(true);
    const line = cloud.audit.entries.find((e) => e.action === 'auth.failure' && e.address === '127.0.0.1');
    assert.equal(line?.route, 'api,bridge,ollama');
    assert.ok((line?.count ?? 0) >= Object.keys(forged).length * 6);
  });

  test('no token at all: 401 with a plain challenge', async () => {
    const res = await fetch(`${cloud.url}/ollama/api/tags`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="CloudToLocalLLM"');
  });

  test('each user reaches their own Ollama only, whatever the path or header tricks', async () => {
    const seenB = emuB.requests.length;
    const tricks: Array<[string, Record<string, string>]> = [
      ['/ollama/api/version', {}],
      ['/ollama/api/version?user=bob', {}],
      [`/ollama/api/version?proxy=${userHash('bob')}`, {}],
      ['/ollama/api/version', { 'x-forwarded-user': 'bob', 'x-user': 'bob', 'x-cloudtolocalllm-user': userHash('bob') }],
      ['/ollama/api/version', { host: 'bob.cloud.example', 'x-forwarded-host': 'bob.cloud.example' }],
      ['/ollama/api/version', { cookie: 'user=bob' }],
    ];
    for (const [path, headers] of tricks) {
      const res = await fetch(`${cloud.url}${path}`, { headers: { ...bearer(tokenA), ...headers } });
      assert.equal(res.status, 200, `${path} ${JSON.stringify(headers)}`);
    }
    // Raw requests for what fetch would normalise away.
    for (const path of ['/ollama/../ollama/api/version', `/ollama/%2e%2e/${userHash('bob')}/api/version`, '/ollama//api/version']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${cloud.url}${'/'}`, { path, headers: bearer(tokenA) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.ok(status >= 400, `${path} is refused (${status})`);
    }
    assert.equal(emuB.requests.length, seenB, 'not one of alice\'s requests reached bob\'s Ollama');
    assert.ok(emuA.requests.length > 0);
    // Successes are counted next to the failures, by route: the six accepted requests above at least.
    const ok = Number(/^ctll_auth_total\{route="ollama",outcome="ok"\} (\d+)$/m.exec(await (await fetch(`${cloud.url}/metrics`)).text())?.[1]);
    assert.ok(ok >= tricks.length, `ollama successes counted (${ok})`);
  });

  test('a second Authorization header cannot smuggle another user in', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${cloud.url}/ollama/api/version`, { headers: [['authorization', `Bearer ${tokenA}`], ['authorization', `Bearer ${tokenB}`]] as unknown as http.OutgoingHttpHeaders });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    // Node joins duplicate Authorization headers: the result is not a valid bearer token.
    assert.ok(status === 401 || status === 400, `got ${status}`);
  });

  test('a bridge signed in as alice serves alice only, even when bob\'s bridge is down', async () => {
    const seenA = emuA.requests.length;
    await fetch(`${cloud.url}/api/proxy/stop`, { method: 'POST', headers: bearer(tokenB) });
    const res = await fetch(`${cloud.url}/ollama/api/tags`, { headers: bearer(tokenB) });
    assert.equal(res.status, 503, 'bob gets "not connected", never alice\'s models');
    assert.equal(emuA.requests.length, seenA);
  });
});

describe('the issuer\'s keys unreachable', () => {
  let cloud: Cloud;
  let issuer: string;
  before(async () => {
    // An Auth0-style issuer on a loopback port nothing listens on: its JWKS cannot be fetched.
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(closed.address() as { port: number }).port}/`;
    await new Promise((r) => closed.close(r));
    cloud = await startCloud({ env: { AUTH0_DOMAIN: issuer, AUTH0_AUDIENCE: 'https://api.test', AUTH0_DESKTOP_CLIENT_ID: 'desktop-test' } });
  });
  after(() => cloud.close());

  test('every route answers 503 (with Retry-After: 5 on HTTP), not 401: the token may well be good', async () => {
    const key = await generateKeyPair('RS256');
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg: 'RS256', kid: 'some-key' })
      .setIssuer(issuer)
      .setAudience('https://api.test')
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(key.privateKey);
    const expected = "sign-in cannot be checked right now: the issuer's signing keys could not be fetched; try again shortly";
    for (const [method, path] of [
      ['GET', '/api/proxy/status'],
      ['POST', '/api/proxy/start'],
      ['GET', '/ollama/api/tags'],
    ] as const) {
      const res = await fetch(`${cloud.url}${path}`, { method, headers: bearer(token) });
      assert.equal(res.status, 503, `${method} ${path}`);
      assert.equal(res.headers.get('retry-after'), '5', `${method} ${path}`);
      assert.deepEqual(await res.json(), { error: expected }, `${method} ${path}`);
    }
    const bridge = cloud.bridge(token, 'http://127.0.0.1:1');
    bridge.start();
    const status = await waitForState(bridge, 'error', 30_000);
    await bridge.stop();
    assert.equal(status.code, 'refused');
    assert.match(status.reason ?? '', /^the proxy refused the connection \(HTTP 503\): /);
    assert.ok((status.retryInMs ?? 0) > 0, 'the bridge retries: the keys may be back soon');
    const metrics = await (await fetch(`${cloud.url}/metrics`)).text();
    assert.match(metrics, /ctll_auth_failures_total\{reason="jwks-unavailable"\} 4/);
  });
});
