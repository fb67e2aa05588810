/**
 * The cloud server's two entry points, HTTP requests and WebSocket upgrades, under random input
 * (issue 13: the bridge and the proxy must never break on anything they are sent; the gateway
 * in front of them neither). Every request gets an HTTP answer, the server lives, and every
 * slot it took comes back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fc from 'fast-check';
import { subprotocolFor, TUNNEL_PROTOCOL_VERSION } from '@cloudtolocalllm/bridge/connection/protocol';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { raw, startCloud, type Cloud } from './cloud-harness.js';

export const GATEWAY_HTTP_RUNS = 300;
export const GATEWAY_UPGRADE_RUNS = 150;
export const GATEWAY_SEED = 4242;

describe('the gateway under random input', () => {
  let cloud: Cloud;
  let emulator: OllamaEmulator;
  let token: string;
  let port: number;
  const crashes: Error[] = [];
  const onCrash = (e: Error): void => void crashes.push(e);

  before(async () => {
    process.on('uncaughtException', onCrash);
    emulator = new OllamaEmulator({ tokenIntervalMs: 0, defaultTokens: 2 });
    await emulator.start();
    // Random bad tokens by the hundred from one address; the per-address limit has its own test.
    cloud = await startCloud({ env: { CTLL_AUTH_FAILURE_LIMIT: '1000000', CTLL_RATE_BURST: '100000', CTLL_RATE_PER_SECOND: '100000' } });
    port = Number(new URL(cloud.url).port);
    token = await cloud.signIn('fuzzed');
    const bridge = cloud.bridge(token, emulator.url, { policy: { allowManagement: new Set(['copy']) } });
    bridge.start();
    await waitForState(bridge, 'connected');
  });
  after(async () => {
    process.off('uncaughtException', onCrash);
    await cloud.close();
    await emulator.close();
  });

  const PATHS = ['/ollama/api/tags', '/ollama/api/chat', '/ollama/api/generate', '/ollama/api/delete', '/ollama/api/copy', '/ollama/v1/models',
    '/ollama/health', '/ollama/metrics', '/ollama', '/ollama/', '/api/proxy/start', '/api/proxy/stop', '/api/proxy/status', '/api/tunnel/renew',
    '/api/config', '/health', '/metrics', '/ws/bridge', '/app/', '/docs/', '/', '/ollama/api/%2e%2e/x', '/ollama//api/tags', '*', 'http://x/y'];
  const token$ = (): fc.Arbitrary<string> =>
    fc.oneof(fc.constant(`Bearer ${token}`), fc.constant('Bearer not.a.jwt'), fc.constant('Basic dXNlcjpwdw=='), fc.stringMatching(/^[\x21-\x7e]{0,40}$/));
  const headerArb = fc.array(fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/), fc.stringMatching(/^[\x20-\x7e]{0,30}$/)), { maxLength: 4 });
  const bodyArb = fc.option(fc.oneof(fc.json(), fc.string({ maxLength: 300 })), { nil: undefined });

  function request(method: string, path: string, headers: Array<[string, string]>, body: string | undefined): string {
    const payload = body === undefined ? '' : body;
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: cloud.example', ...headers.map(([n, v]) => `${n}: ${v}`)];
    if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(payload)}`);
    lines.push('Connection: close');
    return `${lines.join('\r\n')}\r\n\r\n${payload}`;
  }

  async function alive(): Promise<void> {
    assert.deepEqual(crashes.map(String), [], 'nothing crashed');
    assert.equal((await fetch(`${cloud.url}/health`)).status, 200, 'the server still answers');
  }

  test(`HTTP: every request is answered (${GATEWAY_HTTP_RUNS} runs, seed ${GATEWAY_SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE', 'PUT', 'OPTIONS', 'PATCH'), fc.stringMatching(/^[A-Z]{1,7}$/)),
        fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PATHS) }, { weight: 1, arbitrary: fc.webPath().map((p) => `/ollama${p.startsWith('/') ? p : `/${p}`}`) }),
        fc.array(token$(), { maxLength: 2 }),
        headerArb,
        bodyArb,
        async (method, path, auths, headers, body) => {
          const all: Array<[string, string]> = [...auths.map((a) => ['Authorization', a] as [string, string]), ...headers.filter(([n]) => !/^(content-length|transfer-encoding|connection|host|upgrade)$/i.test(n))];
          const answer = await raw(port, request(method, path, all, body), 10_000);
          const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? 0);
          assert.ok(status >= 100 && status <= 599, `${method} ${path}: an HTTP answer, got ${JSON.stringify(answer.slice(0, 120))}`);
          // Two credentials are never resolved first-wins on a route that reads them: refused (400), or
          // refused earlier for another reason (405 before any credential is looked at), never a success.
          const authenticated = /^\/(ollama|api\/proxy\/|api\/tunnel\/)/.test(path);
          if (auths.length > 1 && authenticated) assert.ok(status >= 400, `two Authorization headers must not succeed (${status})`);
        },
      ),
      { numRuns: GATEWAY_HTTP_RUNS, seed: GATEWAY_SEED, endOnFailure: true },
    );
    await alive();
    await waitUntil(() => cloud.server.api.limits.inUse('request') === 0, 'every request slot came back');
  });

  test(`upgrades: every upgrade is answered or accepted (${GATEWAY_UPGRADE_RUNS} runs, seed ${GATEWAY_SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/ws/bridge', '/ws/bridge?x=1', '/bridge', '/ollama/api/tags', '/', '/ws/bridge/'),
        fc.option(token$(), { nil: undefined }),
        fc.oneof(fc.constant(subprotocolFor(TUNNEL_PROTOCOL_VERSION)), fc.constant(subprotocolFor(TUNNEL_PROTOCOL_VERSION + 1)), fc.stringMatching(/^[a-z0-9.]{0,20}$/)),
        fc.constantFrom('13', '8', '', 'abc'),
        fc.constantFrom('MDEyMzQ1Njc4OWFiY2RlZg==', '', 'short'),
        fc.boolean(),
        async (path, auth, protocol, version, key, dropEarly) => {
          const headers: Array<[string, string]> = [
            ['Connection', 'Upgrade'],
            ['Upgrade', 'websocket'],
            ['Sec-WebSocket-Version', version],
            ['Sec-WebSocket-Key', key],
            ['Sec-WebSocket-Protocol', protocol],
            ...(auth ? [['Authorization', auth] as [string, string]] : []),
          ];
          const text = `GET ${path} HTTP/1.1\r\nHost: x\r\n${headers.map(([n, v]) => `${n}: ${v}`).join('\r\n')}\r\n\r\n`;
          if (dropEarly) {
            // Gone before any answer: nothing may be kept for it.
            const s = net.connect(port, '127.0.0.1');
            await new Promise<void>((r) => s.on('connect', r));
            s.end(text);
            s.destroy();
            return;
          }
          const answer = await raw(port, text, 10_000);
          const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? 0);
          assert.ok(status >= 101 && status <= 599, `${path}: an HTTP answer, got ${JSON.stringify(answer.slice(0, 120))}`);
        },
      ),
      { numRuns: GATEWAY_UPGRADE_RUNS, seed: GATEWAY_SEED, endOnFailure: true },
    );
    await alive();
    // Accepted random upgrades were spliced to the proxy and then dropped: all of their slots come back.
    await waitUntil(() => cloud.server.api.limits.inUse('bridge') <= 1, 'every bridge slot but the real bridge\'s came back', 15_000);
  });
});
