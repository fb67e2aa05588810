/** The official `openai` npm client against the user's cloud endpoint (Ollama's /v1 API). */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startStack, type Stack } from './harness.js';

describe('the openai npm client through proxy and bridge', () => {
  let stack: Stack;
  let client: OpenAI;
  before(async () => {
    stack = await startStack({ emulator: { tokenIntervalMs: 30 } });
    // The cloud credential travels as the OpenAI API key: clients send it as a Bearer token.
    client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: stack.token, maxRetries: 0 });
  });
  after(() => stack.close());

  test('chat completions stream chunk by chunk over SSE', async () => {
    const stream = await client.chat.completions.create({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
      max_tokens: 12,
    });
    let text = '';
    let first = true;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      if (first && chunk.choices[0]?.delta.content) {
        first = false;
        assert.equal(stack.emulator.activeGenerations(), 1, 'the first chunk arrives while generation goes on');
      }
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text.trim(), Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' '));
    assert.equal(finish, 'stop');
  });

  test('models lists the local models', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.some((id) => id.startsWith('llama3.2')), `got ${ids.join(', ')}`);
    const one = await client.models.retrieve(ids[0] ?? 'x');
    assert.equal(one.id, ids[0]);
  });

  test('non-streaming completion and embeddings', async () => {
    const c = await client.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'x' }], max_tokens: 3 });
    assert.equal(c.choices[0]?.message.content?.trim(), 'tok0 tok1 tok2');
    const e = await client.embeddings.create({ model: 'nomic-embed-text', input: 'hello' });
    assert.ok((e.data[0]?.embedding.length ?? 0) > 0);
  });
});
