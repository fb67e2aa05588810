/**
 * Every method's body crosses the tunnel whole (issue 13, finding 4: the relay opened DELETE's
 * HTTP/2 stream with END_STREAM, so /api/delete never got its JSON body and the user saw a 502).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { Ollama } from 'ollama';
import { dialTunnel, type TunnelConnection } from '@cloudtolocalllm/bridge/connection/tunnel-dialer';
import { BRIDGE_PATH, COMPLETE_TRAILER } from '@cloudtolocalllm/bridge/connection/protocol';
import { StaticTokenAuthenticator } from '@cloudtolocalllm/server/proxy/auth';
import { StreamingProxy } from '@cloudtolocalllm/server/proxy/streaming-proxy';
import { bearer, startCloud, type Cloud } from '../cloud/cloud-harness.js';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { FAST_HEARTBEAT, startStack, waitForState, waitUntil, type Stack } from './harness.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('request bodies of every method reach the bridge', () => {
  let proxy: StreamingProxy;
  let url: string;
  let tunnel: TunnelConnection;
  const token = randomBytes(24).toString('base64url');
  /** What the bridge received, request by request. */
  const seen: Array<{ method: string; length: number; sha: string }> = [];

  before(async () => {
    proxy = new StreamingProxy({ authenticator: new StaticTokenAuthenticator('u', token), heartbeat: FAST_HEARTBEAT });
    url = await proxy.listen();
    // A bridge that tells what it received, instead of relaying to Ollama.
    tunnel = await dialTunnel({
      proxyUrl: url + BRIDGE_PATH,
      token,
      heartbeat: FAST_HEARTBEAT,
      onStream: (stream, headers) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const body = Buffer.concat(chunks);
          seen.push({ method: String(headers[':method']), length: body.length, sha: sha(body) });
          stream.once('wantTrailers', () => stream.sendTrailers({ [COMPLETE_TRAILER]: '1' }));
          if (headers[':method'] === 'HEAD') return void stream.respond({ ':status': 200 }, { endStream: true });
          stream.respond({ ':status': 200, 'content-type': 'application/json' }, { waitForTrailers: true });
          stream.end('{}');
        });
      },
    });
    await waitUntil(() => proxy.links.connected, 'the proxy sees the bridge');
  });
  after(async () => {
    tunnel.close();
    await proxy.close();
  });

  for (const method of METHODS) {
    for (const framing of ['content-length', 'chunked'] as const) {
      test(`${method} with a ${framing} body`, async () => {
        const body = randomBytes(100_000 + METHODS.indexOf(method));
        const status = await new Promise<number>((resolve, reject) => {
          const headers: Record<string, string> = { authorization: `Bearer ${token}` };
          if (framing === 'content-length') headers['content-length'] = String(body.length);
          else headers['transfer-encoding'] = 'chunked';
          const req = http.request(new URL('/api/anything', url), { method, headers, agent: false }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end(body);
        });
        assert.equal(status, 200);
        const received = seen.at(-1);
        assert.deepEqual(received, { method, length: body.length, sha: sha(body) });
      });
    }
  }

  test('a request without a body still ends its stream at once (GET waits for nothing)', async () => {
    const res = await fetch(new URL('/api/tags', url), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(seen.at(-1), { method: 'GET', length: 0, sha: sha(Buffer.alloc(0)) });
  });
});

describe('DELETE /api/delete with its JSON body really deletes', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ bridge: { policy: { allowManagement: new Set(['delete']) } } });
  });
  after(() => stack.close());

  test('through proxy and bridge, with the official ollama client', async () => {
    const ollama = new Ollama({ host: stack.url, headers: stack.auth });
    assert.ok((await ollama.list()).models.some((m) => m.name === 'qwen2.5:0.5b'));
    await ollama.delete({ model: 'qwen2.5:0.5b' });
    assert.ok(!(await ollama.list()).models.some((m) => m.name === 'qwen2.5:0.5b'), 'the model is gone');
    // Ollama answers a second delete with 404 in its error shape.
    const again = await fetch(`${stack.url}/api/delete`, { method: 'DELETE', headers: { ...stack.auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'qwen2.5:0.5b' }) });
    assert.equal(again.status, 404);
    assert.match(((await again.json()) as { error: string }).error, /not found/);
  });
});

describe('DELETE /ollama/api/delete through the cloud server', () => {
  let cloud: Cloud;
  let emulator: OllamaEmulator;
  before(async () => {
    emulator = new OllamaEmulator();
    await emulator.start();
    cloud = await startCloud();
  });
  after(async () => {
    await cloud.close();
    await emulator.close();
  });

  test('the body crosses api-backend, proxy and bridge', async () => {
    const token = await cloud.signIn('deleter');
    const bridge = cloud.bridge(token, emulator.url, { policy: { allowManagement: new Set(['delete']) } });
    bridge.start();
    await waitForState(bridge, 'connected');
    const ollama = new Ollama({ host: `${cloud.url}/ollama`, headers: bearer(token) });
    await ollama.delete({ model: 'llama3.2:latest' });
    assert.ok(!(await ollama.list()).models.some((m) => m.name === 'llama3.2:latest'));
    // Chunked framing from the client: the api-backend must frame it again toward the proxy.
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${cloud.url}/ollama/api/delete`, { method: 'DELETE', headers: { ...bearer(token), 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ model: 'nomic-embed-text:latest' }));
    });
    assert.equal(res, 200);
    assert.ok(!(await ollama.list()).models.some((m) => m.name === 'nomic-embed-text:latest'));
  });
});
