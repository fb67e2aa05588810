/**
 * The forwarder must answer everything the cloud sends and never crash the bridge (issue 13,
 * finding 1: a refused HEAD killed the process with ERR_STREAM_WRITE_AFTER_END). A property test
 * drives it over real HTTP/2 with random methods, paths, authorities, headers and bodies, under
 * random policies, against the Ollama emulator, and checks every request gets one complete answer.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2, { type ClientHttp2Session, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { isOpenAiPath } from '../connection/error-shape.js';
import { COMPLETE_TRAILER, TUNNEL_AUTHORITY } from '../connection/protocol.js';
import { MANAGEMENT_ENDPOINTS, type ManagementEndpoint } from '../ingress/ollama-routes.js';
import { decide, type CloudPolicy } from '../ingress/policy.js';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { OllamaForwarder } from './ollama-forwarder.js';
import { parseOllamaUrl } from './ollama-target.js';

/** Fixed, so a CI failure replays exactly: `seed` and `path` from fast-check's report reproduce it. */
export const FORWARDER_RUNS = 400;
export const FORWARDER_SEED = 20261201;

let emulator: OllamaEmulator;
let server: Http2Server;
let client: ClientHttp2Session;
let forwarder: OllamaForwarder;
let policy: CloudPolicy = { allowManagement: new Set() };
const counts = { started: 0, finished: 0 };
// In the bridge an uncaught error ends the process (the CLI, or Electron's main process): count them.
const crashes: Error[] = [];
const onCrash = (e: Error): void => void crashes.push(e);

before(async () => {
  process.on('uncaughtException', onCrash);
  emulator = new OllamaEmulator({ tokenIntervalMs: 0, defaultTokens: 2, pullChunks: 1 });
  await emulator.start();
  forwarder = new OllamaForwarder({
    target: parseOllamaUrl(emulator.url),
    policy: () => policy,
    events: {
      requestStarted: () => (counts.started += 1),
      requestFinished: () => (counts.finished += 1),
      bytes: () => undefined,
      ollamaReachable: () => undefined,
    },
  });
  server = http2.createServer();
  server.on('stream', (stream, headers) => forwarder.handle(stream, headers));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  client.on('error', () => undefined);
});

after(async () => {
  process.off('uncaughtException', onCrash);
  client.close();
  forwarder.close();
  await new Promise((resolve) => server.close(resolve));
  await emulator.close();
});

const digest64 = 'a'.repeat(64);
const API_PATHS = [
  '/', '/api/version', '/api/tags', '/api/ps', '/api/show', '/api/generate', '/api/chat', '/api/embed', '/api/embeddings',
  '/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete', `/api/blobs/sha256:${digest64}`,
  '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models', '/v1/models/llama3.2:latest',
];
const HOSTILE_PATHS = [
  '/admin', '/metrics', '/health', '/api', '/api/', '/api//tags', '/api/../etc/passwd', '/api/%2e%2e/x', '/api/%252e/x',
  '/api/tags%00', 'http://169.254.169.254/latest', '*', `/${'x'.repeat(2100)}`, '/api/tags?x=1', '/api/tags#frag', '/a\\b',
];
const METHODS = ['GET', 'HEAD', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'];
// Headers HTTP/2 forbids (RFC 9113 §8.2.2) cannot be sent by a conforming peer at all.
const FORBIDDEN = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'host', 'http2-settings']);

const requestArb = fc.record({
  method: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE') },
    { weight: 2, arbitrary: fc.constantFrom(...METHODS) },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,8}$/) },
  ),
  path: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...API_PATHS) },
    { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_PATHS) },
    { weight: 1, arbitrary: fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)) },
  ),
  authority: fc.oneof({ weight: 8, arbitrary: fc.constant(TUNNEL_AUTHORITY) }, { weight: 1, arbitrary: fc.domain() }),
  headers: fc.dictionary(
    fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/).filter((n) => !FORBIDDEN.has(n)),
    fc.stringMatching(/^[\x20-\x7e]{0,40}$/).map((v) => v.trim()),
    { maxKeys: 4 },
  ),
  body: fc.option(fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.json().map((j) => Buffer.from(j))), { nil: undefined }),
  allow: fc.subarray([...MANAGEMENT_ENDPOINTS] as ManagementEndpoint[]),
});

type Req = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;
type Answer = { status: number; body: Buffer; complete: boolean; reset?: number };

