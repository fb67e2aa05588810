/**
 * Several computers on one endpoint (issue 10): three bridges of one user, each on its own Ollama
 * emulator with different and overlapping models, all connected to the user's one streaming
 * proxy at once, with real WebSockets and HTTP/2, and the official clients in front.
 *
 *   alpha:   llama3.2, qwen2.5:0.5b (both loaded)
 *   bravo:   qwen2.5:0.5b (loaded), mistral:7b; allows pull
 *   charlie: llama3.2 (loaded), nomic-embed-text
 *
 * llama3.2 is on alpha and charlie, loaded on both; qwen2.5:0.5b on alpha and bravo, loaded on both.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { Bridge, type BridgeOptions } from '@cloudtolocalllm/bridge';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BRIDGE_PATH, subprotocolFor, TUNNEL_PROTOCOL_VERSION } from '@cloudtolocalllm/bridge/connection/protocol';
import { StaticTokenAuthenticator } from '@cloudtolocalllm/server/proxy/auth';
import { StreamingProxy } from '@cloudtolocalllm/server/proxy/streaming-proxy';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { FAST_BACKOFF, FAST_HEARTBEAT, waitForState, waitUntil } from './harness.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NAMES = ['alpha', 'bravo', 'charlie'] as const;
type Name = (typeof NAMES)[number];

describe('several computers on one endpoint', () => {
  const token = randomBytes(24).toString('base64url');
  const auth = { authorization: `Bearer ${token}` };
  const emulators = {} as Record<Name, OllamaEmulator>;
  const bridges: Bridge[] = [];
  const current = {} as Record<Name, Bridge>;
  let proxy: StreamingProxy;
  let url: string;

  const connect = async (name: Name, extra: Partial<BridgeOptions> = {}): Promise<Bridge> => {
    const bridge = new Bridge({
      proxyUrl: url + BRIDGE_PATH,
      getToken: () => token,
      ollamaUrl: emulators[name].url,
      heartbeat: FAST_HEARTBEAT,
      backoff: FAST_BACKOFF,
      name,
      ...(name === 'bravo' ? { policy: { allowManagement: new Set(['pull'] as const) } } : {}),
      ...extra,
    });
    bridges.push(bridge);
    bridge.start();
    await waitForState(bridge, 'connected');
    await waitUntil(() => proxy.links.get(name)?.link.connected === true, `the proxy sees ${name}`);
    current[name] = bridge;
    return bridge;
  };
  /** How many requests to `path` each emulator has seen. */
  const served = (path: string): Record<Name, number> =>
    Object.fromEntries(NAMES.map((n) => [n, emulators[n].requests.filter((r) => r.path === path).length])) as Record<Name, number>;
  const chat = (model: string, headers: Record<string, string> = {}, tokens = 3): Promise<Response> =>
    fetch(`${url}/api/chat`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: tokens } }),
    });
  const delta = async (path: string, run: () => Promise<unknown>): Promise<Record<Name, number>> => {
    const before = served(path);
    await run();
    const now = served(path);
    return Object.fromEntries(NAMES.map((n) => [n, now[n] - before[n]])) as Record<Name, number>;
  };

  before(async () => {
    for (const name of NAMES) {
      emulators[name] = new OllamaEmulator({ tokenIntervalMs: 2 });
      await emulators[name].start();
    }
    const keep = (name: Name, models: string[], loaded: string[]): void => {
      const registry = emulators[name].models;
      for (const m of ['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']) if (!models.includes(m)) registry.delete(m);
      for (const m of models) if (!registry.get(m)) registry.add(m);
      for (const m of loaded) registry.touch(registry.get(m)!, '1h');
    };
    keep('alpha', ['llama3.2:latest', 'qwen2.5:0.5b'], ['llama3.2:latest', 'qwen2.5:0.5b']);
    keep('bravo', ['qwen2.5:0.5b', 'mistral:7b'], ['qwen2.5:0.5b']);
    keep('charlie', ['llama3.2:latest', 'nomic-embed-text:latest'], ['llama3.2:latest']);
    proxy = new StreamingProxy({ authenticator: new StaticTokenAuthenticator('test-user', token), heartbeat: FAST_HEARTBEAT, maxMachines: 3 });
    url = await proxy.listen();
    for (const name of NAMES) await connect(name);
  });
  after(async () => {
    await Promise.all(bridges.map((b) => b.stop()));
    await proxy.close();
    await Promise.all(NAMES.map((n) => emulators[n].close()));
  });

  test('all three stay connected; the proxy lists each with its models and address', async () => {
    await waitUntil(() => proxy.computers().every((c) => c.models.length > 0), 'the catalogs are read');
    const computers = proxy.computers();
    assert.deepEqual(computers.map((c) => c.name), ['alpha', 'bravo', 'charlie']);
    assert.deepEqual(computers.find((c) => c.name === 'bravo')?.models, ['mistral:7b', 'qwen2.5:0.5b']);
    for (const c of computers) {
      assert.equal(c.address, '127.0.0.1');
      assert.ok(c.connectedSince && Date.parse(c.connectedSince) > 0);
    }
  });

  test('/api/tags, /api/ps and /v1/models are the union: one entry per model name', async () => {
    const tags = (await (await fetch(`${url}/api/tags`, { headers: auth })).json()) as { models: Array<{ name: string }> };
    assert.deepEqual(tags.models.map((m) => m.name).sort(), ['llama3.2:latest', 'mistral:7b', 'nomic-embed-text:latest', 'qwen2.5:0.5b']);
    const ps = (await (await fetch(`${url}/api/ps`, { headers: auth })).json()) as { models: Array<{ name: string }> };
    assert.deepEqual(ps.models.map((m) => m.name).sort(), ['llama3.2:latest', 'qwen2.5:0.5b']);
    const v1 = (await (await fetch(`${url}/v1/models`, { headers: auth })).json()) as { object: string; data: Array<{ id: string }> };
    assert.equal(v1.object, 'list');
    assert.deepEqual(v1.data.map((m) => m.id).sort(), ['llama3.2:latest', 'mistral:7b', 'nomic-embed-text:latest', 'qwen2.5:0.5b']);
  });

  test('two computers with the same model name: the newest modified_at wins the listing', async () => {
    const older = emulators.alpha.models.add('twin:latest');
    await waitUntil(() => Date.now() > older.modifiedAt.getTime() + 2, 'the clock moved on');
    const newer = emulators.charlie.models.add('twin:latest');
    try {
      const tags = (await (await fetch(`${url}/api/tags`, { headers: auth })).json()) as { models: Array<{ name: string; digest: string }> };
      const twins = tags.models.filter((m) => m.name === 'twin:latest');
      assert.equal(twins.length, 1);
      assert.equal(twins[0]!.digest, newer.digest);
      assert.notEqual(older.digest, newer.digest);
    } finally {
      emulators.alpha.models.delete('twin:latest');
      emulators.charlie.models.delete('twin:latest');
    }
  });

  test('a request goes to the computer that has its model', async () => {
    const mistral = await delta('/api/chat', async () => assert.equal((await chat('mistral:7b')).status, 200));
    assert.deepEqual(mistral, { alpha: 0, bravo: 1, charlie: 0 });
    const embed = await delta('/api/embed', async () => {
      const res = await fetch(`${url}/api/embed`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nomic-embed-text', input: 'hi' }) });
      assert.equal(res.status, 200);
    });
    assert.deepEqual(embed, { alpha: 0, bravo: 0, charlie: 1 });
  });

  test('a model loaded on one computer goes there, not to another that has it unloaded', async () => {
    // nomic-embed-text also on alpha, but loaded only on charlie (the embed above loaded it).
    emulators.alpha.models.add('nomic-embed-text:latest');
    emulators.charlie.models.touch(emulators.charlie.models.get('nomic-embed-text:latest')!, '1h');
    try {
      await proxy.links.get('alpha')!.catalog.refresh();
      await proxy.links.get('charlie')!.catalog.refresh();
      const spread = await delta('/api/embed', async () => {
        for (let i = 0; i < 6; i++) {
          const res = await fetch(`${url}/api/embed`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nomic-embed-text', input: `x${i}` }) });
          assert.equal(res.status, 200);
        }
      });
      assert.deepEqual(spread, { alpha: 0, bravo: 0, charlie: 6 });
    } finally {
      emulators.alpha.models.delete('nomic-embed-text:latest');
      await proxy.links.get('alpha')!.catalog.refresh();
    }
  });

  test('60 concurrent requests for a model two computers have loaded spread within 40/60 of even', async (t) => {
    const spread = await delta('/api/chat', async () => {
      const answers = await Promise.all(Array.from({ length: 60 }, () => chat('qwen2.5:0.5b', {}, 20)));
      assert.deepEqual(answers.map((r) => r.status), Array(60).fill(200));
    });
    assert.equal(spread.charlie, 0, 'charlie does not have the model');
    assert.equal(spread.alpha + spread.bravo, 60);
    t.diagnostic(`spread: alpha ${spread.alpha}, bravo ${spread.bravo}`);
    assert.ok(spread.alpha <= 40 && spread.bravo <= 40, `spread ${JSON.stringify(spread)}`);
  });

  test('/api/version answers from one computer, always the same (no turn over idle computers), also while it streams', async () => {
    const versions = (): Promise<Record<Name, number>> =>
      delta('/api/version', async () => {
        for (let i = 0; i < 6; i++) {
          const res = await fetch(`${url}/api/version`, { headers: auth });
          assert.equal(res.status, 200);
          assert.match(((await res.json()) as { version: string }).version, /^\d+\.\d+\.\d+/);
        }
      });
    assert.deepEqual(await versions(), { alpha: 6, bravo: 0, charlie: 0 });
    // Ollama answers it beside a generation: a stream on alpha does not send it elsewhere.
    emulators.alpha.set({ tokenIntervalMs: 50 });
    try {
      const long = fetch(`${url}/api/chat`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'X-CloudToLocalLLM-Machine': 'alpha' },
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 20 } }),
      });
      await emulators.alpha.waitFor((r) => r.path === '/api/chat' && r.tokensSent >= 1);
      assert.deepEqual(await versions(), { alpha: 6, bravo: 0, charlie: 0 });
      await (await long).text();
    } finally {
      emulators.alpha.set({ tokenIntervalMs: 2 });
    }
  });

  test('X-CloudToLocalLLM-Machine pins a computer; an unknown name is refused naming the connected ones', async () => {
    const pinned = (await (await fetch(`${url}/api/tags`, { headers: { ...auth, 'X-CloudToLocalLLM-Machine': 'bravo' } })).json()) as { models: Array<{ name: string }> };
    assert.deepEqual(pinned.models.map((m) => m.name).sort(), ['mistral:7b', 'qwen2.5:0.5b']);
    const toAlpha = await delta('/api/chat', async () => assert.equal((await chat('qwen2.5:0.5b', { 'X-CloudToLocalLLM-Machine': 'alpha' })).status, 200));
    assert.deepEqual(toAlpha, { alpha: 1, bravo: 0, charlie: 0 });
    const unknown = await fetch(`${url}/api/tags`, { headers: { ...auth, 'X-CloudToLocalLLM-Machine': 'delta' } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('x-cloudtolocalllm-refusal'), 'unknown-machine');
    assert.equal(((await unknown.json()) as { error: string }).error, 'no computer named "delta" is connected to this endpoint (connected: alpha, bravo, charlie)');
  });

  test('model management without a pin is refused naming the computers; pinned it goes there and the listing follows', async () => {
    const refused = await fetch(`${url}/api/pull`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'phi3', stream: false }) });
    assert.equal(refused.status, 400);
    assert.equal(refused.headers.get('x-cloudtolocalllm-refusal'), 'machine-required');
    assert.match(((await refused.json()) as { error: string }).error, /3 are connected \(alpha, bravo, charlie\).*X-CloudToLocalLLM-Machine: NAME/);
    // Each bridge keeps its own policy: alpha refuses management whoever asks.
    const alpha = await fetch(`${url}/api/pull`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'X-CloudToLocalLLM-Machine': 'alpha' }, body: JSON.stringify({ model: 'phi3', stream: false }) });
    assert.equal(alpha.status, 403);
    await alpha.arrayBuffer();
    const pulled = await fetch(`${url}/api/pull`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'X-CloudToLocalLLM-Machine': 'bravo' }, body: JSON.stringify({ model: 'phi3', stream: false }) });
    assert.equal(pulled.status, 200);
    await pulled.arrayBuffer();
    // Read again after the pull: the new model is routable at once, to bravo.
    await waitUntil(() => proxy.links.get('bravo')!.catalog.models.has('phi3:latest'), 'bravo lists phi3 again');
    const phi = await delta('/api/chat', async () => assert.equal((await chat('phi3')).status, 200));
    assert.deepEqual(phi, { alpha: 0, bravo: 1, charlie: 0 });
  });

  test('a model no computer has: 404 in Ollama\'s shape naming the computers asked', async () => {
    const res = await chat('does-not-exist-anywhere');
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('x-cloudtolocalllm-refusal'), 'model-not-found');
    assert.deepEqual(await res.json(), { error: "model 'does-not-exist-anywhere' not found on any of your connected computers (asked: alpha, bravo, charlie)" });
  });

  test('the official ollama and openai clients see one ordinary server', async () => {
    const ollama = new Ollama({ host: url, headers: auth });
    const list = await ollama.list();
    assert.ok(['llama3.2:latest', 'mistral:7b', 'nomic-embed-text:latest', 'qwen2.5:0.5b'].every((n) => list.models.some((m) => m.name === n)));
    const answer = await ollama.chat({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 4 } });
    assert.equal(answer.message.content, 'tok0 tok1 tok2 tok3 ');
    assert.ok((await ollama.version()).version);
    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: token, maxRetries: 0 });
    const models = await openai.models.list();
    assert.ok(['llama3.2:latest', 'mistral:7b'].every((id) => models.data.some((m) => m.id === id)));
    const one = await openai.models.retrieve('nomic-embed-text:latest');
    assert.equal(one.id, 'nomic-embed-text:latest');
    const completion = await openai.chat.completions.create({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.equal(completion.choices[0]?.message.content, 'tok0 tok1 tok2 ');
  });

  test('a fourth computer over the limit is refused with a message that says so', async () => {
    const extra = new OllamaEmulator();
    await extra.start();
    const fourth = new Bridge({ proxyUrl: url + BRIDGE_PATH, getToken: () => token, ollamaUrl: extra.url, heartbeat: FAST_HEARTBEAT, backoff: FAST_BACKOFF, name: 'delta' });
    try {
      fourth.start();
      const status = await waitForState(fourth, 'error');
      assert.match(status.reason ?? '', /too many computers: 3 are connected for this account \(alpha, bravo, charlie; limit 3\)/);
      assert.deepEqual(proxy.links.names(), ['alpha', 'bravo', 'charlie']);
    } finally {
      await fourth.stop();
      await extra.close();
    }
  });

  test('a computer name that breaks the rule is refused by the proxy, 400 with what is wrong', async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${url}${BRIDGE_PATH}`, {
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': randomBytes(16).toString('base64'),
          'sec-websocket-protocol': subprotocolFor(TUNNEL_PROTOCOL_VERSION),
          authorization: `Bearer ${token}`,
          'x-cloudtolocalllm-machine': 'my desk',
        },
      });
      req.on('upgrade', () => reject(new Error('upgraded')));
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(answer.status, 400);
    assert.match((JSON.parse(answer.body) as { error: string }).error, /^the computer name "my desk" may hold only letters, digits, .*; start the bridge with --name NAME$/);
    assert.deepEqual(proxy.links.names(), ['alpha', 'bravo', 'charlie']);
    assert.throws(() => new Bridge({ proxyUrl: url + BRIDGE_PATH, getToken: () => token, name: 'my desk' }), /may hold only letters/);
  });

  test('a computer killed mid-stream (SIGKILL): its streams end with a visible error, the others finish, new requests go elsewhere', async () => {
    // charlie is taken over by a bridge CLI process under the same name, which is then killed.
    const dir = mkdtempSync(join(tmpdir(), 'ctll-several-'));
    const cli = spawn(process.execPath, ['--import', 'tsx', 'bridge/cli.ts', '--proxy-url', url + BRIDGE_PATH, '--ollama-url', emulators.charlie.url, '--name', 'charlie', '--json'], {
      cwd: ROOT,
      env: { ...process.env, CLOUDTOLOCALLLM_TOKEN: token, CTLL_CONFIG_DIR: dir },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    const exited = new Promise((resolve) => cli.once('exit', resolve));
    emulators.charlie.set({ tokenIntervalMs: 50 });
    emulators.bravo.set({ tokenIntervalMs: 20 });
    const stream = (model: string, headers: Record<string, string>): Promise<Response> =>
      fetch(`${url}/api/chat`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 40 } }),
      });
    try {
      const replaced = await waitForState(current.charlie, 'disconnected', 30_000);
      assert.equal(replaced.code, 'replaced', 'the CLI took charlie over');
      await waitUntil(() => proxy.links.get('charlie')?.link.connected === true, 'the CLI is charlie now', 30_000);
      const onCharlie = await stream('llama3.2', { 'X-CloudToLocalLLM-Machine': 'charlie' });
      const onBravo = await stream('mistral:7b', {});
      assert.equal(onCharlie.status, 200);
      assert.equal(onBravo.status, 200);
      await emulators.charlie.waitFor((r) => r.path === '/api/chat' && r.tokensSent >= 2);
      const bravoText = onBravo.text();
      cli.kill('SIGKILL');
      const lines = (await onCharlie.text().catch((e: Error) => `{"error":"${e.message}"}`)).split('\n').filter(Boolean);
      assert.ok(lines.length < 41, 'the answer did not complete');
      assert.match(lines.at(-1) ?? '', /"error"/, `a visible error ends it: ${lines.at(-1)}`);
      const bravoLines = (await bravoText).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { done?: boolean });
      assert.equal(bravoLines.at(-1)?.done, true, 'bravo\'s stream finished untouched');
      await waitUntil(() => !proxy.links.names().includes('charlie'), 'charlie is gone');
      const rerouted = await delta('/api/chat', async () => assert.equal((await chat('llama3.2')).status, 200));
      assert.deepEqual(rerouted, { alpha: 1, bravo: 0, charlie: 0 });
      const tags = (await (await fetch(`${url}/api/tags`, { headers: auth })).json()) as { models: Array<{ name: string }> };
      assert.ok(!tags.models.some((m) => m.name === 'nomic-embed-text:latest'), 'charlie\'s models left with it');
    } finally {
      cli.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
      emulators.charlie.set({ tokenIntervalMs: 2 });
      emulators.bravo.set({ tokenIntervalMs: 2 });
    }
    await connect('charlie');
  });

  test('a computer reconnecting under its name replaces its older link; both are told why', async () => {
    const old = current.alpha;
    const again = await connect('alpha');
    const status = await waitForState(old, 'disconnected');
    assert.equal(status.code, 'replaced');
    assert.equal(status.retryInMs, undefined, 'the replaced bridge does not fight back');
    assert.match(status.reason ?? '', /same computer name/);
    assert.equal(again.status.state, 'connected');
    assert.deepEqual(proxy.links.names(), ['alpha', 'bravo', 'charlie']);
    const toAlpha = await delta('/api/chat', async () => assert.equal((await chat('qwen2.5:0.5b', { 'X-CloudToLocalLLM-Machine': 'alpha' })).status, 200));
    assert.deepEqual(toAlpha, { alpha: 1, bravo: 0, charlie: 0 });
  });
});
