/**
 * The per-user request-body limits on /ollama/*, end to end through a real bridge: a body faster
 * than the user's rate is slowed down and still arrives whole; a body that stalls gets 408 and
 * frees its stream; the server keeps serving the user afterwards.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { parseManagementList } from '@cloudtolocalllm/bridge/ingress/policy';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { bearer, raw, startCloud, type Cloud } from './cloud-harness.js';

const RATE = 256 * 1024;
const BURST = 64 * 1024;

describe('request-body limits on /ollama', () => {
  let cloud: Cloud;
  let emulator: OllamaEmulator;
  let token: string;
  before(async () => {
    emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
    cloud = await startCloud({
      env: { CTLL_BODY_BYTES_PER_SECOND: String(RATE), CTLL_BODY_BURST_BYTES: String(BURST), CTLL_BODY_STALL_MS: '700' },
    });
    token = await cloud.signIn('dora');
    // Blob uploads are model management, which the bridge refuses unless the user allows it.
    const bridge = cloud.bridge(token, emulator.url, { policy: { allowManagement: parseManagementList('blobs') } });
    bridge.start();
    await waitForState(bridge, 'connected');
    await waitUntil(() => cloud.server.manager.view('dora').bridgeConnected, 'the server sees the bridge');
  });
  after(async () => {
    await cloud.close();
    await emulator.close();
  });

  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${cloud.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  test('a body faster than the rate is paced, not cut: the blob arrives whole', async () => {
    const blob = randomBytes(10 * BURST); // 640 KiB: 576 KiB over the burst, 2.25 s at the rate
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const throttledBefore = await metric('ctll_body_throttle_seconds_total');
    const started = Date.now();
    const res = await fetch(`${cloud.url}/ollama/api/blobs/${digest}`, { method: 'POST', body: blob, headers: bearer(token) });
    const elapsed = Date.now() - started;
    assert.equal(res.status, 201, await res.text());
    const rec = emulator.requests.find((r) => r.path === `/api/blobs/${digest}`);
    assert.equal(rec?.bodyBytes, blob.length, 'every byte reached Ollama');
    assert.equal(`sha256:${rec?.bodySha256}`, digest);
    // A lower bound only: the limit must have held the body back (a slow machine only adds time).
    const floor = ((blob.length - BURST) / RATE) * 1000;
    assert.ok(elapsed >= floor * 0.9, `took ${elapsed} ms; at ${RATE} B/s after a ${BURST} B burst it cannot take under ${floor} ms`);
    assert.ok((await metric('ctll_body_throttle_seconds_total')) - throttledBefore >= (floor / 1000) * 0.9, 'the metric counts the time held');
  });

  test('a body that stalls gets 408 with the reason, and the user can go on', async () => {
    const port = Number(new URL(cloud.url).port);
    const answer = await raw(
      port,
      `POST /ollama/api/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model": "llama3.2", `,
      10_000,
    );
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.match(answer, /connection: close/i);
    assert.match(answer, /no bytes arrived for 0\.7 s/);
    assert.ok((await metric('ctll_limit_refusals_total{limit="body-stall"}')) >= 1);
    await waitUntil(async () => (await metric('ctll_active_streams')) === 0, 'the stalled stream is released');
    const res = await fetch(`${cloud.url}/ollama/api/chat`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 3 } }),
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { message: { content: string } }).message.content.trim(), 'tok0 tok1 tok2');
  });
});
