/**
 * The product's promise, checked with the official `ollama` npm client: pointed at the cloud
 * proxy, it behaves as if Ollama were local, and tokens stream as they are generated.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import { startStack, type Stack } from './harness.js';

describe('the ollama npm client through proxy and bridge', () => {
  let stack: Stack;
  let ollama: Ollama;
  before(async () => {
    stack = await startStack({
      emulator: { tokenIntervalMs: 40 },
      bridge: { policy: { allowManagement: new Set(['pull']) } },
    });
    ollama = new Ollama({ host: stack.url, headers: stack.auth });
  });
  after(() => stack.close());

  test('chat streams: the first token arrives while the model is still generating', async () => {
    const stream = await ollama.chat({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      options: { num_predict: 20 },
    });
    let text = '';
    let first = true;
    let done = false;
    for await (const part of stream) {
      if (first) {
        first = false;
        assert.equal(stack.emulator.activeGenerations(), 1, 'the emulator is still generating when the first token arrives');
        const rec = stack.emulator.requests.at(-1);
        assert.ok(rec && rec.tokensSent < 20, `only ${rec?.tokensSent} of 20 tokens were generated so far`);
      }
      text += part.message.content;
      if (part.done) {
        done = true;
        assert.equal(part.done_reason, 'stop');
        assert.ok(typeof part.eval_count === 'number');
      }
    }
    assert.ok(done, 'the final done line arrived');
    assert.equal(text.trim(), Array.from({ length: 20 }, (_, i) => `tok${i}`).join(' '));
  });

  test('generate streams token by token', async () => {
    const arrivals: number[] = [];
    let text = '';
    for await (const part of await ollama.generate({ model: 'llama3.2', prompt: 'x', stream: true, options: { num_predict: 10 } })) {
      arrivals.push(Date.now());
      text += part.response;
    }
    assert.equal(text.trim(), Array.from({ length: 10 }, (_, i) => `tok${i}`).join(' '));
    // 10 tokens 40 ms apart: had the path buffered, they would arrive in one burst.
    const spread = (arrivals.at(-2) ?? 0) - (arrivals[0] ?? 0);
    assert.ok(spread >= 200, `tokens arrived spread over ${spread} ms, not in a burst`);
  });

  test('non-streaming chat and generate give one object', async () => {
    const chat = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 3 } });
    assert.equal(chat.message.content.trim(), 'tok0 tok1 tok2');
    assert.equal(chat.done, true);
    const gen = await ollama.generate({ model: 'llama3.2', prompt: 'x', stream: false, options: { num_predict: 2 } });
    assert.equal((gen.response ?? '').trim(), 'tok0 tok1');
  });

  test('tags, show, ps and version', async () => {
    const tags = await ollama.list();
    assert.ok(tags.models.some((m) => m.name.startsWith('llama3.2')), 'the local models are listed');
    const show = await ollama.show({ model: 'llama3.2' });
    assert.ok(show.details, 'show returns model details');
    const ps = await ollama.ps();
    assert.ok(Array.isArray(ps.models));
    const version = await ollama.version();
    assert.match(version.version, /^\d+\.\d+\.\d+/);
  });

  test('embed returns vectors for each input', async () => {
    const res = await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] });
    assert.equal(res.embeddings.length, 2);
    assert.ok((res.embeddings[0]?.length ?? 0) > 0);
  });

  test('errors keep Ollama\'s shape: an unknown model is a 404 the client reports', async () => {
    await assert.rejects(
      ollama.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (e: Error & { status_code?: number }) => e.status_code === 404 && /not found/.test(e.message),
    );
  });

  test('pull streams its progress when the owner allowed pull', async () => {
    const statuses: string[] = [];
    for await (const p of await ollama.pull({ model: 'tinyllama', stream: true })) statuses.push(p.status);
    assert.equal(statuses[0], 'pulling manifest');
    assert.ok(statuses.filter((s) => s.startsWith('pulling ') && s !== 'pulling manifest').length >= 2, 'download progress lines');
    assert.equal(statuses.at(-1), 'success');
  });

  test('a client without the bearer token is refused with 401 in Ollama\'s error shape', async () => {
    const anonymous = new Ollama({ host: stack.url });
    await assert.rejects(anonymous.list(), (e: Error & { status_code?: number }) => e.status_code === 401 && /Bearer/.test(e.message));
  });
});
