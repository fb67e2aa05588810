/**
 * Several computers, one endpoint, as the official clients see it (issue 10 with issue 9's keys):
 * the real api-backend (embedded issuer, process runtime), three bridges of one user, each on its
 * own Ollama emulator with a model no other has, and the `ollama` and `openai` npm clients in
 * front, with a sign-in token and with client keys made on computer alpha (`npm run keys`).
 *
 *   alpha:   llama3.2          (the keys are made here)
 *   bravo:   mistral:7b        (allows pull from the cloud)
 *   charlie: qwen2.5:0.5b, nomic-embed-text
 *
 * charlie first runs without client keys (as an older bridge: its key-set stream answers 404),
 * then comes back under its name with them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import type { Bridge } from '@cloudtolocalllm/bridge';
import { encodeKeyScope, KEY_ID_HEADER, KEY_SCOPE_HEADER } from '@cloudtolocalllm/bridge/connection/client-key';
import { KeyRing } from '@cloudtolocalllm/bridge/keys/key-ring';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import { startCloud, type Cloud } from '../cloud/cloud-harness.js';
import { create, get, ROOT, type Made } from '../keys/keys-harness.js';
import { waitForState, waitUntil } from './harness.js';

const NAMES = ['alpha', 'bravo', 'charlie'] as const;
type Name = (typeof NAMES)[number];
const MODELS: Record<Name, string[]> = {
  alpha: ['llama3.2:latest'],
  bravo: ['mistral:7b'],
  charlie: ['qwen2.5:0.5b', 'nomic-embed-text:latest'],
};
const ALL_MODELS = Object.values(MODELS).flat().sort();

describe('three computers, one endpoint, through the official clients', () => {
  let cloud: Cloud;
  let token: string;
  let endpoint: string;
  const emulators = {} as Record<Name, OllamaEmulator>;
  const dirs = {} as Record<Name, string>;
  const rings: KeyRing[] = [];
  const bridges = {} as Record<Name, Bridge>;
  let any: Made;
  let limited: Made;
  let mistralOnly: Made;
  let puller: Made;

  const connect = async (name: Name, withKeys: boolean): Promise<Bridge> => {
    let keys: KeyRing | undefined;
    if (withKeys) {
      keys = new KeyRing(new KeyStore(dirs[name]), { debounceMs: 20, usageFlushMs: 50 });
      keys.start();
      rings.push(keys);
    }
    const bridge = cloud.bridge(token, emulators[name].url, {
      name,
      ...(keys ? { keys } : {}),
      // Only bravo lets the cloud pull models.
      ...(name === 'bravo' ? { policy: { allowManagement: new Set(['pull'] as const) } } : {}),
    });
    bridge.start();
    await waitForState(bridge, 'connected');
    bridges[name] = bridge;
    return bridge;
  };
  const status = async (): Promise<Array<{ name: string; models: string[] }>> =>
    ((await (await fetch(`${cloud.url}/api/proxy/status`, { headers: { authorization: `Bearer ${token}` } })).json()) as { computers: Array<{ name: string; models: string[] }> }).computers;
  const served = (name: Name, path: string): number => emulators[name].requests.filter((r) => r.path === path).length;
  /**
   * `npm run keys` on alpha, without blocking: the bridges run in this process and must keep
   * answering their heartbeats (keys-harness's keysCli waits synchronously).
   */
  const keysCli = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'bridge/keys/cli.ts', ...args], { cwd: ROOT, timeout: 30_000, env: { ...process.env, CTLL_CONFIG_DIR: dirs.alpha } }, (error, stdout, stderr) =>
        resolve({ status: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
      );
    });
  const usageOf = async (id: string): Promise<{ requests: number; tokensIn: number; tokensOut: number }> => {
    const r = await keysCli(['list', '--json']);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as Array<{ id: string; requests: number; tokensIn: number; tokensOut: number }>).find((k) => k.id === id)!;
  };

  before(async () => {
    for (const name of NAMES) {
      emulators[name] = new OllamaEmulator({ tokenIntervalMs: 1 });
      await emulators[name].start();
      const registry = emulators[name].models;
      for (const m of ['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']) if (!MODELS[name].includes(m)) registry.delete(m);
      for (const m of MODELS[name]) if (!registry.get(m)) registry.add(m);
      dirs[name] = mkdtempSync(join(tmpdir(), `ctll-three-${name}-`));
    }
    cloud = await startCloud({ env: { CTLL_MAX_BRIDGES: '3' } });
    token = await cloud.signIn('three-computers');
    endpoint = `${cloud.url}/ollama`;
    const subject = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string }).sub;
    // Signed in on alpha, where the keys are made (the desktop and start:headless record this).
    new KeyStore(dirs.alpha).recordSubject(subject, endpoint);
    any = create(dirs.alpha, ['--name', 'any-computer']);
    limited = create(dirs.alpha, ['--name', 'desk-and-lab', '--machines', 'alpha,bravo']);
    mistralOnly = create(dirs.alpha, ['--name', 'mistral-only', '--models', 'mistral:7b']);
    puller = create(dirs.alpha, ['--name', 'puller', '--allow', 'pull']);
    await connect('alpha', true);
    await connect('bravo', true);
    await connect('charlie', false);
    await waitUntil(async () => (await status()).filter((c) => c.models.length > 0).length === 3, 'three computers listed with their models');
  });
  after(async () => {
    await cloud?.close();
    for (const r of rings) r.close();
    await Promise.all(NAMES.map((n) => emulators[n]?.close()));
    for (const n of NAMES) if (dirs[n]) rmSync(dirs[n], { recursive: true, force: true });
  });

  test('with a sign-in token, the ollama client sees one Ollama server: the union, chat streamed and not, a model only on the third computer', async () => {
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual((await ollama.list()).models.map((m) => m.name).sort(), ALL_MODELS);
    const before = served('charlie', '/api/chat');
    const whole = await ollama.chat({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 3 } });
    assert.equal(whole.message.content.trim(), 'tok0 tok1 tok2');
    assert.equal(served('charlie', '/api/chat'), before + 1, 'qwen2.5:0.5b is served by charlie, the only computer with it');
    let streamed = '';
    for await (const part of await ollama.chat({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], stream: true, options: { num_predict: 4 } })) streamed += part.message.content;
    assert.equal(streamed.trim(), 'tok0 tok1 tok2 tok3');
    assert.equal((await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] })).embeddings.length, 2);
    assert.ok((await ollama.version()).version.length > 0);
  });

  test('with a sign-in token, the openai client sees one server: /v1/models is the union, completions streamed and not', async () => {
    const openai = new OpenAI({ baseURL: `${endpoint}/v1`, apiKey: token });
    assert.deepEqual((await openai.models.list()).data.map((m) => m.id).sort(), ALL_MODELS);
    const whole = await openai.chat.completions.create({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.equal(whole.choices[0]?.message.content?.trim(), 'tok0 tok1 tok2');
    let streamed = '';
    for await (const chunk of await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, stream: true })) {
      streamed += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(streamed.trim(), 'tok0 tok1');
  });

  test('a key made on alpha serves a model only on bravo, with both clients; its use is counted on alpha', async () => {
    const start = await usageOf(any.id);
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${any.key}` } });
    // charlie runs without client keys (an older bridge): the key does not reach it.
    assert.deepEqual((await ollama.list()).models.map((m) => m.name).sort(), ['llama3.2:latest', 'mistral:7b']);
    const onBravo = served('bravo', '/api/chat');
    const whole = await ollama.chat({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 3 } });
    assert.equal(whole.message.content.trim(), 'tok0 tok1 tok2');
    let streamed = '';
    for await (const part of await ollama.generate({ model: 'mistral:7b', prompt: 'x', stream: true, options: { num_predict: 4 } })) streamed += part.response;
    assert.equal(streamed.trim(), 'tok0 tok1 tok2 tok3');
    assert.equal(served('bravo', '/api/chat'), onBravo + 1);
    const openai = new OpenAI({ baseURL: `${endpoint}/v1`, apiKey: any.key });
    const completion = await openai.chat.completions.create({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(completion.choices[0]?.message.content?.trim(), 'tok0 tok1');
    let sse = '';
    for await (const chunk of await openai.chat.completions.create({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true })) sse += chunk.choices[0]?.delta.content ?? '';
    assert.equal(sse.trim(), 'tok0 tok1 tok2');
    await assert.rejects(ollama.chat({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'hi' }] }), (e: Error) => {
      assert.match(e.message, /not found on any of your connected computers \(asked: alpha, bravo\)/);
      return true;
    });
    // Five requests (list, chat, generate, two OpenAI completions) served by alpha and bravo,
    // all counted where the key lives, tokens out included (the emulator's prompt counts vary).
    await waitUntil(async () => (await usageOf(any.id)).requests >= start.requests + 5, 'alpha counts the uses served by bravo', 10_000);
    const now = await usageOf(any.id);
    assert.equal(now.requests, start.requests + 5);
    // The streamed OpenAI answer carries no usage (no stream_options.include_usage): its three
    // token chunks are what it used.
    assert.equal(now.tokensOut - start.tokensOut, 3 + 4 + 2 + 3, 'eval_count of the Ollama answers, completion_tokens of the non-streamed completion, the chunks of the streamed one');
  });

  test('a computer coming back under its name with client keys serves keys made on alpha; the audit lines name the computer', async () => {
    const old = bridges.charlie;
    await connect('charlie', true);
    assert.equal((await waitForState(old, 'disconnected')).code, 'replaced');
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${any.key}` } });
    await waitUntil(async () => (await ollama.list()).models.length === ALL_MODELS.length, 'charlie serves the key now');
    const whole = await ollama.chat({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 2 } });
    assert.equal(whole.message.content.trim(), 'tok0 tok1');
    const user = userHash((JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string }).sub);
    await waitUntil(() => cloud.audit.entries.some((e) => e.userHash === user && e.action === 'bridge.disconnect'), 'the replaced connection is audited');
    const lines = cloud.audit.entries.filter((e) => e.userHash === user && e.action.startsWith('bridge.'));
    const connects = lines.filter((e) => e.action === 'bridge.connect').map((e) => e.machine);
    assert.deepEqual(connects, ['alpha', 'bravo', 'charlie', 'charlie']);
    const replaced = lines.filter((e) => e.action === 'bridge.disconnect');
    assert.deepEqual(replaced.map((e) => [e.machine, e.reason]), [['charlie', 'replaced']]);
  });

  test('a key limited to alpha and bravo: a pin to charlie is 403 naming them; listings and routing stay on them; keys list shows it', async () => {
    const listed = JSON.parse((await keysCli(['list', '--json'])).stdout) as Array<{ id: string; machines: string[] | null }>;
    assert.deepEqual(listed.find((k) => k.id === limited.id)?.machines, ['alpha', 'bravo']);
    assert.equal(listed.find((k) => k.id === any.id)?.machines, null);
    assert.match((await keysCli(['list'])).stdout, /^NAME +ID +MODELS +ALLOW +MACHINES[\s\S]*desk-and-lab +\S+ +all +- +alpha,bravo /m);

    const pinned = await get(`${endpoint}/api/tags`, limited.key, { headers: { 'X-CloudToLocalLLM-Machine': 'charlie' } });
    assert.equal(pinned.status, 403);
    assert.equal(pinned.headers.get('x-cloudtolocalllm-refusal'), 'key-machine');
    assert.equal(pinned.body['error'], 'the key "desk-and-lab" may not use the computer "charlie"; it may use alpha, bravo');
    for (const path of ['/api/tags', '/api/ps', '/v1/models']) {
      const r = await get(`${endpoint}${path}`, limited.key);
      assert.equal(r.status, 200, path);
    }
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${limited.key}` } });
    assert.deepEqual((await ollama.list()).models.map((m) => m.name).sort(), ['llama3.2:latest', 'mistral:7b']);
    const openai = new OpenAI({ baseURL: `${endpoint}/v1`, apiKey: limited.key });
    assert.deepEqual((await openai.models.list()).data.map((m) => m.id).sort(), ['llama3.2:latest', 'mistral:7b']);
    const onCharlie = served('charlie', '/api/chat');
    await assert.rejects(ollama.chat({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'hi' }] }), /asked: alpha, bravo/);
    assert.equal(served('charlie', '/api/chat'), onCharlie, 'charlie never saw it');
    assert.equal((await get(`${endpoint}/api/tags`, limited.key, { headers: { 'X-CloudToLocalLLM-Machine': 'bravo' } })).status, 200);
    assert.equal((await ollama.chat({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 1 } })).message.content.trim(), 'tok0');

    const bad = await keysCli(['create', '--name', 'bad', '--machines', 'my desk']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^keys: --machines: the computer name "my desk" may hold only letters/);
  });

  test('a key with a model list made on alpha: other computers apply it (union listing and refusals)', async () => {
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${mistralOnly.key}` } });
    assert.deepEqual((await ollama.list()).models.map((m) => m.name), ['mistral:7b']);
    const refused = await get(`${endpoint}/api/chat`, mistralOnly.key, { method: 'POST', body: JSON.stringify({ model: 'qwen2.5:0.5b', messages: [] }) });
    assert.equal(refused.status, 403);
    assert.equal(refused.body['error'], 'the key "mistral-only" may not use the model "qwen2.5:0.5b"; it may use "mistral:7b"');
    const pinned = await get(`${endpoint}/api/tags`, mistralOnly.key, { headers: { 'X-CloudToLocalLLM-Machine': 'charlie' } });
    assert.deepEqual((pinned.body['models'] as Array<{ name: string }>).map((m) => m.name), [], 'charlie filters its own list by the scope it was given');
  });

  test('model management with a key made on alpha: the key must allow it AND the serving computer\'s own policy must', async () => {
    const pull = (key: string, machine: Name): ReturnType<typeof get> =>
      get(`${endpoint}/api/pull`, key, { method: 'POST', headers: { 'X-CloudToLocalLLM-Machine': machine }, body: JSON.stringify({ model: 'mistral:7b', stream: false }) });
    // bravo allows pull, the key does not.
    const notTheKey = await pull(mistralOnly.key, 'bravo');
    assert.equal(notTheKey.status, 403);
    assert.equal(notTheKey.headers.get('x-cloudtolocalllm-refusal'), 'key-scope');
    assert.match(String(notTheKey.body['error']), /which the key "mistral-only" may not use; make a key with --allow pull$/);
    // The key allows pull, charlie does not: the computer's policy wins.
    const notTheComputer = await pull(puller.key, 'charlie');
    assert.equal(notTheComputer.status, 403);
    assert.equal(notTheComputer.headers.get('x-cloudtolocalllm-refusal'), 'policy');
    // Both allow it.
    const pulled = await pull(puller.key, 'bravo');
    assert.equal(pulled.status, 200, JSON.stringify(pulled.body));
    assert.equal(pulled.body['status'], 'success');
  });

  test('a key revoked on alpha stops working on bravo too, within 2 s', async () => {
    const made = create(dirs.alpha, ['--name', 'short-lived']);
    const chatOnBravo = (): ReturnType<typeof get> =>
      get(`${endpoint}/api/chat`, made.key, { method: 'POST', body: JSON.stringify({ model: 'mistral:7b', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 1 } }) });
    await waitUntil(async () => (await chatOnBravo()).status === 200, 'the new key works on bravo');
    const revoked = await keysCli(['revoke', 'short-lived']);
    assert.equal(revoked.status, 0, revoked.stderr);
    const at = Date.now();
    await waitUntil(async () => (await chatOnBravo()).status === 401, 'bravo refuses the revoked key', 2_000);
    assert.ok(Date.now() - at < 2_000);
  });

  test('a client cannot bring a scope of its own: the scope and key-id headers it sends are dropped', async () => {
    const forged = encodeKeyScope({ name: 'desk-and-lab', allow: ['pull'], models: ['qwen2.5:0.5b'] });
    // The limited key with a forged scope that lifts its computer list: still refused.
    const pinned = await get(`${endpoint}/api/tags`, limited.key, { headers: { 'X-CloudToLocalLLM-Machine': 'charlie', [KEY_SCOPE_HEADER]: forged } });
    assert.equal(pinned.status, 403);
    assert.equal(pinned.headers.get('x-cloudtolocalllm-refusal'), 'key-machine');
    // The model-limited key claiming another model list: still only mistral.
    const widened = await get(`${endpoint}/api/tags`, mistralOnly.key, { headers: { [KEY_SCOPE_HEADER]: forged } });
    assert.deepEqual((widened.body['models'] as Array<{ name: string }>).map((m) => m.name), ['mistral:7b']);
    // A sign-in token with a key id and a scope: served as the token, and no bridge saw either header.
    const before = emulators.charlie.requests.length;
    const r = await get(`${endpoint}/api/tags`, token, { headers: { 'X-CloudToLocalLLM-Machine': 'charlie', [KEY_SCOPE_HEADER]: forged, [KEY_ID_HEADER]: limited.id } });
    assert.equal(r.status, 200);
    const seen = emulators.charlie.requests.slice(before);
    assert.ok(seen.length > 0 && seen.every((q) => !Object.keys(q.headers).some((h) => h.startsWith('x-cloudtolocalllm-'))));
    // A client cannot post usage: its requests never carry the control authority.
    const report = await get(`${endpoint}/keys/usage`, token, { method: 'POST', body: JSON.stringify({ id: any.id, tokensIn: 1e6, tokensOut: 1e6 }) });
    assert.equal(report.status, 404);
    assert.ok((await usageOf(any.id)).tokensIn < 1e6);
  });

  test('a computer that leaves mid-stream: the tokens already relayed are counted on the key\'s own computer', async () => {
    // charlie is taken over by a bridge CLI process under the same name (with an empty key
    // directory: it serves alpha's key by its scope), which is killed while it streams.
    const dir = mkdtempSync(join(tmpdir(), 'ctll-three-cut-'));
    const cli = spawn(process.execPath, ['--import', 'tsx', 'bridge/cli.ts', '--proxy-url', `${cloud.url.replace(/^http/, 'ws')}/ws/bridge`, '--ollama-url', emulators.charlie.url, '--name', 'charlie', '--json'], {
      cwd: ROOT,
      env: { ...process.env, CLOUDTOLOCALLLM_TOKEN: token, CTLL_CONFIG_DIR: dir },
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    const exited = new Promise((resolve) => cli.once('exit', resolve));
    const old = bridges.charlie;
    emulators.charlie.set({ tokenIntervalMs: 40 });
    try {
      assert.equal((await waitForState(old, 'disconnected', 30_000)).code, 'replaced', 'the CLI took charlie over');
      // Once its key set reached the proxy, the key reaches charlie's model; each look is a use.
      const before = await usageOf(any.id);
      let looks = 0;
      await waitUntil(async () => {
        looks += 1;
        return ((await get(`${endpoint}/api/tags`, any.key)).body['models'] as Array<{ name: string }>).some((m) => m.name === 'qwen2.5:0.5b');
      }, 'the CLI serves the key', 10_000);
      await waitUntil(async () => (await usageOf(any.id)).requests === before.requests + looks, 'the looks are counted', 10_000);
      const start = await usageOf(any.id);
      const answer = await fetch(`${endpoint}/api/generate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${any.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'qwen2.5:0.5b', prompt: 'x', options: { num_predict: 200 } }),
      });
      assert.equal(answer.status, 200);
      // Read as it comes: a cut connection fails text() and takes what had come with it.
      let fiveCame: () => void = () => undefined;
      const five = new Promise<void>((resolve) => (fiveCame = resolve));
      const text = (async (): Promise<string> => {
        const decoder = new TextDecoder();
        let got = '';
        try {
          for await (const chunk of answer.body!) {
            got += decoder.decode(chunk, { stream: true });
            if (got.split('\n').length > 5) fiveCame();
          }
        } catch {
          // The connection cut after the error line: what came is the answer.
        }
        return got;
      })();
      await five;
      cli.kill('SIGKILL');
      const lines = (await text).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { done?: boolean; error?: string });
      const relayed = lines.filter((l) => l.done === false).length;
      assert.ok(relayed >= 5 && relayed < 200, `the answer was cut after ${relayed} tokens`);
      assert.match(lines.at(-1)?.error ?? '', /connection to your computer was lost mid-stream/);
      await waitUntil(async () => (await usageOf(any.id)).requests > start.requests, 'alpha counts the cut answer', 10_000);
      const now = await usageOf(any.id);
      assert.equal(now.requests, start.requests + 1);
      assert.equal(now.tokensOut - start.tokensOut, relayed, 'every token the client got, and no more');
      assert.equal(now.tokensIn, start.tokensIn, 'the prompt\'s count comes only at the end');
    } finally {
      cli.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
      emulators.charlie.set({ tokenIntervalMs: 1 });
    }
  });
});
