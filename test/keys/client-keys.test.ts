/**
 * Client keys (issue 9) through the headless stack as a user runs it: `npm run start:headless`
 * with CTLL_CONFIG_DIR, keys made with `npm run keys`, used by the official `ollama` and `openai`
 * clients and by curl, on the endpoint the stack prints. The Ollama emulator stands in for Ollama.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { ChatOllama } from '@langchain/ollama';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, streamText } from 'ai';
import { OllamaEmulator } from '@cloudtolocalllm/ollama-emulator';
import { create, get, keysCli, reforge, ROOT, untilNot } from './keys-harness.js';
import { randomBytes } from 'node:crypto';
import { KEY_LENGTH, KEY_PREFIX, routeOf } from '@cloudtolocalllm/bridge/connection/client-key';
import { Bridge } from '@cloudtolocalllm/bridge';
import { KeyRing } from '@cloudtolocalllm/bridge/keys/key-ring';
import { KeyStore } from '@cloudtolocalllm/bridge/keys/key-store';
import { userHash } from '@cloudtolocalllm/proxy-spec/user-hash';
import type { ClientConfig } from '@cloudtolocalllm/api-contract';
import { headlessSignIn } from '../../scripts/headless-login.js';
import { startHeadless, type HeadlessRun } from '../cloud/headless-process.js';

const run = promisify(execFile);

describe('client keys through start:headless', () => {
  let emulator: OllamaEmulator;
  let dir: string;
  let stack: HeadlessRun;
  let endpoint: string;

  before(async () => {
    emulator = new OllamaEmulator({ tokenIntervalMs: 5 });
    await emulator.start();
    dir = mkdtempSync(join(tmpdir(), 'ctll-keys-'));
    stack = await startHeadless(['--runtime', 'process', '--ollama-url', emulator.url, '--allow', 'pull'], 60_000, { CTLL_CONFIG_DIR: dir });
    endpoint = stack.endpoint;
  });
  after(async () => {
    const code = await stack?.stop();
    assert.equal(code, 0, stack?.stderr().slice(-1000));
    await emulator?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('keys create without a sign-in says to sign in first', () => {
    const empty = mkdtempSync(join(tmpdir(), 'ctll-nokeys-'));
    try {
      const r = keysCli(empty, ['create', '--name', 'x']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /sign in first/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('a key works with the ollama client, the openai client and curl; the secret is nowhere on disk', async () => {
    const made = create(dir, ['--name', 'everything']);
    assert.equal(made.key.length, KEY_LENGTH);
    for (const file of ['keys.json', 'account.json']) assert.ok(!readFileSync(join(dir, file), 'utf8').includes(made.key.slice(5)), `${file} holds no key`);

    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${made.key}` } });
    assert.ok((await ollama.list()).models.length >= 3);
    const whole = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi', images: ['aGVsbG8='] }], options: { num_predict: 3 } });
    assert.ok(whole.message.content.length > 0);
    let streamed = '';
    for await (const part of await ollama.generate({ model: 'llama3.2', prompt: 'x', stream: true, options: { num_predict: 4 } })) streamed += part.response;
    assert.equal(streamed.trim(), 'tok0 tok1 tok2 tok3');
    const { embeddings } = await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] });
    assert.equal(embeddings.length, 2);

    const openai = new OpenAI({ baseURL: `${endpoint}/v1`, apiKey: made.key });
    const models = await openai.models.list();
    assert.ok(models.data.some((m) => m.id === 'llama3.2:latest'));
    const completion = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    assert.ok(completion.choices[0]?.message.content);
    let sse = '';
    const stream = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true });
    for await (const chunk of stream) sse += chunk.choices[0]?.delta.content ?? '';
    assert.ok(sse.length > 0);
    const vectors = await openai.embeddings.create({ model: 'nomic-embed-text', input: ['hello'] });
    assert.equal(vectors.data[0]?.embedding.length, 768);

    const curl = await run('curl', ['-sS', '-H', `Authorization: Bearer ${made.key}`, `${endpoint}/api/tags`]);
    assert.ok((JSON.parse(curl.stdout) as { models: unknown[] }).models.length >= 3);

    // Ollama never sees the key: the bridge strips the cloud's headers.
    for (const r of emulator.requests) {
      assert.equal(r.headers['authorization'], undefined);
      assert.ok(!Object.keys(r.headers).some((h) => h.startsWith('x-cloudtolocalllm')), `headers reaching Ollama: ${Object.keys(r.headers).join(',')}`);
    }
  });

  test('tool calls in /api/chat, streamed and not, with a key', async () => {
    const made = create(dir, ['--name', 'tools']);
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${made.key}` } });
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'weather of a city', parameters: { type: 'object', required: ['city', 'days'], properties: { city: { type: 'string' }, days: { type: 'integer' } } } } }];
    const whole = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'weather in Oslo?' }], tools });
    assert.deepEqual(whole.message.tool_calls, [{ function: { name: 'get_weather', arguments: { city: 'tok0', days: 1 } } }]);
    const calls = [];
    for await (const part of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'weather in Oslo?' }], tools, stream: true })) calls.push(...(part.message.tool_calls ?? []));
    assert.equal(calls[0]?.function.name, 'get_weather');
    // The tool's result goes back: the model answers with text.
    const answer = await ollama.chat({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'weather in Oslo?' }, { role: 'assistant', content: '', tool_calls: whole.message.tool_calls! }, { role: 'tool', content: 'sunny' }],
      tools,
      options: { num_predict: 2 },
    });
    assert.equal(answer.message.content.trim(), 'tok0 tok1');
  });

  test('frameworks: LangChain (ChatOllama) and the Vercel AI SDK (OpenAI-compatible provider), streaming and not', async () => {
    const made = create(dir, ['--name', 'frameworks']);
    const chat = new ChatOllama({ baseUrl: endpoint, model: 'llama3.2', headers: { Authorization: `Bearer ${made.key}` }, numPredict: 3 });
    const reply = await chat.invoke('hi');
    assert.equal(String(reply.content).trim(), 'tok0 tok1 tok2');
    let streamed = '';
    for await (const chunk of await chat.stream('hi')) streamed += String(chunk.content);
    assert.equal(streamed.trim(), 'tok0 tok1 tok2');

    const provider = createOpenAICompatible({ name: 'cloudtolocalllm', baseURL: `${endpoint}/v1`, apiKey: made.key });
    const text = await generateText({ model: provider('llama3.2'), prompt: 'hi', maxOutputTokens: 3 });
    assert.equal(text.text.trim(), 'tok0 tok1 tok2');
    let sse = '';
    const result = streamText({ model: provider('llama3.2'), prompt: 'hi', maxOutputTokens: 3 });
    for await (const delta of result.textStream) sse += delta;
    assert.equal(sse.trim(), 'tok0 tok1 tok2');
    // A cut key: on /v1 the refusal is in OpenAI's error shape, so the SDK's message is ours.
    const bad = createOpenAICompatible({ name: 'cloudtolocalllm', baseURL: `${endpoint}/v1`, apiKey: made.key.slice(0, -2) });
    await assert.rejects(generateText({ model: bad('llama3.2'), prompt: 'hi', maxRetries: 0 }), (e: { statusCode?: number; message?: string }) => {
      assert.equal(e.statusCode, 401);
      assert.match(e.message ?? '', /cut off/);
      return true;
    });
  });

  test('usage is counted on the computer and shown by keys list', async () => {
    const made = create(dir, ['--name', 'counted']);
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${made.key}` } });
    const answer = await ollama.generate({ model: 'llama3.2', prompt: 'one two three', options: { num_predict: 5 } });
    await ollama.generate({ model: 'llama3.2', prompt: 'one two three', options: { num_predict: 5 } });
    // usage.json is written by the bridge after its flush interval: wait for the write itself.
    let listed: Array<Record<string, unknown>> = [];
    await new Promise<void>((resolve) => {
      const check = (): boolean => {
        const r = keysCli(dir, ['list', '--json']);
        listed = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
        return listed.some((k) => k['id'] === made.id && k['requests'] === 2);
      };
      if (check()) return resolve();
      const w = watch(dir, () => {
        if (check()) {
          w.close();
          resolve();
        }
      });
    });
    const mine = listed.find((k) => k['id'] === made.id)!;
    assert.equal(mine['tokensOut'], 2 * answer.eval_count);
    assert.equal(mine['tokensIn'], 2 * answer.prompt_eval_count);
    assert.equal(typeof mine['lastUsedAt'], 'number');
    const human = keysCli(dir, ['list']).stdout;
    assert.match(human, /NAME\s+ID\s+MODELS/);
    assert.ok(!human.includes('ctll_'), 'list shows no key');
  });

  test('wrong, truncated and mistyped keys are refused with what was wrong, and never reach the computer', async () => {
    const made = create(dir, ['--name', 'typos']);
    const before = emulator.requests.length;
    const truncated = await get(`${endpoint}/api/tags`, made.key.slice(0, -3));
    assert.equal(truncated.status, 401);
    assert.match(String(truncated.body['error']), /cut off/);
    assert.match(truncated.headers.get('www-authenticate') ?? '', /invalid_token/);
    const flipped = made.key.slice(0, 20) + (made.key[20] === 'A' ? 'B' : 'A') + made.key.slice(21);
    const typo = await get(`${endpoint}/api/tags`, flipped);
    assert.equal(typo.status, 401);
    assert.match(String(typo.body['error']), /checksum/);
    // A well-formed key of the same user and id with a secret nobody issued: the proxy refuses it.
    const wrong = await get(`${endpoint}/api/tags`, reforge(made.key, { secret: randomBytes(32) }));
    assert.equal(wrong.status, 401);
    assert.match(String(wrong.body['error']), /not valid for this endpoint/);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /Bearer realm="CloudToLocalLLM"/);
    assert.deepEqual(emulator.requests.slice(before).filter((r) => r.path === '/api/tags'), [], 'no refused key reached Ollama');
  });

  test("refusals on /v1 are in OpenAI's error shape, so the openai client's error says ours: the api-backend's, the proxy's and the bridge's", async () => {
    const made = create(dir, ['--name', 'openai-refusals', '--models', 'qwen2.5:0.5b']);
    const ask = (apiKey: string, model = 'qwen2.5:0.5b'): Promise<unknown> =>
      new OpenAI({ baseURL: `${endpoint}/v1`, apiKey, maxRetries: 0 }).chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] });
    const refused = async (call: Promise<unknown>, status: number, message: RegExp): Promise<void> => {
      await assert.rejects(call, (e: unknown) => {
        assert.ok(e instanceof OpenAI.APIError, `an APIError, not ${String(e)}`);
        assert.equal(e.status, status);
        assert.match(e.message, message);
        assert.ok(e.code, 'a refusal code');
        assert.equal(e.code, e.headers?.get('x-cloudtolocalllm-refusal'), "our refusal code (the refusal header's) in OpenAI's code field");
        assert.equal(e.type, status === 400 ? 'invalid_request_error' : 'api_error');
        return true;
      });
    };
    // The api-backend: a cut key, never reaching any proxy.
    await refused(ask(made.key.slice(0, -3)), 401, /^401 the key is 80 characters long, .*cut off/);
    // The streaming proxy: a well-formed key whose secret nobody issued.
    await refused(ask(reforge(made.key, { secret: randomBytes(32) })), 401, /not valid for this endpoint/);
    // The bridge: a model the key may not use.
    await refused(ask(made.key, 'llama3.2'), 403, /may not use the model "llama3\.2"; it may use "qwen2\.5:0\.5b"/);
    // The Ollama API keeps Ollama's shape.
    const native = await get(`${endpoint}/api/chat`, made.key, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', messages: [] }) });
    assert.equal(typeof native.body['error'], 'string');
  });

  test('revoking a key on a running bridge stops it within 2 s', async () => {
    const made = create(dir, ['--name', 'revoked']);
    assert.equal((await get(`${endpoint}/api/version`, made.key)).status, 200);
    // The clock starts when keys.json is replaced (seen here as the bridge sees it), not when the CLI starts.
    let revokedAt = 0;
    const w = watch(dir, (_e, name) => {
      if (name === 'keys.json' && revokedAt === 0) revokedAt = Date.now();
    });
    const started = Date.now();
    // Not spawnSync: the watcher must see the replacement while the CLI runs.
    await run(process.execPath, ['--import', 'tsx', 'bridge/keys/cli.ts', 'revoke', 'revoked'], { cwd: ROOT, env: { ...process.env, CTLL_CONFIG_DIR: dir } });
    w.close();
    assert.ok(revokedAt > 0, 'keys.json was replaced');
    // Ask until refused: each answer is an event; the figure is the time from the revoke's end.
    const { status } = await untilNot(`${endpoint}/api/version`, made.key, 200);
    const latency = Date.now() - revokedAt;
    assert.equal(status, 401);
    assert.ok(latency < 2_000, `revocation took ${latency} ms`);
    process.stdout.write(`# revocation latency: ${latency} ms from keys.json replaced to the first refusal (the CLI took ${revokedAt - started} ms to get there)\n`);
  });

  test('an expired key is refused', async () => {
    const made = create(dir, ['--name', 'short', '--expires', '1m']);
    assert.equal((await get(`${endpoint}/api/version`, made.key)).status, 200);
    // Rewrite its expiry into the past, as time passing would: the file is the computer's own.
    const file = join(dir, 'keys.json');
    const defs = JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<{ id: string; expiresAt?: number }> };
    defs.keys.find((k) => k.id === made.id)!.expiresAt = Date.now() - 1000;
    const { writeJsonAtomic } = await import('@cloudtolocalllm/bridge/keys/key-store');
    writeJsonAtomic(file, defs);
    const res = await untilNot(`${endpoint}/api/version`, made.key, 200);
    assert.equal(res.status, 401);
    assert.match(String(res.body['error']), /expired|not valid/);
  });

  test('a key with a model list sees and uses only those models; management needs the key and the computer', async () => {
    const made = create(dir, ['--name', 'scoped', '--models', 'qwen2.5:0.5b,nomic-embed-text']);
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${made.key}` } });
    assert.deepEqual((await ollama.list()).models.map((m) => m.name).sort(), ['nomic-embed-text:latest', 'qwen2.5:0.5b']);
    const openai = new OpenAI({ baseURL: `${endpoint}/v1`, apiKey: made.key });
    assert.deepEqual((await openai.models.list()).data.map((m) => m.id).sort(), ['nomic-embed-text:latest', 'qwen2.5:0.5b']);
    const other = await get(`${endpoint}/api/chat`, made.key, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }) });
    assert.equal(other.status, 403);
    assert.match(String(other.body['error']), /may not use the model "llama3\.2".*"qwen2\.5:0\.5b", "nomic-embed-text"/);
    const allowed = await ollama.generate({ model: 'qwen2.5:0.5b', prompt: 'x', options: { num_predict: 2 } });
    assert.ok((allowed.response ?? "").length > 0);
    // pull: the computer allows it (--allow pull), this key does not.
    const pull = await get(`${endpoint}/api/pull`, made.key, { method: 'POST', body: JSON.stringify({ model: 'qwen2.5:0.5b', stream: false }) });
    assert.equal(pull.status, 403);
    assert.match(String(pull.body['error']), /may not use; make a key with --allow pull/);
    // delete: the key allows it, the computer does not.
    const manager = create(dir, ['--name', 'manager', '--allow', 'pull,delete']);
    const del = await get(`${endpoint}/api/delete`, manager.key, { method: 'DELETE', body: JSON.stringify({ model: 'qwen2.5:0.5b' }) });
    assert.equal(del.status, 403);
    assert.match(String(del.body['error']), /your computer does not allow/);
    const pulled = await get(`${endpoint}/api/pull`, manager.key, { method: 'POST', body: JSON.stringify({ model: 'qwen2.5:0.5b', stream: false }) });
    assert.equal(pulled.status, 200);
  });

  test('the sign-in token keeps working beside keys', async () => {
    const ollama = new Ollama({ host: endpoint, headers: { authorization: `Bearer ${stack.token}` } });
    assert.ok((await ollama.list()).models.length >= 3);
  });

  test('nothing of a key is in the stack\'s logs', () => {
    const keysFile = readFileSync(join(dir, 'keys.json'), 'utf8');
    const verifiers = [...keysFile.matchAll(/"verifier": "([0-9a-f]{64})"/g)].map((m) => m[1]!);
    assert.ok(verifiers.length > 0);
    const logs = stack.stdout() + stack.stderr();
    assert.ok(!logs.includes('ctll_'), 'no key in the logs');
    for (const v of verifiers) assert.ok(!logs.includes(v), 'no verifier in the logs');
  });

  test('cross-user tricks are refused and never reach the other user\'s computer', async () => {
    // User B: another sign-in on the same cloud, another computer (its own emulator, bridge and keys).
    const server = new URL(endpoint).origin;
    const config = (await (await fetch(`${server}/api/config`)).json()) as ClientConfig;
    const tokens = await headlessSignIn({ issuer: config.issuer, clientId: config.desktopClientId, audience: config.audience, username: 'bob' });
    const bobDir = mkdtempSync(join(tmpdir(), 'ctll-keys-bob-'));
    const bobOllama = new OllamaEmulator({ tokenIntervalMs: 5 });
    await bobOllama.start();
    const bobStore = new KeyStore(bobDir);
    bobStore.recordSignIn(userHash(tokens.subject!));
    const bobKeys = new KeyRing(bobStore);
    bobKeys.start();
    const bob = new Bridge({ proxyUrl: `${server.replace(/^http/, 'ws')}/ws/bridge`, getToken: () => tokens.accessToken, ollamaUrl: bobOllama.url, keys: bobKeys });
    try {
      const connected = new Promise<void>((resolve) => bob.on('status', (st) => st.state === 'connected' && resolve()));
      bob.start();
      await connected;
      const bobKey = bobStore.create({ name: 'bobs' }).key;
      const alice = create(dir, ['--name', 'alice-cross', '--models', 'qwen2.5:0.5b']);
      const aliceOpen = create(dir, ['--name', 'alice-open']);
      const bobRoute = routeOf(userHash(tokens.subject!));
      const aliceSeen = emulator.requests.length;

      // Bob's key works, on Bob's computer only.
      const bobTags = (): number => bobOllama.requests.filter((r) => r.path === '/api/tags').length;
      assert.equal((await get(`${endpoint}/api/tags`, bobKey)).status, 200);
      assert.equal(bobTags(), 1);
      assert.equal(emulator.requests.length, aliceSeen, "Bob's key never reaches Alice's computer");
      const bobSeen = bobOllama.requests.length;

      // Alice's key with Bob's routing part (id and secret Alice's, checksum made right): Bob's proxy refuses it.
      const moved = await get(`${endpoint}/api/tags`, reforge(alice.key, { route: bobRoute }));
      assert.equal(moved.status, 401);
      assert.match(String(moved.body['error']), /not valid for this endpoint/);
      // Bob's key id and routing part with Alice's secret.
      const bobId = Buffer.from(bobKey.slice(KEY_PREFIX.length), 'base64url').subarray(16, 22);
      const mixed = Buffer.from(alice.key.slice(KEY_PREFIX.length), 'base64url');
      bobId.copy(mixed, 16);
      const mixedKey = reforge(KEY_PREFIX + mixed.toString('base64url'), { route: bobRoute });
      assert.equal((await get(`${endpoint}/api/tags`, mixedKey)).status, 401);
      // Alice's sign-in token with Bob's key in the headers the hops use among themselves: Alice's computer answers, unscoped; Bob's sees nothing.
      const injected = await get(`${endpoint}/api/tags`, stack.token, { headers: { 'x-cloudtolocalllm-client-key': bobKey, 'x-cloudtolocalllm-key-id': 'AAAAAAAA' } });
      assert.equal(injected.status, 200);
      // Alice's scoped key claiming the id of her unscoped one: the scope stays.
      const aliceOpenId = Buffer.from(aliceOpen.key.slice(KEY_PREFIX.length), 'base64url').subarray(16, 22).toString('base64url');
      const claimed = await get(`${endpoint}/api/chat`, alice.key, {
        method: 'POST',
        headers: { 'x-cloudtolocalllm-key-id': aliceOpenId },
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] }),
      });
      assert.equal(claimed.status, 403);
      // A routing part nobody connected: not connected, in Ollama's shape.
      const nobody = await get(`${endpoint}/api/tags`, reforge(alice.key, { route: routeOf('f'.repeat(64)) }));
      assert.equal(nobody.status, 503);
      assert.match(String(nobody.body['error']), /your computer is not connected/);
      assert.equal(bobOllama.requests.length, bobSeen, "no trick reached Bob's computer");
      assert.equal(bobTags(), 1);
      // With Bob's computer offline, Bob's key gets 503 "not connected".
      await bob.stop();
      // Wait until the cloud has seen the bridge go (each status answer is an event).
      while ((await get(`${server}/api/proxy/status`, tokens.accessToken)).body['bridgeConnected'] !== false);
      const offline = await get(`${endpoint}/api/tags`, bobKey);
      assert.equal(offline.status, 503);
      assert.match(String(offline.body['error']), /your computer is not connected/);
    } finally {
      await bob.stop();
      bobKeys.close();
      await bobOllama.close();
      rmSync(bobDir, { recursive: true, force: true });
    }
  });

  // Last: it leaves this address blocked for the limiter's window.
  test('failed attempts from one address are limited: 429 with Retry-After, and the key is not in the answer', async () => {
    const made = create(dir, ['--name', 'limited']);
    const cut = made.key.slice(0, -4);
    let res = await get(`${endpoint}/api/tags`, cut);
    let tries = 1;
    while (res.status === 401 && tries < 100) {
      res = await get(`${endpoint}/api/tags`, cut);
      tries += 1;
    }
    assert.equal(res.status, 429, `after ${tries} failed attempts`);
    // Earlier tests' refusals from this address count in the same minute's window.
    assert.ok(tries <= 31, `30 failures a minute per address, then 429 (took ${tries} attempts)`);
    assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(String(res.body['error']), /too many failed authentications from your address; retry in \d+ s/);
    assert.ok(!JSON.stringify(res.body).includes(cut.slice(5)));
  });
});
