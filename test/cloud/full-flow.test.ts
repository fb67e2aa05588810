/**
 * The product end to end on the cloud side: sign in (PKCE against the embedded issuer, as an
 * HTTP client), start the proxy, connect the bridge, use Ollama through /ollama, stop.
 * Runs on the in-process runtime here; test/cloud/docker-stack.test.ts repeats it on Docker.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { NO_BRIDGE_MESSAGE } from '@cloudtolocalllm/server/proxy/relay';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { waitForState, waitUntil } from '../tunnel/harness.js';
import { bearer, startCloud, type Cloud } from './cloud-harness.js';

describe('full flow on the cloud server (in-process runtime)', () => {
  let cloud: Cloud;
  let emulator: OllamaEmulator;
  let token: string;
  before(async () => {
    emulator = new OllamaEmulator({ tokenIntervalMs: 20 });
    await emulator.start();
    cloud = await startCloud();
    token = await cloud.signIn('alice');
  });
  after(async () => {
    await cloud.close();
    await emulator.close();
  });

  const api = (method: string, path: string, t = token): Promise<Response> => fetch(`${cloud.url}${path}`, { method, headers: bearer(t) });

  test('status before start: stopped', async () => {
    const res = await api('GET', '/api/proxy/status');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { status: string; bridgeConnected: boolean };
    assert.equal(body.status, 'stopped');
    assert.equal(body.bridgeConnected, false);
  });

  test('start is idempotent: concurrent starts give one proxy', async () => {
    const answers = await Promise.all(Array.from({ length: 5 }, () => api('POST', '/api/proxy/start')));
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as Array<{ status: string; proxyId: string; health: { ok: boolean } }>;
    assert.ok(answers.every((r) => r.status === 200 || r.status === 201));
    assert.equal(new Set(bodies.map((b) => b.proxyId)).size, 1);
    assert.ok(bodies.every((b) => b.status === 'running' && b.health.ok));
    assert.equal((await api('POST', '/api/proxy/start')).status, 200, 'an already running proxy answers 200');
  });

  test('an Ollama call before the bridge connects: 503 in Ollama\'s shape, with Retry-After: 5', async () => {
    const res = await fetch(`${cloud.url}/ollama/api/tags`, { headers: bearer(token) });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '5');
    assert.deepEqual(await res.json(), { error: NO_BRIDGE_MESSAGE });
  });

  test('the bridge connects through /ws/bridge and status says so', async () => {
    const bridge = cloud.bridge(token, emulator.url);
    bridge.start();
    await waitForState(bridge, 'connected');
    await waitUntil(() => cloud.server.manager.view('alice').bridgeConnected, 'the server sees the bridge');
    const status = (await (await api('GET', '/api/proxy/status')).json()) as { bridgeConnected: boolean; lastActivity: string; createdAt: string };
    assert.equal(status.bridgeConnected, true);
    assert.ok(Date.parse(status.lastActivity) >= Date.parse(status.createdAt));
  });

  test('Ollama and OpenAI clients work through /ollama with the user\'s token', async () => {
    const ollama = new Ollama({ host: `${cloud.url}/ollama`, headers: bearer(token) });
    const tags = await ollama.list();
    assert.ok(tags.models.length > 0);
    let text = '';
    let firstWhileGenerating = false;
    for await (const part of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 10 } })) {
      if (!text) firstWhileGenerating = emulator.activeGenerations() === 1;
      text += part.message.content;
    }
    assert.ok(firstWhileGenerating, 'the first token arrived while the emulator was still generating');
    assert.equal(text.trim(), Array.from({ length: 10 }, (_, i) => `tok${i}`).join(' '));
    const openai = new OpenAI({ baseURL: `${cloud.url}/ollama/v1`, apiKey: token, maxRetries: 0 });
    const models = await openai.models.list();
    assert.ok(models.data.length > 0);
    const rec = emulator.requests.at(-1);
    assert.ok(rec && !('authorization' in rec.headers), 'the user\'s token never reaches Ollama');
  });

  test('stop ends the proxy: the bridge is disconnected and Ollama calls get 503', async () => {
    const res = await api('POST', '/api/proxy/stop');
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { status: string }).status, 'stopped');
    const ollama = await fetch(`${cloud.url}/ollama/api/tags`, { headers: bearer(token) });
    assert.equal(ollama.status, 503);
  });

  test('a bridge connecting again provisions the proxy again', async () => {
    await waitUntil(() => cloud.server.manager.view('alice').status === 'running', 'the reconnecting bridge started a proxy', 10_000);
    await waitUntil(() => cloud.server.manager.view('alice').bridgeConnected, 'and is connected to it', 10_000);
    const res = await fetch(`${cloud.url}/ollama/api/version`, { headers: bearer(token) });
    assert.equal(res.status, 200);
  });

  test('metrics count starts, stops, provisioning time and bridges', async () => {
    const text = await (await fetch(`${cloud.url}/metrics`)).text();
    assert.match(text, /ctll_proxies_running 1/);
    assert.match(text, /ctll_proxy_starts_total\{result="ok"\} 2/);
    assert.match(text, /ctll_proxy_stops_total\{reason="user"\} 1/);
    assert.match(text, /ctll_proxy_provisioning_seconds_count 2/);
    assert.match(text, /ctll_bytes_relayed_total\{direction="down"\} [1-9]/);
  });

  test('the audit log has one line per lifecycle operation, with user hashes only', () => {
    const actions = cloud.audit.entries.map((e) => e.action);
    assert.ok(actions.includes('proxy.start') && actions.includes('proxy.stop') && actions.includes('bridge.connect'));
    const text = JSON.stringify(cloud.audit.entries);
    assert.ok(!text.includes('alice'), 'no raw user id');
    assert.ok(!text.includes(token.slice(-20)), 'no token');
  });
});