function send(r: Req): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = client.request({ ':method': r.method, ':path': r.path, ':authority': r.authority, ...r.headers }, { endStream: r.body === undefined });
    let status = 0;
    let complete = false;
    const chunks: Buffer[] = [];
    stream.on('response', (h, flags) => {
      status = Number(h[':status']);
      // A head that ends the stream (HEAD, 204, 304) is complete by itself.
      if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) complete = true;
    });
    stream.on('trailers', (t) => (complete ||= t[COMPLETE_TRAILER] === '1'));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => undefined);
    stream.on('close', () => resolve({ status, body: Buffer.concat(chunks), complete, ...(stream.rstCode ? { reset: stream.rstCode } : {}) }));
    stream.setTimeout(10_000, () => reject(new Error(`no answer to ${r.method} ${r.path.slice(0, 60)} within 10 s`)));
    if (r.body !== undefined) stream.end(Buffer.from(r.body));
  });
}

test(`the forwarder answers every request completely and lives (${FORWARDER_RUNS} random requests, seed ${FORWARDER_SEED})`, async () => {
  const outcomes = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(requestArb, async (r) => {
      policy = { allowManagement: new Set(r.allow) };
      const expected = decide(policy, { method: r.method, path: r.path, authority: r.authority, scheme: 'http' }, parseOllamaUrl(emulator.url).host);
      const key = expected.allow ? 'allowed' : expected.code;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      const answer = await send(r);
      assert.deepEqual(crashes.map(String), [], 'nothing crashed');
      if (!r.path.startsWith('/')) {
        // HTTP/2 itself (nghttp2) refuses a :path that is not origin-form before the bridge sees it.
        assert.equal(answer.reset, http2.constants.NGHTTP2_PROTOCOL_ERROR, `${r.path.slice(0, 60)} is reset by HTTP/2`);
        return;
      }
      assert.ok(answer.status >= 200 && answer.status <= 599, `a status for ${r.method} ${r.path.slice(0, 60)}: ${JSON.stringify(answer)}`);
      assert.equal(answer.complete, true, `${r.method} ${r.path.slice(0, 60)} -> ${answer.status} is marked complete`);
      if (!expected.allow) {
        assert.equal(answer.status, expected.status, `${r.method} ${r.path.slice(0, 60)}`);
        if (r.method === 'HEAD') assert.equal(answer.body.length, 0, 'a HEAD answer has no body');
        else {
          // Ollama's error shape, or OpenAI's on its /v1 API (error-shape.ts), as Ollama answers.
          const error = (JSON.parse(answer.body.toString()) as { error: unknown }).error;
          if (isOpenAiPath(r.path)) assert.equal(typeof (error as { message?: unknown }).message, 'string', `${r.path.slice(0, 60)}: OpenAI's shape`);
          else assert.equal(typeof error, 'string', `${r.path.slice(0, 60)}: Ollama's shape`);
        }
      }
      assert.equal(client.destroyed, false, 'the tunnel session is still up');
    }),
    { numRuns: FORWARDER_RUNS, seed: FORWARDER_SEED, endOnFailure: true },
  );
  // Every outcome of the policy was exercised, not only the common ones.
  for (const code of ['allowed', 'not-ollama-api', 'method-not-allowed', 'policy', 'traversal', 'other-host', 'path-too-long', 'bad-characters', 'bad-encoding', 'absolute-form', 'empty-segment']) {
    assert.ok((outcomes.get(code) ?? 0) > 0, `outcome ${code} was generated: ${JSON.stringify([...outcomes])}`);
  }
  await waitFor(() => counts.started === counts.finished, 'every request the forwarder started is finished');
  process.stdout.write(`# forwarder property: ${FORWARDER_RUNS} runs, seed ${FORWARDER_SEED}, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}\n`);
});

test('a refused HEAD is answered with headers only and the bridge lives (the finding as found)', async () => {
  for (const path of ['/admin', '/api/pull', `/api/blobs/sha256:${digest64}`, '/api/generate']) {
    policy = { allowManagement: new Set() };
    const answer = await send({ method: 'HEAD', path, authority: TUNNEL_AUTHORITY, headers: {}, body: undefined, allow: [] });
    assert.ok([403, 404, 405].includes(answer.status), `${path}: ${answer.status}`);
    assert.equal(answer.body.length, 0);
    assert.equal(answer.complete, true);
  }
  assert.deepEqual(crashes.map(String), [], 'nothing crashed');
  const ok = await send({ method: 'HEAD', path: '/', authority: TUNNEL_AUTHORITY, headers: {}, body: undefined, allow: [] });
  assert.equal(ok.status, 200);
  assert.equal(ok.complete, true, 'an allowed HEAD is complete too');
});

async function waitFor(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !predicate(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(predicate(), what);
}
