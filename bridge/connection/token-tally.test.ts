import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenTally } from './token-tally.js';

const tallied = (chunks: string[]): { tokensIn: number; tokensOut: number } => {
  const t = new TokenTally();
  for (const c of chunks) t.feed(Buffer.from(c));
  t.end();
  return { tokensIn: t.tokensIn, tokensOut: t.tokensOut };
};

// As Ollama streams them (Go's encoder: no spaces).
const ndjson = (i: number): string => `{"model":"m","created_at":"2026-12-02T00:00:00Z","response":"tok${i} ","done":false}\n`;
const sse = (i: number): string => `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"tok${i}"},"finish_reason":null}]}\n\n`;

test('a complete answer counts its own figures, not its chunks', () => {
  const done = '{"model":"m","response":"","done":true,"prompt_eval_count":7,"eval_count":3}\n';
  assert.deepEqual(tallied([ndjson(0), ndjson(1), ndjson(2), done]), { tokensIn: 7, tokensOut: 3 });
  const usage = 'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\ndata: [DONE]\n\n';
  assert.deepEqual(tallied([sse(0), sse(1), usage]), { tokensIn: 5, tokensOut: 2 });
});

test('an answer cut midway counts the token chunks it streamed, split anywhere; no prompt count', () => {
  const text = Array.from({ length: 9 }, (_, i) => ndjson(i)).join('');
  // Cut inside the tenth line: only whole lines were tokens the client could use.
  const cut = text + ndjson(9).slice(0, 20);
  const pieces = [cut.slice(0, 5), cut.slice(5, 130), cut.slice(130)];
  assert.deepEqual(tallied(pieces), { tokensIn: 0, tokensOut: 9 });
  assert.deepEqual(tallied([sse(0), sse(1), sse(2)]), { tokensIn: 0, tokensOut: 3 });
});

test('a streamed OpenAI answer without usage (no stream_options.include_usage) counts its chunks; the last one is no token', () => {
  const last = 'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
  assert.deepEqual(tallied([sse(0), sse(1), last]), { tokensIn: 0, tokensOut: 2 });
});

test('text the model writes cannot pass for a chunk: quotes inside a string are escaped', () => {
  const sly = `{"model":"m","response":${JSON.stringify('"done":false "finish_reason":null')},"done":false}\n`;
  assert.deepEqual(tallied([sly, sly]), { tokensIn: 0, tokensOut: 2 });
  // Pull progress and other NDJSON that is no generation counts nothing.
  assert.deepEqual(tallied(['{"status":"pulling manifest"}\n', '{"status":"success"}\n']), { tokensIn: 0, tokensOut: 0 });
});
