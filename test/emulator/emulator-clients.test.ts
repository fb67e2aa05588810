// The emulator against the official clients: if `ollama` and `openai` are happy with it, a relay
// tested against it is tested against what those clients expect. Also the raw /v1 wire shapes.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { send, sendTimed } from './http-test-client.js';
import { expectedText, OllamaEmulator } from './ollama-emulator.js';

describe('OllamaEmulator with the official clients', { timeout: 15_000 }, () => {
  const emu = new OllamaEmulator();
  let url = '';
  before(async () => {
    url = await emu.start();
  });
  afterEach(() => emu.set({ tokenIntervalMs: 2, failAfterTokens: undefined }));
  after(() => emu.close());

  describe('the ollama npm client', () => {
    it('lists, shows, reports version and running models', async () => {
      const ollama = new Ollama({ host: url });
      const { models } = await ollama.list();
      assert.ok(models.some((m) => m.name === 'llama3.2:latest' && m.details.family === 'llama'));
      const show = await ollama.show({ model: 'qwen2.5:0.5b' });
      assert.equal(show.details.parameter_size, '494.03M');
      assert.ok((await ollama.version()).version);
      assert.ok(Array.isArray((await ollama.ps()).models));
    });

    it('streams a generation and a chat completely and in order', async () => {
      const ollama = new Ollama({ host: url });
      let text = '';
      let done: { done_reason?: string; eval_count?: number } | undefined;
      for await (const part of await ollama.generate({ model: 'llama3.2', prompt: 'count', stream: true, options: { num_predict: 6 } })) {
        text += part.response;
        if (part.done) done = part;
      }
      assert.equal(text, expectedText(6));
      assert.equal(done?.done_reason, 'stop');
      assert.equal(done?.eval_count, 6);
      let chat = '';
      for await (const part of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi', images: ['aGVsbG8='] }], stream: true })) chat += part.message.content;
      assert.equal(chat, expectedText(8));
      const whole = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 2 } });
      assert.equal(whole.message.content, 'tok0 tok1 ');
    });

    it('embeds and pulls', async () => {
      const ollama = new Ollama({ host: url });
      const { embeddings } = await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] });
      assert.equal(embeddings.length, 2);
      assert.equal(embeddings[0]?.length, 768);
      const statuses: string[] = [];
      for await (const p of await ollama.pull({ model: 'gemma3:1b', stream: true })) statuses.push(p.status);
      assert.equal(statuses.at(-1), 'success');
      assert.ok((await ollama.list()).models.some((m) => m.name === 'gemma3:1b'));
    });

    it('surfaces a 404 and a mid-stream error as the client expects', async () => {
      const ollama = new Ollama({ host: url });
      await assert.rejects(ollama.generate({ model: 'ghost', prompt: 'x' }), (e: Error & { status_code?: number }) => {
        assert.equal(e.status_code, 404);
        assert.equal(e.message, 'model "ghost" not found, try pulling it first');
        return true;
      });
      emu.set({ failAfterTokens: 2 });
      const seen: string[] = [];
      await assert.rejects(async () => {
        for await (const part of await ollama.generate({ model: 'llama3.2', prompt: 'x', stream: true })) seen.push(String(part.response));
      }, /failAfterTokens/);
      assert.deepEqual(seen, ['tok0 ', 'tok1 ']);
    });

    it('aborting the client\'s stream is recorded as an abort and stops the generation', async () => {
      emu.set({ tokenIntervalMs: 30 });
      const ollama = new Ollama({ host: url });
      const stream = await ollama.generate({ model: 'llama3.2', prompt: 'long', stream: true, options: { num_predict: 500 } });
      let count = 0;
      await assert.rejects(
        async () => {
          for await (const _ of stream) if (++count === 2) stream.abort();
        },
        (e: Error) => e.name === 'AbortError',
      );
      const aborted = await emu.waitFor((r) => r.path === '/api/generate' && r.aborted, 30_000);
      assert.ok(aborted.tokensSent < 500, `stopped after ${aborted.tokensSent} of 500 tokens`);
      await emu.waitFor(() => emu.activeGenerations() === 0, 30_000);
    });
  });

  describe('the openai npm client on /v1', () => {
    const client = (): OpenAI => new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });

    it('lists and retrieves models', async () => {
      const ids: string[] = [];
      for await (const m of client().models.list()) ids.push(m.id);
      assert.ok(ids.includes('llama3.2:latest'));
      const m = await client().models.retrieve('llama3.2:latest');
      assert.equal(m.id, 'llama3.2:latest');
      assert.equal(m.owned_by, 'library');
      await assert.rejects(client().models.retrieve('ghost'), (e: { status?: number }) => e.status === 404);
    });

    it('completes a chat, streamed and not', async () => {
      const whole = await client().chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
      assert.equal(whole.choices[0]?.message.content, 'tok0 tok1 tok2 ');
      assert.equal(whole.choices[0]?.finish_reason, 'stop');
      assert.equal(whole.usage?.completion_tokens, 3);
      const stream = await client().chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
      let text = '';
      let finish: string | null | undefined;
      let completionTokens: number | undefined;
      for await (const chunk of stream) {
        assert.equal(chunk.object, 'chat.completion.chunk');
        text += chunk.choices[0]?.delta.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
      }
      assert.equal(text, expectedText(8));
      assert.equal(finish, 'stop');
      assert.equal(completionTokens, 8);
    });

    it('completes text, streamed and not', async () => {
      const whole = await client().completions.create({ model: 'qwen2.5:0.5b', prompt: 'x', max_tokens: 2 });
      assert.equal(whole.choices[0]?.text, 'tok0 tok1 ');
      let text = '';
      for await (const c of await client().completions.create({ model: 'qwen2.5:0.5b', prompt: 'x', max_tokens: 4, stream: true })) text += c.choices[0]?.text ?? '';
      assert.equal(text, expectedText(4));
    });

    it('embeds (the client asks for base64 and decodes it)', async () => {
      const res = await client().embeddings.create({ model: 'nomic-embed-text', input: ['hello', 'world'] });
      assert.equal(res.data.length, 2);
      assert.equal(res.data[0]?.embedding.length, 768);
      const native = (await send(url, { path: '/api/embed', body: { model: 'nomic-embed-text', input: 'hello' } })).json();
      res.data[0]?.embedding.slice(0, 8).forEach((v, i) => assert.ok(Math.abs(v - native.embeddings[0][i]) < 1e-6));
    });

    it('throws on a mid-stream failure and on an unknown model', async () => {
      await assert.rejects(client().chat.completions.create({ model: 'ghost', messages: [{ role: 'user', content: 'x' }] }), (e: { status?: number; message?: string }) => {
        assert.equal(e.status, 404);
        return true;
      });
      emu.set({ failAfterTokens: 2 });
      const stream = await client().chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true });
      const seen: string[] = [];
      await assert.rejects(async () => {
        for await (const c of stream) seen.push(c.choices[0]?.delta.content ?? '');
      }, /failAfterTokens/);
      assert.deepEqual(seen, ['tok0 ', 'tok1 ']);
    });
  });

  describe('/v1 on the wire', () => {
    it('streams server-sent events: data: {json} chunks, then data: [DONE]', async () => {
      const res = await sendTimed(url, { path: '/v1/chat/completions', headers: { authorization: 'Bearer anything' }, body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 3 } }, '\n\n');
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], 'text/event-stream');
      assert.equal(res.headers['content-length'], undefined);
      const events = res.pieces.map((p) => p.text);
      assert.equal(events.at(-1), 'data: [DONE]');
      const chunks = events.slice(0, -1).map((e) => {
        assert.match(e, /^data: \{/);
        return JSON.parse(e.slice('data: '.length));
      });
      assert.equal(chunks.length, 4);
      for (const c of chunks) {
        assert.match(c.id, /^chatcmpl-\d{1,3}$/);
        assert.equal(c.id, chunks[0].id);
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.system_fingerprint, 'fp_ollama');
        assert.equal(c.model, 'llama3.2');
        assert.equal(typeof c.created, 'number');
      }
      assert.deepEqual(chunks.slice(0, 3).map((c) => c.choices[0]), [0, 1, 2].map((i) => ({ index: 0, delta: { role: 'assistant', content: `tok${i} ` }, finish_reason: null })));
      assert.equal(chunks[3].choices[0].finish_reason, 'stop');
    });

    it('streams /v1/completions as text_completion chunks', async () => {
      const res = await sendTimed(url, { path: '/v1/completions', body: { model: 'llama3.2', prompt: 'x', stream: true, max_tokens: 2 } }, '\n\n');
      const events = res.pieces.map((p) => p.text);
      assert.equal(events.at(-1), 'data: [DONE]');
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
      assert.match(chunks[0].id, /^cmpl-\d{1,3}$/);
      assert.equal(chunks[0].object, 'text_completion');
      assert.deepEqual(chunks.map((c) => c.choices[0].text), ['tok0 ', 'tok1 ', '']);
      assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    });

    it('answers errors in the OpenAI shape', async () => {
      const missing = await send(url, { path: '/v1/chat/completions', body: { messages: [{ role: 'user', content: 'x' }] } });
      assert.equal(missing.status, 400);
      assert.deepEqual(missing.json(), { error: { message: 'model is required', type: 'invalid_request_error', param: null, code: null } });
      const noMessages = await send(url, { path: '/v1/chat/completions', body: { model: 'llama3.2', messages: [] } });
      assert.equal(noMessages.status, 400);
      const unknown = await send(url, { path: '/v1/chat/completions', body: { model: 'ghost', messages: [{ role: 'user', content: 'x' }] } });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json().error.type, 'not_found_error');
      const badJson = await send(url, { path: '/v1/embeddings', body: '{', headers: { 'content-type': 'application/json' } });
      assert.equal(badJson.status, 400);
      assert.equal(badJson.json().error.type, 'invalid_request_error');
    });

    it('lists models in the OpenAI shape', async () => {
      const list = (await send(url, { path: '/v1/models' })).json();
      assert.equal(list.object, 'list');
      assert.deepEqual(Object.keys(list.data[0]).sort(), ['created', 'id', 'object', 'owned_by']);
      const one = (await send(url, { path: '/v1/models/qwen2.5:0.5b' })).json();
      assert.deepEqual({ id: one.id, object: one.object, owned_by: one.owned_by }, { id: 'qwen2.5:0.5b', object: 'model', owned_by: 'library' });
    });
  });
});
