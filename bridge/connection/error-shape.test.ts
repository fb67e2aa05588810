import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorBody, isOpenAiPath } from './error-shape.js';

test('the OpenAI-compatible paths, with or without the endpoint prefix and a query, and nothing else', () => {
  for (const p of ['/v1/chat/completions', '/v1/models', '/v1', '/ollama/v1/models/llama3.2', '/ollama/v1/embeddings?x=1', '/v1?x']) assert.equal(isOpenAiPath(p), true, p);
  for (const p of ['/api/chat', '/ollama/api/tags', '/v10/models', '/ollama/v1x', '/x/v1/models', '/api/v1/x', '', undefined]) assert.equal(isOpenAiPath(p), false, String(p));
});

test("bodies: OpenAI's shape on /v1 (Ollama's types by status, our code), Ollama's elsewhere", () => {
  assert.deepEqual(JSON.parse(errorBody('/ollama/v1/chat/completions', 403, 'no "x" here', 'key-model')), {
    error: { message: 'no "x" here', type: 'api_error', param: null, code: 'key-model' },
  });
  assert.equal(JSON.parse(errorBody('/v1/models', 400, 'm')).error.type, 'invalid_request_error');
  assert.equal(JSON.parse(errorBody('/v1/models/x', 404, 'm')).error.type, 'not_found_error');
  assert.equal(JSON.parse(errorBody('/v1/models', 400, 'm')).error.code, null);
  assert.deepEqual(JSON.parse(errorBody('/ollama/api/chat', 403, 'no', 'key-model')), { error: 'no' });
});
