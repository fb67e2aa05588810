/**
 * The user's concurrent-request limit kept by the streaming proxy itself (CTLL_MAX_CONCURRENT_REQUESTS,
 * passed as PROXY_MAX_CONCURRENT_REQUESTS): with edge routing nginx sends most requests straight to
 * the proxy (docs/edge-routing.md), so the api-backend's own count no longer sees them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitUntil, type Stack } from './harness.js';

describe('the proxy keeps the user\'s concurrent-request limit', () => {
  let stack: Stack;
  before(async () => {
    // Slow tokens: each generation stays open for seconds, holding its slot.
    stack = await startStack({ proxy: { maxConcurrentRequests: 2 }, emulator: { tokenIntervalMs: 50 } });
  });
  after(async () => stack?.close());

  const generate = (signal?: AbortSignal): Promise<Response> =>
    fetch(`${stack.url}/api/generate`, {
      method: 'POST',
      headers: { ...stack.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.2', prompt: 'hi', options: { num_predict: 200 } }),
      ...(signal ? { signal } : {}),
    });

  test('a third request while two stream is refused 429 with the reason; a slot comes back when a stream ends', async () => {
    const first = new AbortController();
    const second = new AbortController();
    const a = await generate(first.signal);
    const b = await generate(second.signal);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const refused = await generate();
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(refused.headers.get('x-cloudtolocalllm-refusal'), 'concurrency-limit');
    assert.match(((await refused.json()) as { error: string }).error, /too many requests at once: 2 are already streaming for this account \(limit 2\)/);
    // The refused one took nothing: still two in flight. The client of one goes away.
    first.abort();
    await a.body?.cancel().catch(() => undefined);
    await waitUntil(() => stack.emulator.requests.filter((r) => r.path === '/api/generate' && r.aborted).length === 1, 'the emulator sees the abort');
    await waitUntil(() => stack.proxy.health().activeStreams === 1, 'the proxy sees the client leave');
    const third = new AbortController();
    const c = await generate(third.signal);
    assert.equal(c.status, 200, 'the aborted stream gave its slot back');
    for (const h of [second, third]) h.abort();
    await Promise.all([b, c].map((r) => r.body?.cancel().catch(() => undefined)));
    await waitUntil(() => stack.proxy.health().activeStreams === 0, 'every stream closed');
  });

  test('the limit counts Ollama requests only: /health answers whatever is in flight', async () => {
    const held = [new AbortController(), new AbortController()];
    const streams = await Promise.all(held.map((h) => generate(h.signal)));
    assert.deepEqual(streams.map((s) => s.status), [200, 200]);
    const health = await fetch(`${stack.url}/health`);
    assert.equal(health.status, 200);
    for (const h of held) h.abort();
    await Promise.all(streams.map((s) => s.body?.cancel().catch(() => undefined)));
  });
});
